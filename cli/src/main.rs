//! The `nymvisor` binary: parses the command line, builds the environment snapshot, calls the
//! core and maps the outcome to an exit status. No logic of its own lives here.

mod args;
mod commands;
mod fleet;
mod init_flags;
mod logging;
mod network;
mod output;
mod progress;
mod self_info;

use std::process::ExitCode;

use clap::Parser;
use nymvisor_core::env::Env;

use crate::args::Cli;

fn main() -> ExitCode {
    // before anything else: a stop signal sent in the first milliseconds waits for its handler
    // (as PID 1 it would be dropped); `run` unblocks once its handlers exist, every other
    // command at once
    nymvisor_core::daemon::signals::block_handled();
    // A closed stdout/stderr pipe must be a write error, never a signal that kills nymvisor (and
    // with it the node). Rust's runtime already ignores SIGPIPE; this keeps it so whatever
    // started us. Children get the default back before exec.
    // SAFETY: setting a signal to SIG_IGN before any thread exists is sound.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let daemon_help = args::separator_after_run(&raw);
    let cli = Cli::parse_from(raw);
    let env = match build_env(&cli) {
        Ok(env) => env,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(nymvisor_core::memory::on_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("failed to start the async runtime: {e}")),
    };
    let result = runtime.block_on(commands::dispatch(cli, env, daemon_help));
    // A plugin call abandoned at its timeout may still occupy a blocking thread: do not wait
    // for it on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        // the reader of our output went away (`| head`): it has seen what it wanted
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the one-line cause on stderr and exits non-zero.
fn fail(e: &anyhow::Error) -> ExitCode {
    // not eprintln!: it panics when stderr is a closed pipe
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("nymvisor: error: {e}\n").as_bytes(),
    );
    ExitCode::FAILURE
}

/// The process environment, overlaid with the `-c` dotenv file.
fn build_env(cli: &Cli) -> anyhow::Result<Env> {
    let mut env = Env::from_os_pairs(std::env::vars_os());
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
