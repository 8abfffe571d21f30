//! `nymvisor run`: the event loop. It owns the daemon, the signals, the file watch, the poll and
//! the timers, waits on all of them at once (so a signal is honoured promptly whatever else is
//! going on), and turns events into calls: the queue decides what is due
//! ([`crate::upgrade::queue`]), the policy whether it may happen ([`crate::upgrade::policy`]), the
//! transaction does it ([`crate::upgrade::transaction`]).

mod book;
mod failure;
mod health;
mod poll;
mod process;
mod rollback;
mod setup;
mod watch;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::book::Book;
use self::poll::{PollError, PollResult, Poller};
use self::process::Process;
use self::watch::FileWatch;
use crate::backup;
use crate::daemon::Daemon;
use crate::daemon::signals::is_stop;
use crate::env::Env;
use crate::error::Result;
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::refusals::Origin;
use crate::model::{self, Journal, UpgradeInfo};
use crate::refusal::Refusal;
use crate::source::UpgradeSource;
use crate::upgrade::Preparer;
use crate::upgrade::hooks;
use crate::upgrade::policy::{self, Admission};
use crate::upgrade::queue::Decision;
use crate::upgrade::transaction::{self, Applied, Setup};
use crate::verify::Verifier;

/// What `run` was given besides the instance.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arguments for the daemon, verbatim.
    pub daemon_args: Vec<OsString>,
    /// The environment the daemon gets (and where `NYMVISOR_FAILPOINT` is read in test builds).
    pub env: Env,
    /// Where new releases are discovered and downloaded from (`None`: only the plan file, or
    /// the helper does it).
    pub source: Option<Arc<dyn UpgradeSource>>,
    /// Polls and prepares in a sandboxed child process instead of here, if set.
    pub helper: Option<Arc<crate::helper::Helper>>,
    /// Checks every candidate binary goes through, in order.
    pub verifiers: Vec<Arc<dyn Verifier>>,
    /// Where to show the progress of downloads and backups (an interactive terminal), if anywhere.
    pub progress: Option<Arc<dyn crate::progress::ProgressSink>>,
    /// The daemon's health endpoint, if one is configured.
    pub health: Option<Arc<dyn crate::health::HealthProbe>>,
    /// Metrics to keep up to date (they are served elsewhere), if any.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Why the metrics address could not be bound, if it could not (shown by `status`).
    pub metrics_error: Option<String>,
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

/// Longest single sleep while something is scheduled: wall-clock changes are noticed this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);

struct Supervisor {
    inst: Instance,
    setup: Setup,
    process: Process,
    preparer: Preparer,
    poller: Poller,
    watch: FileWatch,
    book: Book,
    health: Option<health::Monitor>,
    /// When the running daemon's startup period ends (set each turn of the loop).
    confirm_at: Option<Instant>,
    startup_failures: u32,
    /// Liveness restarts in a row without a healthy answer (they back off and give up).
    liveness_restarts: u32,
    /// An upgrade in place (`current` points to it) that is not yet written down in full.
    unrecorded: Option<Unrecorded>,
    /// A rollback request may be waiting (`upgrade-rollback.json` changed, the hold changed, or
    /// at start).
    rollback_wanted: bool,
    /// When a rollback request that waits for a maintenance window is looked at again.
    rollback_at: Option<Instant>,
    _lock: FileLock,
}

/// An upgrade that is in place but whose record could not be written (a plan lock or file
/// another user owns, a full disk): it is never applied again, and the record is retried.
struct Unrecorded {
    upgrade: UpgradeInfo,
    /// The transaction's journal when the record failed right after the swap (plan, history and
    /// current version are written); `None` when `current` was found pointing at a queued
    /// upgrade (the plan is corrected).
    journal: Option<Journal>,
    retry_at: Instant,
}

/// How often an unwritten record is tried again.
const RECORD_RETRY: Duration = Duration::from_secs(10);

/// Supervises the instance's daemon until it ends, nymvisor is stopped, or an error occurs.
pub async fn run(inst: Instance, opts: RunOptions) -> Result<RunOutcome> {
    let mut sup = setup::start(inst, opts).await?;
    let outcome = sup.main_loop().await;
    sup.process.mark_stopped();
    // for `status` once nobody runs: when and why
    let (reason, error) = match &outcome {
        Ok(RunOutcome::DaemonExited) => ("the daemon exited cleanly (status 0)".to_owned(), false),
        Ok(RunOutcome::Stopped(sig)) => (format!("stopped by {sig}"), false),
        Ok(RunOutcome::StoppedAfterUpgrade(name)) => (
            format!(
                "stopped after upgrade `{name}`, as it asked (manual upgrade or restart_after_upgrade off); start it again to run the new version"
            ),
            false,
        ),
        Err(e) => (e.to_string(), true),
    };
    sup.process.state.restart = None;
    sup.process.state.confirming = None;
    sup.process.state.stopped = Some(crate::model::run_state::Stopped {
        at: model::now(),
        reason,
        error,
    });
    sup.process.save_state();
    outcome
}

