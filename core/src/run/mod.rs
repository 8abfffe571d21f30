//! `nymvisor run`: the supervisor (SPEC §7) and the upgrade executor (SPEC §8).
//!
//! One task owns everything: the daemon, the signal streams, the plan watcher and the timers,
//! and waits on all of them at once, so a signal is honoured promptly whatever else is going on
//! (a restart delay, a backup, a wait for an upgrade time).

mod discover;
mod journal;
mod prepare;
mod state;
mod upgrade;
mod watch;

pub use journal::{Journal, Stage};
pub use prepare::{PrepareError, Preparer, pick_platform};
pub use state::{Refusal, RunState};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use self::upgrade::Applied;
use self::watch::PlanWatch;
use crate::backup::{self, BackupStrategy};
use crate::daemon::signals::{Signals, is_stop};
use crate::daemon::{self, ChildEvents, Daemon, DaemonSpec, children};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::{self, UpgradeInfo, UpgradePlan};
use crate::source::{Caps, SourceError, SourcedUpgrade, UpgradeSource};
use crate::verify::Verifier;

/// What `run` was given besides the instance.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arguments for the daemon, verbatim.
    pub daemon_args: Vec<OsString>,
    /// The environment the daemon gets (and where `NYMVISOR_FAILPOINT` is read in test builds).
    pub env: Env,
    /// Where new releases are discovered and downloaded from (`None`: only the plan file).
    pub source: Option<Arc<dyn UpgradeSource>>,
    /// Checks every candidate binary goes through, in order.
    pub verifiers: Vec<Arc<dyn Verifier>>,
    /// Where to show the progress of downloads and backups (an interactive terminal), if anywhere.
    pub progress: Option<Arc<dyn crate::progress::ProgressSink>>,
}

/// Why `run` ended without an error (exit status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The daemon exited with status 0 on its own.
    DaemonExited,
    /// nymvisor was asked to stop.
    Stopped(Signal),
    /// An upgrade asked nymvisor to stop (`manual`, or `restart_after_upgrade = false`).
    StoppedAfterUpgrade(String),
}

/// Longest single sleep: timers are re-evaluated at least this often (wall-clock changes).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// First retry delay of an upgrade that could not be prepared; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

pub(crate) struct Supervisor {
    inst: Instance,
    spec: DaemonSpec,
    plan: UpgradePlan,
    watch: PlanWatch,
    signals: Signals,
    children: ChildEvents,
    backup_strategy: Option<Arc<dyn BackupStrategy>>,
    confirming: Option<Journal>,
    refused: BTreeMap<String, (UpgradeInfo, Refusal, u32)>,
    preparer: Preparer,
    /// Upgrades whose binary is in place and verified.
    ready: BTreeMap<String, UpgradeInfo>,
    /// The prepare task in flight, if any.
    preparing: Option<(
        UpgradeInfo,
        tokio::task::JoinHandle<Result<(), PrepareError>>,
    )>,
    /// The poll of the upstream source in flight, if any, and when the next one is due.
    polling: Option<tokio::task::JoinHandle<Result<Option<SourcedUpgrade>, SourceError>>>,
    next_poll: Instant,
    last_poll_note: Option<String>,
    /// When to release code pages that start-up, an upgrade or a poll needed (a quiet moment).
    release_at: Option<Instant>,
    notifier: crate::sd_notify::Notifier,
    /// Free space that must remain after a backup (`DAEMON_BACKUP_MIN_FREE`, bytes).
    backup_min_free: u64,
    startup_failures: u32,
    state: RunState,
    failpoint: Option<String>,
    _lock: FileLock,
}

