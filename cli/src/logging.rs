//! nymvisor's own log output: text (or JSON) lines on stderr, `RUST_LOG` respected, silent when
//! `disable_logs` is set.

use nymvisor_core::config::{Config, LogFormat};
use nymvisor_core::env::Env;
use tracing_subscriber::EnvFilter;

pub fn init(env: &Env, config: Option<&Config>) {
    let disabled = config.is_some_and(|c| c.nymvisor.disable_logs);
    let default = if disabled { "off" } else { "info" };
    let directive = if disabled {
        default
    } else {
        env.get_non_empty("RUST_LOG").unwrap_or(default)
    };
    let filter = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new(default));
    let json = config.is_some_and(|c| c.nymvisor.log_format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
