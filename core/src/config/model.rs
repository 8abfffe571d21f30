//! The typed configuration, as stored in `config.toml`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::opt::{opt_bool, opt_str};

/// The whole configuration of one instance.
///
/// Unknown keys are refused (the error names them); every key has a default, so a 0.1.41 file
/// (which lists every reference key) and a minimal file both load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub nymvisor: NymvisorConfig,
    pub daemon: DaemonConfig,
    pub tuning: TuningConfig,
    pub fleet: super::fleet::FleetConfig,
}

/// The `[tuning]` section: limits for slow links and unusual hosts. Every key has a default that
/// suits a node on an ordinary link; 0.1.41 had none of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuningConfig {
    /// Longest wait for a connection.
    #[serde(with = "duration_str")]
    pub http_connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    #[serde(with = "duration_str")]
    pub http_idle_timeout: Duration,
    /// Longest time for a whole feed document or signature.
    #[serde(with = "duration_str")]
    pub http_document_timeout: Duration,
    /// Longest time for a whole binary.
    #[serde(with = "duration_str")]
    pub http_download_timeout: Duration,
    /// Largest binary accepted, in bytes.
    pub max_binary_size: u64,
    /// Longest time a verifier plugin or command gets.
    #[serde(with = "duration_str")]
    pub verifier_timeout: Duration,
    /// Free space that must remain after a backup, in bytes.
    pub backup_min_free: u64,
    /// Compression of `archive` backups.
    pub backup_compression: Compression,
}

impl Default for TuningConfig {
    fn default() -> Self {
        TuningConfig {
            http_connect_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(30),
            http_document_timeout: Duration::from_secs(60),
            http_download_timeout: Duration::from_secs(30 * 60),
            max_binary_size: 512 * 1024 * 1024,
            verifier_timeout: Duration::from_secs(60),
            backup_min_free: 64 * 1024 * 1024,
            backup_compression: Compression::None,
        }
    }
}

/// Compression of `archive` backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            _ => Err("expected `none` or `zstd`".to_owned()),
        }
    }
}

/// The `[nymvisor]` section: nymvisor's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NymvisorConfig {
    /// Instance id; empty means `<daemon>-default`.
    pub id: String,
    pub upstream_base_upgrade_url: String,
    #[serde(with = "duration_str")]
    pub upstream_polling_rate: Duration,
    pub disable_logs: bool,
    #[serde(with = "opt_str")]
    pub upgrade_data_directory: Option<PathBuf>,
    // ---- keys new in this implementation ----
    pub upstream_source: UpstreamSource,
    pub github_repository: String,
    pub github_api_url: String,
    pub github_tag_pattern: String,
    #[serde(with = "opt_str")]
    pub github_asset_name: Option<String>,
    pub github_token_env: String,
    #[serde(with = "opt_str")]
    pub local_mirror_directory: Option<PathBuf>,
    pub log_format: LogFormat,
    pub verifier_commands: Vec<PathBuf>,
    pub plugin_paths: Vec<PathBuf>,
    /// More paths the helper's sandbox lets verifiers read (never the daemon home or state).
    pub verifier_readable_paths: Vec<PathBuf>,
    /// Paths the helper's sandbox lets verifiers write (never the daemon home or state).
    pub verifier_writable_paths: Vec<PathBuf>,
    /// Where `GET /metrics` is served (e.g. `127.0.0.1:9180`); unset: no listener.
    #[serde(with = "opt_str")]
    pub metrics_address: Option<String>,
    /// Poll, download and verify in a short-lived sandboxed child process (`crate::helper`).
    pub network_helper: bool,
}

/// The `[daemon]` section: how the managed binary is run and upgraded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    pub name: String,
    pub home: PathBuf,
    #[serde(with = "opt_str")]
    pub absolute_upstream_upgrade_url: Option<String>,
    pub allow_binaries_download: bool,
    pub enforce_download_checksum: bool,
    pub restart_after_upgrade: bool,
    pub restart_on_failure: bool,
    #[serde(with = "duration_str")]
    pub failure_restart_delay: Duration,
    pub max_startup_failures: u32,
    #[serde(with = "duration_str")]
    pub startup_period_duration: Duration,
    #[serde(with = "duration_str")]
    pub shutdown_grace_period: Duration,
    #[serde(with = "opt_str")]
    pub backup_data_directory: Option<PathBuf>,
    pub unsafe_skip_backup: bool,
    // ---- keys new in this implementation ----
    pub allow_downgrade: bool,
    pub rollback_on_failure: bool,
    pub backup_strategy: BackupStrategyKind,
    pub backup_keep: u32,
    pub backup_exclude: Vec<String>,
    /// Copy the daemon home while the old daemon runs, and only what changed after the stop.
    pub backup_precopy: bool,
    pub minisign_public_keys: Vec<String>,
    /// `None`: a signature is required exactly when keys are configured.
    #[serde(with = "opt_bool")]
    pub require_signature: Option<bool>,
    /// How many distinct trusted keys must have signed a feed (signatures required).
    pub feed_signature_threshold: u32,
    // ---- fleet rollouts and health ----
    /// Upstream upgrades are applied at `upgradeTime` + a per-instance offset in `[0, spread)`.
    #[serde(with = "duration_str")]
    pub upgrade_spread: Duration,
    /// When upstream upgrades may be applied (UTC), e.g. `Mon-Fri 02:00-05:00, Sun 00:00-06:00`.
    #[serde(with = "opt_str")]
    pub upgrade_windows: Option<String>,
    /// The daemon's health endpoint (e.g. nym-node's `http://127.0.0.1:8080/api/v1/health`).
    #[serde(with = "opt_str")]
    pub health_url: Option<String>,
    /// The daemon's build information endpoint (nym-node's `/api/v1/build-information`): a new
    /// version is confirmed only once it reports that version.
    #[serde(with = "opt_str")]
    pub health_build_info_url: Option<String>,
    #[serde(with = "duration_str")]
    pub health_interval: Duration,
    #[serde(with = "duration_str")]
    pub health_timeout: Duration,
    pub health_failure_threshold: u32,
    /// Runs after the new binary is prepared, before the old daemon is stopped (`sh -c`).
    #[serde(with = "opt_str")]
    pub pre_upgrade_command: Option<String>,
    /// Runs once the outcome of an upgrade is known (`sh -c`).
    #[serde(with = "opt_str")]
    pub post_upgrade_command: Option<String>,
    #[serde(with = "duration_str")]
    pub hook_timeout: Duration,
}

