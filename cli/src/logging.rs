//! nymvisor's own log output: text (or JSON) lines on stderr, `RUST_LOG` respected, silent when
//! `disable_logs` is set.

use nymvisor_core::config::{Config, LogFormat};
use nymvisor_core::env::Env;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init(env: &Env, config: Option<&Config>) {
    let disabled = config.is_some_and(|c| c.nymvisor.disable_logs);
    let default = if disabled { "off" } else { "info" };
    let directive = if disabled {
        default
    } else {
        env.get_non_empty("RUST_LOG").unwrap_or(default)
    };
    // `Targets` understands the usual `RUST_LOG` forms (`debug`, `warn,nymvisor_core=debug`)
    // without pulling a regex engine into a process that should stay small.
    let filter: Targets = directive.parse().unwrap_or_else(|_| {
        Targets::new().with_default(if disabled {
            LevelFilter::OFF
        } else {
            LevelFilter::INFO
        })
    });
    let json = config.is_some_and(|c| c.nymvisor.log_format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder.finish().with(filter).try_init()
    };
}
