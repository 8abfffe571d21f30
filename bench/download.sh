#!/usr/bin/env bash
# Download benchmark (issue "sources"): downtime of an upgrade that downloads a 50 MiB binary,
# peak RSS growth of nymvisor while downloading and verifying a 200 MiB binary, and sha256
# throughput of nymvisor's streaming hasher vs `sha256sum` on the same file, in the same run.
#
# Usage: bench/download.sh      (release build; needs python3 for the local HTTP server)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "building (release)…" >&2
cargo build -q --release -p nymvisor
cargo build -q --release -p nymvisor-tests --bins
cargo build -q --release -p nymvisor-verifiers --example hash_file
NV="$PWD/target/release/nymvisor"; STAMP="$PWD/target/release/stamp-fake-daemon"; HASH="$PWD/target/release/examples/hash_file"

WORK=$(mktemp -d -t nymvisor-dl.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# a feed served by python's http.server on a free loopback port
mkdir -p "$WORK/feed/nym-node" "$WORK/feed/bin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/feed" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) & PIDS+=($!)

# a release of SIZE MiB: the fake daemon with padding appended (the ELF loader ignores it)
make_release() { # version size_mib
  "$STAMP" "$WORK/feed/bin/nym-node-$1" nym-node "$1" >/dev/null
  head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom >> "$WORK/feed/bin/nym-node-$1"
}
publish() { # version
  local sum; sum=$(sha256sum "$WORK/feed/bin/nym-node-$1" | cut -d' ' -f1)
  python3 - "$WORK/feed/nym-node/upgrade-info.json" "$1" "$sum" "http://127.0.0.1:$PORT/bin/nym-node-$1" <<'PY'
import json, sys, platform
path, version, sha, url = sys.argv[1:5]
key = "linux-" + platform.machine()
doc = {"manual": False, "name": "v" + version, "notes": "", "publishDate": None, "version": version,
       "platforms": {key: {"checksum": sha, "checksumAlgorithm": "sha256", "url": url}},
       "upgradeTime": "2026-01-01T00:00:00Z", "binaryDetails": None}
open(path + ".tmp", "w").write(json.dumps(doc)); __import__("os").rename(path + ".tmp", path)
PY
}

export NYM_HOME_DIR="$WORK/home" FAKE_DAEMON_TIMELOG="$WORK/time.log"
export DAEMON_UNSAFE_SKIP_BACKUP=true DAEMON_STARTUP_PERIOD_DURATION=1s NYMVISOR_DISABLE_LOGS=true
export NYMVISOR_UPSTREAM_BASE_UPGRADE_URL="http://127.0.0.1:$PORT/" NYMVISOR_UPSTREAM_POLLING_RATE=1s
mkdir -p "$WORK/node"
"$STAMP" "$WORK/v0" nym-node 1.0.0 >/dev/null
"$NV" init "$WORK/v0" --daemon-home "$WORK/node" >/dev/null
touch "$FAKE_DAEMON_TIMELOG"
"$NV" run run >/dev/null 2>"$WORK/nymvisor.log" & NV_PID=$!; PIDS+=($NV_PID)
wait_line() { for _ in $(seq 1 6000); do grep -q -- "$1" "$FAKE_DAEMON_TIMELOG" && return 0; sleep 0.01; done; echo "timed out: $1" >&2; cat "$WORK/nymvisor.log" >&2; exit 1; }
wait_line "start .*version=1.0.0"
sleep 2
IDLE_KB=$(awk '/^VmRSS:/{print $2}' /proc/$NV_PID/status)   # polling a feed that has nothing yet (404)

# 1. downtime with a 50 MiB download
make_release 1.1.0 50; publish 1.1.0
wait_line "start .*version=1.1.0 "
ex=$(grep "exit pid=.*reason=SIGINT" "$FAKE_DAEMON_TIMELOG" | tail -1 | cut -d' ' -f1)
st=$(grep "start .*version=1.1.0 " "$FAKE_DAEMON_TIMELOG" | cut -d' ' -f1)
DOWNTIME_MS=$(python3 -c "print(f'{($st-$ex)/1e6:.2f}')")
# a download of the same file with curl, as the baseline for "how long the download took"
CURL_S=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/bin/nym-node-1.1.0")

# 2. RSS while downloading and verifying 200 MiB
make_release 1.2.0 200
sleep 1
BEFORE_KB=$(awk '/^VmRSS:/{print $2}' /proc/$NV_PID/status)
publish 1.2.0
PEAK_KB=$BEFORE_KB HELPER_PEAK_KB=0
# the download and verification run in a `nymvisor __helper` child: its RSS is followed too
while ! grep -q "start .*version=1.2.0 " "$FAKE_DAEMON_TIMELOG"; do
  r=$(awk '/^VmRSS:/{print $2}' /proc/$NV_PID/status); [ "$r" -gt "$PEAK_KB" ] && PEAK_KB=$r
  for h in $(pgrep -P "$NV_PID" -f __helper || true); do
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$h/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$HELPER_PEAK_KB" ] && HELPER_PEAK_KB=$r
  done
  sleep 0.005
done

# 3. hashing throughput on the 200 MiB file (page cache warm for both)
F="$WORK/feed/bin/nym-node-1.2.0"; cat "$F" > /dev/null
t() { python3 - "$@" <<'PY'
import subprocess, sys, time
best = min((lambda s: (subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True), time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(3))
print(f"{best:.3f}")
PY
}
SUM_S=$(t sha256sum "$F"); OURS_S=$(t "$HASH" sha256 "$F")
[ "$(sha256sum "$F" | cut -d' ' -f1)" = "$("$HASH" sha256 "$F" | cut -d' ' -f1)" ] || { echo "digests differ" >&2; exit 1; }

python3 - <<PY
size = 200
print(f"RSS while polling the feed every 1 s: {$IDLE_KB/1024:.2f} MiB")
print(f"downtime, upgrade with a 50 MiB download:  {$DOWNTIME_MS} ms   (the download itself: curl {float('$CURL_S')*1000:.0f} ms)")
print(f"RSS while downloading+verifying 200 MiB: nymvisor {$BEFORE_KB/1024:.2f} MiB before, peak {$PEAK_KB/1024:.2f} MiB, growth {($PEAK_KB-$BEFORE_KB)/1024:.2f} MiB; network helper peak {$HELPER_PEAK_KB/1024:.2f} MiB")
print(f"sha256 of 200 MiB: sha256sum {$SUM_S:.3f} s, nymvisor hasher {$OURS_S:.3f} s; throughput ratio {$SUM_S/$OURS_S:.2f}x of sha256sum")
PY
