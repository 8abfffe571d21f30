//! The table of configuration keys: their environment variables, `init` flags and value kinds.
//!
//! One table drives both environment overrides and the `init` flags, so every key has both and
//! they parse values the same way.

pub use super::values::Kind;

/// How an `init` flag is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagStyle {
    /// `--flag VALUE`
    Value,
    /// `--flag` alone means true (the reference's switches).
    Switch,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// `nymvisor`, `daemon` or `tuning`.
    pub section: &'static str,
    pub key: &'static str,
    /// Environment variables, first is the documented one.
    pub envs: &'static [&'static str],
    /// The `init` flag (without `--`).
    pub flag: &'static str,
    pub style: FlagStyle,
    pub kind: Kind,
    pub help: &'static str,
}

impl KeyDef {
    /// `section.key`, as used in messages.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The documented environment variable.
    pub fn env(&self) -> &'static str {
        self.envs[0]
    }
}

macro_rules! key {
    ($section:literal, $key:literal, [$($env:literal),+], $flag:literal, $style:ident, $kind:expr, $help:literal) => {
        KeyDef {
            section: $section,
            key: $key,
            envs: &[$($env),+],
            flag: $flag,
            style: FlagStyle::$style,
            kind: $kind,
            help: $help,
        }
    };
}

/// Every configuration key, in file order.
pub const KEYS: &[KeyDef] = &[
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
    key!(
        "daemon",
        "name",
        ["DAEMON_NAME"],
        "daemon-name",
        Value,
        Kind::Str,
        "Name of the managed binary [default: binary_name from its build information]"
    ),
    key!(
        "daemon",
        "home",
        ["DAEMON_HOME"],
        "daemon-home",
        Value,
        Kind::Str,
        "Home directory of the daemon (its data is backed up from here)"
    ),
    key!(
        "daemon",
        "absolute_upstream_upgrade_url",
        ["DAEMON_ABSOLUTE_UPSTREAM_UPGRADE_URL"],
        "daemon-absolute-upstream-upgrade-url",
        Value,
        Kind::OptStr,
        "Full URL of the upgrade feed document, overriding the base URL"
    ),
    key!(
        "daemon",
        "allow_binaries_download",
        ["DAEMON_ALLOW_BINARIES_DOWNLOAD"],
        "allow-download-upgrade-binaries",
        Value,
        Kind::Bool,
        "Whether new binaries may be downloaded"
    ),
    key!(
        "daemon",
        "enforce_download_checksum",
        ["DAEMON_ENFORCE_DOWNLOAD_CHECKSUM"],
        "enforce-download-checksum",
        Value,
        Kind::Bool,
        "Whether a downloaded binary must come with a checksum"
    ),
    key!(
        "daemon",
        "restart_after_upgrade",
        ["DAEMON_RESTART_AFTER_UPGRADE"],
        "restart-daemon-after-upgrade",
        Value,
        Kind::Bool,
        "Whether the daemon is restarted after an upgrade"
    ),
    key!(
        "daemon",
        "restart_on_failure",
        ["DAEMON_RESTART_ON_FAILURE"],
        "restart-daemon-on-failure",
        Switch,
        Kind::Bool,
        "Restart the daemon when it fails"
    ),
    key!(
        "daemon",
        "failure_restart_delay",
        ["DAEMON_FAILURE_RESTART_DELAY"],
        "on-failure-daemon-restart-delay",
        Value,
        Kind::Duration,
        "Delay before a failed daemon is restarted"
    ),
    key!(
        "daemon",
        "max_startup_failures",
        ["DAEMON_MAX_STARTUP_FAILURES"],
        "max-daemon-startup-failures",
        Value,
        Kind::Count,
        "Failures within the startup period after which nymvisor gives up"
    ),
    key!(
        "daemon",
        "startup_period_duration",
        ["DAEMON_STARTUP_PERIOD_DURATION"],
        "startup-period-duration",
        Value,
        Kind::Duration,
        "How long after its start a failure counts as a startup failure"
    ),
    key!(
        "daemon",
        "shutdown_grace_period",
        ["DAEMON_SHUTDOWN_GRACE_PERIOD"],
        "daemon-shutdown-grace-period",
        Value,
        Kind::Duration,
        "Time the daemon gets to exit before its process group is killed"
    ),
    key!(
        "daemon",
        "backup_data_directory",
        ["DAEMON_BACKUP_DATA_DIRECTORY"],
        "daemon-backup-data-directory",
        Value,
        Kind::OptStr,
        "Where backups go [default: <daemon home>/nymvisor/backups]"
    ),
    key!(
        "daemon",
        "unsafe_skip_backup",
        ["DAEMON_UNSAFE_SKIP_BACKUP"],
        "unsafe-skip-backup",
        Switch,
        Kind::Bool,
        "Do not back up the daemon's data before upgrades"
    ),
    key!(
        "daemon",
        "allow_downgrade",
        ["DAEMON_ALLOW_DOWNGRADE"],
        "allow-downgrade",
        Value,
        Kind::Bool,
        "Accept upgrades whose version is not newer than the current one"
    ),
    key!(
        "daemon",
        "rollback_on_failure",
        ["DAEMON_ROLLBACK_ON_FAILURE"],
        "rollback-on-failure",
        Value,
        Kind::Bool,
        "Roll back an upgrade whose binary keeps failing at startup"
    ),
    key!(
        "daemon",
        "backup_strategy",
        ["DAEMON_BACKUP_STRATEGY"],
        "backup-strategy",
        Value,
        Kind::Choice("copy|archive|hardlink|none"),
        "How backups are made"
    ),
    key!(
        "daemon",
        "backup_keep",
        ["DAEMON_BACKUP_KEEP"],
        "backup-keep",
        Value,
        Kind::Count,
        "How many backups are kept"
    ),
    key!(
        "daemon",
        "backup_exclude",
        ["DAEMON_BACKUP_EXCLUDE"],
        "backup-exclude",
        Value,
        Kind::List,
        "Glob patterns excluded from backups (comma-separated)"
    ),
    key!(
        "daemon",
        "backup_precopy",
        ["DAEMON_BACKUP_PRECOPY"],
        "backup-precopy",
        Value,
        Kind::Bool,
        "Copy the data while the old daemon runs (copy strategy); only what changed after the stop"
    ),
    key!(
        "daemon",
        "minisign_public_keys",
        ["DAEMON_MINISIGN_PUBLIC_KEYS"],
        "minisign-public-keys",
        Value,
        Kind::List,
        "Trusted minisign public keys (comma-separated base64)"
    ),
    key!(
        "daemon",
        "require_signature",
        ["DAEMON_REQUIRE_SIGNATURE"],
        "require-signature",
        Value,
        Kind::OptBool,
        "Require a valid signature [default: true when keys are configured]"
    ),
    key!(
        "daemon",
        "feed_signature_threshold",
        ["DAEMON_FEED_SIGNATURE_THRESHOLD"],
        "feed-signature-threshold",
        Value,
        Kind::Count,
        "How many distinct trusted keys must have signed the feed (upgrade-info.json.minisig, .minisig.1, …) [default: 1]"
    ),
    key!(
        "daemon",
        "upgrade_spread",
        ["DAEMON_UPGRADE_SPREAD"],
        "upgrade-spread",
        Value,
        Kind::Duration,
        "Spread upstream upgrades over this long after their upgradeTime (per-instance offset) [default: 0s]"
    ),
    key!(
        "daemon",
        "upgrade_windows",
        ["DAEMON_UPGRADE_WINDOWS"],
        "upgrade-windows",
        Value,
        Kind::OptStr,
        "When upstream upgrades may be applied, in UTC, e.g. \"Mon-Fri 02:00-05:00, Sun 00:00-06:00\" [default: any time]"
    ),
    key!(
        "daemon",
        "health_url",
        ["DAEMON_HEALTH_URL"],
        "health-url",
        Value,
        Kind::OptStr,
        "The daemon's health endpoint; gates the confirmation of upgrades and restarts a hung daemon"
    ),
    key!(
        "daemon",
        "health_build_info_url",
        ["DAEMON_HEALTH_BUILD_INFO_URL"],
        "health-build-info-url",
        Value,
        Kind::OptStr,
        "The daemon's build-information endpoint (e.g. http://127.0.0.1:8080/api/v1/build-information): a new version is confirmed only once it reports that version"
    ),
    key!(
        "daemon",
        "health_interval",
        ["DAEMON_HEALTH_INTERVAL"],
        "health-interval",
        Value,
        Kind::Duration,
        "How often the health endpoint is probed [default: 30s]"
    ),
    key!(
        "daemon",
        "health_timeout",
        ["DAEMON_HEALTH_TIMEOUT"],
        "health-timeout",
        Value,
        Kind::Duration,
        "Longest wait for a health answer [default: 5s]"
    ),
    key!(
        "daemon",
        "health_failure_threshold",
        ["DAEMON_HEALTH_FAILURE_THRESHOLD"],
        "health-failure-threshold",
        Value,
        Kind::Count,
        "Consecutive failed health probes after which the daemon is restarted [default: 3]"
    ),
    key!(
        "daemon",
        "pre_upgrade_command",
        ["DAEMON_PRE_UPGRADE_COMMAND"],
        "pre-upgrade-command",
        Value,
        Kind::OptStr,
        "Shell command run before the old daemon is stopped; non-zero postpones the upgrade"
    ),
    key!(
        "daemon",
        "post_upgrade_command",
        ["DAEMON_POST_UPGRADE_COMMAND"],
        "post-upgrade-command",
        Value,
        Kind::OptStr,
        "Shell command run once an upgrade's outcome is known"
    ),
    key!(
        "daemon",
        "hook_timeout",
        ["DAEMON_HOOK_TIMEOUT"],
        "hook-timeout",
        Value,
        Kind::Duration,
        "Longest time an upgrade hook gets (its process group is killed) [default: 5m]"
    ),
    key!(
        "tuning",
        "http_connect_timeout",
        ["NYMVISOR_HTTP_CONNECT_TIMEOUT"],
        "http-connect-timeout",
        Value,
        Kind::Duration,
        "Longest wait for an HTTP connection [default: 10s]"
    ),
    key!(
        "tuning",
        "http_idle_timeout",
        ["NYMVISOR_HTTP_IDLE_TIMEOUT"],
        "http-idle-timeout",
        Value,
        Kind::Duration,
        "Longest wait for the next bytes of an HTTP answer [default: 30s]"
    ),
    key!(
        "tuning",
        "http_document_timeout",
        ["NYMVISOR_HTTP_DOCUMENT_TIMEOUT"],
        "http-document-timeout",
        Value,
        Kind::Duration,
        "Longest time for a whole feed document or signature [default: 60s]"
    ),
    key!(
        "tuning",
        "http_download_timeout",
        ["NYMVISOR_HTTP_DOWNLOAD_TIMEOUT"],
        "http-download-timeout",
        Value,
        Kind::Duration,
        "Longest time for a whole binary download [default: 30m]"
    ),
    key!(
        "tuning",
        "max_binary_size",
        ["NYMVISOR_MAX_BINARY_SIZE"],
        "max-binary-size",
        Value,
        Kind::Bytes,
        "Largest binary accepted, in bytes (or KiB/MiB/GiB) [default: 512MiB]"
    ),
    key!(
        "tuning",
        "verifier_timeout",
        ["NYMVISOR_VERIFIER_TIMEOUT"],
        "verifier-timeout",
        Value,
        Kind::Duration,
        "Longest time a verifier plugin or command gets [default: 60s]"
    ),
    key!(
        "tuning",
        "backup_min_free",
        ["DAEMON_BACKUP_MIN_FREE"],
        "backup-min-free",
        Value,
        Kind::Bytes,
        "Free space that must remain after a backup (bytes, or KiB/MiB/GiB) [default: 64MiB]"
    ),
    key!(
        "tuning",
        "backup_compression",
        ["DAEMON_BACKUP_COMPRESSION"],
        "backup-compression",
        Value,
        Kind::Choice("none|zstd"),
        "Compression of `archive` backups"
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_documented() {
        let reference = include_str!("../../../docs/REFERENCE.md");
        for def in KEYS {
            let row = format!("| `{}` | `{}`", def.path(), def.env());
            assert!(reference.contains(&row), "docs/REFERENCE.md lacks {row}");
            assert!(
                reference.contains(&format!("`--{}`", def.flag)),
                "docs/REFERENCE.md lacks --{}",
                def.flag
            );
        }
    }

    #[test]
    fn keys_are_unique() {
        let mut envs: Vec<_> = KEYS.iter().flat_map(|k| k.envs.iter()).collect();
        let mut flags: Vec<_> = KEYS.iter().map(|k| k.flag).collect();
        let (ne, nf) = (envs.len(), flags.len());
        envs.sort();
        envs.dedup();
        flags.sort();
        flags.dedup();
        assert_eq!((envs.len(), flags.len()), (ne, nf));
    }
}
