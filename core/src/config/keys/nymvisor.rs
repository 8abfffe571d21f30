//! The keys of `[nymvisor]`: the instance, its upstream source, the helper and verifiers, logs and metrics.

use super::{FlagStyle, KeyDef, Kind};

/// In file order.
pub(super) const KEYS: &[KeyDef] = &[
    key!(
        "nymvisor",
        "id",
        ["NYMVISOR_ID"],
        "id",
        Value,
        Kind::Str,
        "ID of this nymvisor instance [default: <daemon>-default]"
    ),
    key!(
        "nymvisor",
        "upstream_base_upgrade_url",
        ["NYMVISOR_UPSTREAM_BASE_UPGRADE_URL"],
        "upstream-base-upgrade-url",
        Value,
        Kind::Str,
        "Base URL of the upgrade feed; <base>/<daemon>/upgrade-info.json is polled"
    ),
    key!(
        "nymvisor",
        "upstream_polling_rate",
        ["NYMVISOR_UPSTREAM_POLLING_RATE"],
        "upstream-polling-rate",
        Value,
        Kind::Duration,
        "How often the upstream source is polled"
    ),
    key!(
        "nymvisor",
        "disable_logs",
        ["NYMVISOR_DISABLE_LOGS"],
        "disable-nymvisor-logs",
        Switch,
        Kind::Bool,
        "Silence nymvisor's own log output"
    ),
    key!(
        "nymvisor",
        "upgrade_data_directory",
        [
            "NYMVISOR_UPGRADE_DATA_DIRECTORY",
            "NYMVISOR_DATA_UPGRADE_DIRECTORY"
        ],
        "upgrade-data-directory",
        Value,
        Kind::OptStr,
        "Directory holding binaries and the upgrade plan [default: <home>/.nym/nymvisors/data/<daemon>]"
    ),
    key!(
        "nymvisor",
        "upstream_source",
        ["NYMVISOR_UPSTREAM_SOURCE"],
        "upstream-source",
        Value,
        Kind::Choice("http|github|local|plugin:<name>|none"),
        "Where upgrades come from"
    ),
    key!(
        "nymvisor",
        "github_repository",
        ["NYMVISOR_GITHUB_REPOSITORY"],
        "github-repository",
        Value,
        Kind::Str,
        "GitHub repository (owner/name) for the github source"
    ),
    key!(
        "nymvisor",
        "github_api_url",
        ["NYMVISOR_GITHUB_API_URL"],
        "github-api-url",
        Value,
        Kind::Str,
        "GitHub API base URL (GitHub Enterprise or a mirror)"
    ),
    key!(
        "nymvisor",
        "github_tag_pattern",
        ["NYMVISOR_GITHUB_TAG_PATTERN"],
        "github-tag-pattern",
        Value,
        Kind::Str,
        "Release tags considered by the github source (`*` wildcard)"
    ),
    key!(
        "nymvisor",
        "github_asset_name",
        ["NYMVISOR_GITHUB_ASSET_NAME"],
        "github-asset-name",
        Value,
        Kind::OptStr,
        "Release asset to download [default: the daemon name]"
    ),
    key!(
        "nymvisor",
        "github_token_env",
        ["NYMVISOR_GITHUB_TOKEN_ENV"],
        "github-token-env",
        Value,
        Kind::Str,
        "Name of the environment variable holding an optional GitHub token"
    ),
    key!(
        "nymvisor",
        "local_mirror_directory",
        ["NYMVISOR_LOCAL_MIRROR_DIRECTORY"],
        "local-mirror-directory",
        Value,
        Kind::OptStr,
        "Directory laid out like the feed, for the local source"
    ),
    key!(
        "nymvisor",
        "log_format",
        ["NYMVISOR_LOG_FORMAT"],
        "log-format",
        Value,
        Kind::Choice("text|json"),
        "Format of nymvisor's log lines"
    ),
    key!(
        "nymvisor",
        "verifier_commands",
        ["NYMVISOR_VERIFIER_COMMANDS"],
        "verifier-commands",
        Value,
        Kind::List,
        "External verifier commands (comma-separated)"
    ),
    key!(
        "nymvisor",
        "plugin_paths",
        ["NYMVISOR_PLUGIN_PATHS"],
        "plugin-paths",
        Value,
        Kind::List,
        "Dynamic verifier plugins (comma-separated .so paths)"
    ),
    key!(
        "nymvisor",
        "verifier_readable_paths",
        ["NYMVISOR_VERIFIER_READABLE_PATHS"],
        "verifier-readable-paths",
        Value,
        Kind::List,
        "More paths verifier commands and plugins may read in the helper's sandbox, e.g. a config file (comma-separated; never the daemon home or nymvisor's state)"
    ),
    key!(
        "nymvisor",
        "verifier_writable_paths",
        ["NYMVISOR_VERIFIER_WRITABLE_PATHS"],
        "verifier-writable-paths",
        Value,
        Kind::List,
        "Paths verifier commands and plugins may write in the helper's sandbox, e.g. an audit log directory (comma-separated; never the daemon home or nymvisor's state)"
    ),
    key!(
        "nymvisor",
        "metrics_address",
        ["NYMVISOR_METRICS_ADDRESS"],
        "metrics-address",
        Value,
        Kind::OptStr,
        "Serve Prometheus metrics at GET /metrics on this address (e.g. 127.0.0.1:9180) [default: off]"
    ),
    key!(
        "nymvisor",
        "network_helper",
        ["NYMVISOR_NETWORK_HELPER"],
        "network-helper",
        Value,
        Kind::Bool,
        "Poll, download and verify in a short-lived sandboxed helper process"
    ),
];
