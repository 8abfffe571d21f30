//! `nymvisor run`: the event loop. It owns the daemon, the signals, the file watch, the poll and
//! the timers, waits on all of them at once (so a signal is honoured promptly whatever else is
//! going on), and turns events into calls: the queue decides what is due
//! ([`crate::upgrade::queue`]), the policy whether it may happen ([`crate::upgrade::policy`]), the
//! transaction does it ([`crate::upgrade::transaction`]).

mod failure;
mod poll;
mod process;
mod watch;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::poll::Poller;
use self::process::Process;
use self::watch::{FileWatch, PlanProblem};
use crate::backup;
use crate::daemon::signals::{Signals, is_stop};
use crate::daemon::{self, ChildEvents, Daemon, DaemonSpec, children};
use crate::env::Env;
use crate::error::Result;
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::refusals::Origin;
use crate::model::{self, Journal, Refusals, RunState, UpgradeInfo, UpgradePlan};
use crate::refusal::Refusal;
use crate::source::{Caps, SourceError, SourcedUpgrade, UpgradeSource};
use crate::upgrade::Preparer;
use crate::upgrade::policy::{self, Admission};
use crate::upgrade::queue::{self, Decision, WaitingFor};
use crate::upgrade::transaction::{self, Applied, Setup};
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

/// Longest single sleep while something is scheduled: wall-clock changes are noticed this often.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long after a start, an upgrade or a poll the moment counts as quiet.
const QUIET_AFTER: Duration = Duration::from_secs(2);

type PrepareTask = (UpgradeInfo, JoinHandle<Result<(), Refusal>>);

struct Supervisor {
    inst: Instance,
    setup: Setup,
    process: Process,
    preparer: Preparer,
    poller: Poller,
    watch: FileWatch,
    plan_problem: PlanProblem,
    plan: UpgradePlan,
    refusals: Refusals,
    /// Upgrades whose binary is in place and verified, as they were when verified.
    ready: BTreeMap<String, UpgradeInfo>,
    preparing: Option<PrepareTask>,
    /// The applied upgrade whose start is watched for its confirmation.
    confirming: Option<Journal>,
    /// When the running daemon's startup period ends (set each turn of the loop).
    confirm_at: Option<Instant>,
    /// What each queued upgrade was last said to wait for (one log line per change).
    said: BTreeMap<String, (Option<WaitingFor>, Option<time::OffsetDateTime>)>,
    startup_failures: u32,
    release_at: Option<Instant>,
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
    let watch = FileWatch::new(inst.data.root(), &[inst.data.plan(), inst.data.refusals()]);
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
    let refusals = Refusals::load(&inst.data.refusals()).unwrap_or_else(|e| {
        tracing::error!("{e}; refused upgrades are considered again");
        Refusals::default()
    });
    let tuning = &inst.config.tuning;
    let verifiers = Arc::new(opts.verifiers.clone());
    let state_dir = inst.home.instance_data_dir(inst.config.id());
    let previous_state = RunState::load(&state_dir).ok().flatten();
    let process = Process {
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
    };
    let setup = Setup {
        backup: if inst.config.daemon.unsafe_skip_backup {
            None
        } else {
            backup::strategy_for(
                inst.config.daemon.backup_strategy,
                tuning.backup_compression == crate::config::Compression::Zstd,
            )
        },
        backup_min_free: tuning.backup_min_free,
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
        preparer: Preparer {
            data: inst.data.clone(),
            daemon: inst.config.daemon.clone(),
            source: opts.source.clone(),
            verifiers: verifiers.clone(),
            caps: Caps {
                binary: tuning.max_binary_size,
                ..Caps::default()
            },
            progress: opts.progress.clone(),
        },
        poller: Poller::new(
            opts.source.clone(),
            verifiers,
            inst.config.nymvisor.upstream_polling_rate,
        ),
        inst,
        setup,
        process,
        watch,
        plan_problem,
        plan,
        refusals,
        ready: BTreeMap::new(),
        preparing: None,
        confirming: None,
        confirm_at: None,
        said: BTreeMap::new(),
        startup_failures: 0,
        release_at: None,
        _lock: lock,
    };
    if let Some(prev) = previous_state
        && let (Some(pid), Some(ticks)) = (prev.daemon_pid, prev.daemon_start_ticks)
    {
        daemon::stop_leftover(pid, ticks, sup.process.grace).await;
    }
    sup.process.save_state();
    let journal =
        transaction::recover(&sup.inst, &sup.setup, &mut sup.process, &mut sup.plan).await?;
    sup.confirming = journal;
    let outcome = sup.main_loop().await;
    sup.process.mark_stopped();
    outcome
}