enum Event {
    Prepared(Result<(), Refusal>),
    Hooked(std::result::Result<hooks::HookResult, tokio::task::JoinError>),
    PollDue,
    Polled(Box<PollResult>),
    Exited,
    Signal(Signal),
    FilesChanged,
    Timer,
    Confirmed,
    HealthDue,
    Health(crate::health::Health),
    Watchdog,
}

/// What to do after handling an upgrade step.
pub(super) enum Step {
    Continue(Option<Daemon>),
    Exit(RunOutcome),
}

impl Supervisor {
    async fn main_loop(&mut self) -> Result<RunOutcome> {
        let mut daemon: Option<Daemon> = None;
        // a due upgrade found at start may take a while (a backup): systemd hears first that
        // nymvisor is up, so its start timeout does not run out
        let first = self.book.decide(&self.inst, None);
        // (with a pre-upgrade hook or third-party checks the old version starts first: nothing
        // to say)
        let n = &self.inst.config.nymvisor;
        if self.inst.config.daemon.pre_upgrade_command.is_none()
            && n.plugin_paths.is_empty()
            && n.verifier_commands.is_empty()
            && let Some(info) = first.apply.as_ref().or(first.due_unprepared.as_ref())
        {
            self.process.notifier.ready(&format!(
                "applying the due upgrade {} ({} {}) before starting the daemon",
                info.name, self.inst.config.daemon.name, info.version
            ));
        }
        loop {
            if self.rollback_wanted {
                match self.step_rollback(daemon.take()).await? {
                    Step::Exit(outcome) => return Ok(outcome),
                    Step::Continue(d) => daemon = d,
                }
            }
            if daemon.is_none() {
                // a due upgrade whose binary is in place goes first: the old version is not
                // started only to be stopped again
                match self.step_upgrade(None, true).await? {
                    Step::Exit(outcome) => return Ok(outcome),
                    Step::Continue(d) => daemon = d,
                }
            }
            let mut running = match daemon.take() {
                Some(d) => d,
                None => match self.start() {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!("{e}");
                        self.process.record_error(e.to_string());
                        match self
                            .on_failure("could not be started".into(), Duration::ZERO)
                            .await?
                        {
                            Some(outcome) => return Ok(outcome),
                            None => continue,
                        }
                    }
                },
            };
            // an upgrade is confirmed once its daemon has run for the startup period
            let period = self.inst.config.daemon.startup_period_duration;
            self.confirm_at = self
                .book
                .confirming
                .as_ref()
                .map(|_| Instant::now() + period.saturating_sub(running.uptime()));
            self.publish_confirmation();
            // the build a new version must report to be confirmed (a build-information URL)
            let expect = self
                .book
                .confirming
                .as_ref()
                .map(|j| crate::health::Expected {
                    version: j.upgrade.version.clone(),
                    commit_sha: j
                        .upgrade
                        .binary_details
                        .as_ref()
                        .and_then(|b| b.commit_sha.clone()),
                });
            if let Some(h) = self.health.as_mut() {
                h.expect = expect;
            }
            self.book.recheck_records(&self.inst, &mut self.process);
            let decision = self.book.decide(&self.inst, self.confirm_at);
            self.book.say_waiting(&decision);
            self.book.publish(&decision, &mut self.process);
            self.start_preparing(&decision);
            if decision.apply.is_some() {
                match self.step_upgrade(Some(running), false).await? {
                    Step::Exit(outcome) => return Ok(outcome),
                    Step::Continue(d) => daemon = d,
                }
                continue;
            }
            let wake = decision.wake_at.map(|t| {
                let secs = (t - model::now()).whole_milliseconds().max(0) as u64;
                Instant::now() + Duration::from_millis(secs).min(MAX_SLEEP)
            });
            let wake = [
                wake,
                self.unrecorded.as_ref().map(|u| u.retry_at),
                self.rollback_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let poll_at = self.poller.due_at();
            let confirm_at = self.confirm_at;
            let health_at = self.health.as_ref().and_then(|h| h.due_at());
            let watchdog_at = self.process.watchdog_due();
            let event = tokio::select! {
                res = join_opt(self.book.preparing.as_mut().map(|(_, h)| h)) => Event::Prepared(
                    res.unwrap_or_else(|e| Err(Refusal::transient(format!("the prepare task failed: {e}"))))
                ),
                res = join_opt(self.book.hook.as_mut().map(|h| &mut h.handle)) => Event::Hooked(res),
                res = self.poller.finished() => Event::Polled(Box::new(res)),
                () = sleep_until_opt(poll_at) => Event::PollDue,
                _ = running.exited(&mut self.process.children) => Event::Exited,
                sig = self.process.signals.recv() => Event::Signal(sig),
                () = self.watch.tick() => Event::FilesChanged,
                () = sleep_until_opt(wake) => Event::Timer,
                () = sleep_until_opt(confirm_at) => Event::Confirmed,
                () = sleep_until_opt(health_at) => Event::HealthDue,
                h = health_answer(self.health.as_mut()) => Event::Health(h),
                () = sleep_until_opt(watchdog_at) => Event::Watchdog,
            };
            daemon = Some(running);
            match event {
                Event::Prepared(res) => self.on_prepared(res),
                Event::Hooked(res) => self.on_hooked(res),
                Event::PollDue => self.poller.start(),
                Event::Polled(res) => self.on_polled(*res).await,
                Event::Signal(sig) if is_stop(sig) => {
                    let Some(running) = daemon.take() else {
                        continue;
                    };
                    tracing::info!("{sig} received: stopping the daemon");
                    if let Some(hook) = self.book.hook.take() {
                        // dropping its future kills the hook's whole group
                        hook.handle.abort();
                        tracing::info!(upgrade = %hook.upgrade.name, "the pre-upgrade hook was stopped");
                    }
                    self.process.notifier.stopping();
                    let stopped = self.process.stop_for_exit(running, sig).await;
                    if stopped.forced {
                        tracing::warn!("daemon killed ({}); nymvisor exits", stopped.exit);
                    } else {
                        tracing::info!("daemon stopped ({}); nymvisor exits", stopped.exit);
                    }
                    return Ok(RunOutcome::Stopped(sig));
                }
                Event::Signal(sig) => {
                    tracing::info!("forwarding {sig} to the daemon");
                    if let Some(d) = &daemon {
                        d.signal_group(sig);
                    }
                }
                Event::FilesChanged => self.reload_files(),
                Event::Confirmed | Event::Health(_) => {
                    let Some(running) = daemon.take() else {
                        continue;
                    };
                    let step = match event {
                        Event::Health(h) => self.on_health(h, running).await?,
                        _ => self.end_of_startup(running).await?,
                    };
                    match step {
                        Step::Exit(outcome) => return Ok(outcome),
                        Step::Continue(d) => daemon = d,
                    }
                }
                Event::HealthDue => {
                    if let Some(h) = self.health.as_mut() {
                        h.start();
                    }
                }
                Event::Watchdog => self.process.watchdog_ping(),
                Event::Timer => {
                    self.retry_record();
                    if self.rollback_at.is_some_and(|at| at <= Instant::now()) {
                        self.rollback_wanted = true;
                    }
                }
                Event::Exited => {
                    let Some(running) = daemon.take() else {
                        continue;
                    };
                    if let Some(outcome) = self.on_exit(running).await? {
                        return Ok(outcome);
                    }
                }
            }
        }
    }