/// Supervises the instance's daemon until it ends, nymvisor is stopped, or an error occurs.
pub async fn run(inst: Instance, opts: RunOptions) -> Result<RunOutcome> {
    let lock = FileLock::try_acquire(&inst.data.run_lock())?;
    // SIGCHLD is watched before any child exists so that no exit is missed
    let children = ChildEvents::new()?;
    let signals = Signals::new()?;
    if children::become_subreaper() && children::is_init() {
        tracing::info!(
            "running as PID 1: signals are forwarded to the daemon and every orphaned process is reaped"
        );
    }
    // watch first, so that a change made while the plan is being read is not missed
    let mut watch = PlanWatch::new(inst.data.root(), &inst.data.plan());
    let plan = match inst.plan() {
        Ok(plan) => plan,
        Err(e) => {
            tracing::error!(
                "{e}; running the current binary and ignoring the plan until it is fixed"
            );
            watch.set_error(e.to_string());
            fallback_plan(&inst)?
        }
    };
    let spec = DaemonSpec {
        binary: inst.data.current_bin(),
        args: opts.daemon_args.clone(),
        env: opts.env.clone(),
    };
    let instance_data = inst.home.instance_data_dir(inst.config.id());
    let previous_state = RunState::load(&instance_data).ok().flatten();
    let preparer = Preparer {
        data: inst.data.clone(),
        daemon: inst.config.daemon.clone(),
        source: opts.source.clone(),
        verifiers: Arc::new(opts.verifiers.clone()),
        caps: Caps::from_env(&opts.env).map_err(|e| Error::Inconsistent(e.to_string()))?,
        progress: opts.progress.clone(),
    };
    if let Some(source) = &opts.source {
        tracing::info!(
            "watching {} every {} for new releases",
            source.describe(),
            humantime::format_duration(inst.config.nymvisor.upstream_polling_rate)
        );
    }
    let mut sup = Supervisor {
        preparer,
        ready: BTreeMap::new(),
        preparing: None,
        polling: None,
        next_poll: Instant::now(),
        last_poll_note: None,
        release_at: None,
        notifier: crate::sd_notify::Notifier::from_env(&opts.env),
        backup_min_free: backup_min_free(&opts.env)?,
        backup_strategy: backup::strategy_for(
            inst.config.daemon.backup_strategy,
            backup_zstd(&opts.env)?,
        ),
        failpoint: opts
            .env
            .get_non_empty("NYMVISOR_FAILPOINT")
            .map(str::to_owned),
        inst,
        spec,
        plan,
        watch,
        signals,
        children,
        confirming: None,
        refused: BTreeMap::new(),
        startup_failures: 0,
        state: RunState {
            nymvisor_pid: std::process::id(),
            nymvisor_started_at: Some(model::now()),
            ..RunState::default()
        },
        _lock: lock,
    };
    if let Some(prev) = previous_state
        && let (Some(pid), Some(ticks)) = (prev.daemon_pid, prev.daemon_start_ticks)
    {
        daemon::stop_leftover(pid, ticks, sup.inst.config.daemon.shutdown_grace_period).await;
    }
    sup.save_state();
    sup.recover().await?;
    let outcome = sup.main_loop().await;
    sup.daemon_stopped();
    outcome
}

/// A plan to go on with when the file cannot be read: the current binary's own info.
fn fallback_plan(inst: &Instance) -> Result<UpgradePlan> {
    let info_path = inst.data.current_link().join("upgrade-info.json");
    let info: UpgradeInfo = fsutil::read_json(&info_path)?;
    Ok(UpgradePlan::new(info))
}

enum Event {
    Prepared(Result<(), PrepareError>),
    PollDue,
    Polled(Box<Result<Option<SourcedUpgrade>, SourceError>>),
    Exited,
    Signal(Signal),
    PlanTick,
    Timer,
    Confirmed,
    Quiet,
}

/// How long after a start, an upgrade or a poll the moment counts as quiet.
const QUIET_AFTER: Duration = Duration::from_secs(2);

enum Step {
    Continue(Option<Daemon>),
    Exit(RunOutcome),
}