enum Event {
    Prepared(Result<(), Refusal>),
    PollDue,
    Polled(Box<Result<Option<SourcedUpgrade>, SourceError>>),
    Exited,
    Signal(Signal),
    FilesChanged,
    Timer,
    Confirmed,
    Quiet,
}

/// What to do after handling an upgrade step.
enum Step {
    Continue(Option<Daemon>),
    Exit(RunOutcome),
}

impl Supervisor {
    async fn main_loop(&mut self) -> Result<RunOutcome> {
        let mut daemon: Option<Daemon> = None;
        loop {
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
                .confirming
                .as_ref()
                .map(|_| Instant::now() + period.saturating_sub(running.uptime()));
            let decision = self.decide();
            self.say_waiting(&decision);
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
            let (poll_at, release_at) = (self.poller.due_at(), self.release_at);
            let confirm_at = self.confirm_at;
            let event = tokio::select! {
                res = join_opt(self.preparing.as_mut().map(|(_, h)| h)) => Event::Prepared(
                    res.unwrap_or_else(|e| Err(Refusal::transient(format!("the prepare task failed: {e}"))))
                ),
                res = self.poller.finished() => Event::Polled(Box::new(res)),
                () = sleep_until_opt(poll_at) => Event::PollDue,
                _ = running.exited(&mut self.process.children) => Event::Exited,
                sig = self.process.signals.recv() => Event::Signal(sig),
                () = self.watch.tick() => Event::FilesChanged,
                () = sleep_until_opt(wake) => Event::Timer,
                () = sleep_until_opt(confirm_at) => Event::Confirmed,
                () = sleep_until_opt(release_at) => Event::Quiet,
            };
            daemon = Some(running);
            match event {
                Event::Prepared(res) => self.on_prepared(res),
                Event::PollDue => self.poller.start(),
                Event::Polled(res) => self.on_polled(*res).await,
                Event::Signal(sig) if is_stop(sig) => {
                    let Some(running) = daemon.take() else {
                        continue;
                    };
                    tracing::info!("{sig} received: stopping the daemon");
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
                Event::Quiet => {
                    // things have settled after a (re)start, an upgrade or a poll: give back the
                    // code pages only they needed
                    self.release_at = None;
                    crate::memory::release_startup_pages();
                }
                Event::Confirmed => self.confirm()?,
                Event::Timer => {}
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
        self.process.notifier.ready(&format!(
            "running {} {} (pid {})",
            self.inst.config.daemon.name,
            self.plan.current.version,
            d.pid()
        ));
        self.quiet_later();
        Ok(d)
    }

    fn quiet_later(&mut self) {
        self.release_at = Some(Instant::now() + QUIET_AFTER);
    }

    fn policy_context<'a>(&'a self, history: &'a model::UpgradeHistory) -> policy::Context<'a> {
        policy::Context {
            current: &self.plan.current,
            queued: &self.plan.queued_up,
            history,
            in_flight: self.confirming.as_ref(),
            allow_downgrade: self.inst.config.daemon.allow_downgrade,
        }
    }

    fn decide(&self) -> Decision {
        let confirm_until = self.confirming.as_ref().map(|j| {
            let left = self
                .confirm_at
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(self.inst.config.daemon.startup_period_duration);
            (j.upgrade.name.as_str(), model::now() + left)
        });
        queue::decide(&queue::Snapshot {
            now: model::now(),
            plan: &self.plan,
            refusals: &self.refusals,
            ready: &self.ready,
            preparing: self.preparing.as_ref().map(|(i, _)| i.name.as_str()),
            confirming: confirm_until,
            plan_broken: self.plan_problem.get().is_some(),
        })
    }

    /// One log line whenever a queued upgrade starts waiting for something (or stops).
    fn say_waiting(&mut self, d: &Decision) {
        let mut said = BTreeMap::new();
        for e in &d.entries {
            let now = (e.waiting_for, e.until);
            if self.said.get(&e.name) != Some(&now)
                && let Some(w) = e.waiting_for
            {
                let until = e
                    .until
                    .map(|t| format!(" until {}", model::rfc3339(t)))
                    .unwrap_or_default();
                tracing::info!(upgrade = %e.name, "upgrade `{}` ({}) is due and waits for {}{until}", e.name, e.version, describe(w));
            }
            said.insert(e.name.clone(), now);
        }
        self.said = said;
    }

    /// Starts preparing what the queue says, once the policy allows it.
    fn start_preparing(&mut self, d: &Decision) {
        let Some(info) = d.prepare.clone() else {
            return;
        };
        if self.preparing.is_some() {
            return;
        }
        let history = self.inst.history().unwrap_or_default();
        if let Err(r) = policy::may_apply(&self.policy_context(&history), &info) {
            self.refuse(&info, r, Origin::Plan);
            return;
        }
        let preparer = self.preparer.clone();
        let task_info = info.clone();
        tracing::debug!(upgrade = %info.name, "preparing");
        let handle = tokio::spawn(async move { preparer.prepare(&task_info).await });
        self.preparing = Some((info, handle));
        self.save_progress();
    }

    fn on_prepared(&mut self, res: Result<(), Refusal>) {
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
                if self.refusals.for_entry(&info).is_some() {
                    self.update_refusals(|r| {
                        r.clear(&info.name);
                    });
                }
                self.ready.insert(info.name.clone(), info);
            }
            Err(r) => self.refuse(&info, r, Origin::Plan),
        }
        self.save_progress();
    }

    /// Applies the upgrade the queue says is due. With no daemon running (`idle`), a due upgrade
    /// whose binary is in place is prepared on the spot.
    async fn step_upgrade(&mut self, daemon: Option<Daemon>, idle: bool) -> Result<Step> {
        let d = self.decide();
        let info = match (d.apply, d.due_unprepared) {
            (Some(info), _) => info,
            (None, Some(info)) if idle && self.preparer.binary_present(&info) => {
                let history = self.inst.history().unwrap_or_default();
                if let Err(r) = policy::may_apply(&self.policy_context(&history), &info) {
                    self.refuse(&info, r, Origin::Plan);
                    return Ok(Step::Continue(daemon));
                }
                let t = std::time::Instant::now();
                let prepared = tokio::select! {
                    r = self.preparer.prepare(&info) => r,
                    sig = self.process.signals.recv_stop() => return Ok(Step::Exit(RunOutcome::Stopped(sig))),
                };
                if let Err(r) = prepared {
                    self.refuse(&info, r, Origin::Plan);
                    return Ok(Step::Continue(daemon));
                }
                tracing::info!(upgrade = %info.name, stage = "prepare", elapsed_ms = t.elapsed().as_millis() as u64, "verified the new binary ({} {})", self.inst.config.daemon.name, info.version);
                info
            }
            _ => return Ok(Step::Continue(daemon)),
        };
        // prepared against what ran then: the rules are asked again against what runs now
        let history = self.inst.history().unwrap_or_default();
        if let Err(r) = policy::may_apply(&self.policy_context(&history), &info) {
            self.ready.remove(&info.name);
            self.refuse(&info, r, Origin::Plan);
            return Ok(Step::Continue(daemon));
        }
        if self.setup.backup.is_some()
            && let Err(e) =
                backup::check_free_space(&self.inst.backup_plan(self.setup.backup_min_free))
        {
            self.refuse(&info, Refusal::transient(e.to_string()), Origin::Plan);
            return Ok(Step::Continue(daemon));
        }
        // whatever else was prepared was checked against the version that is about to be replaced
        self.ready.clear();
        let name = info.name.clone();
        let applied = transaction::apply(
            &self.inst,
            &self.setup,
            &mut self.process,
            &mut self.plan,
            info.clone(),
            daemon,
        )
        .await?;
        self.quiet_later();
        self.save_progress();
        match applied {
            Applied::Done {
                daemon,
                restart_wanted,
                confirming,
            } => {
                self.startup_failures = 0;
                self.confirming = confirming.map(|j| *j);
                if restart_wanted {
                    Ok(Step::Continue(daemon))
                } else {
                    Ok(Step::Exit(RunOutcome::StoppedAfterUpgrade(name)))
                }
            }
            Applied::Interrupted(sig) => Ok(Step::Exit(RunOutcome::Stopped(sig))),
            Applied::Aborted { daemon, refusal } => {
                tracing::error!(upgrade = %name, "upgrade abandoned before the swap, the current binary stays: {refusal}");
                self.refuse(&info, refusal, Origin::Plan);
                Ok(Step::Continue(daemon))
            }
        }
    }

    fn confirm(&mut self) -> Result<()> {
        if let Some(journal) = self.confirming.take() {
            Journal::clear(self.inst.data.root())?;
            tracing::info!(upgrade = %journal.upgrade.name, stage = "confirm", "upgrade confirmed: {} {} ran for its startup period", self.inst.config.daemon.name, journal.upgrade.version);
        }
        self.startup_failures = 0;
        self.quiet_later();
        Ok(())
    }

    /// An offer of the upstream source, through the document checks and the policy.
    async fn on_polled(&mut self, res: Result<Option<SourcedUpgrade>, SourceError>) {
        // the HTTP stack's code is not needed again until the next poll
        self.quiet_later();
        let found = match res {
            Ok(None) => return,
            Ok(Some(found)) => found,
            Err(e) => {
                let note = format!("polling the upstream source failed: {e}");
                if self.poller.is_new(&note) {
                    tracing::error!(
                        "{note}; the daemon keeps running and the next poll will try again"
                    );
                }
                self.process.record_error(note);
                return;
            }
        };
        if let Err(note) = self.poller.vet(&found).await {
            if self.poller.is_new(&note) {
                tracing::warn!("{note}");
            }
            return;
        }
        let offer = found.info;
        let history = self.inst.history().unwrap_or_default();
        match policy::admit_offer(&self.policy_context(&history), &offer) {
            Admission::Known => {}
            Admission::Refused(r) => {
                if self.refusals.for_entry(&offer).is_none() {
                    self.refuse(&offer, r, Origin::Upstream);
                }
            }
            Admission::Queue => {
                if let Err(e) = self.queue_offer(&offer) {
                    // ask for the whole document next time, so the release is not lost to a 304
                    self.poller.forget();
                    tracing::error!("could not queue the upgrade offered upstream: {e}");
                    self.process.record_error(e.to_string());
                }
            }
        }
    }

    fn queue_offer(&mut self, info: &UpgradeInfo) -> Result<()> {
        let name = &info.name;
        fsutil::create_dir_all(&self.inst.data.upgrade_dir(name))?;
        fsutil::write_json(&self.inst.data.upgrade_info(name), info)?;
        let queued = info.clone();
        transaction::update_plan(&self.inst, &mut self.plan, |plan| {
            plan.remove(&queued.name);
            plan.insert(queued.clone());
        })?;
        tracing::info!(upgrade = %name, stage = "discover", "new release upstream: {} {} (`{name}`), due {}", self.inst.config.daemon.name, info.version, model::rfc3339(info.upgrade_time));
        Ok(())
    }

    /// Records a refusal (on disk, so a restart does not try it again), logs it once per reason.
    fn refuse(&mut self, info: &UpgradeInfo, refusal: Refusal, origin: Origin) {
        let now = model::now();
        let mut new = true;
        self.update_refusals(|r| {
            new = r.record(info, &refusal, origin, now).1;
        });
        let what = format!(
            "upgrade `{}` ({} {})",
            info.name, self.inst.config.daemon.name, info.version
        );
        let then = match self.refusals.for_entry(info).map(|r| r.next_attempt) {
            Some(crate::refusal::NextAttempt::At(t)) => {
                format!("; will retry at {}", model::rfc3339(t))
            }
            _ if origin == Origin::Upstream => "; it is not queued".to_owned(),
            _ => "; it is skipped until its plan entry changes (or `nymvisor retry`)".to_owned(),
        };
        if new {
            tracing::error!(upgrade = %info.name, "cannot apply {what}: {}{then}", refusal.reason);
        } else {
            tracing::debug!(upgrade = %info.name, "still cannot apply {what}: {}", refusal.reason);
        }
        self.process
            .record_error(format!("upgrade `{}`: {}", info.name, refusal.reason));
    }

    /// Read-modify-write of `upgrade-refusals.json` under the plan lock (`nymvisor retry` edits
    /// it too). When it cannot be written the change is kept in memory.
    fn update_refusals(&mut self, change: impl FnOnce(&mut Refusals)) {
        let path = self.inst.data.refusals();
        let written = FileLock::acquire_blocking(&self.inst.data.plan_lock()).and_then(|_lock| {
            let mut on_disk = Refusals::load(&path).unwrap_or_else(|_| self.refusals.clone());
            change(&mut on_disk);
            on_disk.save(&path)?;
            Ok(on_disk)
        });
        match written {
            Ok(r) => self.refusals = r,
            Err(e) => tracing::warn!("could not record the refusal in {}: {e}", path.display()),
        }
    }

    /// The plan or the refusals changed on disk.
    fn reload_files(&mut self) {
        for path in self.watch.changed() {
            if path == self.inst.data.refusals() {
                match Refusals::load(&path) {
                    Ok(r) => self.refusals = r,
                    Err(e) => tracing::warn!("{e}"),
                }
                continue;
            }
            let reloaded = self.plan_problem.reload(&path);
            if let Some(problem) = self.plan_problem.get()
                && self.process.state.last_error.as_deref() != Some(problem)
            {
                let problem = problem.to_owned();
                self.process.record_error(problem);
            }
            let Some(plan) = reloaded else { continue };
            if plan != self.plan {
                tracing::info!(
                    "upgrade plan changed: {} upgrade(s) queued",
                    plan.queued_up.len()
                );
            }
            self.plan = plan;
            let mut pruned = self.refusals.clone();
            if pruned.prune(&self.plan) {
                let plan = self.plan.clone();
                self.update_refusals(|r| {
                    r.prune(&plan);
                });
            }
        }
    }

    /// Records which upgrades are prepared or being prepared, for `status`.
    fn save_progress(&mut self) {
        let ready: Vec<String> = self.ready.keys().cloned().collect();
        let preparing = self.preparing.as_ref().map(|(i, _)| i.name.clone());
        if self.process.state.ready != ready || self.process.state.preparing != preparing {
            self.process.state.ready = ready;
            self.process.state.preparing = preparing;
            self.process.save_state();
        }
    }
}

fn describe(w: WaitingFor) -> &'static str {
    match w {
        WaitingFor::Confirmation => "the previous upgrade's confirmation",
        WaitingFor::Backoff => "its next attempt",
        WaitingFor::Download => "its binary to be downloaded and verified",
        WaitingFor::Earlier => "an earlier upgrade",
        WaitingFor::Plan => "the upgrade plan to be fixed",
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