    fn start(&mut self) -> Result<Daemon> {
        let d = self.process.start()?;
        self.daemon_info();
        if let Some(h) = self.health.as_mut() {
            h.daemon_started();
        }
        self.process.notifier.ready(&format!(
            "running {} {} (pid {})",
            self.inst.config.daemon.name,
            self.book.plan.current.version,
            d.pid()
        ));
        self.quiet_later();
        Ok(d)
    }

    /// The running daemon's identity, for the metrics.
    fn daemon_info(&self) {
        let current = &self.book.plan.current;
        self.process.metrics(|m| {
            m.daemon_started(
                &self.inst.config.daemon.name,
                &current.version,
                &current.name,
            )
        });
    }

    /// After a (re)start, an upgrade, a confirmation or a poll: the code and memory only they
    /// needed are given back as soon as the loop waits again (no timer, no extra wake-up; what
    /// runs next faults its pages back in from the page cache, a fraction of a millisecond).
    fn quiet_later(&mut self) {
        crate::memory::release_when_parked();
    }

    /// Starts preparing what the queue says, once the policy allows it.
    fn start_preparing(&mut self, d: &Decision) {
        let Some(info) = d.prepare.clone() else {
            return;
        };
        if self.book.preparing.is_some() {
            return;
        }
        // without the history the rules cannot be asked; the queue waits for it (not a refusal
        // of this upgrade, whose backoff would outlast the fix)
        if self.book.history(&self.inst, &mut self.process).is_err() {
            return;
        }
        if let Err(r) = self.book.may_apply(&self.inst, &mut self.process, &info) {
            self.book
                .refuse(&self.inst, &mut self.process, &info, r, Origin::Plan);
            return;
        }
        let preparer = self.preparer.clone();
        let task_info = info.clone();
        tracing::debug!(upgrade = %info.name, "preparing");
        let handle = tokio::spawn(async move { preparer.prepare(&task_info).await });
        self.book.preparing = Some((info, handle));
        self.book.save_progress(&mut self.process);
    }

