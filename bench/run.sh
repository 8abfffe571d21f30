#!/usr/bin/env bash
# Supervisor benchmark (issue "Supervisor"): idle RSS and threads of `nymvisor run`, delay from
# `add-upgrade --now` to the daemon's stop signal, and upgrade downtime (old daemon exited → new
# daemon started) with the binary present and backups off.
#
# Usage: bench/run.sh [ITERATIONS]   (default 20). Release build of nymvisor; needs python3.
# Figures are printed with a baseline measured in the same run (these machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}

echo "building (release)…" >&2
cargo build -q --release -p nymvisor
cargo build -q --release -p nymvisor-tests --bins
NV="$PWD/target/release/nymvisor"
STAMP="$PWD/target/release/stamp-fake-daemon"

WORK=$(mktemp -d -t nymvisor-bench.XXXXXX)
NV_PID=""
cleanup() { [ -n "$NV_PID" ] && kill -TERM "$NV_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

export NYM_HOME_DIR="$WORK/home" FAKE_DAEMON_TIMELOG="$WORK/time.log"
export DAEMON_UNSAFE_SKIP_BACKUP=true DAEMON_STARTUP_PERIOD_DURATION=1s NYMVISOR_DISABLE_LOGS=true
# upgrades come from add-upgrade here; bench/download.sh measures the HTTP source
export NYMVISOR_UPSTREAM_SOURCE=none
mkdir -p "$WORK/node" "$WORK/rel"
"$STAMP" "$WORK/rel/v0" nym-node 1.0.0 >/dev/null
"$NV" init "$WORK/rel/v0" --daemon-home "$WORK/node" >/dev/null
touch "$FAKE_DAEMON_TIMELOG"

"$NV" run run >/dev/null 2>"$WORK/nymvisor.log" &
NV_PID=$!
lines() { wc -l < "$FAKE_DAEMON_TIMELOG"; }
wait_line() { # wait until the time log has a line matching $1
  for _ in $(seq 1 2000); do grep -q -- "$1" "$FAKE_DAEMON_TIMELOG" && return 0; sleep 0.005; done
  echo "timed out waiting for '$1'" >&2; cat "$WORK/nymvisor.log" >&2; exit 1
}
wait_line "start .*version=1.0.0"
sleep 2
status() { grep -E "^$1:" "/proc/$NV_PID/status" | awk '{print $2}'; }
RSS_KB=$(status VmRSS); HWM_KB=$(status VmHWM); THREADS=$(status Threads)
sleep 30 & SLEEP_PID=$!; sleep 0.2
BASE_RSS_KB=$(grep -E '^VmRSS:' /proc/$SLEEP_PID/status | awk '{print $2}'); kill $SLEEP_PID

# spawn baseline: one fork+exec+exit of the daemon binary, timed in the same run
BASE_SPAWN_NS=$(python3 - "$WORK/rel/v0" <<'PY'
import subprocess, sys, time, statistics
t = []
for _ in range(30):
    s = time.perf_counter_ns(); subprocess.run([sys.argv[1], "--no-banner", "build-info", "--output=json"], stdout=subprocess.DEVNULL); t.append(time.perf_counter_ns() - s)
print(int(statistics.median(t)))
PY
)

: > "$WORK/samples"
for i in $(seq 1 "$N"); do
  v="1.$i.0"
  "$STAMP" "$WORK/rel/$v" nym-node "$v" >/dev/null
  old_pid=$(grep "start " "$FAKE_DAEMON_TIMELOG" | tail -1 | sed -E 's/.* pid=([0-9]+).*/\1/')
  t0=$(date +%s%N)
  "$NV" add-upgrade "$WORK/rel/$v" --upgrade-name "v$v" --now >/dev/null
  wait_line "start .*version=$v "
  # the next upgrade may only start once this one is confirmed (its startup period passed)
  for _ in $(seq 1 1000); do [ -e "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/upgrade-journal.json" ] || break; sleep 0.01; done
  sig=$(grep "signal pid=$old_pid SIGINT" "$FAKE_DAEMON_TIMELOG" | awk '{print $1}')
  ex=$(grep "exit pid=$old_pid " "$FAKE_DAEMON_TIMELOG" | awk '{print $1}')
  st=$(grep "start .*version=$v " "$FAKE_DAEMON_TIMELOG" | awk '{print $1}')
  echo "$t0 $sig $ex $st" >> "$WORK/samples"
done

sleep 2
RSS_AFTER_KB=$(status VmRSS)

python3 - "$WORK/samples" "$RSS_KB" "$HWM_KB" "$THREADS" "$BASE_RSS_KB" "$BASE_SPAWN_NS" "$RSS_AFTER_KB" <<'PY'
import sys, statistics as st
rows = [list(map(int, l.split())) for l in open(sys.argv[1])]
rss, hwm, threads, base_rss, base_spawn, rss_after = map(int, sys.argv[2:8])
react = [(sig - t0) / 1e6 for t0, sig, ex, start in rows]
down = [(start - ex) / 1e6 for t0, sig, ex, start in rows]
q = lambda xs: f"median {st.median(xs):.2f} ms, min {min(xs):.2f}, max {max(xs):.2f}"
print(f"idle RSS of nymvisor run:     {rss/1024:.2f} MiB (peak {hwm/1024:.2f} MiB); baseline `sleep` {base_rss/1024:.2f} MiB; ratio {rss/base_rss:.2f}x")
print(f"idle RSS after the upgrades:  {rss_after/1024:.2f} MiB")
print(f"threads:                      {threads}")
print(f"add-upgrade --now → SIGINT:   {q(react)} over {len(rows)} upgrades")
print(f"downtime (exit → new start):  {q(down)}")
print(f"spawn baseline (fork+exec+exit of the daemon, median): {base_spawn/1e6:.2f} ms; downtime/baseline {st.median(down)/(base_spawn/1e6):.2f}x")
PY

# Where the downtime goes: a second nymvisor, with JSON logs (which cost a little time of their
# own), whose stop, swap and restart lines carry their timings; the daemons log their exit and
# start. Steps: exit → stop noticed (SIGCHLD, reaping, the leftovers check), → swap done
# (`current` renamed and its directory flushed), → the new daemon's first line (fork, exec,
# its start-up).
kill -TERM "$NV_PID"; wait "$NV_PID" 2>/dev/null || true
NYMVISOR_DISABLE_LOGS=false NYMVISOR_LOG_FORMAT=json "$NV" run run >/dev/null 2>"$WORK/steps.log" &
NV_PID=$!
last=$(grep "start " "$FAKE_DAEMON_TIMELOG" | tail -1 | sed -E 's/.*version=([^ ]+).*/\1/')
wait_line "start .*version=$last "
sleep 2
: > "$WORK/steps"
for i in $(seq 1 10); do
  v="2.$i.0"
  "$STAMP" "$WORK/rel/$v" nym-node "$v" >/dev/null
  old_pid=$(grep "start " "$FAKE_DAEMON_TIMELOG" | tail -1 | sed -E 's/.* pid=([0-9]+).*/\1/')
  "$NV" add-upgrade "$WORK/rel/$v" --upgrade-name "v$v" --now >/dev/null
  wait_line "start .*version=$v "
  for _ in $(seq 1 1000); do [ -e "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/upgrade-journal.json" ] || break; sleep 0.01; done
  ex=$(grep "exit pid=$old_pid " "$FAKE_DAEMON_TIMELOG" | awk '{print $1}')
  st=$(grep "start .*version=$v " "$FAKE_DAEMON_TIMELOG" | awk '{print $1}')
  echo "v$v $ex $st" >> "$WORK/steps"
done
python3 - "$WORK/steps" "$WORK/steps.log" <<'PY'
import sys, json, datetime, statistics as st
logs = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
def at(s):
    return datetime.datetime.strptime(s[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
cols = {"exit → stop noticed": [], "stop noticed → swap done": [], "  of which the swap": [], "swap done → new daemon's first line": [], "downtime (logs on)": []}
for line in open(sys.argv[1]):
    name, ex, start = line.split(); ex, start = int(ex) / 1e9, int(start) / 1e9
    by = {l["stage"]: l for l in logs if l.get("upgrade") == name and "stage" in l}
    stop, swap = at(by["stop"]["timestamp"]), at(by["swap"]["timestamp"])
    cols["exit → stop noticed"].append((stop - ex) * 1e3)
    cols["stop noticed → swap done"].append((swap - stop) * 1e3)
    cols["  of which the swap"].append(by["swap"]["elapsed_us"] / 1e3)
    cols["swap done → new daemon's first line"].append((start - swap) * 1e3)
    cols["downtime (logs on)"].append((start - ex) * 1e3)
print("where the downtime goes (median of 10, JSON logs on):")
for k, v in cols.items():
    print(f"  {k:38s} {st.median(v):.2f} ms")
PY
