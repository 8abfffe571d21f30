//! Configuration: the typed model, loading and saving `config.toml`, environment overrides and
//! finding which instance a command is about.
//!
//! Precedence, lowest first: built-in defaults, the file (or `init` flags), environment variables.

mod keys;
mod model;
mod values;

pub use keys::{FlagStyle, KEYS, KeyDef};
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
use crate::names::validate_name;
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

    /// Fills derived defaults (the id) and checks values that serde cannot.
    pub fn validated(mut self) -> Result<Config> {
        // the key and its environment variable: the value may have come from either
        let bad = |key: &str, message: String| match KEYS.iter().find(|d| d.path() == key) {
            Some(def) => Error::ConfigKey {
                key: key.to_owned(),
                env: def.env(),
                message,
            },
            None => Error::ConfigValue {
                key: key.to_owned(),
                message,
            },
        };
        if self.daemon.name.is_empty() {
            return Err(bad(
                "daemon.name",
                "is not set (set DAEMON_NAME or the key in the config file)".into(),
            ));
        }
        validate_name(&self.daemon.name)
            .map_err(|reason| bad("daemon.name", format!("{:?} {reason}", self.daemon.name)))?;
        if self.nymvisor.id.is_empty() {
            self.nymvisor.id = format!("{}-default", self.daemon.name);
        }
        validate_name(&self.nymvisor.id)
            .map_err(|reason| bad("nymvisor.id", format!("{:?} {reason}", self.nymvisor.id)))?;
        if self.daemon.home.as_os_str().is_empty() {
            return Err(bad(
                "daemon.home",
                "is not set (set DAEMON_HOME or --daemon-home)".into(),
            ));
        }
        if self.nymvisor.upstream_polling_rate < MIN_POLLING_RATE {
            return Err(bad(
                "nymvisor.upstream_polling_rate",
                format!(
                    "{} is too short: polling faster than once every {} only loads the feed that every other node watches too",
                    humantime::format_duration(self.nymvisor.upstream_polling_rate),
                    humantime::format_duration(MIN_POLLING_RATE)
                ),
            ));
        }
        for key in &self.daemon.minisign_public_keys {
            if let Err(why) = check_minisign_key(key) {
                return Err(bad(
                    "daemon.minisign_public_keys",
                    format!(
                        "{key:?} is not a minisign public key ({why}); give the key itself, the base64 line of a minisign .pub file (56 characters such as RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3), not a file path nor the whole file; several are separated by commas"
                    ),
                ));
            }
        }
        if self.daemon.require_signature == Some(true)
            && self.daemon.minisign_public_keys.is_empty()
        {
            return Err(bad(
                "daemon.require_signature",
                "is true but no DAEMON_MINISIGN_PUBLIC_KEYS are configured to check signatures with".into(),
            ));
        }
        let threshold = self.daemon.feed_signature_threshold;
        if threshold == 0 {
            return Err(bad(
                "daemon.feed_signature_threshold",
                "must be at least 1".into(),
            ));
        }
        let distinct: std::collections::BTreeSet<&str> = self
            .daemon
            .minisign_public_keys
            .iter()
            .map(|k| k.trim())
            .collect();
        if threshold > 1 && threshold as usize > distinct.len() {
            return Err(bad(
                "daemon.feed_signature_threshold",
                format!(
                    "is {threshold}, but only {} distinct DAEMON_MINISIGN_PUBLIC_KEYS are configured: no feed could ever be signed by that many distinct trusted keys",
                    distinct.len()
                ),
            ));
        }
        if threshold > 1 && !self.signature_required() {
            return Err(bad(
                "daemon.feed_signature_threshold",
                format!(
                    "is {threshold}, but signatures are not required (DAEMON_REQUIRE_SIGNATURE=false): the threshold would never be checked"
                ),
            ));
        }
        if self.daemon.backup_keep == 0 {
            return Err(bad("daemon.backup_keep", "must be at least 1".into()));
        }
        if let Some(addr) = &self.nymvisor.metrics_address
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(bad(
                "nymvisor.metrics_address",
                format!("{addr:?} is not an address such as 127.0.0.1:9180"),
            ));
        }
        if let Some(w) = &self.daemon.upgrade_windows {
            crate::upgrade::timing::Windows::parse(w)
                .map_err(|e| bad("daemon.upgrade_windows", format!("{w:?}: {e}")))?;
        }
        for (key, url) in [
            ("daemon.health_url", &self.daemon.health_url),
            (
                "daemon.health_build_info_url",
                &self.daemon.health_build_info_url,
            ),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(bad(key, format!("{url:?} is not an http(s) URL")));
            }
        }
        if self.daemon.health_build_info_url.is_some() && self.daemon.health_url.is_none() {
            return Err(bad(
                "daemon.health_build_info_url",
                "needs the health probe: set DAEMON_HEALTH_URL too".into(),
            ));
        }
        for (key, value) in [
            ("daemon.health_interval", self.daemon.health_interval),
            ("daemon.health_timeout", self.daemon.health_timeout),
            ("daemon.hook_timeout", self.daemon.hook_timeout),
        ] {
            if value.is_zero() {
                return Err(bad(key, "must be longer than zero".into()));
            }
        }
        if self.daemon.health_failure_threshold == 0 {
            return Err(bad(
                "daemon.health_failure_threshold",
                "must be at least 1".into(),
            ));
        }
        let t = &self.tuning;
        for (key, value) in [
            ("tuning.http_connect_timeout", t.http_connect_timeout),
            ("tuning.http_idle_timeout", t.http_idle_timeout),
            ("tuning.http_document_timeout", t.http_document_timeout),
            ("tuning.http_download_timeout", t.http_download_timeout),
            ("tuning.verifier_timeout", t.verifier_timeout),
        ] {
            if value.is_zero() {
                return Err(bad(key, "must be longer than zero".into()));
            }
        }
        for (key, paths) in [
            (
                "nymvisor.verifier_readable_paths",
                &self.nymvisor.verifier_readable_paths,
            ),
            (
                "nymvisor.verifier_writable_paths",
                &self.nymvisor.verifier_writable_paths,
            ),
        ] {
            for p in paths {
                if !p.is_absolute() {
                    return Err(bad(key, format!("{} is not an absolute path", p.display())));
                }
                if let Some(why) = self.overlaps_secrets(p) {
                    return Err(bad(
                        key,
                        format!(
                            "{} {why}; a verifier's sandbox never reaches the node's keys or nymvisor's state",
                            p.display()
                        ),
                    ));
                }
            }
        }
        if let Some(dir) = &self.nymvisor.local_mirror_directory
            && let Some(why) = self
                .overlaps_secrets(dir)
                .filter(|why| why.starts_with("contains"))
        {
            return Err(bad(
                "nymvisor.local_mirror_directory",
                format!(
                    "{} {why}; the network helper may read the mirror, so it must not hold the node's data",
                    dir.display()
                ),
            ));
        }
        if t.max_binary_size == 0 {
            return Err(bad(
                "tuning.max_binary_size",
                "must be at least 1 byte".into(),
            ));
        }
        Ok(self)
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

