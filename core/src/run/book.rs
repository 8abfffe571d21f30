//! The supervisor's book of upgrades: the plan in force (and what is wrong with the file), the
//! refusals, what is prepared or being prepared, the upgrade awaiting confirmation, and what each
//! queued upgrade was last said to wait for. It keeps `upgrade-refusals.json` and the run state's
//! progress fields in step, and asks the queue and the policy; it decides nothing itself.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::host::DaemonHost;
use super::watch::PlanProblem;
use crate::error::Result;
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::refusals::Origin;
use crate::model::{self, Hold, Journal, Refusals, UpgradeHistory, UpgradeInfo, UpgradePlan};
use crate::refusal::NextAttempt;
use crate::refusal::Refusal;
use crate::timing::Timing;
use crate::upgrade::policy;
use crate::upgrade::queue::{self, Decision, WaitingFor};
use crate::upgrade::transaction;

/// A prepare task in flight.
pub type PrepareTask = (UpgradeInfo, JoinHandle<Result<(), Refusal>>);

/// The pre-upgrade hook in flight.
#[derive(Debug)]
pub struct HookTask {
    pub upgrade: UpgradeInfo,
    pub handle: JoinHandle<crate::upgrade::hooks::HookResult>,
    pub started: std::time::Instant,
}

/// See the module docs.
#[derive(Debug)]
pub struct Book {
    pub plan: UpgradePlan,
    pub plan_problem: PlanProblem,
    pub refusals: Refusals,
    /// Upgrades whose binary is in place and verified, as they were when verified.
    pub ready: BTreeMap<String, UpgradeInfo>,
    pub preparing: Option<PrepareTask>,
    /// The pre-upgrade hook in flight.
    pub hook: Option<HookTask>,
    /// The upgrade (as it was) the pre-upgrade hook agreed to; applied next.
    pub hook_passed: Option<UpgradeInfo>,
    /// The applied upgrade whose start is watched for its confirmation.
    pub confirming: Option<Journal>,
    /// What each queued upgrade was last said to wait for (one log line per change).
    said: BTreeMap<String, (Option<WaitingFor>, Option<time::OffsetDateTime>)>,
    /// Spread and windows.
    pub timing: Timing,
    /// The operator's hold, if one is in force.
    pub hold: Option<Hold>,
    /// `upgrade-history.json` cannot be read (why): nothing is applied automatically.
    pub history_problem: Option<String>,
    /// `upgrade-refusals.json` cannot be read (why): nothing is applied automatically, and the
    /// file is not overwritten.
    pub refusals_problem: Option<String>,
    /// The fleet seed cannot be read (why): without it no spread can be computed, so nothing
    /// is applied automatically.
    pub timing_problem: Option<String>,
    /// Freshness and replay protection of the signed feed, when feeds must be signed.
    pub feed: Option<super::feed::FeedGuard>,
}

impl Book {
    pub fn new(
        plan: UpgradePlan,
        plan_problem: PlanProblem,
        refusals: Refusals,
        timing: Timing,
        hold: Option<Hold>,
    ) -> Book {
        Book {
            history_problem: None,
            refusals_problem: None,
            timing_problem: None,
            feed: None,
            timing,
            hold,
            plan,
            plan_problem,
            refusals,
            ready: BTreeMap::new(),
            preparing: None,
            hook: None,
            hook_passed: None,
            confirming: None,
            said: BTreeMap::new(),
        }
    }

    /// With freshness and replay protection of the signed feed (see [`super::feed`]).
    pub fn with_feed(mut self, feed: Option<super::feed::FeedGuard>) -> Book {
        self.feed = feed;
        self
    }