    fn on_prepared(&mut self, res: Result<(), Refusal>) {
        for (verifier, secs) in self.preparer.take_timings() {
            self.process.metrics(|m| m.verifier_ran(&verifier, secs));
        }
        let Some((info, _)) = self.book.preparing.take() else {
            return;
        };
        if self.book.plan.queued(&info.name) != Some(&info) {
            // cancelled or changed while it was being prepared: what is queued now is looked at anew
            tracing::debug!(upgrade = %info.name, "prepared an entry that is no longer queued as it was");
            self.book.save_progress(&mut self.process);
            return;
        }
        match res {
            Ok(()) => {
                self.book.forget_refusal(&self.inst, &info);
                self.book.ready.insert(info.name.clone(), info.clone());
                // when it will really be applied: after the spread, windows and hold
                let d = self.book.decide(&self.inst, self.confirm_at);
                let now = model::now();
                let when = match d.entries.iter().find(|e| e.name == info.name) {
                    Some(e) if e.state == crate::upgrade::queue::State::Due => {
                        "it is applied now".to_owned()
                    }
                    Some(e) => match (e.waiting_for, e.effective_upgrade_time > now) {
                        (Some(w), _) => format!(
                            "it waits for {}{}",
                            book::describe(w),
                            e.until
                                .map(|t| format!(" (until {})", model::human_time(t, now)))
                                .unwrap_or_default()
                        ),
                        (None, true) => format!(
                            "it will be applied at {}",
                            model::human_time(e.effective_upgrade_time, now)
                        ),
                        (None, false) => "it is due now".to_owned(),
                    },
                    None => "it is due now".to_owned(),
                };
                tracing::info!(upgrade = %info.name, stage = "prepare", "upgrade `{}` ({} {}) is in place and verified; {when}", info.name, self.inst.config.daemon.name, info.version);
            }
            Err(r) => self
                .book
                .refuse(&self.inst, &mut self.process, &info, r, Origin::Plan),
        }
        self.book.save_progress(&mut self.process);
    }

    fn refuse(&mut self, info: &UpgradeInfo, r: Refusal) {
        self.book
            .refuse(&self.inst, &mut self.process, info, r, Origin::Plan);
    }

