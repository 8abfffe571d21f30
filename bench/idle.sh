#!/usr/bin/env bash
# Idle-cost benchmark: what `nymvisor run` costs while nothing happens, as an operator would see
# it in `top`: CPU time, resident memory, threads and wake-ups (context switches), over SECONDS
# (default 60) in four situations:
#   a) nothing to do (no upstream source, nothing queued);
#   b) polling a local HTTP feed every 2 s that offers nothing new (each poll is a short-lived
#      `nymvisor __helper` child: its CPU time is counted too, and its peak RSS reported);
#   c) a daemon writing log lines 10 times a second, and `nymvisor status` reading the plan every
#      2 s from outside (reads of the plan must not wake the watcher).
#   d) as b, polling every 15 s: what the memory looks like between polls (the default is 1 h).
#   e) as a, a member of a fleet group on a local etcd (when `etcd` is installed): nothing is
#      due, so no etcd request after the one at start.
# RSS is sampled twice a second (median and range reported); after each start, poll or upgrade
# nymvisor gives back the pages it no longer needs once things are quiet (core/src/memory.rs).
# Baseline in the same run: the RSS of `sleep`.
#
# Usage: bench/idle.sh [SECONDS]. Release build of nymvisor; needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}

echo "building (release)…" >&2
cargo build -q --release -p nymvisor
cargo build -q --release -p nymvisor-tests --bins
NV="$PWD/target/release/nymvisor"
STAMP="$PWD/target/release/stamp-fake-daemon"
TICK=$(getconf CLK_TCK)

WORK=$(mktemp -d -t nymvisor-idle.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$STAMP" "$WORK/nym-node" nym-node 1.1.0 >/dev/null
# the daemon of scenario c: a log line every 100 ms from a background job, then the fake daemon
cat > "$WORK/nym-node-chatty" <<SH
#!/bin/sh
case "\$*" in *build-info*) exec "$WORK/nym-node" "\$@";; esac
( while :; do echo "daemon log line \$(date +%s.%N)"; sleep 0.1; done ) &
exec "$WORK/nym-node" "\$@"
SH
chmod +x "$WORK/nym-node-chatty"

# the feed of scenario b: the running version again, so nothing is queued
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/feed/nym-node"
cat > "$WORK/feed/nym-node/upgrade-info.json" <<JSON
{ "manual": false, "name": "v1.1.0", "notes": "", "publishDate": null, "version": "1.1.0",
  "platforms": {}, "upgradeTime": "2026-01-01T00:00:00Z", "binaryDetails": null }
JSON
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/feed" >/dev/null 2>&1 &
PIDS+=($!)

field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# context switches of every thread of the process
switches() { cat /proc/"$1"/task/*/status | awk '$1 ~ /ctxt_switches:$/ {n += $2} END {print n}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU of children that exited and were reaped: the network helpers (the daemon still runs)
child_ticks() { awk '{print $16 + $17}' "/proc/$1/stat"; }

# scenario NAME BINARY [ENV…]: an instance of its own, SECS of idle, one result line
scenario() {
  local name=$1 bin=$2; shift 2
  local home="$WORK/home-$name" node="$WORK/node-$name"
  mkdir -p "$home" "$node"
  env NYM_HOME_DIR="$home" "$NV" init "$bin" --daemon-home "$node" >/dev/null
  env NYM_HOME_DIR="$home" DAEMON_UNSAFE_SKIP_BACKUP=true RUST_LOG=debug "$@" \
    "$NV" run run >/dev/null 2>"$WORK/$name.log" &
  local pid=$! watcher=""
  PIDS+=("$pid")
  if [ "$name" = c ]; then
    # (status exits 3 while the daemon is down: the loop must not stop under `set -e`)
    ( while :; do NYM_HOME_DIR="$home" "$NV" status >/dev/null 2>&1 || true; sleep 2; done ) &
    watcher=$!; PIDS+=("$watcher")
  fi
  sleep 3 # start-up is not idle
  local t0 c0 v0 h0
  t0=$(ticks "$pid"); h0=$(child_ticks "$pid"); v0=$(switches "$pid")
  # RSS as `top` shows it, twice a second (it moves while a poll runs)
  local rss=() i
  for ((i = 0; i < SECS * 2; i++)); do sleep 0.5; rss+=("$(field "$pid" VmRSS)"); done
  local t1 v1 threads h1
  t1=$(ticks "$pid"); h1=$(child_ticks "$pid"); v1=$(switches "$pid")
  threads=$(field "$pid" Threads)
  if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null || true; fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$name" "$SECS" "$TICK" "$((t1 - t0))" "$((v1 - v0))" "${rss[*]}" "$threads" "$BASE_RSS" "$((h1 - h0))" "$WORK/$name.log" <<'PY'
import sys, re
name, secs, tick, dt, wakes, rss, threads, base, dh, log = sys.argv[1:]
secs, tick, dt, wakes, base, dh = float(secs), int(tick), int(dt), int(wakes), int(base), int(dh)
samples = sorted(int(r) for r in rss.split())
low, rss, top = samples[0], samples[len(samples) // 2], samples[-1]
cpu = 100.0 * dt / tick / secs
line = (f"{name}: CPU {cpu:.3f} % of a core ({dt} ticks in {secs:.0f} s), "
        f"wake-ups {wakes / secs * 60:.0f}/min, RSS {rss / 1024:.2f} MiB median ({rss / base:.2f}x sleep), "
        f"{low / 1024:.2f}-{top / 1024:.2f} range, threads {threads}")
peaks = [int(m) for m in re.findall(r"peak_rss_kib=(\d+)", open(log).read())]
if peaks:
    line += (f"; {len(peaks)} helper runs: CPU {100.0 * dh / tick / secs:.3f} % of a core, "
             f"peak RSS {max(peaks) / 1024:.2f} MiB max, {sorted(peaks)[len(peaks) // 2] / 1024:.2f} MiB median")
print(line)
PY
}

sleep 60 & SLEEP_PID=$!; PIDS+=("$SLEEP_PID"); sleep 0.2
BASE_RSS=$(field "$SLEEP_PID" VmRSS)
echo "baseline: RSS of sleep $(python3 -c "print(f'{$BASE_RSS/1024:.2f}')") MiB; ${SECS} s per scenario"

scenario a "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=none
scenario b "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=http \
  NYMVISOR_UPSTREAM_BASE_UPGRADE_URL="http://127.0.0.1:$PORT/" NYMVISOR_UPSTREAM_POLLING_RATE=2s
scenario c "$WORK/nym-node-chatty" NYMVISOR_UPSTREAM_SOURCE=none
scenario d "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=http \
  NYMVISOR_UPSTREAM_BASE_UPGRADE_URL="http://127.0.0.1:$PORT/" NYMVISOR_UPSTREAM_POLLING_RATE=15s
if command -v etcd >/dev/null; then
  EPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  etcd --name idle --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$EPORT" \
    --advertise-client-urls "http://127.0.0.1:$EPORT" --listen-peer-urls "http://127.0.0.1:$PPORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
    --initial-cluster "idle=http://127.0.0.1:$PPORT" >"$WORK/etcd.log" 2>&1 &
  PIDS+=($!)
  sleep 2
  scenario e "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=none \
    NYMVISOR_FLEET_ETCD_ENDPOINTS="http://127.0.0.1:$EPORT" NYMVISOR_FLEET_GROUP=idle
else
  echo "e: skipped (no etcd; Debian package etcd-server)"
fi
echo "targets: a < 0.1 % of a core, b < 1 % of a core; RSS <= 3.4 MiB in a, c, d and e (median), threads <= 2"
