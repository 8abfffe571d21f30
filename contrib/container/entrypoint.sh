#!/bin/sh
# nymvisor's container entrypoint: from an empty volume to a supervised node, then nymvisor as
# PID 1 (`exec`), so stop signals reach it and it reaps every orphan.
#
#   1. the node binary: $NYM_NODE_BINARY, default the one baked into the image
#      (/usr/local/lib/nymvisor/nym-node), or one you put on the volume;
#   2. the node's own init, once, when its home does not exist yet:
#      `nym-node init --id $NYM_NODE_ID $NYM_NODE_INIT_ARGS`;
#   3. `nymvisor init`, once, when the volume holds no nymvisor instance yet;
#   4. `nymvisor run $NYM_NODE_ARGS` (default `run --id $NYM_NODE_ID`).
set -eu
: "${NYM_HOME_DIR:=/var/lib/nym}"
: "${HOME:=$NYM_HOME_DIR}"
: "${NYM_NODE_ID:=default-nym-node}"
: "${NYM_NODE_BINARY:=/usr/local/lib/nymvisor/nym-node}"
node_home="$HOME/.nym/nym-nodes/$NYM_NODE_ID"
export NYM_HOME_DIR HOME
if [ ! -d "$NYM_HOME_DIR/.nym/nymvisors/instances" ]; then
    if [ ! -x "$NYM_NODE_BINARY" ]; then
        echo "entrypoint: no node binary at $NYM_NODE_BINARY: bake one into the image or put it on the volume and set NYM_NODE_BINARY" >&2
        exit 1
    fi
    if [ ! -d "$node_home" ]; then
        # shellcheck disable=SC2086 # the init arguments are words on purpose
        "$NYM_NODE_BINARY" init --id "$NYM_NODE_ID" ${NYM_NODE_INIT_ARGS:-}
    fi
    /usr/bin/nymvisor init "$NYM_NODE_BINARY" --daemon-home "$node_home" >/dev/null
    echo "entrypoint: initialised the nymvisor instance for $NYM_NODE_ID on the volume" >&2
fi
# shellcheck disable=SC2086
exec /usr/bin/nymvisor run ${NYM_NODE_ARGS:-run --id $NYM_NODE_ID}
