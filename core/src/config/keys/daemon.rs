//! The keys of `[daemon]`: the daemon, its restarts, health, upgrades, timing, hooks, signatures and backups.

use super::{FlagStyle, KeyDef, Kind};

/// In file order.
pub(super) const KEYS: &[KeyDef] = &[
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
];