/// Whether `key` has the shape of a minisign public key: base64 of the algorithm (`Ed`), an
/// 8-byte key id and a 32-byte Ed25519 key.
fn check_minisign_key(key: &str) -> std::result::Result<(), &'static str> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| "not base64")?;
    if bytes.len() != 42 {
        return Err("not 42 bytes");
    }
    if &bytes[..2] != b"Ed" {
        return Err("not an Ed25519 minisign key");
    }
    Ok(())
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

/// Finds the config file a command (other than `init`) uses:
/// `$NYMVISOR_CONFIG_PATH`; else the default path for `$NYMVISOR_ID`; else the only instance;
/// else an error listing the instances.
pub fn locate(env: &Env) -> Result<PathBuf> {
    if let Some(path) = env.get_non_empty("NYMVISOR_CONFIG_PATH") {
        return Ok(PathBuf::from(path));
    }
    let home = NymvisorHome::from_env(env)?;
    if let Some(id) = env.get_non_empty("NYMVISOR_ID") {
        validate_name(id).map_err(|reason| Error::EnvValue {
            var: "NYMVISOR_ID".into(),
            value: id.into(),
            message: reason.into(),
        })?;
        let path = home.config_path(id);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::NoInstance(format!(
            "no nymvisor instance `{id}` (no {}); {}",
            path.display(),
            describe_instances(&home)?
        )));
    }
    let instances = home.instances()?;
    match instances.as_slice() {
        [only] => Ok(home.config_path(only)),
        [] => Err(Error::NoInstance(format!(
            "no nymvisor instance under {}; create one with `nymvisor init <DAEMON_BINARY> --daemon-home <DIR>`",
            home.instances_dir().display()
        ))),
        many => Err(Error::NoInstance(format!(
            "{} nymvisor instances exist ({}); choose one with NYMVISOR_ID=<id> or NYMVISOR_CONFIG_PATH=<file>",
            many.len(),
            many.join(", ")
        ))),
    }
}

fn describe_instances(home: &NymvisorHome) -> Result<String> {
    let instances = home.instances()?;
    Ok(if instances.is_empty() {
        "no instance exists yet; create one with `nymvisor init`".to_owned()
    } else {
        format!("existing instances: {}", instances.join(", "))
    })
}

/// Locates, loads, applies the environment and validates: the effective configuration.
pub fn load_effective(env: &Env) -> Result<(PathBuf, Config)> {
    let path = locate(env)?;
    let file = Config::load_file(&path)?;
    // the daemon an instance manages is fixed at `init`: another name in the environment is a
    // mix-up (an env file of another node), not an override
    if !file.daemon.name.is_empty()
        && let Some(name) = env.get_non_empty("DAEMON_NAME")
        && name != file.daemon.name
    {
        return Err(Error::EnvValue {
            var: "DAEMON_NAME".into(),
            value: name.to_owned(),
            message: format!(
                "this instance ({}) manages {}; unset DAEMON_NAME, or choose the instance of {name} with NYMVISOR_ID",
                path.display(),
                file.daemon.name
            ),
        });
    }
    let config = file.apply_env(env)?.validated()?;
    Ok((path, config))
}
