//! `nymvisor run`: the event loop. It owns the daemon, the signals, the file watch, the poll and
//! the timers, waits on all of them at once (so a signal is honoured promptly whatever else is
//! going on), and turns events into calls: the queue decides what is due
//! ([`crate::upgrade::queue`]), the policy whether it may happen ([`crate::upgrade::policy`]), the
//! transaction does it ([`crate::upgrade::transaction`]).

mod apply;
mod book;
mod failure;
mod feed;
mod fleet;
mod health;
mod hook;
mod host;
mod poll;
mod polled;
mod prepared;
mod record;
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
use self::host::DaemonHost;
use self::poll::{PollResult, Poller};
use self::watch::FileWatch;
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
use crate::upgrade::transaction::BackupSettings;
use crate::verify::Verifier;

/// Where the network work (polls, downloads, verification) runs: chosen once, by the CLI, for
/// the polls and the preparations alike.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// In this process (`network_helper = false`, or inside the helper itself), with the
    /// source, if there is one (`None`: only the plan file).
    InProcess(Option<Arc<dyn UpgradeSource>>),
    /// In a sandboxed `nymvisor __helper` child per job, which builds the source itself; it
    /// also verifies binaries the operator queued when there is no source.
    Helper(Arc<crate::helper::Helper>),
}

impl Upstream {
    /// The source used in this process, if any.
    pub fn source(&self) -> Option<&Arc<dyn UpgradeSource>> {
        match self {
            Upstream::InProcess(s) => s.as_ref(),
            Upstream::Helper(_) => None,
        }
    }

    /// The helper, when the work runs there.
    pub fn helper(&self) -> Option<&Arc<crate::helper::Helper>> {
        match self {
            Upstream::Helper(h) => Some(h),
            Upstream::InProcess(_) => None,
        }
    }

    /// What is watched for new releases, for the log (`None`: nothing is polled).
    pub fn describe(&self) -> Option<String> {
        match self {
            Upstream::InProcess(s) => s.as_ref().map(|s| s.describe()),
            Upstream::Helper(h) => h.describe().map(|what| {
                format!("{what} (polled and downloaded by a sandboxed helper process)")
            }),
        }
    }
}

/// What `run` was given besides the instance.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Arguments for the daemon, verbatim.
    pub daemon_args: Vec<OsString>,
    /// The environment the daemon gets (and where `NYMVISOR_FAILPOINT` is read in test builds).
    pub env: Env,
    /// Where polls, downloads and verification run (chosen once, by the CLI).
    pub upstream: Upstream,
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
    /// Where the fleet's jobs go, with a fleet configured (chosen by the CLI with the rest of
    /// the network work).
    pub fleet: Option<crate::helper::fleet::FleetLink>,
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
    backups: BackupSettings,
    host: DaemonHost,
    preparer: Preparer,
    poller: Poller,
    watch: FileWatch,
    book: Book,
    health: Option<health::Monitor>,
    /// When the running daemon's startup period ends (set each turn of the loop).
    confirm_at: Option<Instant>,
    /// The daemon's life: startup failures, health, liveness restarts (the pure rules).
    life: crate::upgrade::lifecycle::Lifecycle,
    /// The daemon was started at least once by this nymvisor (with third-party checks, a due
    /// upgrade found at start is verified after the first start, never before it).
    started_once: bool,
    /// An upgrade in place (`current` points to it) that is not yet written down in full.
    unrecorded: Option<Unrecorded>,
    /// A rollback request may be waiting (`upgrade-rollback.json` changed, the hold changed, or
    /// at start).
    rollback_wanted: bool,
    /// When a rollback request that waits for a maintenance window is looked at again.
    rollback_at: Option<Instant>,
    /// The fleet group, with a fleet configured.
    fleet: Option<fleet::Fleet>,
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
    /// It was confirmed before its record landed: the record says so when it does.
    confirmed: bool,
}

/// How often an unwritten record is tried again.
const RECORD_RETRY: Duration = Duration::from_secs(10);

