#!/usr/bin/env bash
# Backup benchmark (issue "plugins and backups"): downtime of an upgrade with the default
# backup strategy (`copy`) and a 300 MiB, 300-file DAEMON_HOME, against `cp -a` of the same tree
# (and `cp -a` followed by `sync -f`, since nymvisor flushes the backup before swapping), timed
# in the same run on the same file system.
#
# Usage: bench/backup.sh [ROUNDS]   (default 3; release build; needs python3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}

echo "building (release)…" >&2
cargo build -q --release -p nymvisor
cargo build -q --release -p nymvisor-tests --bins
NV="$PWD/target/release/nymvisor"; STAMP="$PWD/target/release/stamp-fake-daemon"

WORK=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" nymvisor-backup.XXXXXX)
NV_PID=""
cleanup() { [ -n "$NV_PID" ] && kill -TERM "$NV_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# 300 files of 1 MiB in 10 directories, random content
mkdir -p "$WORK/node"
for d in $(seq 0 9); do
  mkdir -p "$WORK/node/dir$d"
  for f in $(seq 0 29); do head -c 1048576 /dev/urandom > "$WORK/node/dir$d/file$f"; done
done
sync

export NYM_HOME_DIR="$WORK/home" FAKE_DAEMON_TIMELOG="$WORK/time.log"
export DAEMON_STARTUP_PERIOD_DURATION=1s NYMVISOR_DISABLE_LOGS=true NYMVISOR_UPSTREAM_SOURCE=none
export DAEMON_BACKUP_KEEP=1 DAEMON_BACKUP_MIN_FREE=0
"$STAMP" "$WORK/v0" nym-node 1.0.0 >/dev/null
"$NV" init "$WORK/v0" --daemon-home "$WORK/node" >/dev/null
touch "$FAKE_DAEMON_TIMELOG"
"$NV" run run >/dev/null 2>"$WORK/nymvisor.log" & NV_PID=$!
wait_line() { for _ in $(seq 1 6000); do grep -q -- "$1" "$FAKE_DAEMON_TIMELOG" && return 0; sleep 0.01; done; echo "timed out: $1" >&2; cat "$WORK/nymvisor.log" >&2; exit 1; }
wait_line "start .*version=1.0.0"

: > "$WORK/samples"
for i in $(seq 1 "$ROUNDS"); do
  # baseline on the same file system, same run
  rm -rf "$WORK/cp"; sync
  t0=$(date +%s%N); cp -a "$WORK/node" "$WORK/cp"; t1=$(date +%s%N); sync -f "$WORK/cp"; t2=$(date +%s%N)
  rm -rf "$WORK/cp"; sync
  v="1.$i.0"; "$STAMP" "$WORK/$v" nym-node "$v" >/dev/null
  old=$(grep "start " "$FAKE_DAEMON_TIMELOG" | tail -1 | sed -E 's/.* pid=([0-9]+).*/\1/')
  "$NV" add-upgrade "$WORK/$v" --upgrade-name "v$v" --now >/dev/null
  wait_line "start .*version=$v "
  ex=$(grep "exit pid=$old " "$FAKE_DAEMON_TIMELOG" | cut -d' ' -f1)
  st=$(grep "start .*version=$v " "$FAKE_DAEMON_TIMELOG" | cut -d' ' -f1)
  echo "$((t1-t0)) $((t2-t0)) $((st-ex))" >> "$WORK/samples"
  for _ in $(seq 1 1000); do [ -e "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/upgrade-journal.json" ] || break; sleep 0.01; done
done

python3 - "$WORK/samples" <<'PY'
import sys, statistics as st
rows = [list(map(int, l.split())) for l in open(sys.argv[1])]
cp = st.median(r[0] for r in rows) / 1e6
cps = st.median(r[1] for r in rows) / 1e6
down = st.median(r[2] for r in rows) / 1e6
print(f"300 MiB / 300 files, {len(rows)} rounds (medians):")
print(f"  cp -a:                 {cp:8.1f} ms")
print(f"  cp -a + sync -f:       {cps:8.1f} ms")
print(f"  upgrade downtime:      {down:8.1f} ms (stop + copy backup + flush + swap + start)")
print(f"  downtime / cp -a:      {down/cp:.2f}x   downtime / (cp -a + sync): {down/cps:.2f}x")
PY
