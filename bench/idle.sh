#!/usr/bin/env bash
# Idle-cost benchmark: what `nymvisor run` costs while nothing happens, as an operator would see
# it in `top`: CPU time, resident memory, threads and wake-ups (context switches), over SECONDS
# (default 60) in three situations:
#   a) nothing to do (no upstream source, nothing queued);
#   b) polling a local HTTP feed every 2 s that offers nothing new;
#   c) a daemon writing log lines 10 times a second, and `nymvisor status` reading the plan every
#      2 s from outside (reads of the plan must not wake the watcher).
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
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# scenario NAME BINARY [ENV…]: an instance of its own, SECS of idle, one result line
scenario() {
  local name=$1 bin=$2; shift 2
  local home="$WORK/home-$name" node="$WORK/node-$name"
  mkdir -p "$home" "$node"
  env NYM_HOME_DIR="$home" "$NV" init "$bin" --daemon-home "$node" >/dev/null
  env NYM_HOME_DIR="$home" DAEMON_UNSAFE_SKIP_BACKUP=true "$@" \
    "$NV" run run >/dev/null 2>"$WORK/$name.log" &
  local pid=$! watcher=""
  PIDS+=("$pid")
  if [ "$name" = c ]; then
    ( while :; do NYM_HOME_DIR="$home" "$NV" status >/dev/null 2>&1; sleep 2; done ) &
    watcher=$!; PIDS+=("$watcher")
  fi
  sleep 3 # start-up is not idle
  local t0 c0 v0
  t0=$(ticks "$pid"); v0=$(field "$pid" voluntary_ctxt_switches); c0=$(field "$pid" nonvoluntary_ctxt_switches)
  sleep "$SECS"
  local t1 v1 c1 rss threads
  t1=$(ticks "$pid"); v1=$(field "$pid" voluntary_ctxt_switches); c1=$(field "$pid" nonvoluntary_ctxt_switches)
  rss=$(field "$pid" VmRSS); threads=$(field "$pid" Threads)
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$name" "$SECS" "$TICK" "$((t1 - t0))" "$((v1 - v0 + c1 - c0))" "$rss" "$threads" "$BASE_RSS" <<'PY'
import sys
name, secs, tick, dt, wakes, rss, threads, base = sys.argv[1:]
secs, tick, dt, wakes, rss, base = float(secs), int(tick), int(dt), int(wakes), int(rss), int(base)
cpu = 100.0 * dt / tick / secs
print(f"{name}: CPU {cpu:.3f} % of a core ({dt} ticks in {secs:.0f} s), "
      f"wake-ups {wakes / secs * 60:.0f}/min, RSS {rss / 1024:.2f} MiB ({rss / base:.2f}x sleep), threads {threads}")
PY
}

sleep 60 & SLEEP_PID=$!; PIDS+=("$SLEEP_PID"); sleep 0.2
BASE_RSS=$(field "$SLEEP_PID" VmRSS)
echo "baseline: RSS of sleep $(python3 -c "print(f'{$BASE_RSS/1024:.2f}')") MiB; ${SECS} s per scenario"

scenario a "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=none
scenario b "$WORK/nym-node" NYMVISOR_UPSTREAM_SOURCE=http \
  NYMVISOR_UPSTREAM_BASE_UPGRADE_URL="http://127.0.0.1:$PORT/" NYMVISOR_UPSTREAM_POLLING_RATE=2s
scenario c "$WORK/nym-node-chatty" NYMVISOR_UPSTREAM_SOURCE=none
echo "targets: a < 0.1 % of a core, b < 1 % of a core"
