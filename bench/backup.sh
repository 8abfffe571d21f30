#!/usr/bin/env bash
# Backup benchmark: the downtime of an upgrade with the default backup strategy (`copy`, with the
# live pre-copy) against a durable copy of the same tree (`cp -a` + `sync -f`), timed in the same
# run on the same file system, for a 300 MiB / 300-file home and a 3 GiB / 3000-file home. In
# both, the daemon rewrites 3 MiB (three 1 MiB files, in place) while it runs and again when it
# stops — about 1 % of the smaller home — so both see the same amount of change.
#
# Downtime is from the old daemon's exit to the new one's start (the fake daemon's time log);
# the old daemon's own shutdown writes come before its exit. The 300 MiB case is also run with
# `DAEMON_BACKUP_PRECOPY=false` (the stop-then-copy path) for comparison.
#
# Usage: bench/backup.sh [ROUNDS] [CASES]   (default 3 rounds; CASES like "300:true 3000:true",
#        default all three; release build; needs python3; ~8 GiB free in ${BENCH_DIR:-/var/tmp})
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
CASES=${2:-"300:true 300:false 3000:true"}

echo "building (release)…" >&2
cargo build -q --release -p nymvisor
cargo build -q --release -p nymvisor-tests --bins
NV="$PWD/target/release/nymvisor"; STAMP="$PWD/target/release/stamp-fake-daemon"

WORK=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" nymvisor-backup.XXXXXX)
NV_PID=""
cleanup() { [ -n "$NV_PID" ] && kill -TERM "$NV_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
: > "$WORK/samples"

# case FILES PRECOPY: a home of FILES × 1 MiB (random, 30 per directory) plus the daemon's
# database directory, then ROUNDS upgrades, each after a timed cp -a (+ sync -f) of the home
run_case() {
  local files=$1 precopy=$2 label="$1 files, precopy=$2"
  local c="$WORK/case" node="$WORK/case/node"
  rm -rf "$c"; mkdir -p "$node/db"
  echo "preparing $label…" >&2
  for ((i = 0; i < files; i++)); do
    d="$node/dir$((i / 30))"; [ -d "$d" ] || mkdir "$d"
    head -c 1048576 /dev/urandom > "$d/file$i"
  done
  sync
  export NYM_HOME_DIR="$c/home" FAKE_DAEMON_TIMELOG="$c/time.log" FAKE_DAEMON_CHURN="$node/db"
  export DAEMON_STARTUP_PERIOD_DURATION=1s NYMVISOR_DISABLE_LOGS=true NYMVISOR_UPSTREAM_SOURCE=none
  export DAEMON_BACKUP_KEEP=1 DAEMON_BACKUP_MIN_FREE=0 DAEMON_BACKUP_PRECOPY=$precopy
  "$STAMP" "$c/v0" nym-node 1.0.0 >/dev/null
  "$NV" init "$c/v0" --daemon-home "$node" >/dev/null
  touch "$FAKE_DAEMON_TIMELOG"
  "$NV" run run >/dev/null 2>"$c/nymvisor.log" & NV_PID=$!
  wait_line "start .*version=1.0.0"
  for i in $(seq 1 "$ROUNDS"); do
    rm -rf "$c/cp"; sync
    t0=$(date +%s%N); cp -a "$node" "$c/cp"; t1=$(date +%s%N); sync -f "$c/cp"; t2=$(date +%s%N)
    rm -rf "$c/cp"; sync
    v="1.$i.0"; "$STAMP" "$c/$v" nym-node "$v" >/dev/null
    old=$(grep " start " "$FAKE_DAEMON_TIMELOG" | tail -1 | sed -E 's/.* pid=([0-9]+).*/\1/')
    "$NV" add-upgrade "$c/$v" --upgrade-name "v$v" --now >/dev/null
    wait_line "start .*version=$v "
    ex=$(grep " exit pid=$old " "$FAKE_DAEMON_TIMELOG" | cut -d' ' -f1)
    st=$(grep " start .*version=$v " "$FAKE_DAEMON_TIMELOG" | cut -d' ' -f1)
    echo "$files $precopy $((t1 - t0)) $((t2 - t0)) $((st - ex))" >> "$WORK/samples"
    for _ in $(seq 1 3000); do
      [ -e "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/upgrade-journal.json" ] || break
      sleep 0.01
    done
  done
  kill -TERM "$NV_PID"; wait "$NV_PID" || true; NV_PID=""
  rm -rf "$c"
}

wait_line() {
  for _ in $(seq 1 12000); do grep -q -- "$1" "$FAKE_DAEMON_TIMELOG" && return 0; sleep 0.01; done
  echo "timed out: $1" >&2; cat "$WORK/case/nymvisor.log" >&2; exit 1
}

for case in $CASES; do run_case "${case%%:*}" "${case##*:}"; done

python3 - "$WORK/samples" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
cases = {}
for files, precopy, cp, cps, down in rows:
    cases.setdefault((int(files), precopy), []).append((int(cp), int(cps), int(down)))
def med(xs): return st.median(xs) / 1e6
res = {}
print(f"medians of {len(next(iter(cases.values())))} rounds; downtime = old daemon's exit → new one's start")
print(f"{'home':>18} {'pre-copy':>8} {'cp -a':>9} {'cp -a+sync':>11} {'downtime':>9} {'down/(cp+sync)':>15}")
for (files, precopy), r in cases.items():
    cp, cps, down = med(x[0] for x in r), med(x[1] for x in r), med(x[2] for x in r)
    res[(files, precopy)] = (cps, down)
    size = f"{files} MiB/{files} files" if files < 1024 else f"{files/1024:.1f} GiB/{files} files"
    print(f"{size:>18} {precopy:>8} {cp:7.1f}ms {cps:9.1f}ms {down:7.1f}ms {down/cps:14.3f}x")
small, big = res.get((300, "true")), res.get((3000, "true"))
if small and big:
    print(f"downtime growth 300 MiB → 3 GiB with the same change (pre-copy): {big[1]/small[1]:.2f}x"
          f"   (cp -a + sync grew {big[0]/small[0]:.2f}x)")
PY
