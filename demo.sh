#!/usr/bin/env bash
# A live upgrade of a sample daemon under nymvisor, end to end, in a throw-away directory.
# No Nym binaries and no network: the "daemon" is the workspace's fake nym-node.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[ -t 1 ] || say() { printf '\n== %s\n' "$*"; }

say "Building nymvisor and the sample daemon (first build takes a few minutes)"
cargo build -q -p nymvisor -p nymvisor-tests --bins
BIN="$PWD/target/debug"

WORK=$(mktemp -d -t nymvisor-demo.XXXXXX)
NV_PID=""
cleanup() {
  [ -n "$NV_PID" ] && kill -TERM "$NV_PID" 2>/dev/null && wait "$NV_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export NYM_HOME_DIR="$WORK/home"
export DAEMON_STARTUP_PERIOD_DURATION=2s
mkdir -p "$WORK/node-home" "$WORK/releases"
"$BIN/stamp-fake-daemon" "$WORK/releases/nym-node-1.1.0" nym-node 1.1.0 >/dev/null
"$BIN/stamp-fake-daemon" "$WORK/releases/nym-node-1.2.0" nym-node 1.2.0 >/dev/null
echo "sample data" > "$WORK/node-home/identity.key"

say "nymvisor init: adopt nym-node 1.1.0"
echo "\$ nymvisor init releases/nym-node-1.1.0 --daemon-home node-home"
"$BIN/nymvisor" init "$WORK/releases/nym-node-1.1.0" --daemon-home "$WORK/node-home" | sed -n '1,4p'

say "nymvisor run: supervise it (daemon events and nymvisor's log interleaved)"
echo "\$ nymvisor run run --id demo-node"
export FAKE_DAEMON_LOG="$WORK/daemon.log"
touch "$FAKE_DAEMON_LOG"
tail -n +1 -f "$FAKE_DAEMON_LOG" 2>/dev/null | sed -u 's/^/   daemon   | /' &
TAIL_PID=$!
RUST_LOG=info "$BIN/nymvisor" run run --id demo-node 2> >(sed -u 's/^/   nymvisor | /') &
NV_PID=$!
wait_for() { for _ in $(seq 1 200); do grep -q "$1" "$FAKE_DAEMON_LOG" && return 0; sleep 0.05; done; echo "timed out waiting for: $1"; exit 1; }
wait_for "version=1.1.0"

say "Publish release 1.2.0 and ask for it now"
echo "\$ nymvisor add-upgrade releases/nym-node-1.2.0 --upgrade-name v1.2.0 --now"
"$BIN/nymvisor" add-upgrade "$WORK/releases/nym-node-1.2.0" --upgrade-name v1.2.0 --now | sed 's/^/   /'
wait_for "version=1.2.0"
sleep 2.5   # let the new version pass its startup period, so the upgrade is confirmed

say "Result"
echo "\$ nymvisor daemon-build-info"
"$BIN/nymvisor" daemon-build-info | grep -E "Binary Name|Build Version" | sed 's/^/   /'
echo "   current -> $(readlink "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/current")"
echo "   backup:    $(cd "$WORK/node-home/nymvisor/backups" && ls -d */*)"

say "Stopping nymvisor (SIGTERM is forwarded to the daemon) and cleaning up"
kill -TERM "$NV_PID"; wait "$NV_PID" || true; NV_PID=""
sleep 0.2; kill "$TAIL_PID" 2>/dev/null || true
echo "done."