/// Supervises the instance's daemon until it ends, nymvisor is stopped, or an error occurs.
pub async fn run(inst: Instance, opts: RunOptions) -> Result<RunOutcome> {
    let mut sup = setup::start(inst, opts).await?;
    let outcome = sup.main_loop().await;
    sup.host.mark_stopped();
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
    sup.host.state.restart = None;
    sup.host.state.confirming = None;
    sup.host.state.stopped = Some(crate::model::run_state::Stopped {
        at: model::now(),
        reason,
        error,
    });
    sup.host.save_state();
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
    Fleet(std::result::Result<crate::helper::fleet::FleetReply, String>),
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
        let first = self.book.decide(&self.inst, None, self.fleet_wait());
        // (with a pre-upgrade hook or third-party checks the old version starts first: nothing
        // to say)
        let n = &self.inst.config.nymvisor;
        if self.inst.config.daemon.pre_upgrade_command.is_none()
            && n.plugin_paths.is_empty()
            && n.verifier_commands.is_empty()
            && let Some(info) = first.apply.as_ref().or(first.due_unprepared.as_ref())
        {
            self.host.notifier.ready(&format!(
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
                        self.host.record_error(e.to_string());
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
            self.book.recheck_records(&self.inst, &mut self.host);
            let decision = self
                .book
                .decide(&self.inst, self.confirm_at, self.fleet_wait());
            if let Some(f) = self.fleet.as_mut() {
                f.tidy(
                    &decision.entries,
                    decision.apply.as_ref().map(|i| i.name.as_str()),
                    self.book.confirming.is_some(),
                );
            }
            self.publish_fleet();
            // published before it is logged: whoever reads the log line finds `status` agreeing
            self.book.publish(&decision, &mut self.host);
            self.book.say_waiting(&decision);
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
            if let Some(f) = self.fleet.as_mut() {
                f.kick();
            }
            let wake = [
                wake,
                self.unrecorded.as_ref().map(|u| u.retry_at),
                self.rollback_at,
                self.fleet.as_ref().and_then(|f| f.wake_at()),
            ]
            .into_iter()
            .flatten()
            .min();
            let poll_at = self.poller.due_at();
            let confirm_at = self.confirm_at;
            let health_at = self.health.as_ref().and_then(|h| h.due_at());
            let watchdog_at = self.host.watchdog_due();
            let event = tokio::select! {
                res = join_opt(self.book.preparing.as_mut().map(|(_, h)| h)) => Event::Prepared(
                    res.unwrap_or_else(|e| Err(Refusal::transient(format!("the prepare task failed: {e}"))))
                ),
                res = join_opt(self.book.hook.as_mut().map(|h| &mut h.handle)) => Event::Hooked(res),
                res = self.poller.finished() => Event::Polled(Box::new(res)),
                () = sleep_until_opt(poll_at) => Event::PollDue,
                _ = running.exited(&mut self.host.children) => Event::Exited,
                sig = self.host.signals.recv() => Event::Signal(sig),
                () = self.watch.tick() => Event::FilesChanged,
                () = sleep_until_opt(wake) => Event::Timer,
                () = sleep_until_opt(confirm_at) => Event::Confirmed,
                () = sleep_until_opt(health_at) => Event::HealthDue,
                h = health_answer(self.health.as_mut()) => Event::Health(h),
                () = sleep_until_opt(watchdog_at) => Event::Watchdog,
                res = fleet_finished(self.fleet.as_mut()) => Event::Fleet(res),
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
                    if let Some(hook) = self.book.hook.take() {
                        // dropping its future kills the hook's whole group
                        hook.handle.abort();
                        tracing::info!(upgrade = %hook.upgrade.name, "the pre-upgrade hook was stopped");
                    }
                    self.host.stop_for_exit(running, sig).await;
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
                Event::Watchdog => self.host.watchdog_ping(),
                Event::Fleet(res) => self.on_fleet(res),
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
        self.started_once = true;
        let d = self.host.start()?;
        self.daemon_info();
        self.life.started();
        if let Some(h) = self.health.as_mut() {
            h.daemon_started();
        }
        self.host.notifier.ready(&format!(
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
        self.host.metrics(|m| {
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

    fn refuse(&mut self, info: &UpgradeInfo, r: Refusal) {
        self.book
            .refuse(&self.inst, &mut self.host, info, r, Origin::Plan);
    }
}

/// The health probe's answer, when one is in flight; never resolves otherwise. Cancel-safe.
async fn health_answer(monitor: Option<&mut health::Monitor>) -> crate::health::Health {
    match monitor {
        Some(m) => m.finished().await,
        None => std::future::pending().await,
    }
}

/// The fleet's job in flight, if there is a fleet; never resolves otherwise. Cancel-safe.
async fn fleet_finished(
    f: Option<&mut fleet::Fleet>,
) -> std::result::Result<crate::helper::fleet::FleetReply, String> {
    match f {
        Some(f) => f.finished().await,
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
