//! The `nymvisor` binary: parses the command line, builds the environment snapshot, calls the
//! core and maps the outcome to an exit status. No logic of its own lives here.

mod args;
mod commands;
mod init_flags;
mod logging;
mod progress;
mod self_info;

use std::process::ExitCode;

use clap::Parser;
use nymvisor_core::env::Env;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = match build_env(&cli) {
        Ok(env) => env,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("failed to start the async runtime: {e}")),
    };
    let result = runtime.block_on(commands::dispatch(cli, env));
    // A plugin call abandoned at its timeout may still occupy a blocking thread: do not wait
    // for it on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints the one-line cause on stderr and exits non-zero.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("nymvisor: error: {e}");
    ExitCode::FAILURE
}

/// The process environment, overlaid with the `-c` dotenv file.
fn build_env(cli: &Cli) -> anyhow::Result<Env> {
    let mut env = Env::from_pairs(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    if let Some(file) = &cli.config_env_file {
        let iter = dotenvy::from_path_iter(file)
            .map_err(|e| anyhow::anyhow!("failed to read the env file {}: {e}", file.display()))?;
        for item in iter {
            let (k, v) = item.map_err(|e| {
                anyhow::anyhow!("failed to parse the env file {}: {e}", file.display())
            })?;
            env = env.with(k, v);
        }
    }
    Ok(env)
}
