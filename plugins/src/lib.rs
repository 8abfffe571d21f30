//! # nymvisor-plugins
//!
//! In-house verification without rebuilding nymvisor:
//! - dynamic-library plugins ([`dylib::DylibVerifier`], `NYMVISOR_PLUGIN_PATHS`) speaking a small
//!   versioned C ABI (write them in Rust with the `nymvisor-plugin-api` crate);
//! - external commands ([`exec::ExecVerifier`], `NYMVISOR_VERIFIER_COMMANDS`), in any language.
//!
//! Plugins run before commands, in the configured order.

pub mod dylib;
pub mod error;
pub mod exec;

pub use error::Error;

use std::sync::Arc;

use nymvisor_core::config::Config;
use nymvisor_core::env::Env;
use nymvisor_core::verify::Verifier;

/// The plugin verifiers configured, in order. `tuning.verifier_timeout` bounds each call.
/// Verifier commands run with `env`, the supervisor's resolved environment, less the GitHub
/// token (`github_token_env`): only the network helper's source uses it. `in_helper`: built in
/// the network helper (a child process already, and sandboxed); elsewhere — the supervisor —
/// a plugin is never loaded into the process: each call runs in a child of its own.
pub fn from_config(config: &Config, env: &Env, in_helper: bool) -> Vec<Arc<dyn Verifier>> {
    let timeout = config.tuning.verifier_timeout;
    let env = env.without(&config.nymvisor.github_token_env);
    let mut chain: Vec<Arc<dyn Verifier>> = Vec::new();
    for path in &config.nymvisor.plugin_paths {
        chain.push(Arc::new(dylib::DylibVerifier::new(
            path.clone(),
            timeout,
            !in_helper,
            env.clone(),
        )));
    }
    for cmd in &config.nymvisor.verifier_commands {
        chain.push(Arc::new(
            exec::ExecVerifier::new(cmd.clone(), timeout, env.clone()).sandboxed(in_helper),
        ));
    }
    chain
}

/// The configured upstream source: a source plugin for `plugin:<name>`, else whatever
/// `nymvisor-sources` builds.
pub fn upstream(
    config: &Config,
    env: &Env,
) -> Result<Option<Arc<dyn nymvisor_core::source::UpgradeSource>>, Error> {
    match &config.nymvisor.upstream_source {
        nymvisor_core::config::UpstreamSource::Plugin(name) => {
            let timeout = config.tuning.verifier_timeout;
            let limits = nymvisor_sources::Limits::from_config(&config.tuning);
            let source = dylib::PluginSource::find(
                &config.nymvisor.plugin_paths,
                name,
                &config.daemon.name,
                timeout,
                limits,
                config.nymvisor.local_mirror_directory.as_deref(),
            )?;
            Ok(Some(Arc::new(source)))
        }
        _ => Ok(nymvisor_sources::from_config(config, env)?),
    }
}
