//! Dispatch: one small function per command, each calling the core and printing its result.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use nymvisor_core::build_info;
use nymvisor_core::env::Env;
use nymvisor_core::instance::{self, AddUpgrade, DEFAULT_UPGRADE_DELAY, Instance, UpgradeWhen};
use nymvisor_core::model::{self, BuildInfo};
use nymvisor_core::{helper, run, sandbox};
use serde::Serialize;

use crate::args::{
    AddUpgradeArgs, BackupsCommand, Cli, Command, InitArgs, MirrorCommand, MirrorSyncArgs,
    OutputFormat, RunArgs,
};
use crate::logging;
use crate::output::{out, outln};
use crate::self_info;

/// `separated`: `run` was followed by `--` on the command line (what follows is the daemon's,
/// `--help` included).
pub async fn dispatch(cli: Cli, env: Env, separated: bool) -> Result<ExitCode> {
    if cli.short_version {
        outln!("nymvisor {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    if cli.long_version {
        out!("{}", self_info::build_info().to_text());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(command) = cli.command else {
        crate::output::write_all(Cli::command().render_help().to_string().as_bytes())?;
        return Ok(ExitCode::from(2));
    };
    if let Command::Run(args) = command {
        let result = run(args, env, separated).await;
        // `run` unblocked them once its handlers existed, unless it ended before
        nymvisor_core::daemon::signals::unblock_handled();
        return result;
    }
    nymvisor_core::daemon::signals::unblock_handled();
    if let Command::Helper = command {
        return helper(env).await;
    }
    if let Command::Plugin { library, describe } = command {
        if describe {
            let answer = nymvisor_plugins::dylib::describe_isolated(&library)?;
            crate::output::write_all(answer.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        return plugin_call(&library);
    }
    logging::init(&env, None);
    match command {
        Command::Run(_) | Command::Helper | Command::Plugin { .. } => {}
        Command::Init(args) => init(args, &env).await?,
        Command::BuildInfo(args) => print_build_info(&self_info::build_info(), args.output)?,
        Command::DaemonBuildInfo(args) => {
            let instance = Instance::open(&env)?;
            let bin = instance.data.current_bin();
            let info = build_info::probe(&bin, build_info::PROBE_TIMEOUT).await?;
            print_build_info(&info, args.output)?;
        }
        Command::AddUpgrade(args) => add_upgrade(args, &env).await?,
        Command::Backups(BackupsCommand::List(args)) => {
            let instance = Instance::open(&env)?;
            let list = instance::backups::list(&instance);
            match args.output {
                OutputFormat::Json => print_json(&list)?,
                OutputFormat::Text if list.is_empty() => {
                    outln!("no backups in {}", instance.config.backup_dir().display())
                }
                OutputFormat::Text => {
                    for l in &list {
                        let b = &l.backup;
                        outln!(
                            "{}/{}  holds {} {}  {} bytes  {}",
                            b.upgrade,
                            b.timestamp,
                            instance.config.daemon.name,
                            l.version.as_deref().unwrap_or("(version unknown)"),
                            b.bytes,
                            b.path.display()
                        );
                    }
                }
            }
        }
        Command::Backups(BackupsCommand::Restore { backup, stop }) => {
            let instance = Instance::open(&env)?;
            let done = instance::backups::restore(&instance, &backup, stop).await?;
            outln!(
                "restored {} into {}; start nymvisor again to run the daemon",
                done.from.display(),
                instance.config.daemon.home.display()
            );
            outln!(
                "  the data it replaced is kept in {} (restore it the same way to undo)",
                done.safety_copy.display()
            );
        }
        Command::Completions { shell } => {
            // generated into memory: clap_complete panics when its writer fails
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "nymvisor", &mut script);
            crate::output::write_all(&script)?;
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            crate::output::write_all(&page)?;
        }
        Command::Status(args) => {
            let instance = Instance::open(&env)?;
            let status = nymvisor_core::status::status(&instance)?;
            match args.output {
                OutputFormat::Json => print_json(&status)?,
                OutputFormat::Text => out!("{}", status.to_text()),
            }
            // a probe's answer: 0 both run, 3 either does not (the LSB convention)
            return Ok(ExitCode::from(status.probe_code()));
        }
        Command::Hold { reason } => {
            let instance = Instance::open(&env)?;
            let h = instance::hold::hold(&instance, reason)?;
            outln!(
                "upgrades of `{}` are on hold since {}{}; nothing is applied automatically until `nymvisor unhold` (`add-upgrade --now` still applies)",
                instance.config.id(),
                model::rfc3339(h.since),
                h.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            );
        }
        Command::Unhold => {
            let instance = Instance::open(&env)?;
            match instance::hold::unhold(&instance)? {
                Some(_) => outln!(
                    "the hold is lifted: upgrades of `{}` are applied again",
                    instance.config.id()
                ),
                None => outln!("upgrades of `{}` were not on hold", instance.config.id()),
            }
        }
        Command::Retry { name, now } => {
            let instance = Instance::open(&env)?;
            retry(&instance, &name, now)?;
        }
        Command::Cancel { name } => {
            let instance = Instance::open(&env)?;
            let entry = instance::cancel::cancel(&instance, &name)?;
            outln!(
                "cancelled upgrade `{}` ({} {}): it is out of the plan, and the same release offered upstream is not queued again until upstream changes it or `nymvisor retry {}`",
                entry.name,
                instance.config.daemon.name,
                entry.version,
                entry.name
            );
        }
        Command::Rollback { with_data, now } => {
            let instance = Instance::open(&env)?;
            rollback(&instance, with_data, now).await?;
        }
        Command::Mirror(MirrorCommand::Sync(args)) => return mirror_sync(args, &env).await,
        Command::Fleet(command) => crate::fleet::fleet(command, &env).await?,
        Command::Config(args) => {
            let instance = Instance::open(&env)?;
            match args.output {
                OutputFormat::Json => print_json(&instance.effective_config().to_value())?,
                OutputFormat::Text => {
                    outln!(
                        "# effective configuration of instance `{}`\n# file: {} (environment overrides applied)\n",
                        instance.config.id(),
                        instance.config_path.display()
                    );
                    out!("{}", instance.effective_config().to_toml()?);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn retry(instance: &Instance, name: &str, now: bool) -> Result<()> {
    let daemon = &instance.config.daemon.name;
    match instance::retry::retry(instance, name, now)? {
        instance::retry::Retried::Refusal {
            record,
            requeued,
            repoll,
        } => {
            let then = if requeued {
                " and is queued again"
            } else if repoll {
                "; upstream is asked for it again at once"
            } else {
                ""
            };
            outln!(
                "upgrade `{}` ({daemon} {}) will be considered again{then}; it was {}: {}",
                record.name,
                record.version,
                if record.origin == model::refusals::Origin::Cancelled {
                    "cancelled"
                } else {
                    "refused"
                },
                record.reason
            );
        }
        instance::retry::Retried::RolledBack(info) => outln!(
            "rolled-back upgrade `{}` ({daemon} {}) is queued again: its binary is verified again, then it is applied{}",
            info.name,
            info.version,
            if now {
                " at once"
            } else {
                " when due (spread, windows and hold apply; --now skips them)"
            }
        ),
    }
    Ok(())
}

async fn rollback(instance: &Instance, with_data: bool, now: bool) -> Result<()> {
    use instance::rollback::RolledBack;
    let daemon = &instance.config.daemon.name;
    match instance::rollback::rollback(instance, with_data, now).await? {
        RolledBack::Done {
            from,
            to,
            safety_copy,
        } => {
            outln!(
                "rolled back {daemon} {} (`{}`) → {} (`{}`){}; start nymvisor to run it",
                from.version,
                from.name,
                to.version,
                to.name,
                if with_data {
                    " with the data backed up before it was installed"
                } else {
                    ""
                }
            );
            if let Some(p) = safety_copy {
                outln!("  the data it replaced is kept in {}", p.display());
            }
        }
        RolledBack::Requested {
            pid,
            from,
            to,
            waits_for: Some(what),
        } => outln!(
            "the running nymvisor{} will roll back {daemon} {} → {} once it may: it waits for {what}",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            from.version,
            to.version
        ),
        RolledBack::Requested { pid, from, to, .. } => {
            let patience =
                instance.config.daemon.shutdown_grace_period + std::time::Duration::from_secs(120);
            match instance::rollback::wait_for_running(instance, &from.name, patience).await? {
                Some(_) => outln!(
                    "the running nymvisor{} rolled back {daemon} {} → {} and runs it",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    from.version,
                    to.version
                ),
                None => anyhow::bail!(
                    "the running nymvisor did not roll back; `nymvisor status` and its log say why"
                ),
            }
        }
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_build_info(info: &BuildInfo, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => print_json(info),
        OutputFormat::Text => {
            out!("{}", info.to_text());
            Ok(())
        }
    }
}

async fn init(args: InitArgs, env: &Env) -> Result<()> {
    let outcome = instance::init(env, &args.binary, args.flags.0).await?;
    let inst = &outcome.instance;
    match args.output.output {
        OutputFormat::Json => print_json(&inst.config.to_value())?,
        OutputFormat::Text => {
            if outcome.created {
                outln!(
                    "initialised nymvisor instance `{}` for {} {}",
                    inst.config.id(),
                    inst.config.daemon.name,
                    inst.plan()?.current.version
                );
            } else {
                outln!(
                    "instance `{}` already exists with this setup; nothing was changed",
                    inst.config.id()
                );
            }
            outln!("  config:       {}", inst.config_path.display());
            outln!("  binaries:     {}", inst.data.root().display());
            outln!("  daemon home:  {}", inst.config.daemon.home.display());
            outln!("\n{}", inst.config.to_toml()?);
        }
    }
    Ok(())
}

async fn add_upgrade(args: AddUpgradeArgs, env: &Env) -> Result<()> {
    let instance = Instance::open(env)?;
    let when = if args.when.now {
        UpgradeWhen::Now
    } else if let Some(t) = args.when.upgrade_time {
        UpgradeWhen::At(t)
    } else {
        UpgradeWhen::After(args.when.upgrade_delay.unwrap_or(DEFAULT_UPGRADE_DELAY))
    };
    let req = AddUpgrade {
        binary: args.binary,
        name: args.upgrade_name,
        force: args.force,
        add_binary: args.add_binary,
        when,
        publish_date: args.publish_date,
        allow_downgrade: args.allow_downgrade,
    };
    let outcome = instance::add_upgrade(&instance, &req).await?;
    match args.output.output {
        OutputFormat::Json => print_json(&outcome.info)?,
        OutputFormat::Text if outcome.binary_only => outln!(
            "added the binary of upgrade `{}` (version {}) at {}",
            outcome.info.name,
            outcome.info.version,
            outcome.binary_path.display()
        ),
        OutputFormat::Text => {
            let delta = outcome.info.upgrade_time - model::now();
            let when = if delta.is_positive() {
                let secs = delta.whole_seconds().max(0) as u64;
                format!(
                    "in {}",
                    humantime::format_duration(std::time::Duration::from_secs(secs))
                )
            } else {
                "now".to_owned()
            };
            outln!(
                "queued upgrade `{}`: {} {} at {} ({when})",
                outcome.info.name,
                instance.config.daemon.name,
                outcome.info.version,
                model::rfc3339(outcome.info.upgrade_time),
            );
            outln!("  binary: {}", outcome.binary_path.display());
            outln!("  plan:   {}", instance.data.plan().display());
            outln!("A running `nymvisor run` picks it up within a second.");
        }
    }
    Ok(())
}

/// `nymvisor mirror sync`: each daemon in turn (one failing does not stop the others), one
/// line each; exit 1 when any failed (for a timer's unit to show failed).
async fn mirror_sync(args: MirrorSyncArgs, env: &Env) -> Result<ExitCode> {
    use nymvisor_core::mirror;
    let (base, default_daemon) = mirror::base_config(env, args.id.as_deref())?;
    let daemons = if args.daemons.is_empty() {
        vec![default_daemon]
    } else {
        args.daemons
    };
    let password = match &args.sign_key_password_env {
        Some(var) => Some(env.get_non_empty(var).ok_or_else(|| {
            anyhow::anyhow!("--sign-key-password-env {var}: that environment variable is not set")
        })?),
        None => None,
    };
    let signers = args
        .sign_keys
        .iter()
        .map(|p| {
            nymvisor_verifiers::signer::MinisignSigner::from_file(p, password)
                .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn mirror::Signer>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opts = mirror::SyncOptions {
        out: args.out,
        base_url: args.base_url,
        expires: args.expires,
        keep: args.keep as usize,
    };
    opts.check()?;
    let _lock = mirror::lock(&opts.out)?;
    if signers.is_empty() {
        tracing::warn!(
            "no --sign-key: the mirror's feeds are not signed; nodes that require signatures refuse them"
        );
    }
    let now = model::now();
    let mut failed = false;
    for daemon in &daemons {
        match mirror::sync_daemon(&base, daemon, env, &opts, &signers, now).await {
            Ok(s) => {
                let how = if s.downloaded {
                    "downloaded and verified"
                } else {
                    "unchanged, not downloaded again"
                };
                let signed = match s.signed_by.as_slice() {
                    [] => "unsigned".to_owned(),
                    keys => format!("signed by {}", keys.join(", ")),
                };
                outln!(
                    "{}: {} ({}) {how}; feed {} sequence {}, {signed}, expires {}",
                    s.daemon,
                    s.name,
                    s.version,
                    s.feed.display(),
                    s.sequence,
                    model::rfc3339(s.expires)
                );
                if !s.pruned.is_empty() {
                    outln!("  removed older releases: {}", s.pruned.join(", "));
                }
            }
            Err(e) => {
                failed = true;
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("nymvisor: error: {e}\n").as_bytes(),
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn run(args: RunArgs, env: Env, separated: bool) -> Result<ExitCode> {
    // help never needs an instance; the daemon's own help is `nymvisor run -- --help`
    if !separated && matches!(args.daemon_args.as_slice(), [a] if a == "--help" || a == "-h") {
        let mut cmd = Cli::command();
        if let Some(run) = cmd.find_subcommand_mut("run") {
            out!("{}", run.render_long_help());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut args = args;
    if args.daemon_args.first().is_some_and(|a| a == "--") {
        args.daemon_args.remove(0);
    }
    let instance = Instance::open(&env)?;
    logging::init(&env, Some(&instance.config));
    instance.check_sandbox_paths()?;
    let (upstream, verifiers) = crate::network::for_supervisor(&instance, &env).await?;
    let fleet = crate::network::fleet_for_supervisor(&instance, &env, &upstream)?;
    let (metrics, metrics_error) = serve_metrics(&instance.config).await;
    // the GitHub token is the helper's (and the in-process source's): the daemon and the hooks
    // never see it
    // nor the etcd password
    let child_env = env
        .without(&instance.config.nymvisor.github_token_env)
        .without(&instance.config.fleet.etcd_password_env);
    let opts = run::RunOptions {
        daemon_args: args.daemon_args,
        env: child_env,
        upstream,
        verifiers,
        progress: progress_sink(&instance.config),
        health: nymvisor_sources::health::from_config(&instance.config)?,
        metrics,
        metrics_error,
        fleet,
    };
    match run::run(instance, opts).await {
        Ok(outcome) => {
            tracing::debug!(?outcome, "nymvisor run finished");
            Ok(ExitCode::SUCCESS)
        }
        // said once, by `main` ("nymvisor: error: …"), not also as a log line
        Err(e) => Err(e.into()),
    }
}

/// `nymvisor __helper`: one job of `run`'s, read from stdin, answered on stdout
/// (nymvisor_core::helper). The instance is the one the supervisor resolved, sent with the job
/// (no config file is located or read here), and `env` is the supervisor's resolved environment
/// it was started with. The source and verifiers are built before the sandbox closes (a plugin
/// library is loaded then); the job runs inside it.
async fn helper(env: Env) -> Result<ExitCode> {
    let mut input = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin(), 4 << 20),
        &mut input,
    )
    .context("cannot read the network helper's job")?;
    let request: helper::Request =
        serde_json::from_slice(&input).context("the network helper's job does not parse")?;
    let job = request.job;
    let instance = request.instance.into_instance();
    logging::init(&env, Some(&instance.config));
    if let helper::Job::Fleet { op, session } = job {
        // the store (its TLS files read) before the sandbox closes; no source, no plugin. A
        // store that cannot be built (a CA file rotated away) is the job's answer, so the
        // supervisor says why
        let store = match crate::network::fleet_store(&instance, &env) {
            Ok(s) => s,
            Err(e) => {
                let answer = helper::Answer::Fleet {
                    result: Err(format!("{e:#}")),
                    session: None,
                };
                let text = serde_json::to_vec(&answer)
                    .context("cannot encode the network helper's answer")?;
                crate::output::write_all(&text)?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let job = helper::Job::Fleet {
            op: op.clone(),
            session: None,
        };
        let rules = helper::sandbox_rules(&instance, &job)
            .context("cannot set up the network helper's sandbox")?;
        sandbox::enter(&rules)?;
        let answer = helper::serve_fleet(op, session, &instance, store).await;
        let text =
            serde_json::to_vec(&answer).context("cannot encode the network helper's answer")?;
        crate::output::write_all(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (source, verifiers) = crate::network::for_helper_job(&instance, &env)?;
    let rules = helper::sandbox_rules(&instance, &job)
        .context("cannot create the network helper's staging directory")?;
    sandbox::enter(&rules)?;
    let progress = progress_sink(&instance.config);
    let started = std::time::Instant::now();
    let answer = helper::serve(job, &instance, source, verifiers, progress).await;
    // for bench/idle.sh: what a job costs, since the supervisor no longer pays it
    let peak_rss_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| u.max_rss())
        .unwrap_or(0);
    tracing::debug!(
        peak_rss_kib,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "network helper finished"
    );
    let text = serde_json::to_vec(&answer).context("cannot encode the network helper's answer")?;
    crate::output::write_all(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `nymvisor __plugin <library>`: one call of a verifier plugin — the request from stdin, the
/// answer to stdout — in a process of its own, so that a plugin that crashes, aborts or hangs
/// takes only this process (`run` without the network helper calls plugins this way).
fn plugin_call(library: &std::path::Path) -> Result<ExitCode> {
    let mut request = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), 4 << 20),
        &mut request,
    )
    .context("cannot read the plugin's request")?;
    // a plugin that cannot be loaded is an answer too ("not now", with why), not a raw error
    // line on nymvisor's output
    let answer = nymvisor_plugins::dylib::serve_isolated(library, &request).unwrap_or_else(|e| {
        serde_json::json!({ "accept": false, "notNow": true, "reason": e.to_string() }).to_string()
    });
    crate::output::write_all(answer.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Starts the metrics endpoint when an address is configured (on this runtime). An address
/// that cannot be bound is an error in the log and `status` (returned), not a reason to keep
/// the node down: it is tried again every few seconds.
async fn serve_metrics(
    config: &nymvisor_core::config::Config,
) -> (
    Option<std::sync::Arc<nymvisor_core::metrics::Metrics>>,
    Option<String>,
) {
    let Some(address) = &config.nymvisor.metrics_address else {
        return (None, None);
    };
    let metrics = std::sync::Arc::new(nymvisor_core::metrics::Metrics::new(
        env!("CARGO_PKG_VERSION"),
        config.daemon.health_url.is_some(),
    ));
    let m = metrics.clone();
    let render: nymvisor_sources::metrics::Render = std::sync::Arc::new(move || m.render());
    let listener = match nymvisor_sources::metrics::bind(address).await {
        Ok(l) => l,
        Err(e) => {
            let note = format!(
                "{e}; the node is supervised without metrics, and the address is tried again every {}s",
                nymvisor_sources::metrics::BIND_RETRY.as_secs()
            );
            tracing::error!("{note}");
            tokio::spawn(nymvisor_sources::metrics::serve_when_free(
                address.clone(),
                render,
            ));
            return (Some(metrics), Some(note));
        }
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| address.clone());
    tracing::info!("serving metrics at http://{bound}/metrics");
    tokio::spawn(nymvisor_sources::metrics::serve(listener, render));
    (Some(metrics), None)
}

/// Progress bars only for a person watching: stderr is a terminal and logs are text.
fn progress_sink(
    config: &nymvisor_core::config::Config,
) -> Option<std::sync::Arc<dyn nymvisor_core::progress::ProgressSink>> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    (interactive
        && config.nymvisor.log_format == nymvisor_core::config::LogFormat::Text
        && !config.nymvisor.disable_logs)
        .then(|| {
            std::sync::Arc::new(crate::progress::Bars)
                as std::sync::Arc<dyn nymvisor_core::progress::ProgressSink>
        })
}
