//! # nymvisor-plugins
//!
//! In-house verification without rebuilding nymvisor. Implemented so far: external command
//! verifiers ([`exec::ExecVerifier`], `NYMVISOR_VERIFIER_COMMANDS`), for checks written in any
//! language. Dynamic-library plugins (`NYMVISOR_PLUGIN_PATHS`) come with a later issue.

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
    let timeout = match env.get_non_empty("NYMVISOR_VERIFIER_TIMEOUT") {
        Some(v) => humantime::parse_duration(v).map_err(|e| {
            format!("environment variable NYMVISOR_VERIFIER_TIMEOUT={v:?} is malformed: {e}")
        })?,
        None => DEFAULT_TIMEOUT,
    };
    if !config.nymvisor.plugin_paths.is_empty() {
        return Err(
            "dynamic verifier plugins (NYMVISOR_PLUGIN_PATHS) are not available in this build yet; use NYMVISOR_VERIFIER_COMMANDS"
                .into(),
        );
    }
    Ok(config
        .nymvisor
        .verifier_commands
        .iter()
        .map(|cmd| Arc::new(exec::ExecVerifier::new(cmd.clone(), timeout)) as Arc<dyn Verifier>)
        .collect())
}
