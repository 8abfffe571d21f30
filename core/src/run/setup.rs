//! Setting `run` up: the run lock, the signal handlers (before any child exists), the file
//! watch (before the plan is read, so no change is missed), the plan, the refusals, the process
//! side, a daemon left behind by an earlier nymvisor, and the recovery of an interrupted upgrade.

use std::sync::Arc;

use super::book::Book;
use super::health::Monitor;
use super::host::DaemonHost;
use super::poll::Poller;
use super::watch::{FileWatch, PlanProblem};
use super::{RunOptions, Supervisor};
use crate::backup;
use crate::config::Compression;
use crate::daemon::signals::Signals;
use crate::daemon::{self, ChildEvents, DaemonSpec, children};
use crate::error::Result;
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::{self, Refusals, RunState, UpgradePlan};
use crate::upgrade::Preparer;
use crate::upgrade::lifecycle::{Lifecycle, Rules};
use crate::upgrade::recover;
use crate::upgrade::transaction::BackupSettings;

/// A supervisor ready to start the daemon.
pub(super) async fn start(inst: Instance, opts: RunOptions) -> Result<Supervisor> {
    let lock = FileLock::try_acquire(&inst.data.run_lock())?;
    // only now that no other nymvisor runs here: what an earlier one left in flight is not
    // trusted (a probed download is fetched again if needed)
    if let Some(s) = opts.upstream.source() {
        s.discard_leftovers();
    }
    for dir in [crate::paths::PROBE_DIR, crate::paths::HELPER_TMP_DIR] {
        let _ = std::fs::remove_dir_all(inst.data.root().join(dir));
    }
    // SIGCHLD is watched before any child exists so that no exit is missed
    let children = ChildEvents::new()?;
    let signals = Signals::new()?;
    // the handlers exist: what arrived since `main` blocked it is delivered to them now
    crate::daemon::signals::unblock_handled();
    if children::become_subreaper() && children::is_init() {
        tracing::info!(
            "running as PID 1: signals are forwarded to the daemon and every orphaned process is reaped"
        );
    }
    warn_about_setup(&inst, &opts.env);
    // before the first spawn: what is a child already (a log reader started by the shell) is
    // not the daemon's and must survive its stops
    let inherited = children::note_inherited();
    if inherited > 0 {
        tracing::debug!(
            "{inherited} process(es) were already children of nymvisor at start (a log reader, a wrapper's job): they are left alone"
        );
    }
    // watch first, so that a change made while the plan is being read is not missed
    let watch = FileWatch::new(
        inst.data.root(),
        &[
            inst.data.plan(),
            inst.data.refusals(),
            inst.data.hold(),
            inst.data.rollback_request(),
        ],
    );
    let mut plan_problem = PlanProblem::default();
    let plan = match inst.plan() {
        Ok(plan) => plan,
        Err(e) => {
            tracing::error!(
                "{e}; running the current binary and ignoring the plan until it is fixed"
            );
            plan_problem.set(e.to_string());
            UpgradePlan::new(fsutil::read_json(
                &inst.data.current_link().join("upgrade-info.json"),
            )?)
        }
    };
    // unreadable records fail closed: nothing is applied automatically until they can be read
    let (refusals, refusals_problem) = match Refusals::load(&inst.data.refusals()) {
        Ok(r) => (r, None),
        Err(e) => {
            let note = format!(
                "{e}; no upgrade is applied automatically until it can be read (the node keeps running)"
            );
            tracing::error!("{note}");
            (Refusals::default(), Some(note))
        }
    };
    // an unusable fleet seed blocks automatic upgrades, never the node
    let (timing, timing_problem) = match inst.timing() {
        Ok(t) => (t, None),
        Err(e) => {
            tracing::error!("{e}; no upgrade is applied automatically until it is fixed");
            (crate::timing::Timing::default(), Some(e))
        }
    };
    let inst_health_interval = inst.config.daemon.health_interval;
    let inst_daemon = inst.config.daemon.clone();
    let hold = inst.hold().unwrap_or_else(|e| {
        tracing::error!("{e}; taken as a hold until it is fixed");
        Some(model::Hold::unreadable(&e))
    });

    if let Some(h) = &hold {
        tracing::info!(
            "upgrades are on hold{}: nothing is applied automatically until `nymvisor unhold`",
            h.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    let tuning = &inst.config.tuning;
    let verifiers = Arc::new(opts.verifiers.clone());
    let state_dir = inst.home.instance_data_dir(inst.config.id());
    let previous_state = RunState::load(&state_dir).ok().flatten();
    let host = DaemonHost {
        spec: DaemonSpec {
            binary: inst.data.current_bin(),
            args: opts.daemon_args.clone(),
            env: opts.env.clone(),
        },
        children,
        signals,
        notifier: crate::sd_notify::Notifier::from_env(&opts.env),
        grace: inst.config.daemon.shutdown_grace_period,
        state: RunState {
            nymvisor_pid: std::process::id(),
            nymvisor_started_at: Some(model::now()),
            ..RunState::default()
        },
        state_dir,
        failpoint: opts
            .env
            .get_non_empty("NYMVISOR_FAILPOINT")
            .map(str::to_owned),
        metrics: opts.metrics.clone(),
        watchdog: crate::sd_notify::Notifier::watchdog_interval(&opts.env)
            .map(|every| (every, tokio::time::Instant::now() + every)),
    };
    let backups = BackupSettings {
        backup: if inst.config.daemon.unsafe_skip_backup {
            None
        } else {
            backup::strategy_for(
                inst.config.daemon.backup_strategy,
                tuning.backup_compression == Compression::Zstd,
            )
        },
        backup_min_free: tuning.backup_min_free,
        precopy: inst.config.daemon.backup_precopy,
        progress: opts.progress.clone(),
    };
    let watching = opts.upstream.describe();
    if let Some(what) = watching {
        tracing::info!(
            "watching {what} every {} for new releases",
            humantime::format_duration(inst.config.nymvisor.upstream_polling_rate)
        );
    }
    let mut sup = Supervisor {
        preparer: Preparer::for_instance(
            &inst,
            opts.upstream.source().cloned(),
            opts.verifiers.clone(),
            opts.progress.clone(),
            opts.upstream
                .helper()
                .map(|h| h.clone() as Arc<dyn crate::upgrade::Elsewhere>),
        ),
        poller: Poller::new(
            opts.upstream.clone(),
            verifiers,
            inst.config.nymvisor.upstream_polling_rate,
        ),
        book: Book::new(plan, plan_problem, refusals, timing, hold)
            .with_feed(super::feed::FeedGuard::load(&inst)),
        inst,
        backups,
        host,
        watch,
        health: opts.health.clone().map(|probe| {
            tracing::info!(
                "probing the daemon's health at {} every {}",
                probe.describe(),
                humantime::format_duration(inst_health_interval)
            );
            Monitor::new(probe, inst_health_interval)
        }),
        confirm_at: None,
        life: Lifecycle::new(Rules {
            health_probed: opts.health.is_some(),
            ..Rules::of(&inst_daemon)
        }),
        started_once: false,
        unrecorded: None,
        rollback_wanted: true,
        rollback_at: None,
        fleet: None,
        _lock: lock,
    };
    if let Some(prev) = previous_state
        && let (Some(pid), Some(ticks)) = (prev.daemon_pid, prev.daemon_start_ticks)
    {
        daemon::stop_leftover(pid, ticks, sup.host.grace).await;
    }
    if let Some(e) = &opts.metrics_error {
        sup.host.record_error(e.clone());
    }
    if let Some(e) = timing_problem {
        let note = format!(
            "{e}; no upgrade is applied automatically until it is fixed and nymvisor restarted (the node keeps running)"
        );
        sup.host.record_error(note.clone());
        sup.book.timing_problem = Some(note);
    }
    sup.book.refusals_problem = refusals_problem;
    if let Some(note) = sup.book.refusals_problem.clone() {
        sup.host.record_error(note);
    }
    let _ = sup.book.history(&sup.inst, &mut sup.host);
    sup.host.save_state();
    sup.book.confirming =
        recover::recover(&sup.inst, &sup.backups, &mut sup.host, &mut sup.book.plan).await?;
    if let Some(link) = opts.fleet.clone() {
        // what the history says of each version (a rollback finished by the recovery above
        // included): a slot found at start is settled by it
        let history = crate::model::UpgradeHistory::load(&sup.inst.data.history())
            .ok()
            .map(|h| {
                h.history
                    .iter()
                    .filter_map(|e| {
                        let confirmed = match e.outcome {
                            Some(
                                crate::model::Outcome::Confirmed | crate::model::Outcome::Success,
                            ) => true,
                            Some(crate::model::Outcome::RolledBack) => false,
                            _ => return None,
                        };
                        Some(crate::model::fleet::HistoryMark {
                            version: e.info.version.clone(),
                            confirmed,
                            at: e.performed_at,
                        })
                    })
                    .collect()
            });
        sup.fleet = Some(super::fleet::Fleet::new(
            link,
            &sup.inst,
            &sup.book.plan.current.version,
            sup.book.confirming.as_ref().map(|j| &j.upgrade),
            history,
        ));
        sup.publish_fleet();
    }
    Ok(sup)
}

/// Once at start: settings that are probably not what the operator meant.
fn warn_about_setup(inst: &Instance, env: &crate::env::Env) {
    for (var, meant) in crate::config::unknown_env_vars(env) {
        tracing::warn!(
            "{var} is set but is no setting of nymvisor{}; it is ignored",
            meant
                .map(|m| format!(" (did you mean `{m}`?)"))
                .unwrap_or_default()
        );
    }
    if !inst.config.daemon.restart_on_failure {
        tracing::warn!(
            "restart_on_failure is off (0.1.41 wrote `false` into its configs): one crash of the daemon stops it for good; set DAEMON_RESTART_ON_FAILURE=true (or the key) to have it restarted"
        );
    }
    if !inst.config.daemon.home.is_dir() {
        tracing::warn!(
            "the daemon home {} does not exist (any more): the daemon may not start, and backups have nothing to copy; check DAEMON_HOME",
            inst.config.daemon.home.display()
        );
    }
}
