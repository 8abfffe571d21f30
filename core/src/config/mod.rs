//! Configuration: the typed model, loading and saving `config.toml`, environment overrides and
//! finding which instance a command is about.
//!
//! Precedence, lowest first: built-in defaults, the file (or `init` flags), environment variables.

mod fleet;
mod keys;
mod locate;
mod model;
mod opt;
mod validate;
mod values;

pub use fleet::{FleetConfig, host_name as fleet_host_name};
pub use keys::{FlagStyle, KEYS, KeyDef};
pub use locate::{load_effective, locate};
pub use model::{
    BackupStrategyKind, Compression, Config, DaemonConfig, LogFormat, NymvisorConfig, TuningConfig,
    UpstreamSource,
};
pub use values::{Kind, parse_bool, parse_bytes, parse_raw};

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::paths::NymvisorHome;

/// Shortest accepted `upstream_polling_rate`.
pub const MIN_POLLING_RATE: std::time::Duration = std::time::Duration::from_secs(1);

/// Mode of the saved configuration file: it may hold tokens and paths, so owner-only.
pub const CONFIG_FILE_MODE: u32 = 0o600;

impl Config {
    /// Parses the text of a `config.toml`; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::CorruptConfig {
            path: path.to_owned(),
            message: explain_toml_error(&e.to_string()),
        })
    }

    /// Reads and parses a `config.toml` (no environment overrides, no validation).
    pub fn load_file(path: &Path) -> Result<Config> {
        let bytes = fsutil::read_capped(path, fsutil::MAX_STATE_FILE)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::CorruptConfig {
            path: path.to_owned(),
            message: "is not UTF-8 text".into(),
        })?;
        Config::from_toml_str(&text, path)
    }

    /// Applies every environment variable of [`KEYS`] that is set in `env`.
    ///
    /// A set but malformed variable is an error naming it.
    pub fn apply_env(self, env: &Env) -> Result<Config> {
        let mut value = self.to_value();
        for def in KEYS {
            for var in def.envs {
                let Some(raw) = env.get(var) else { continue };
                let parsed = parse_raw(def.kind, raw).map_err(|message| Error::EnvValue {
                    var: (*var).to_owned(),
                    value: raw.to_owned(),
                    message,
                })?;
                if let Some(parsed) = parsed {
                    value[def.section][def.key] = parsed;
                }
                // the first set alias wins
                break;
            }
        }
        Config::from_value(value)
    }

    /// Applies `init` flags, given as (key, raw value) pairs.
    pub fn apply_flags<'a>(
        self,
        flags: impl IntoIterator<Item = (&'a KeyDef, String)>,
    ) -> Result<Config> {
        let mut value = self.to_value();
        for (def, raw) in flags {
            let parsed = parse_raw(def.kind, &raw).map_err(|message| Error::FlagValue {
                flag: def.flag.to_owned(),
                value: raw.clone(),
                message,
            })?;
            if let Some(parsed) = parsed {
                value[def.section][def.key] = parsed;
            }
        }
        Config::from_value(value)
    }

    /// The configuration as JSON in the file's shape: durations as humantime strings, unset
    /// values as `null`.
    pub fn to_value(&self) -> Value {
        // Serializing plain structs of strings, numbers and bools into a Value cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_value(value: Value) -> Result<Config> {
        serde_json::from_value(value).map_err(|e| Error::ConfigValue {
            key: "(override)".to_owned(),
            message: e.to_string(),
        })
    }

    /// The configuration as TOML text, in 0.1.41's style (`''` for unset values).
    pub fn to_toml(&self) -> Result<String> {
        let mut value = self.to_value();
        if let Value::Object(sections) = &mut value {
            for section in sections.values_mut() {
                if let Value::Object(keys) = section {
                    for v in keys.values_mut() {
                        if v.is_null() {
                            *v = Value::String(String::new());
                        }
                    }
                }
            }
        }
        toml::to_string(&value).map_err(|e| Error::ConfigValue {
            key: "(whole file)".to_owned(),
            message: format!("cannot be written as TOML: {e}"),
        })
    }

    /// Writes the configuration atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::atomic_write(path, self.to_toml()?.as_bytes(), CONFIG_FILE_MODE)
    }

    /// The instance id (after [`Config::validated`], never empty).
    pub fn id(&self) -> &str {
        &self.nymvisor.id
    }

    /// The upgrade data directory: as configured (used as given), else
    /// `<home>/.nym/nymvisors/data/<daemon>`.
    pub fn upgrade_data_dir(&self, home: &NymvisorHome) -> PathBuf {
        self.nymvisor
            .upgrade_data_directory
            .clone()
            .unwrap_or_else(|| home.default_upgrade_data_dir(&self.daemon.name))
    }

    /// The backup directory: as configured, else `<daemon home>/nymvisor/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.daemon
            .backup_data_directory
            .clone()
            .unwrap_or_else(|| self.daemon.home.join("nymvisor").join("backups"))
    }

    /// Why `path` must not be opened to a verifier: it contains or lies inside the daemon home,
    /// the backup directory or the custom upgrade data directory (nymvisor's home is checked
    /// by the helper, which knows it).
    pub fn overlaps_secrets(&self, path: &Path) -> Option<String> {
        let secrets = [
            ("the daemon home", Some(self.daemon.home.clone())),
            ("the backup directory", Some(self.backup_dir())),
            (
                "the upgrade data directory",
                self.nymvisor.upgrade_data_directory.clone(),
            ),
        ];
        overlap(
            path,
            secrets.iter().filter_map(|(n, p)| Some((*n, p.clone()?))),
        )
    }

    /// Whether a valid signature is required for new binaries.
    pub fn signature_required(&self) -> bool {
        self.daemon
            .require_signature
            .unwrap_or(!self.daemon.minisign_public_keys.is_empty())
    }
}