impl Supervisor {
    async fn main_loop(&mut self) -> Result<RunOutcome> {
        let mut daemon: Option<Daemon> = None;
        loop {
            if daemon.is_none() {
                match self.try_due_upgrade(None).await? {
                    Step::Exit(outcome) => return Ok(outcome),
                    Step::Continue(d) => daemon = d,
                }
            }
            let mut running = match daemon.take() {
                Some(d) => d,
                None => match self.start_daemon() {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!("{e}");
                        self.record_error(e.to_string());
                        match self
                            .on_failure("could not be started".to_owned(), Duration::ZERO)
                            .await?
                        {
                            Some(outcome) => return Ok(outcome),
                            None => continue,
                        }
                    }
                },
            };
            let confirm_at = self.confirming.as_ref().map(|_| {
                Instant::now()
                    + self
                        .inst
                        .config
                        .daemon
                        .startup_period_duration
                        .saturating_sub(running.uptime())
            });
            self.ensure_preparing();
            let wake = self.next_wake();
            let poll_at = self.poll_at();
            let release_at = self.release_at;
            let event = tokio::select! {
                res = join_opt(self.preparing.as_mut().map(|(_, h)| h)) => Event::Prepared(
                    res.unwrap_or_else(|e| Err(PrepareError::transient(format!("the prepare task failed: {e}"))))
                ),
                res = join_opt(self.polling.as_mut()) => Event::Polled(Box::new(
                    res.unwrap_or_else(|e| Err(SourceError(format!("the poll task failed: {e}"))))
                )),
                () = sleep_until_opt(poll_at) => Event::PollDue,
                _ = running.exited(&mut self.children) => Event::Exited,
                sig = self.signals.recv() => Event::Signal(sig),
                () = self.watch.tick() => Event::PlanTick,
                () = tokio::time::sleep_until(wake) => Event::Timer,
                () = sleep_until_opt(confirm_at) => Event::Confirmed,
                () = sleep_until_opt(release_at) => Event::Quiet,
            };
            match event {
                Event::Prepared(res) => {
                    self.on_prepared(res);
                    daemon = Some(running);
                }
                Event::PollDue => {
                    self.start_poll();
                    daemon = Some(running);
                }
                Event::Polled(res) => {
                    self.on_polled(*res).await;
                    daemon = Some(running);
                }
                Event::Signal(sig) if is_stop(sig) => {
                    tracing::info!("{sig} received: stopping the daemon");
                    self.notifier.stopping();
                    let stopped = running
                        .stop(
                            sig,
                            self.inst.config.daemon.shutdown_grace_period,
                            &mut self.children,
                            &mut self.signals,
                            true,
                        )
                        .await;
                    if stopped.forced {
                        tracing::warn!("daemon killed ({}); nymvisor exits", stopped.exit);
                    } else {
                        tracing::info!("daemon stopped ({}); nymvisor exits", stopped.exit);
                    }
                    return Ok(RunOutcome::Stopped(sig));
                }
                Event::Signal(sig) => {
                    tracing::info!("forwarding {sig} to the daemon");
                    running.signal_group(sig);
                    daemon = Some(running);
                }
                Event::PlanTick => {
                    self.reload_plan();
                    daemon = Some(running);
                }
                Event::Quiet => {
                    // things have settled after a (re)start, an upgrade or a poll: give back the
                    // code pages only they needed
                    self.release_at = None;
                    crate::memory::release_startup_pages();
                    daemon = Some(running);
                }
                Event::Confirmed => {
                    if let Some(journal) = self.confirming.take() {
                        Journal::clear(self.inst.data.root())?;
                        tracing::info!(upgrade = %journal.upgrade.name, stage = "confirm", "upgrade confirmed: {} {} ran for its startup period", self.inst.config.daemon.name, journal.upgrade.version);
                    }
                    self.startup_failures = 0;
                    self.quiet_later();
                    daemon = Some(running);
                }
                Event::Timer => match self.try_due_upgrade(Some(running)).await? {
                    Step::Exit(outcome) => return Ok(outcome),
                    Step::Continue(d) => daemon = d,
                },
                Event::Exited => {
                    let uptime = running.uptime();
                    // a daemon that exits 0 while what it started keeps running has forked into
                    // the background: nymvisor cannot supervise that, and must not call it done
                    let left: Vec<i32> = running.leftovers().iter().map(|p| p.pid).collect();
                    let exit = running
                        .finish(
                            self.inst.config.daemon.shutdown_grace_period,
                            &mut self.children,
                        )
                        .await;
                    self.daemon_stopped();
                    let what = if exit.success() && !left.is_empty() {
                        tracing::error!(
                            pids = ?left,
                            "the daemon daemonised itself: it exited 0 while processes it started (pids {}) kept running; they were stopped. nymvisor can only supervise a daemon that stays in the foreground",
                            left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                        );
                        format!(
                            "daemonised itself (exited 0, leaving pids {} running)",
                            left.iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else if exit.success() {
                        tracing::info!("the daemon exited cleanly; nymvisor exits too");
                        return Ok(RunOutcome::DaemonExited);
                    } else {
                        format!("failed ({exit})")
                    };
                    if let Some(outcome) = self.on_failure(what, uptime).await? {
                        return Ok(outcome);
                    }
                }
            }
        }
    }

    /// Applies the first due upgrade if it is prepared. `daemon` is the running one. With no
    /// daemon running, a binary that is already present is prepared on the spot, so a due
    /// upgrade does not start the old version first.
    async fn try_due_upgrade(&mut self, daemon: Option<Daemon>) -> Result<Step> {
        let Some(info) = self.due_upgrade() else {
            return Ok(Step::Continue(daemon));
        };
        if self.ready.get(&info.name) != Some(&info) {
            if daemon.is_some() || !self.preparer.binary_present(&info) {
                self.ensure_preparing();
                return Ok(Step::Continue(daemon));
            }
            let t = std::time::Instant::now();
            let current = self.plan.current.version.clone();
            let prepared = tokio::select! {
                r = self.preparer.prepare(&info, &current) => r,
                sig = self.signals.recv_stop() => return Ok(Step::Exit(RunOutcome::Stopped(sig))),
            };
            if let Err(e) = prepared {
                self.refuse(&info, e);
                return Ok(Step::Continue(daemon));
            }
            tracing::info!(upgrade = %info.name, stage = "prepare", elapsed_ms = t.elapsed().as_millis() as u64, "verified the new binary ({} {})", self.inst.config.daemon.name, info.version);
        }
        if self.backup_enabled()
            && let Err(e) = backup::check_free_space(&self.backup_plan())
        {
            self.refuse(&info, PrepareError::transient(e.to_string()));
            return Ok(Step::Continue(daemon));
        }
        // prepared against what ran then: the version rule is checked again against what runs now
        if !self.inst.config.daemon.allow_downgrade
            && crate::rules::compare_versions(&info.version, &self.plan.current.version)
                .is_ok_and(|o| o.is_le())
        {
            self.ready.remove(&info.name);
            self.refuse(&info, PrepareError::permanent(format!(
                "version {} is not newer than the running {}; refusing a downgrade (set DAEMON_ALLOW_DOWNGRADE=true to allow it)",
                info.version, self.plan.current.version
            )));
            return Ok(Step::Continue(daemon));
        }
        self.refused.remove(&info.name);
        // whatever else was prepared was checked against the version that is about to be replaced
        self.ready.clear();
        let name = info.name.clone();
        match self.apply(info.clone(), daemon).await? {
            Applied::Done {
                daemon,
                restart_wanted,
            } => {
                self.startup_failures = 0;
                if restart_wanted {
                    Ok(Step::Continue(daemon))
                } else {
                    Ok(Step::Exit(RunOutcome::StoppedAfterUpgrade(name)))
                }
            }
            Applied::Interrupted(sig) => Ok(Step::Exit(RunOutcome::Stopped(sig))),
            Applied::Aborted { daemon, reason } => {
                tracing::error!(upgrade = %name, "upgrade abandoned before the swap, the current binary stays: {reason}");
                self.refuse(
                    &info,
                    PrepareError {
                        reason,
                        permanent: false,
                    },
                );
                Ok(Step::Continue(daemon))
            }
        }
    }

    /// Starts preparing the first queued upgrade that is neither ready nor waiting for a retry
    /// (downloads happen ahead of the upgrade time, while the daemon runs).
    fn ensure_preparing(&mut self) {
        if self.preparing.is_some() {
            return;
        }
        let now = model::now();
        let Some(info) = self
            .plan
            .queued_up
            .iter()
            .find(|q| self.ready.get(&q.name) != Some(*q) && self.retry_allowed(q, now))
            .cloned()
        else {
            return;
        };
        let preparer = self.preparer.clone();
        let current = self.plan.current.version.clone();
        let task_info = info.clone();
        tracing::debug!(upgrade = %info.name, "preparing");
        let handle = tokio::spawn(async move { preparer.prepare(&task_info, &current).await });
        self.preparing = Some((info, handle));
    }

    fn on_prepared(&mut self, res: Result<(), PrepareError>) {
        let Some((info, _)) = self.preparing.take() else {
            return;
        };
        match res {
            Ok(()) => {
                let when = if info.upgrade_time <= model::now() {
                    "it is due now".to_owned()
                } else {
                    format!(
                        "it will be applied at {}",
                        model::rfc3339(info.upgrade_time)
                    )
                };
                tracing::info!(upgrade = %info.name, stage = "prepare", "upgrade `{}` ({} {}) is in place and verified; {when}", info.name, self.inst.config.daemon.name, info.version);
                self.refused.remove(&info.name);
                self.ready.insert(info.name.clone(), info);
            }
            Err(e) => self.refuse(&info, e),
        }
    }

    /// The daemon failed (or could not be started). Returns an outcome when nymvisor must stop;
    /// otherwise waits out the restart delay (or rolls back) and returns `None`.
    async fn on_failure(&mut self, what: String, uptime: Duration) -> Result<Option<RunOutcome>> {
        let cfg = self.inst.config.daemon.clone();
        let during_startup = uptime < cfg.startup_period_duration;
        if during_startup {
            self.startup_failures += 1;
        } else {
            self.startup_failures = 0;
        }
        let limit = cfg.max_startup_failures.max(1);
        tracing::warn!(
            "the daemon {what} after {}{}",
            humantime::format_duration(Duration::from_secs(uptime.as_secs())),
            if during_startup {
                format!(" (startup failure {} of {limit})", self.startup_failures)
            } else {
                String::new()
            }
        );
        self.record_error(format!("daemon {what}"));
        self.state.startup_failures = self.startup_failures;

        if during_startup
            && cfg.rollback_on_failure
            && (self.startup_failures >= limit || !cfg.restart_on_failure)
            && let Some(journal) = self.confirming.take()
        {
            let reason = format!(
                "{} {} {what} {} time(s) within its startup period",
                cfg.name, journal.upgrade.version, self.startup_failures
            );
            self.rollback(journal, &reason).await?;
            self.startup_failures = 0;
            return Ok(None);
        }
        if !cfg.restart_on_failure {
            return Err(Error::DaemonFailed(format!(
                "the daemon {what} and restart_on_failure is off"
            )));
        }
        if self.startup_failures >= limit {
            return Err(Error::DaemonFailed(format!(
                "the daemon failed {} times within {} of starting; giving up",
                self.startup_failures,
                humantime::format_duration(cfg.startup_period_duration)
            )));
        }
        tracing::info!(
            "restarting the daemon in {}",
            humantime::format_duration(cfg.failure_restart_delay)
        );
        let until = Instant::now() + cfg.failure_restart_delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(None),
                sig = self.signals.recv_stop() => {
                    tracing::info!("{sig} received while waiting to restart the daemon: exiting");
                    return Ok(Some(RunOutcome::Stopped(sig)));
                }
                () = self.watch.tick() => {
                    self.reload_plan();
                    if self.due_upgrade().is_some() {
                        return Ok(None);
                    }
                }
                () = self.children.next() => {}
            }
        }
    }

    fn start_daemon(&mut self) -> Result<Daemon> {
        let d = Daemon::spawn(&self.spec)?;
        self.state.daemon_pid = Some(d.pid());
        self.state.daemon_start_ticks = d.start_ticks();
        self.state.daemon_started_at = Some(model::now());
        self.save_state();
        tracing::info!("started {} (pid {})", self.spec.binary.display(), d.pid());
        self.notifier.ready(&format!(
            "running {} {} (pid {})",
            self.inst.config.daemon.name,
            self.plan.current.version,
            d.pid()
        ));
        self.quiet_later();
        Ok(d)
    }

    /// Schedules the release of code pages for the next quiet moment.
    fn quiet_later(&mut self) {
        self.release_at = Some(Instant::now() + QUIET_AFTER);
    }

    fn daemon_stopped(&mut self) {
        if self.state.daemon_pid.take().is_some() {
            self.state.daemon_start_ticks = None;
            self.state.daemon_started_at = None;
            self.save_state();
        }
    }

    fn record_error(&mut self, message: String) {
        self.state.last_error = Some(message);
        self.state.last_error_at = Some(model::now());
        self.save_state();
    }

    fn save_state(&mut self) {
        self.state.refused = self.refused.values().map(|(_, r, _)| r.clone()).collect();
        self.state
            .save(&self.inst.home.instance_data_dir(self.inst.config.id()));
    }

    fn reload_plan(&mut self) {
        let reloaded = self.watch.reload();
        if let Some(problem) = self.watch.error()
            && self.state.last_error.as_deref() != Some(problem)
        {
            let problem = problem.to_owned();
            self.record_error(problem);
        }
        if let Some(plan) = reloaded {
            if plan != self.plan {
                tracing::info!(
                    "upgrade plan changed: {} upgrade(s) queued",
                    plan.queued_up.len()
                );
            }
            // forget refusals of entries that changed or left the queue
            self.refused
                .retain(|name, (info, _, _)| plan.queued(name) == Some(&*info));
            self.plan = plan;
        }
    }

    fn refuse(&mut self, info: &UpgradeInfo, e: PrepareError) {
        let attempts = self.refused.get(&info.name).map_or(0, |(_, _, n)| *n) + 1;
        let same = self
            .refused
            .get(&info.name)
            .is_some_and(|(_, r, _)| r.reason == e.reason);
        let retry_at = (!e.permanent).then(|| {
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << attempts.min(16).saturating_sub(1))
                .min(MAX_BACKOFF);
            model::now() + backoff
        });
        if !same {
            tracing::error!(upgrade = %info.name, "cannot apply upgrade `{}` ({} {}): {}{}", info.name, self.inst.config.daemon.name, info.version, e.reason,
                if e.permanent { "; it is skipped until the plan entry changes".to_owned() } else { "; will retry".to_owned() });
        } else {
            tracing::debug!(upgrade = %info.name, "still cannot apply upgrade: {}", e.reason);
        }
        let refusal = Refusal {
            name: info.name.clone(),
            reason: e.reason.clone(),
            permanent: e.permanent,
            retry_at,
        };
        self.refused
            .insert(info.name.clone(), (info.clone(), refusal, attempts));
        self.record_error(format!("upgrade `{}`: {}", info.name, e.reason));
    }

    /// Upgrades wait while the previous one awaits confirmation (its rollback must stay
    /// possible) and while the plan file is broken (it could not be updated).
    fn can_apply(&self) -> bool {
        self.confirming.is_none() && self.watch.error().is_none()
    }

    /// The first queued upgrade whose time has come and that is not waiting for a retry.
    fn due_upgrade(&self) -> Option<UpgradeInfo> {
        if !self.can_apply() {
            return None;
        }
        let now = model::now();
        self.plan
            .queued_up
            .iter()
            .find(|q| q.upgrade_time <= now && self.retry_allowed(q, now))
            .cloned()
    }

    fn retry_allowed(&self, q: &UpgradeInfo, now: time::OffsetDateTime) -> bool {
        match self.refused.get(&q.name) {
            Some((info, r, _)) if info == q => !r.permanent && r.retry_at.is_none_or(|t| t <= now),
            _ => true,
        }
    }

    /// When the next upgrade (or retry) is due, capped at [`MAX_SLEEP`].
    fn next_wake(&self) -> Instant {
        if !self.can_apply() {
            return Instant::now() + MAX_SLEEP;
        }
        let now = model::now();
        let soonest = self
            .plan
            .queued_up
            .iter()
            .filter_map(|q| match self.refused.get(&q.name) {
                Some((info, r, _)) if info == q => {
                    if r.permanent {
                        None
                    } else {
                        Some(r.retry_at.map_or(q.upgrade_time, |t| t.max(q.upgrade_time)))
                    }
                }
                _ => Some(q.upgrade_time),
            })
            .min();
        let delay = soonest.map_or(MAX_SLEEP, |t| {
            let d = t - now;
            if d.is_negative() {
                Duration::ZERO
            } else {
                Duration::try_from(d).unwrap_or(MAX_SLEEP)
            }
        });
        Instant::now() + delay.min(MAX_SLEEP)
    }
}

