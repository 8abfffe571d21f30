#!/usr/bin/env bash
# A live upgrade of a sample daemon under nymvisor, end to end, in a throw-away directory:
# nymvisor watches a local release mirror, a new release is published to it and applied
# (download, verify, stop, backup, swap, restart), then a bad release is published and refused.
# No Nym binaries and no network: the "daemon" is the workspace's fake nym-node.
set -euo pipefail
cd "$(dirname "$0")"

if [ -t 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi

say "Building nymvisor and the sample daemon (the first build takes a few minutes)"
cargo build -q -p nymvisor -p nymvisor-tests --bins
BIN="$PWD/target/debug"

WORK=$(mktemp -d -t nymvisor-demo.XXXXXX)
NV_PID=""; TAIL_PID=""
cleanup() {
  [ -n "$NV_PID" ] && kill -TERM "$NV_PID" 2>/dev/null && wait "$NV_PID" 2>/dev/null
  [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

export NYM_HOME_DIR="$WORK/home"
export NYMVISOR_UPSTREAM_SOURCE=local NYMVISOR_LOCAL_MIRROR_DIRECTORY="$WORK/mirror"
export NYMVISOR_UPSTREAM_POLLING_RATE=1s DAEMON_STARTUP_PERIOD_DURATION=2s
MIRROR="$WORK/mirror/nym-node"
mkdir -p "$WORK/node-home" "$MIRROR/bin"
"$BIN/stamp-fake-daemon" "$WORK/nym-node-1.1.0" nym-node 1.1.0 >/dev/null
echo "sample data" > "$WORK/node-home/identity.key"

# publish VERSION CHECKSUM: the release's upgrade-info.json, written then renamed into place
publish() {
  cat > "$MIRROR/.upgrade-info.json" <<JSON
{ "manual": false, "name": "v$1", "notes": "demo release", "publishDate": null, "version": "$1",
  "platforms": { "any": { "checksum": "$2", "checksumAlgorithm": "sha256", "url": "bin/nym-node-$1" } },
  "upgradeTime": "2026-01-01T00:00:00Z", "binaryDetails": null }
JSON
  mv "$MIRROR/.upgrade-info.json" "$MIRROR/upgrade-info.json"
}

say "nymvisor init: adopt nym-node 1.1.0"
echo "\$ nymvisor init nym-node-1.1.0 --daemon-home node-home"
"$BIN/nymvisor" init "$WORK/nym-node-1.1.0" --daemon-home "$WORK/node-home" | sed -n '1,4p'

say "nymvisor run: supervise it, watching the release mirror (daemon events and nymvisor's log)"
echo "\$ NYMVISOR_UPSTREAM_SOURCE=local NYMVISOR_LOCAL_MIRROR_DIRECTORY=mirror nymvisor run run --id demo-node"
export FAKE_DAEMON_LOG="$WORK/daemon.log"
touch "$FAKE_DAEMON_LOG"
tail -n +1 -f "$FAKE_DAEMON_LOG" 2>/dev/null | sed -u 's/^/   daemon   | /' &
TAIL_PID=$!
RUST_LOG=info "$BIN/nymvisor" run run --id demo-node 2> >(sed -u 's/^/   nymvisor | /') &
NV_PID=$!
wait_for() { for _ in $(seq 1 400); do grep -q "$1" "$2" && return 0; sleep 0.05; done; echo "timed out waiting for: $1"; exit 1; }
wait_for "version=1.1.0" "$FAKE_DAEMON_LOG"
sleep 1

say "Publish release 1.2.0 to the mirror"
"$BIN/stamp-fake-daemon" "$MIRROR/bin/nym-node-1.2.0" nym-node 1.2.0 >/dev/null
publish 1.2.0 "$(sha256sum "$MIRROR/bin/nym-node-1.2.0" | cut -d' ' -f1)"
echo "   mirror/nym-node/upgrade-info.json -> 1.2.0 (sha256 of bin/nym-node-1.2.0)"
wait_for "version=1.2.0" "$FAKE_DAEMON_LOG"
sleep 2.5   # the new version passes its startup period: the upgrade is confirmed

say "Publish a bad release 1.3.0 (its checksum does not match): refused, 1.2.0 keeps running"
"$BIN/stamp-fake-daemon" "$MIRROR/bin/nym-node-1.3.0" nym-node 1.3.0 >/dev/null
publish 1.3.0 "$(printf '0%.0s' $(seq 1 64))"
sleep 3

say "Result"
echo "\$ nymvisor daemon-build-info"
"$BIN/nymvisor" daemon-build-info | grep -E "Binary Name|Build Version" | sed 's/^/   /'
echo "   current -> $(readlink "$NYM_HOME_DIR/.nym/nymvisors/data/nym-node/current")"
echo "   backup:    $(cd "$WORK/node-home/nymvisor/backups" && ls -d */*)"

say "Stopping nymvisor (SIGTERM is forwarded to the daemon) and cleaning up"
kill -TERM "$NV_PID"; wait "$NV_PID" || true; NV_PID=""
sleep 0.2
echo "done."