    /// Applies the upgrade the queue says is due. With no daemon running (`idle`), a due upgrade
    /// whose binary is in place is prepared on the spot — unless third-party checks (plugins,
    /// verifier commands) are configured: those never keep the node from starting, so it starts
    /// first and the upgrade follows once verified.
    async fn step_upgrade(&mut self, daemon: Option<Daemon>, idle: bool) -> Result<Step> {
        let d = self.book.decide(&self.inst, self.confirm_at);
        let n = &self.inst.config.nymvisor;
        let third_party_checks = !n.plugin_paths.is_empty() || !n.verifier_commands.is_empty();
        let info = match (d.apply, d.due_unprepared) {
            (Some(info), _) => info,
            (None, Some(info))
                if idle && !third_party_checks && self.preparer.binary_present(&info) =>
            {
                if let Err(r) = self.book.may_apply(&self.inst, &mut self.process, &info) {
                    self.refuse(&info, r);
                    return Ok(Step::Continue(daemon));
                }
                let t = std::time::Instant::now();
                let prepared = {
                    let preparer = self.preparer.clone();
                    let preparing = preparer.prepare(&info);
                    tokio::pin!(preparing);
                    loop {
                        let watchdog = self.process.watchdog_due();
                        tokio::select! {
                            r = &mut preparing => break r,
                            sig = self.process.signals.recv_stop() => return Ok(Step::Exit(RunOutcome::Stopped(sig))),
                            () = sleep_until_opt(watchdog) => self.process.watchdog_ping(),
                        }
                    }
                };
                if let Err(r) = prepared {
                    self.refuse(&info, r);
                    return Ok(Step::Continue(daemon));
                }
                tracing::info!(upgrade = %info.name, stage = "prepare", elapsed_ms = t.elapsed().as_millis() as u64, "verified the new binary ({} {})", self.inst.config.daemon.name, info.version);
                info
            }
            _ => return Ok(Step::Continue(daemon)),
        };
        // `current` points to it already: an upgrade applied but not (fully) written down is
        // recorded, never applied again
        if self.installed().as_deref() == Some(info.name.as_str()) {
            self.book.ready.remove(&info.name);
            self.reconcile_installed(info);
            return Ok(Step::Continue(daemon));
        }
        // prepared against what ran then: the rules are asked again against what runs now
        if let Err(r) = self.book.may_apply(&self.inst, &mut self.process, &info) {
            self.book.ready.remove(&info.name);
            self.refuse(&info, r);
            return Ok(Step::Continue(daemon));
        }
        if self.setup.backup.is_some()
            && let Err(e) =
                backup::check_free_space(&self.inst.backup_plan(self.setup.backup_min_free))
        {
            self.refuse(&info, Refusal::transient(e.to_string()));
            return Ok(Step::Continue(daemon));
        }
        if self.book.hold.is_some() && info.immediate {
            tracing::info!(upgrade = %info.name, "upgrades are on hold, but `{}` was queued with `add-upgrade --now`: the hold is overridden for it", info.name);
        }
        // the operator's pre-upgrade hook, while the old daemon still runs: a task of the event
        // loop, so the daemon stays supervised (restarts, signals, probes, the watchdog) while
        // it runs; its answer comes back as an event
        if self.inst.config.daemon.pre_upgrade_command.is_some()
            && self.book.hook_passed.as_ref() != Some(&info)
        {
            self.start_hook(&info);
            return Ok(Step::Continue(daemon));
        }
        self.book.hook_passed = None;
        // the last word before the stop (a hook may have taken minutes): a hold placed meanwhile,
        // or a hold file that cannot be read, holds; a window that closed meanwhile waits
        if !info.immediate && !self.last_moment_allows(&info) {
            // the hook runs again before the next attempt: what it did may be stale by then
            return Ok(Step::Continue(daemon));
        }
        // the binary verified earlier is hashed again: what changed on disk since is not started
        let rechecked = {
            let preparer = self.preparer.clone();
            let recheck = preparer.recheck(&info);
            tokio::pin!(recheck);
            loop {
                let watchdog = self.process.watchdog_due();
                tokio::select! {
                    r = &mut recheck => break r,
                    () = sleep_until_opt(watchdog) => self.process.watchdog_ping(),
                    sig = self.process.signals.recv_stop() => {
                        let Some(running) = daemon else {
                            return Ok(Step::Exit(RunOutcome::Stopped(sig)));
                        };
                        tracing::info!("{sig} received: stopping the daemon");
                        let stopped = self.process.stop_for_exit(running, sig).await;
                        tracing::info!("daemon stopped ({}); nymvisor exits", stopped.exit);
                        return Ok(Step::Exit(RunOutcome::Stopped(sig)));
                    }
                }
            }
        };
        if let Err(r) = rechecked {
            self.book.ready.remove(&info.name);
            self.refuse(&info, r);
            return Ok(Step::Continue(daemon));
        }
        // whatever else was prepared was checked against the version that is about to be replaced
        self.book.ready.clear();
        let name = info.name.clone();
        let previous_version = self.book.plan.current.version.clone();
        let applied = transaction::apply(
            &self.inst,
            &self.setup,
            &mut self.process,
            &mut self.book.plan,
            info.clone(),
            daemon,
        )
        .await?;
        self.quiet_later();
        self.book.save_progress(&mut self.process);
        match applied {
            Applied::Done {
                daemon,
                restart_wanted,
                confirming,
                downtime,
                unrecorded,
            } => {
                self.startup_failures = 0;
                self.unrecorded = unrecorded.map(|j| Unrecorded {
                    upgrade: j.upgrade.clone(),
                    journal: Some(*j),
                    retry_at: Instant::now() + RECORD_RETRY,
                });
                if daemon.is_some() {
                    self.daemon_info();
                }
                if let Some(d) = downtime {
                    self.process.metrics(|m| m.downtime(d));
                }
                self.book.confirming = confirming.map(|j| *j);
                if daemon.is_some()
                    && let Some(h) = self.health.as_mut()
                {
                    h.daemon_started();
                }
                if restart_wanted {
                    Ok(Step::Continue(daemon))
                } else {
                    Ok(Step::Exit(RunOutcome::StoppedAfterUpgrade(name)))
                }
            }
            Applied::Interrupted(sig) => Ok(Step::Exit(RunOutcome::Stopped(sig))),
            Applied::Withdrawn { daemon, why } => {
                tracing::info!(upgrade = %name, "upgrade `{name}` was not applied: {why} while its backup was being prepared; the current version runs on");
                // the watch brings the change itself (the plan, the hold) to the queue
                self.reload_files();
                Ok(Step::Continue(daemon))
            }
            Applied::Aborted { daemon, refusal } => {
                tracing::error!(upgrade = %name, "upgrade abandoned before the swap, the current binary stays: {refusal}");
                self.upgrade_outcome(&info, &previous_version, "failed");
                self.refuse(&info, refusal);
                Ok(Step::Continue(daemon))
            }
        }
    }