/// Awaits a task if there is one; never resolves otherwise. Cancel-safe.
async fn join_opt<T>(
    handle: Option<&mut tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Default free space kept after a backup, so a backup never fills the disk the node writes to.
pub const DEFAULT_BACKUP_MIN_FREE: u64 = 64 * 1024 * 1024;

fn backup_min_free(env: &Env) -> Result<u64> {
    match env.get_non_empty("DAEMON_BACKUP_MIN_FREE") {
        None => Ok(DEFAULT_BACKUP_MIN_FREE),
        Some(v) => v.trim().parse().map_err(|_| Error::EnvValue {
            var: "DAEMON_BACKUP_MIN_FREE".into(),
            value: v.into(),
            message: "expected a number of bytes".into(),
        }),
    }
}

/// `DAEMON_BACKUP_COMPRESSION`: `none` (default) or `zstd` (for the `archive` strategy).
fn backup_zstd(env: &Env) -> Result<bool> {
    match env
        .get_non_empty("DAEMON_BACKUP_COMPRESSION")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => Ok(false),
        Some("zstd") => Ok(true),
        Some(other) => Err(Error::EnvValue {
            var: "DAEMON_BACKUP_COMPRESSION".into(),
            value: other.into(),
            message: "expected `none` or `zstd`".into(),
        }),
    }
}
