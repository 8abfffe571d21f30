//! Checking a configuration: derived defaults filled, and every value serde cannot check
//! (names, durations, keys, thresholds, paths) refused with the key and its variable named.

use super::{Config, KEYS, MIN_POLLING_RATE};
use crate::error::{Error, Result};
use crate::names::validate_name;

impl Config {
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
            crate::timing::Windows::parse(w)
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
        if let Some((key, message)) = self.fleet.problem() {
            return Err(bad(key, message));
        }
        Ok(self)
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
