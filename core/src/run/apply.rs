//! Applying the upgrade the queue says is due (through the policy, the free-space check, the
//! pre-upgrade hook, the last word before the stop and a second hash of the binary), what the
//! transaction came to, and the confirmation of a new version.

use tokio::time::Instant;

use super::{RECORD_RETRY, RunOutcome, Step, Supervisor, Unrecorded};
use crate::backup;
use crate::daemon::Daemon;
use crate::error::Result;
use crate::model::{self, Journal, UpgradeInfo};
use crate::refusal::Refusal;
use crate::upgrade::hooks;
use crate::upgrade::transaction::{self, Applied};

impl Supervisor {
    /// Applies the upgrade the queue says is due. With no daemon running (`idle`), a due upgrade
    /// whose binary is in place is prepared on the spot — unless third-party checks (plugins,
    /// verifier commands) are configured: those never keep the node from starting, so it starts
    /// first and the upgrade follows once verified.
    pub(super) async fn step_upgrade(
        &mut self,
        daemon: Option<Daemon>,
        idle: bool,
    ) -> Result<Step> {
        let d = self
            .book
            .decide(&self.inst, self.confirm_at, self.fleet_wait());
        let n = &self.inst.config.nymvisor;
        // with third-party checks, only once the node has been started by this nymvisor
        let third_party_checks =
            !self.started_once && (!n.plugin_paths.is_empty() || !n.verifier_commands.is_empty());
        let info = match (d.apply, d.due_unprepared) {
            (Some(info), _) => info,
            (None, Some(info))
                if idle && !third_party_checks && self.preparer.binary_present(&info) =>
            {
                if let Err(r) = self.book.may_apply(&self.inst, &mut self.host, &info) {
                    self.refuse(&info, r);
                    return Ok(Step::Continue(daemon));
                }
                let t = std::time::Instant::now();
                let preparer = self.preparer.clone();
                let prepared = match self.host.watched(preparer.prepare(&info)).await {
                    Ok(r) => r,
                    Err(sig) => return Ok(Step::Exit(RunOutcome::Stopped(sig))),
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
        if let Err(r) = self.book.may_apply(&self.inst, &mut self.host, &info) {
            self.book.ready.remove(&info.name);
            self.refuse(&info, r);
            return Ok(Step::Continue(daemon));
        }
        if self.backups.backup.is_some()
            && let Err(e) =
                backup::check_free_space(&self.inst.backup_plan(self.backups.backup_min_free))
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
        // the last word before the stop (a hook may have taken minutes): a hold placed meanwhile,
        // or a hold file that cannot be read, holds; a window that closed meanwhile waits
        if !info.immediate && !self.last_moment_allows(&info) {
            // the hook runs again before the next attempt: what it did may be stale by then
            self.book.hook_passed = None;
            return Ok(Step::Continue(daemon));
        }
        // a slot of the fleet group, after the hook and the hold (the hook's agreement holds
        // while the fleet is asked): a task, the node runs on meanwhile
        if let Some(f) = self.fleet.as_mut()
            && !f.holds(&info.name)
        {
            if info.immediate && self.book.hold.is_some() {
                tracing::debug!(upgrade = %info.name, "queued with --now: asks the fleet despite the local hold");
            }
            f.ask(&info);
            // prepared on the spot (idle): kept as ready for when the slot comes
            self.book.ready.insert(info.name.clone(), info.clone());
            self.publish_fleet();
            return Ok(Step::Continue(daemon));
        }
        self.book.hook_passed = None;
        // the binary verified earlier is hashed again: what changed on disk since is not started
        let preparer = self.preparer.clone();
        let rechecked = match self.host.watched(preparer.recheck(&info)).await {
            Ok(r) => r,
            Err(sig) => {
                let Some(running) = daemon else {
                    return Ok(Step::Exit(RunOutcome::Stopped(sig)));
                };
                self.host.stop_for_exit(running, sig).await;
                return Ok(Step::Exit(RunOutcome::Stopped(sig)));
            }
        };
        if let Err(r) = rechecked {
            self.book.ready.remove(&info.name);
            self.fleet_outcome(&info, "failed", &r.reason);
            self.refuse(&info, r);
            return Ok(Step::Continue(daemon));
        }
        // whatever else was prepared was checked against the version that is about to be replaced
        self.book.ready.clear();
        let name = info.name.clone();
        let previous_version = self.book.plan.current.version.clone();
        // nothing of the code the downtime runs is faulted in during it
        crate::memory::warm_up();
        let previous = self.book.plan.current.clone();
        let up = transaction::Upgrade {
            info: &info,
            previous: &previous,
            daemon_name: &self.inst.config.daemon.name,
            restart_after_upgrade: self.inst.config.daemon.restart_after_upgrade,
        };
        let mut port = transaction::LivePort {
            inst: &self.inst,
            settings: &self.backups,
            control: &mut self.host,
            plan: &mut self.book.plan,
        };
        let applied = transaction::apply(&mut port, up, daemon).await;
        self.quiet_later();
        self.book.save_progress(&mut self.host);
        match applied {
            Applied::Done {
                daemon,
                restart_wanted,
                confirming,
                downtime,
                unrecorded,
            } => {
                self.life.settled();
                self.unrecorded = unrecorded.map(|j| Unrecorded {
                    upgrade: j.upgrade.clone(),
                    journal: Some(*j),
                    retry_at: Instant::now() + RECORD_RETRY,
                    confirmed: false,
                });
                if daemon.is_some() {
                    self.daemon_info();
                }
                if let Some(d) = downtime {
                    self.host.metrics(|m| m.downtime(d));
                }
                self.book.confirming = confirming.map(|j| *j);
                // the fleet's slot: confirming, or released when nothing is to be confirmed
                let state = if self.book.confirming.is_some() {
                    "confirming"
                } else {
                    "applied"
                };
                self.fleet_outcome(&info, state, "");
                if daemon.is_some() {
                    self.life.started();
                    if let Some(h) = self.health.as_mut() {
                        h.daemon_started();
                    }
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
                self.fleet_outcome(&info, "withdrawn", &why);
                // the watch brings the change itself (the plan, the hold) to the queue
                self.reload_files();
                Ok(Step::Continue(daemon))
            }
            Applied::Aborted { daemon, refusal } => {
                tracing::error!(upgrade = %name, "upgrade abandoned before the swap, the current binary stays: {refusal}");
                self.upgrade_outcome(&info, &previous_version, "failed", &refusal.reason);
                self.refuse(&info, refusal);
                Ok(Step::Continue(daemon))
            }
        }
    }

    /// What the upgrade awaiting confirmation waits for, for `status` (saved when it changed).
    pub(super) fn publish_confirmation(&mut self) {
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
        let same = match (&self.host.state.confirming, &wanted) {
            (Some(a), Some(b)) => {
                a.upgrade == b.upgrade
                    && a.confirmed_by == b.confirmed_by
                    && (a.deadline - b.deadline).abs() < time::Duration::seconds(1)
            }
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.host.state.confirming = wanted;
            self.host.save_state();
        }
    }

    /// An upgrade's outcome is known: counted, told to the post-upgrade hook and to the fleet
    /// (`why`: what failed, for the fleet's record).
    pub(super) fn upgrade_outcome(
        &mut self,
        upgrade: &UpgradeInfo,
        previous_version: &str,
        outcome: &'static str,
        why: &str,
    ) {
        self.fleet_outcome(upgrade, outcome, why);
        self.host.metrics(|m| m.upgrade(outcome));
        hooks::spawn_post(
            &self.inst,
            &self.host.spec.env,
            upgrade,
            previous_version,
            outcome,
        );
    }

    /// Confirms the upgrade awaiting confirmation; `how` says what confirmed it (for the log).
    pub(super) fn confirm(&mut self, how: &str) -> Result<()> {
        if let Some(journal) = self.book.confirming.take() {
            // the history says `confirmed` from now on (it said `pending`)
            let path = self.inst.data.history();
            match crate::model::UpgradeHistory::load(&path) {
                Ok(mut h) => {
                    if h.confirm(&journal.upgrade.name, journal.started_at) {
                        if let Err(e) = h.save(&path) {
                            tracing::warn!(
                                "could not record the confirmation in {}: {e}",
                                path.display()
                            );
                        }
                    } else if let Some(u) = self
                        .unrecorded
                        .as_mut()
                        .filter(|u| u.upgrade.name == journal.upgrade.name)
                    {
                        // its record has not landed yet: it will say `confirmed` when it does
                        u.confirmed = true;
                    }
                }
                Err(e) => tracing::warn!("could not record the confirmation: {e}"),
            }
            Journal::clear(self.inst.data.root())?;
            // counted before the log line: whoever reads the line finds the metric up to date
            self.upgrade_outcome(&journal.upgrade, &journal.previous.version, "confirmed", "");
            tracing::info!(upgrade = %journal.upgrade.name, stage = "confirm", "upgrade confirmed: {} {} {how}", self.inst.config.daemon.name, journal.upgrade.version);
        }
        self.life.settled();
        self.host.metrics(|m| m.startup_failures(0));
        self.quiet_later();
        Ok(())
    }
}