/// The closest of `known` to `name`, if it is close enough to be a typo of it.
pub fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| {
            (
                strsim::levenshtein(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A TOML error in one line; an unknown key says which known key was probably meant instead
/// of listing them all.
fn explain_toml_error(text: &str) -> String {
    let one_line = text.trim_end().replace('\n', " ");
    let Some(at) = text.find("unknown field `") else {
        return one_line;
    };
    let rest = &text[at + "unknown field `".len()..];
    let Some(end) = rest.find('`') else {
        return one_line;
    };
    let field = &rest[..end];
    let line = text
        .split_once("at line ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|n| !n.is_empty())
        .map(|n| format!(" (line {n})"))
        .unwrap_or_default();
    match closest(field, KEYS.iter().map(|d| d.key)) {
        Some(k) => format!("unknown key `{field}`{line}; did you mean `{k}`?"),
        None => format!(
            "unknown key `{field}`{line}; `nymvisor config` shows every key this version knows"
        ),
    }
}

/// Environment variables that look like nymvisor's (`DAEMON_…`, `NYMVISOR_…`) but are no key
/// of it, each with the variable probably meant: a typo would otherwise be ignored in silence.
pub fn unknown_env_vars(env: &Env) -> Vec<(String, Option<&'static str>)> {
    const OTHERS: &[&str] = &[
        "NYMVISOR_CONFIG_PATH",
        "NYMVISOR_FAILPOINT",
        // set for hooks; harmless when nymvisor itself runs from one
        "NYMVISOR_UPGRADE_NAME",
        "NYMVISOR_UPGRADE_VERSION",
        "NYMVISOR_CURRENT_VERSION",
        "NYMVISOR_NEW_BINARY",
        "NYMVISOR_UPGRADE_OUTCOME",
        // the etcd password's default variable (NYMVISOR_FLEET_ETCD_PASSWORD_ENV)
        "NYMVISOR_FLEET_ETCD_PASSWORD",
        // read by the example plugin (plugins/example)
        "NYMVISOR_ALLOWED_VERSIONS",
    ];
    let known = || {
        KEYS.iter()
            .flat_map(|d| d.envs.iter().copied())
            .chain(OTHERS.iter().copied())
    };
    env.iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("DAEMON_") || k.starts_with("NYMVISOR_"))
        .filter(|k| !known().any(|n| n == *k))
        .map(|k| (k.to_owned(), closest(k, known())))
        .collect()
}

/// Whether `path` contains or lies inside one of `secrets` (named), lexically and as resolved.
pub fn overlap<'a>(
    path: &Path,
    secrets: impl Iterator<Item = (&'a str, PathBuf)>,
) -> Option<String> {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let path_r = resolve(path);
    for (name, secret) in secrets {
        let secret_r = resolve(&secret);
        for (a, b) in [
            (path, secret.as_path()),
            (path_r.as_path(), secret_r.as_path()),
        ] {
            if b.starts_with(a) {
                return Some(format!("contains {name} ({})", secret.display()));
            }
            if a.starts_with(b) {
                return Some(format!("lies inside {name} ({})", secret.display()));
            }
        }
    }
    None
}