    /// What the policy looks at.
    pub fn context<'a>(
        &'a self,
        inst: &Instance,
        history: &'a UpgradeHistory,
    ) -> policy::Context<'a> {
        policy::Context {
            current: &self.plan.current,
            queued: &self.plan.queued_up,
            history,
            in_flight: self.confirming.as_ref(),
            allow_downgrade: inst.config.daemon.allow_downgrade,
            refusals: &self.refusals,
        }
    }

    /// [`policy::may_apply`] against what runs now. An unreadable history refuses for now: the
    /// rules cannot be applied without it.
    pub fn may_apply(
        &mut self,
        inst: &Instance,
        host: &mut DaemonHost,
        info: &UpgradeInfo,
    ) -> std::result::Result<(), Refusal> {
        let history = self.history(inst, host).map_err(Refusal::transient)?;
        policy::may_apply(&self.context(inst, &history), info)
    }

    /// The history, noting whether it can be read (fail closed: unreadable, nothing is applied
    /// automatically until it is readable again; said once in the log and in `status`).
    pub fn history(
        &mut self,
        inst: &Instance,
        host: &mut DaemonHost,
    ) -> std::result::Result<UpgradeHistory, String> {
        match inst.history() {
            Ok(h) => {
                if self.history_problem.take().is_some() {
                    tracing::info!("{} can be read again", inst.data.history().display());
                }
                Ok(h)
            }
            Err(e) => {
                let note = format!(
                    "{e}; no upgrade is applied automatically until it can be read (the node keeps running)"
                );
                if self.history_problem.as_deref() != Some(note.as_str()) {
                    host.record_error(note.clone());
                    tracing::error!("{note}");
                    self.history_problem = Some(note.clone());
                }
                Err(note)
            }
        }
    }

    /// While a record file is unreadable: looks again (the history is not watched; the
    /// refusals are, but a fix may come as a chmod).
    pub fn recheck_records(&mut self, inst: &Instance, host: &mut DaemonHost) {
        if self.history_problem.is_some() {
            let _ = self.history(inst, host);
        }
        if self.refusals_problem.is_some()
            && let Ok(r) = Refusals::load(&inst.data.refusals())
        {
            tracing::info!("{} can be read again", inst.data.refusals().display());
            self.refusals = r;
            self.refusals_problem = None;
        }
    }

    /// The queue's decision now. `confirm_at`: when the running daemon's startup period ends.
    pub fn decide(
        &self,
        inst: &Instance,
        confirm_at: Option<Instant>,
        fleet: Option<queue::FleetWait<'_>>,
    ) -> Decision {
        let confirming = self.confirming.as_ref().map(|j| {
            let left = confirm_at
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(inst.config.daemon.startup_period_duration);
            (j.upgrade.name.as_str(), model::now() + left)
        });
        queue::decide(&queue::Snapshot {
            now: model::now(),
            plan: &self.plan,
            refusals: &self.refusals,
            ready: &self.ready,
            preparing: self.preparing.as_ref().map(|(i, _)| i.name.as_str()),
            hook_running: self.hook.as_ref().map(|h| h.upgrade.name.as_str()),
            fleet,
            confirming,
            plan_broken: self.plan_problem.get().is_some(),
            records_broken: self.history_problem.is_some()
                || self.refusals_problem.is_some()
                || self.timing_problem.is_some(),
            timing: &self.timing,
            hold: self.hold.as_ref(),
            feed_stale: self
                .feed
                .as_ref()
                .is_some_and(|f| f.stale(model::now()).is_some()),
        })
    }

    /// Publishes the queue as this nymvisor sees it, for `status` (only when it changed).
    pub fn publish(&self, d: &Decision, host: &mut DaemonHost) {
        let confirming = host
            .state
            .confirming
            .as_ref()
            .map(|c| (c.upgrade.clone(), c.deadline));
        host.metrics(|m| {
            m.queued(self.plan.queued_up.len());
            m.queue(
                &d.entries,
                self.hold.is_some(),
                confirming.as_ref().map(|(n, t)| (n.as_str(), *t)),
            );
            m.refusals_active(self.refusals.refusals.len());
        });
        if host.state.queue.as_ref() != Some(&d.entries) {
            host.state.queue = Some(d.entries.clone());
            host.save_state();
        }
    }

    /// One log line whenever a queued upgrade starts waiting for something (or for something
    /// else, or until another time).
    pub fn say_waiting(&mut self, d: &Decision) {
        let mut said = BTreeMap::new();
        for e in &d.entries {
            let now = (e.waiting_for, e.until);
            // the fleet's waits are said by the fleet (`run/fleet/`), once per reason: the
            // entry comes and goes with each ask
            if self.said.get(&e.name) != Some(&now)
                && let Some(w) = e.waiting_for
                && w != WaitingFor::Fleet
            {
                let until = e
                    .until
                    .map(|t| format!(" until {}", model::rfc3339(t)))
                    .unwrap_or_default();
                let what = match (w, e.until) {
                    (WaitingFor::Hook, None) => "the pre-upgrade hook to finish",
                    _ => describe(w),
                };
                tracing::info!(upgrade = %e.name, "upgrade `{}` ({}) is due and waits for {what}{until}", e.name, e.version);
            }
            said.insert(e.name.clone(), now);
        }
        self.said = said;
    }

    /// Records a refusal (on disk, so a restart does not try it again) and logs it once per
    /// reason.
    pub fn refuse(
        &mut self,
        inst: &Instance,
        host: &mut DaemonHost,
        info: &UpgradeInfo,
        refusal: Refusal,
        origin: Origin,
    ) {
        if self.hook_passed.as_ref() == Some(info) {
            // the next attempt runs the hook again
            self.hook_passed = None;
        }
        let now = model::now();
        let mut new = true;
        self.update_refusals(inst, |r| {
            new = r.record(info, &refusal, origin, now).1;
        });
        let what = format!(
            "upgrade `{}` ({} {})",
            info.name, inst.config.daemon.name, info.version
        );
        let then = match self.refusals.for_entry(info).map(|r| r.next_attempt) {
            Some(NextAttempt::At(t)) => format!("; will retry at {}", model::rfc3339(t)),
            _ if origin == Origin::Upstream => "; it is not queued".to_owned(),
            _ => "; it is skipped until its plan entry changes (or `nymvisor retry`)".to_owned(),
        };
        // recorded before the log line: whoever reads the line finds the status up to date
        host.metrics(|m| m.refused(refusal.verifier.as_deref(), refusal.kind()));
        host.record_error(format!("upgrade `{}`: {}", info.name, refusal.reason));
        if new {
            tracing::error!(upgrade = %info.name, "cannot apply {what}: {}{then}", refusal.reason);
        } else {
            tracing::debug!(upgrade = %info.name, "still cannot apply {what}: {}", refusal.reason);
        }
    }

    /// Forgets the refusal of an entry that is prepared now (never the operator's cancellation).
    pub fn forget_refusal(&mut self, inst: &Instance, info: &UpgradeInfo) {
        if self
            .refusals
            .for_entry(info)
            .is_some_and(|r| r.origin != Origin::Cancelled)
        {
            self.update_refusals(inst, |r| {
                r.clear(&info.name);
            });
        }
    }

    /// Read-modify-write of `upgrade-refusals.json` under the plan lock (`nymvisor retry` edits
    /// it too). When it cannot be written the change is kept in memory.
    fn update_refusals(&mut self, inst: &Instance, mut change: impl FnMut(&mut Refusals)) {
        let path = inst.data.refusals();
        if self.refusals_problem.is_some() {
            // an unreadable file is the operator's to fix: never overwritten
            change(&mut self.refusals);
            return;
        }
        let mut memory = self.refusals.clone();
        let written = (|| {
            let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
            let mut on_disk = Refusals::load(&path)?;
            change(&mut on_disk);
            on_disk.save(&path)?;
            Ok::<_, crate::error::Error>(on_disk)
        })();
        match written {
            Ok(r) => self.refusals = r,
            Err(e) => {
                tracing::warn!("could not record the refusal in {}: {e}", path.display());
                change(&mut memory);
                self.refusals = memory;
            }
        }
    }

    /// A watched file changed on disk: the plan or the refusals. Returns whether a refusal was
    /// lifted (`nymvisor retry`): upstream deserves a fresh look then.
    pub fn reload(&mut self, inst: &Instance, host: &mut DaemonHost, path: &Path) -> bool {
        if path == inst.data.hold() {
            match Hold::load(path) {
                Ok(hold) => {
                    match (&self.hold, &hold) {
                        (None, Some(h)) => tracing::info!(
                            "upgrades are on hold{}: nothing is applied automatically until `nymvisor unhold`",
                            h.reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                        (Some(_), None) => {
                            tracing::info!("the hold is lifted: upgrades are applied again")
                        }
                        _ => {}
                    }
                    self.hold = hold;
                }
                Err(e) => {
                    // fail closed: an unreadable hold file holds, as it does at start
                    if !self.hold.as_ref().is_some_and(|h| {
                        h.reason
                            .as_deref()
                            .is_some_and(|r| r.starts_with("the hold file cannot be read"))
                    }) {
                        host.record_error(e.to_string());
                        tracing::error!("{e}; taken as a hold until it is fixed");
                    }
                    self.hold = Some(Hold::unreadable(&e));
                }
            }
            return false;
        }
        if path == inst.data.refusals() {
            match Refusals::load(path) {
                Ok(r) => {
                    if self.refusals_problem.take().is_some() {
                        tracing::info!("{} can be read again", path.display());
                    }
                    let lifted = self
                        .refusals
                        .refusals
                        .iter()
                        .any(|old| r.get(&old.name).is_none());
                    self.refusals = r;
                    return lifted;
                }
                Err(e) => {
                    let note = format!(
                        "{e}; no upgrade is applied automatically until it can be read (the node keeps running)"
                    );
                    if self.refusals_problem.as_deref() != Some(note.as_str()) {
                        host.record_error(note.clone());
                        tracing::error!("{note}");
                        self.refusals_problem = Some(note);
                    }
                }
            }
            return false;
        }
        let reloaded = self.plan_problem.reload(path);
        if let Some(problem) = self.plan_problem.get()
            && host.state.last_error.as_deref() != Some(problem)
        {
            let problem = problem.to_owned();
            host.record_error(problem);
        }
        let Some(plan) = reloaded else { return false };
        // an upstream entry taken out of the queue (`retry` of a refused one, `cancel`) and not
        // applied: upstream deserves a fresh look (its current document, not a 304)
        let dropped_upstream = self.plan.queued_up.iter().any(|q| {
            !q.platforms.is_empty() && plan.queued(&q.name).is_none() && plan.current.name != q.name
        });
        if plan != self.plan {
            tracing::info!(
                "upgrade plan changed: {} upgrade(s) queued",
                plan.queued_up.len()
            );
        }
        self.plan = plan;
        // refusals of entries that changed or left the queue are forgotten
        if self.refusals.clone().prune(&self.plan) {
            let plan = self.plan.clone();
            self.update_refusals(inst, |r| {
                r.prune(&plan);
            });
        }
        dropped_upstream
    }

    /// Queues an offer the policy admitted: its `upgrade-info.json`, then the plan.
    pub fn queue_offer(&mut self, inst: &Instance, info: &UpgradeInfo) -> Result<()> {
        let name = &info.name;
        // the spread counts from the moment this node first saw it (kept across restarts)
        let mut info = info.clone();
        info.first_seen_at = Some(model::now());
        let info = &info;
        fsutil::create_dir_all(&inst.data.upgrade_dir(name))?;
        fsutil::write_json(&inst.data.upgrade_info(name), info)?;
        let queued = info.clone();
        let replaced = self.plan.queued(name).cloned();
        transaction::update_plan(inst, &mut self.plan, |plan| {
            plan.remove(&queued.name);
            plan.insert(queued.clone());
        })?;
        // a refused entry upstream has changed since: the new one is a new candidate
        if let Some(old) = replaced {
            tracing::info!(upgrade = %name, "upstream changed the refused upgrade `{name}` ({} → {}, or its checksum or URL): the new release replaces it", old.version, info.version);
        }
        if self.refusals.get(name).is_some() && self.refusals.for_entry(info).is_none() {
            self.update_refusals(inst, |r| {
                r.clear(name);
            });
        }
        tracing::info!(upgrade = %name, stage = "discover", "new release upstream: {} {} (`{name}`), due {}", inst.config.daemon.name, info.version, model::rfc3339(info.upgrade_time));
        Ok(())
    }

    /// Records which upgrades are prepared or being prepared, for `status`.
    pub fn save_progress(&self, host: &mut DaemonHost) {
        let ready: Vec<String> = self.ready.keys().cloned().collect();
        let preparing = self.preparing.as_ref().map(|(i, _)| i.name.clone());
        if host.state.ready != ready || host.state.preparing != preparing {
            host.state.ready = ready;
            host.state.preparing = preparing;
            host.save_state();
        }
    }
}

/// What an upgrade waits for, in words (log lines).
pub(super) fn describe(w: WaitingFor) -> &'static str {
    match w {
        WaitingFor::Spread => "this node's turn in the fleet's spread",
        WaitingFor::Window => "the next maintenance window",
        WaitingFor::Hold => "the hold to be lifted (`nymvisor unhold`)",
        WaitingFor::Confirmation => "the previous upgrade's confirmation",
        WaitingFor::Backoff => "its next attempt",
        WaitingFor::Hook => "the pre-upgrade hook's next attempt",
        WaitingFor::Fleet => "its fleet group (`status` says why)",
        WaitingFor::Download => "its binary to be downloaded and verified",
        WaitingFor::Earlier => "an earlier upgrade",
        WaitingFor::Plan => "the upgrade plan to be fixed",
        WaitingFor::Records => {
            "its state files (history, refusals, fleet seed) to be readable again (see `nymvisor status`)"
        }
        WaitingFor::Feed => {
            "a fresh signed feed (the last one accepted expired; see `nymvisor status`)"
        }
    }
}