    /// What the upgrade awaiting confirmation waits for, for `status` (saved when it changed).
    fn publish_confirmation(&mut self) {
        let now = Instant::now();
        let wanted = match (&self.book.confirming, self.confirm_at) {
            (Some(j), Some(at)) => Some(crate::model::run_state::ConfirmWait {
                upgrade: j.upgrade.name.clone(),
                deadline: model::now() + at.saturating_duration_since(now),
                confirmed_by: match &self.health {
                    Some(h) => format!("its first healthy answer from {}", h.describe()),
                    None => "running through its startup period".to_owned(),
                },
            }),
            _ => None,
        };
        // the deadline is recomputed every turn: a few milliseconds of drift are no change
        let same = match (&self.process.state.confirming, &wanted) {
            (Some(a), Some(b)) => {
                a.upgrade == b.upgrade
                    && a.confirmed_by == b.confirmed_by
                    && (a.deadline - b.deadline).abs() < time::Duration::seconds(1)
            }
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.process.state.confirming = wanted;
            self.process.save_state();
        }
    }

    /// Starts the pre-upgrade hook for `info` as a task (unless one runs).
    fn start_hook(&mut self, info: &UpgradeInfo) {
        if self.book.hook.is_some() {
            return;
        }
        let Some(command) = self.inst.config.daemon.pre_upgrade_command.clone() else {
            return;
        };
        let (inst, env, upgrade) = (
            self.inst.clone(),
            self.process.spec.env.clone(),
            info.clone(),
        );
        let current_version = self.book.plan.current.version.clone();
        tracing::debug!(upgrade = %info.name, "running the pre-upgrade hook");
        let handle = tokio::spawn(async move {
            let call = hooks::HookCall {
                command: &command,
                upgrade: &upgrade,
                current_version: &current_version,
                outcome: None,
            };
            hooks::run(&inst, &env, &call).await
        });
        self.book.hook = Some(book::HookTask {
            upgrade: info.clone(),
            handle,
            started: std::time::Instant::now(),
        });
    }

    /// The pre-upgrade hook ended.
    fn on_hooked(&mut self, res: std::result::Result<hooks::HookResult, tokio::task::JoinError>) {
        let Some(task) = self.book.hook.take() else {
            return;
        };
        let info = task.upgrade;
        match res {
            Ok(hooks::HookResult::Ok) => {
                tracing::info!(upgrade = %info.name, stage = "pre-upgrade-hook", elapsed_ms = task.started.elapsed().as_millis() as u64, "the pre-upgrade hook agreed");
                self.book.hook_passed = Some(info);
            }
            Ok(hooks::HookResult::Failed(reason)) => self.book.refuse(
                &self.inst,
                &mut self.process,
                &info,
                Refusal::transient(format!("the pre-upgrade hook said not now: {reason}")),
                Origin::Hook,
            ),
            Err(e) => self.book.refuse(
                &self.inst,
                &mut self.process,
                &info,
                Refusal::transient(format!("the pre-upgrade hook could not run: {e}")),
                Origin::Hook,
            ),
        }
    }

    /// Right before the stop of an automatic upgrade: the hold file is read again (unreadable
    /// counts as a hold) and the maintenance window checked at this very moment.
    fn last_moment_allows(&mut self, info: &UpgradeInfo) -> bool {
        let hold = match self.inst.hold() {
            Ok(h) => h,
            Err(e) => Some(crate::model::Hold::unreadable(&e)),
        };
        if let Some(h) = hold {
            if self.book.hold.is_none() {
                tracing::info!(upgrade = %info.name, "upgrades were put on hold{} just before `{}` was applied: it waits", h.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(), info.name);
            }
            self.book.hold = Some(h);
            return false;
        }
        if info.follows_fleet_timing()
            && let Some(w) = &self.book.timing.windows
            && !w.contains(model::now())
        {
            tracing::info!(upgrade = %info.name, "the maintenance window ({w}) closed before `{}` could be applied: it waits for the next one", info.name);
            return false;
        }
        true
    }

