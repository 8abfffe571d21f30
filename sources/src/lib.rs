//! # nymvisor-sources
//!
//! Implementations of [`nymvisor_core::source::UpgradeSource`]:
//! - [`http::HttpSource`]: `GET <base>/<daemon>/upgrade-info.json` (or an absolute URL), with
//!   conditional requests, timeouts, size caps and a strict redirect policy;
//! - [`github::GithubSource`]: GitHub releases through the REST API (reqwest, since it needs the
//!   raw `Link`, `ETag` and rate-limit headers);
//! - [`local::LocalSource`]: a directory laid out like the feed, for air-gapped hosts.
//!
//! [`from_config`] picks one from the configuration.
//!
//! Also the fleet's store ([`etcd::EtcdFleet`], [`nymvisor_core::fleet::FleetStore`] on etcd's v3
//! JSON gateway), which uses the same HTTP client and runs where the sources run: in the helper.

pub mod error;
pub mod etcd;
pub mod fetch;
pub mod github;
pub mod health;
pub mod http;
pub mod local;
pub mod metrics;

pub use error::Error;

use std::sync::Arc;
use std::time::Duration;

use nymvisor_core::config::{Config, TuningConfig, UpstreamSource};
use nymvisor_core::env::Env;
use nymvisor_core::source::{Caps, UpgradeSource};

/// Network limits (docs/REFERENCE.md "Limits"), from the `[tuning]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `NYMVISOR_HTTP_CONNECT_TIMEOUT` (10s)
    pub connect: Duration,
    /// `NYMVISOR_HTTP_IDLE_TIMEOUT`: longest wait for the next bytes (30s)
    pub idle: Duration,
    /// `NYMVISOR_HTTP_DOCUMENT_TIMEOUT`: a whole feed document or signature (60s)
    pub document: Duration,
    /// `NYMVISOR_HTTP_DOWNLOAD_TIMEOUT`: a whole binary (30m)
    pub download: Duration,
    pub caps: Caps,
}

impl Limits {
    /// The limits of the `[tuning]` section (each with its environment variable, already
    /// applied and checked by the configuration).
    pub fn from_config(t: &TuningConfig) -> Limits {
        Limits {
            connect: t.http_connect_timeout,
            idle: t.http_idle_timeout,
            document: t.http_document_timeout,
            download: t.http_download_timeout,
            caps: Caps {
                binary: t.max_binary_size,
                ..Caps::default()
            },
        }
    }
}

/// Where the GitHub source keeps a probed download for the prepare stage: next to the upgrades,
/// on the same file system, never in a `/tmp` that may live in memory.
fn staging_dir(config: &Config, env: &Env) -> Result<std::path::PathBuf, Error> {
    let home = nymvisor_core::paths::NymvisorHome::from_env(env)
        .map_err(|e| Error::Setup(e.to_string()))?;
    Ok(config
        .upgrade_data_dir(&home)
        .join(nymvisor_core::paths::PROBE_DIR))
}

/// The configured source, or `None` for `none`.
pub fn from_config(config: &Config, env: &Env) -> Result<Option<Arc<dyn UpgradeSource>>, Error> {
    let limits = Limits::from_config(&config.tuning);
    let daemon = &config.daemon.name;
    match &config.nymvisor.upstream_source {
        UpstreamSource::None => Ok(None),
        UpstreamSource::Http => {
            let url = match &config.daemon.absolute_upstream_upgrade_url {
                Some(url) => url.clone(),
                None => {
                    let base = &config.nymvisor.upstream_base_upgrade_url;
                    let sep = if base.ends_with('/') { "" } else { "/" };
                    format!("{base}{sep}{daemon}/upgrade-info.json")
                }
            };
            Ok(Some(Arc::new(http::HttpSource::new(&url, limits)?)))
        }
        UpstreamSource::Local => {
            let dir = config.nymvisor.local_mirror_directory.clone().ok_or_else(|| {
                Error::Setup("the local source needs a mirror directory: set NYMVISOR_LOCAL_MIRROR_DIRECTORY".into())
            })?;
            Ok(Some(Arc::new(local::LocalSource::new(
                &dir, daemon, limits,
            )?)))
        }
        UpstreamSource::Github => {
            let n = &config.nymvisor;
            let settings = github::GithubSettings {
                api_url: n.github_api_url.clone(),
                repository: n.github_repository.clone(),
                tag_pattern: n.github_tag_pattern.clone(),
                asset: n
                    .github_asset_name
                    .clone()
                    .unwrap_or_else(|| daemon.clone()),
                daemon: daemon.clone(),
                token: env.get_non_empty(&n.github_token_env).map(str::to_owned),
                token_env: n.github_token_env.clone(),
                allow_probe: config.daemon.allow_binaries_download && !config.signature_required(),
                staging: staging_dir(config, env)?,
            };
            Ok(Some(Arc::new(github::GithubSource::new(settings, limits)?)))
        }
        other => Err(Error::Setup(format!(
            "the upstream source `{other}` is not available in this build yet; use `http`, `github`, `local`, `none` or `plugin:<name>`"
        ))),
    }
}