impl Default for NymvisorConfig {
    fn default() -> Self {
        NymvisorConfig {
            id: String::new(),
            upstream_base_upgrade_url: "https://nymtech.net/.wellknown/".to_owned(),
            upstream_polling_rate: Duration::from_secs(3600),
            disable_logs: false,
            upgrade_data_directory: None,
            upstream_source: UpstreamSource::Http,
            github_repository: "nymtech/nym".to_owned(),
            github_api_url: "https://api.github.com".to_owned(),
            github_tag_pattern: "nym-binaries-v*".to_owned(),
            github_asset_name: None,
            github_token_env: "GITHUB_TOKEN".to_owned(),
            local_mirror_directory: None,
            log_format: LogFormat::Text,
            verifier_commands: Vec::new(),
            plugin_paths: Vec::new(),
            verifier_readable_paths: Vec::new(),
            verifier_writable_paths: Vec::new(),
            metrics_address: None,
            network_helper: true,
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            name: String::new(),
            home: PathBuf::new(),
            absolute_upstream_upgrade_url: None,
            allow_binaries_download: true,
            enforce_download_checksum: true,
            restart_after_upgrade: true,
            // The reference documentation says true; 0.1.41 wrote false. We follow the docs.
            restart_on_failure: true,
            failure_restart_delay: Duration::from_secs(10),
            max_startup_failures: 10,
            startup_period_duration: Duration::from_secs(120),
            shutdown_grace_period: Duration::from_secs(10),
            backup_data_directory: None,
            unsafe_skip_backup: false,
            allow_downgrade: false,
            rollback_on_failure: true,
            backup_strategy: BackupStrategyKind::Copy,
            backup_keep: 3,
            backup_exclude: Vec::new(),
            backup_precopy: true,
            minisign_public_keys: Vec::new(),
            require_signature: None,
            feed_signature_threshold: 1,
            upgrade_spread: Duration::ZERO,
            upgrade_windows: None,
            health_url: None,
            health_build_info_url: None,
            health_interval: Duration::from_secs(30),
            health_timeout: Duration::from_secs(5),
            health_failure_threshold: 3,
            pre_upgrade_command: None,
            post_upgrade_command: None,
            hook_timeout: Duration::from_secs(300),
        }
    }
}

/// Where upgrade information comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSource {
    /// The HTTP feed (`<base>/<daemon>/upgrade-info.json` or the absolute URL).
    Http,
    /// GitHub releases.
    Github,
    /// A local directory mirror.
    Local,
    /// A source provided by the named plugin.
    Plugin(String),
    /// No upstream source: only upgrades queued with `add-upgrade` (or by editing the plan).
    None,
}

impl fmt::Display for UpstreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamSource::Http => f.write_str("http"),
            UpstreamSource::Github => f.write_str("github"),
            UpstreamSource::Local => f.write_str("local"),
            UpstreamSource::Plugin(name) => write!(f, "plugin:{name}"),
            UpstreamSource::None => f.write_str("none"),
        }
    }
}

impl FromStr for UpstreamSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(UpstreamSource::Http),
            "github" => Ok(UpstreamSource::Github),
            "local" => Ok(UpstreamSource::Local),
            "none" => Ok(UpstreamSource::None),
            _ => match s.strip_prefix("plugin:") {
                Some(name) if !name.is_empty() => Ok(UpstreamSource::Plugin(name.to_owned())),
                _ => Err(
                    "expected one of `http`, `github`, `local`, `plugin:<name>`, `none`".to_owned(),
                ),
            },
        }
    }
}

/// Format of nymvisor's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".to_owned()),
        }
    }
}

/// How the daemon's data is backed up before a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStrategyKind {
    Copy,
    Archive,
    Hardlink,
    None,
}

impl fmt::Display for BackupStrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackupStrategyKind::Copy => "copy",
            BackupStrategyKind::Archive => "archive",
            BackupStrategyKind::Hardlink => "hardlink",
            BackupStrategyKind::None => "none",
        })
    }
}

impl FromStr for BackupStrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "copy" => Ok(BackupStrategyKind::Copy),
            "archive" => Ok(BackupStrategyKind::Archive),
            "hardlink" => Ok(BackupStrategyKind::Hardlink),
            "none" => Ok(BackupStrategyKind::None),
            _ => Err("expected one of `copy`, `archive`, `hardlink`, `none`".to_owned()),
        }
    }
}

macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(UpstreamSource, LogFormat, BackupStrategyKind, Compression);

/// Durations as humantime strings (`"10s"`, `"1h 30m"`).
mod duration_str {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}