    /// The name of the upgrade `current` points to (`genesis` or `upgrades/<name>`), if the
    /// link can be read.
    fn installed(&self) -> Option<String> {
        let link = std::fs::read_link(self.inst.data.current_link()).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// `current` points to `info`, yet the plan queues it: the plan is corrected (in memory at
    /// once, on disk as soon as it can be written).
    fn reconcile_installed(&mut self, info: UpgradeInfo) {
        if self
            .unrecorded
            .as_ref()
            .is_some_and(|u| u.upgrade.name == info.name)
        {
            // its record is being retried already (with the journal: history too)
            return;
        }
        tracing::warn!(upgrade = %info.name, "upgrade `{}` ({} {}) is already in place (current -> {}) but the plan still queues it: it is not applied again; recording it as the current version", info.name, self.inst.config.daemon.name, info.version, self.inst.data.link_target(&info.name).display());
        self.unrecorded = Some(Unrecorded {
            upgrade: info,
            journal: None,
            retry_at: Instant::now(),
        });
        self.retry_record();
    }

    /// Writes down an upgrade that is in place but not yet recorded, when its retry is due.
    fn retry_record(&mut self) {
        let Some(u) = self.unrecorded.take() else {
            return;
        };
        if Instant::now() < u.retry_at {
            self.unrecorded = Some(u);
            return;
        }
        let name = u.upgrade.name.clone();
        if self.installed().as_deref() != Some(name.as_str()) {
            // rolled back (or replaced) meanwhile: nothing to record any more
            return;
        }
        let written = match &u.journal {
            Some(journal) => transaction::record_upgrade(&self.inst, &mut self.book.plan, journal),
            None => transaction::update_plan(&self.inst, &mut self.book.plan, |p| {
                p.remove(&name);
                p.current = u.upgrade.clone();
            }),
        };
        match written {
            Ok(()) => {
                tracing::info!(upgrade = %name, stage = "record", "upgrade `{name}` is recorded now");
                self.book.save_progress(&mut self.process);
            }
            Err(e) => {
                let note = format!(
                    "upgrade `{name}` is in place but could not be recorded: {e}; nymvisor retries every {} (it does not apply the upgrade again)",
                    humantime::format_duration(RECORD_RETRY)
                );
                if self.process.state.last_error.as_deref() != Some(note.as_str()) {
                    self.process.record_error(note.clone());
                    tracing::error!(upgrade = %name, stage = "record", "{note}");
                }
                self.unrecorded = Some(Unrecorded {
                    retry_at: Instant::now() + RECORD_RETRY,
                    ..u
                });
            }
        }
    }

    /// An upgrade's outcome is known: counted, and told to the post-upgrade hook.
    fn upgrade_outcome(
        &self,
        upgrade: &UpgradeInfo,
        previous_version: &str,
        outcome: &'static str,
    ) {
        self.process.metrics(|m| m.upgrade(outcome));
        hooks::spawn_post(
            &self.inst,
            &self.process.spec.env,
            upgrade,
            previous_version,
            outcome,
        );
    }

    /// Confirms the upgrade awaiting confirmation; `how` says what confirmed it (for the log).
    fn confirm(&mut self, how: &str) -> Result<()> {
        if let Some(journal) = self.book.confirming.take() {
            // the history says `confirmed` from now on (it said `pending`)
            let path = self.inst.data.history();
            match crate::model::UpgradeHistory::load(&path) {
                Ok(mut h) => {
                    if h.confirm(&journal.upgrade.name, journal.started_at)
                        && let Err(e) = h.save(&path)
                    {
                        tracing::warn!(
                            "could not record the confirmation in {}: {e}",
                            path.display()
                        );
                    }
                }
                Err(e) => tracing::warn!("could not record the confirmation: {e}"),
            }
            Journal::clear(self.inst.data.root())?;
            // counted before the log line: whoever reads the line finds the metric up to date
            self.upgrade_outcome(&journal.upgrade, &journal.previous.version, "confirmed");
            tracing::info!(upgrade = %journal.upgrade.name, stage = "confirm", "upgrade confirmed: {} {} {how}", self.inst.config.daemon.name, journal.upgrade.version);
        }
        self.startup_failures = 0;
        self.process.metrics(|m| m.startup_failures(0));
        self.quiet_later();
        Ok(())
    }

    /// An offer of the upstream source, through the document checks and the policy.
    async fn on_polled(&mut self, res: PollResult) {
        // the HTTP stack's code is not needed again until the next poll
        self.quiet_later();
        let result = match &res {
            Ok(_) => "ok",
            Err(PollError::Source(_)) => "error",
            Err(PollError::Refused(_)) => "refused",
        };
        self.process.metrics(|m| m.polled(result));
        let refused = match &res {
            Err(PollError::Refused(note)) => Some(note.clone()),
            _ => None,
        };
        if self.process.state.feed_refused != refused && !matches!(res, Err(PollError::Source(_))) {
            self.process.state.feed_refused = refused;
            self.process.save_state();
        }
        let found = match res {
            Ok(None) => return,
            Ok(Some(found)) => found,
            Err(PollError::Refused(note)) => {
                // nothing from that document is used; it is asked for again at the next poll
                self.process
                    .metrics(|m| m.refused(Some("signature"), "not-now"));
                if self.poller.is_new(&note) {
                    self.process.record_error(note.clone());
                    tracing::error!("{note}; the next poll tries again");
                }
                return;
            }
            Err(PollError::Source(e)) => {
                let note = format!("polling the upstream source failed: {e}");
                // recorded before the log line: whoever reads the line finds the status up to date
                self.process.record_error(note.clone());
                if self.poller.is_new(&note) {
                    tracing::error!(
                        "{note}; the daemon keeps running and the next poll will try again"
                    );
                }
                return;
            }
        };
        // a feed cannot grant itself the operator's overrides (`--now`, `--allow-downgrade`)
        let offer = found.info.from_upstream();
        // without the history the rules cannot be applied (a rolled-back release could come
        // back): nothing is queued until it can be read
        let Ok(history) = self.book.history(&self.inst, &mut self.process) else {
            self.poller.forget();
            return;
        };
        let admission = policy::admit_offer(&self.book.context(&self.inst, &history), &offer);
        match admission {
            Admission::Known => {}
            Admission::Refused(r) => {
                if self.book.refusals.for_entry(&offer).is_none() {
                    self.book
                        .refuse(&self.inst, &mut self.process, &offer, r, Origin::Upstream);
                }
            }
            Admission::Queue => {
                if let Err(e) = self.book.queue_offer(&self.inst, &offer) {
                    // ask for the whole document next time, so the release is not lost to a 304
                    self.poller.forget();
                    tracing::error!("could not queue the upgrade offered upstream: {e}");
                    self.process.record_error(e.to_string());
                }
            }
        }
    }

    /// The plan or the refusals changed on disk.
    fn reload_files(&mut self) {
        let changed = self.watch.changed();
        if !changed.is_empty() {
            // often the echo of our own writes after an upgrade: the end of a busy moment
            self.quiet_later();
        }
        for path in changed {
            if path == self.inst.data.rollback_request() || path == self.inst.data.hold() {
                self.rollback_wanted = true;
                if path != self.inst.data.hold() {
                    continue;
                }
            }
            if self.book.reload(&self.inst, &mut self.process, &path) {
                self.poller.poll_soon();
            }
        }
        // a hook whose upgrade left the queue (cancelled) or changed is of no use any more
        if let Some(hook) = &self.book.hook
            && self.book.plan.queued(&hook.upgrade.name) != Some(&hook.upgrade)
            && let Some(hook) = self.book.hook.take()
        {
            hook.handle.abort();
            tracing::info!(upgrade = %hook.upgrade.name, "the pre-upgrade hook was stopped: its upgrade is no longer queued as it was");
        }
        // an approval is for the entry as it was, and only while nothing holds it
        if self.book.hold.is_some()
            || self
                .book
                .hook_passed
                .as_ref()
                .is_some_and(|p| self.book.plan.queued(&p.name) != Some(p))
        {
            self.book.hook_passed = None;
        }
    }
}

/// The health probe's answer, when one is in flight; never resolves otherwise. Cancel-safe.
async fn health_answer(monitor: Option<&mut health::Monitor>) -> crate::health::Health {
    match monitor {
        Some(m) => m.finished().await,
        None => std::future::pending().await,
    }
}

/// Awaits a task if there is one; never resolves otherwise. Cancel-safe.
async fn join_opt<T>(
    handle: Option<&mut JoinHandle<T>>,
) -> std::result::Result<T, tokio::task::JoinError> {
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
