//! # nymvisor-plugins
//!
//! In-house verification without rebuilding nymvisor:
//! - dynamic-library plugins ([`dylib::DylibVerifier`], `NYMVISOR_PLUGIN_PATHS`) speaking a small
//!   versioned C ABI (write them in Rust with the `nymvisor-plugin-api` crate);
//! - external commands ([`exec::ExecVerifier`], `NYMVISOR_VERIFIER_COMMANDS`), in any language.
//!
//! Plugins run before commands, in the configured order.

pub mod dylib;
pub mod exec;

use std::sync::Arc;
use std::time::Duration;

use nymvisor_core::config::Config;
use nymvisor_core::env::Env;
use nymvisor_core::verify::Verifier;

/// Default bound on one verifier command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The plugin verifiers configured, in order. `NYMVISOR_VERIFIER_TIMEOUT` bounds each command.
pub fn from_config(config: &Config, env: &Env) -> Result<Vec<Arc<dyn Verifier>>, String> {
    let timeout = timeout(env)?;
    let mut chain: Vec<Arc<dyn Verifier>> = Vec::new();
    for path in &config.nymvisor.plugin_paths {
        chain.push(Arc::new(dylib::DylibVerifier::new(path.clone(), timeout)));
    }
    for cmd in &config.nymvisor.verifier_commands {
        chain.push(Arc::new(exec::ExecVerifier::new(cmd.clone(), timeout)));
    }
    Ok(chain)
}

/// The configured upstream source: a source plugin for `plugin:<name>`, else whatever
/// `nymvisor-sources` builds.
pub fn upstream(
    config: &Config,
    env: &Env,
) -> Result<Option<Arc<dyn nymvisor_core::source::UpgradeSource>>, String> {
    match &config.nymvisor.upstream_source {
        nymvisor_core::config::UpstreamSource::Plugin(name) => {
            let timeout = timeout(env)?;
            let limits = nymvisor_sources::Limits::from_env(env).map_err(|e| e.to_string())?;
            let source = dylib::PluginSource::find(
                &config.nymvisor.plugin_paths,
                name,
                &config.daemon.name,
                timeout,
                limits,
            )?;
            Ok(Some(Arc::new(source)))
        }
        _ => nymvisor_sources::from_config(config, env).map_err(|e| e.to_string()),
    }
}

/// `NYMVISOR_VERIFIER_TIMEOUT`, else [`DEFAULT_TIMEOUT`].
fn timeout(env: &Env) -> Result<Duration, String> {
    match env.get_non_empty("NYMVISOR_VERIFIER_TIMEOUT") {
        Some(v) => humantime::parse_duration(v).map_err(|e| {
            format!("environment variable NYMVISOR_VERIFIER_TIMEOUT={v:?} is malformed: {e}")
        }),
        None => Ok(DEFAULT_TIMEOUT),
    }
}
