//! The fleet as the event loop sees it: a slot asked for before the stop of an upgrade (a task,
//! so the node stays supervised while etcd answers or says "not yet"), and the records that
//! follow the upgrade — confirming, released with its confirmation, kept as failed, given back —
//! written in order, remembered on disk until etcd took them (`records.rs`).
//!
//! Requests: none while nothing is due; while a due upgrade waits, one read every
//! [`ASK_EVERY`]; after a failure, backoff from [`ASK_EVERY`] to [`MAX_BACKOFF`].

mod records;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::records::{Records, describe};
use super::Supervisor;
use crate::helper::fleet::{FleetLink, FleetOp, FleetReply};
use crate::model::run_state::FleetState;
use crate::model::{self, QueueEntry, UpgradeInfo, WaitingFor};
use crate::upgrade::queue::FleetWait;

/// How often a waiting upgrade asks again.
pub const ASK_EVERY: Duration = Duration::from_secs(2);
/// Longest wait between attempts while etcd cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// When a version the group refuses (it failed on a member) is asked for again.
const REFUSED_RETRY: Duration = Duration::from_secs(60);

/// What the job in flight was for.
enum Asked {
    /// A slot for this upgrade.
    Slot(Box<UpgradeInfo>),
    /// The first pending record.
    Record,
}

/// An upgrade waiting for the fleet.
struct Waiting {
    upgrade: String,
    why: String,
    /// When it is asked again (`None`: after the job in flight).
    ask_at: Option<Instant>,
}

/// See the module docs.
pub(super) struct Fleet {
    link: FleetLink,
    job: Option<(Asked, JoinHandle<Result<FleetReply, String>>)>,
    records: Records,
    /// The upgrade (name, version) this member holds a slot for.
    holds: Option<(String, String)>,
    /// A take whose outcome is unknown (the answer was lost): the slot may be this member's.
    maybe_holds: Option<String>,
    waiting: Option<Waiting>,
    /// When the first pending record is tried again after a failure.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// What `status` shows (saved when it changes).
    pub(super) state: FleetState,
    /// The last "why" said in the log, so each is said once.
    said: Option<String>,
}

impl Fleet {
    /// At start: the records left from the last run first, then this member's slot settled by
    /// what runs now (nymvisor may have been killed holding it). `confirming`: the upgrade
    /// awaiting its confirmation, whose slot is kept until then; `history`: what the history
    /// says of each version, confirmed or rolled back and when (`None`: it cannot be read, and
    /// a slot that is not awaiting its confirmation is kept as it is).
    pub(super) fn new(
        link: FleetLink,
        inst: &crate::instance::Instance,
        current_version: &str,
        confirming: Option<&UpgradeInfo>,
        history: Option<Vec<crate::model::fleet::HistoryMark>>,
    ) -> Fleet {
        let f = &inst.config.fleet;
        let state = FleetState {
            group: f.group.clone(),
            member: inst.fleet_member.clone(),
            ..FleetState::default()
        };
        let mut records = Records::load(inst.data.fleet_pending(), &state.group, &state.member);
        records.push(FleetOp::Settle {
            current: current_version.to_owned(),
            confirming: confirming.map(|c| c.version.clone()),
            history,
        });
        tracing::info!(
            "fleet: member {} of group {} ({} slot(s){})",
            state.member,
            state.group,
            f.slots,
            if f.canary { ", a canary" } else { "" }
        );
        let mut fleet = Fleet {
            link,
            job: None,
            records,
            holds: confirming.map(|c| (c.name.clone(), c.version.clone())),
            maybe_holds: None,
            waiting: None,
            retry_at: None,
            backoff: ASK_EVERY,
            state,
            said: None,
        };
        fleet.show();
        fleet
    }

    /// Whether this member holds a slot for `upgrade`.
    pub(super) fn holds(&self, upgrade: &str) -> bool {
        self.holds.as_ref().is_some_and(|(n, _)| n == upgrade)
    }

    /// What the queue needs to know: the upgrade waiting for the fleet, if any. The time it is
    /// asked again is derived from the monotonic clock at each call, so the queue (wall time)
    /// and [`Fleet::ask`] (monotonic) agree whatever the wall clock does.
    pub(super) fn wait(&self) -> Option<FleetWait<'_>> {
        let now = Instant::now();
        self.waiting.as_ref().map(|w| FleetWait {
            upgrade: &w.upgrade,
            why: &w.why,
            ask_at: w
                .ask_at
                .map(|at| model::now() + at.saturating_duration_since(now)),
        })
    }

    /// When a pending record is tried again, if one waits for that.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| self.job.is_none())
    }

    /// The job in flight, for the event loop. Cancel-safe.
    pub(super) async fn finished(&mut self) -> Result<FleetReply, String> {
        match self.job.as_mut() {
            Some((_, h)) => h
                .await
                .unwrap_or_else(|e| Err(format!("the fleet task failed: {e}"))),
            None => std::future::pending().await,
        }
    }

    /// Starts the next pending record when it is time (called each turn of the loop).
    pub(super) fn kick(&mut self) {
        if self.job.is_some() || self.retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        if let Some(op) = self.records.front().cloned() {
            self.retry_at = None;
            self.spawn(Asked::Record, op);
        }
    }

    /// Asks for a slot for `info`: the queue found it due (its wait, if any, is over), so it
    /// is asked now — unless a job is in flight or records are to be written first.
    pub(super) fn ask(&mut self, info: &UpgradeInfo) {
        let same = |w: &Waiting| w.upgrade == info.name;
        if self.job.is_some() || !self.records.is_empty() {
            let why = match (self.records.front(), &self.state.error) {
                (Some(_), Some(e)) => format!(
                    "nothing is applied until this member's fleet records are written, so the node keeps running ({e})"
                ),
                _ => self.waiting.as_ref().filter(|w| same(w)).map_or_else(
                    || "asking the fleet for a slot".to_owned(),
                    |w| w.why.clone(),
                ),
            };
            self.waiting = Some(Waiting {
                upgrade: info.name.clone(),
                why,
                ask_at: None,
            });
            self.show();
            return;
        }
        let why = self
            .waiting
            .take()
            .filter(|w| same(w))
            .map_or_else(|| "asking the fleet for a slot".to_owned(), |w| w.why);
        self.waiting = Some(Waiting {
            upgrade: info.name.clone(),
            why,
            ask_at: None,
        });
        let op = FleetOp::Acquire {
            upgrade: info.name.clone(),
            version: info.version.clone(),
            immediate: info.immediate,
        };
        self.spawn(Asked::Slot(Box::new(info.clone())), op);
        self.show();
    }

    /// Queues a record (written to disk first, so a restart still writes it).
    fn record(&mut self, op: FleetOp) {
        self.records.push(op);
        self.retry_at = None;
        self.backoff = ASK_EVERY;
        self.show();
    }

    fn spawn(&mut self, asked: Asked, op: FleetOp) {
        let link = self.link.clone();
        let handle = tokio::spawn(async move { link.call(op).await });
        self.job = Some((asked, handle));
    }

    /// The upgrade's transaction or confirmation ended for `info`. `outcome`: `confirming`
    /// (the new version runs), `confirmed`, `applied` (nothing to confirm: a manual upgrade or
    /// no restart), `rolled-back`, `unhealthy` (kept without a healthy answer), `failed` (before
    /// the swap), `withdrawn`; `why` for a failure.
    pub(super) fn upgrade_ended(&mut self, info: &UpgradeInfo, outcome: &str, why: &str) {
        if !self.holds(&info.name) {
            return;
        }
        let version = info.version.clone();
        let op = match outcome {
            "confirming" => FleetOp::Confirming {
                upgrade: info.name.clone(),
                version,
            },
            "confirmed" => FleetOp::Release { version },
            // a version that never answered healthy is no good news for the group, even
            // where this node keeps it
            "rolled-back" | "unhealthy" => FleetOp::Fail {
                upgrade: info.name.clone(),
                version,
                reason: why.to_owned(),
            },
            // nothing ran (or nothing is watched): no confirmation is recorded
            "applied" | "failed" | "withdrawn" => FleetOp::Abandon { version },
            _ => return,
        };
        if !matches!(op, FleetOp::Confirming { .. }) {
            self.holds = None;
        }
        self.record(op);
    }

    /// The job in flight finished with `result`. Returns an upgrade the group refuses (its
    /// version failed on a member) and why: the caller records the refusal, so later upgrades
    /// are not held behind it.
    pub(super) fn on_finished(
        &mut self,
        result: Result<FleetReply, String>,
    ) -> Option<(UpgradeInfo, String)> {
        let (asked, _) = self.job.take()?;
        let mut refused = None;
        let now = Instant::now();
        match (asked, result) {
            (Asked::Record, Ok(reply)) => {
                self.succeeded();
                self.records.pop();
                match reply {
                    FleetReply::Settled { keeps, note } => {
                        if keeps.is_none() {
                            self.holds = None;
                        }
                        if !note.is_empty() {
                            tracing::info!("fleet: {note}");
                        }
                    }
                    FleetReply::Done { note } => tracing::info!("fleet: {note}"),
                    other => tracing::debug!(?other, "fleet record written"),
                }
            }
            (Asked::Record, Err(e)) => {
                let what = self.records.front().map(describe).unwrap_or_default();
                let error = format!("cannot write {what}: {e}");
                if self.state.error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(
                        "fleet: {error}; kept and tried again (2 s doubling to a minute)"
                    );
                }
                self.retry_at = Some(now + self.failed(error));
            }
            (Asked::Slot(info), Ok(FleetReply::Acquired { through_hold })) => {
                if through_hold {
                    tracing::warn!(upgrade = %info.name, "fleet: the group is on hold, but `{}` was queued with `add-upgrade --now`: the fleet hold is overridden for it", info.name);
                }
                self.succeeded();
                self.waiting = None;
                self.said = None;
                self.maybe_holds = None;
                self.holds = Some((info.name.clone(), info.version.clone()));
                tracing::info!(upgrade = %info.name, "fleet: took a slot of group {} for {} {}", self.state.group, info.name, info.version);
            }
            (
                Asked::Slot(info),
                Ok(FleetReply::Waiting {
                    why,
                    refused: r,
                    on_hold,
                }),
            ) => {
                self.succeeded();
                self.maybe_holds = None;
                self.state.on_hold = on_hold;
                if r {
                    self.waiting = None;
                    self.said = None;
                    refused = Some((*info, why));
                } else {
                    if self.said.as_deref() != Some(why.as_str()) {
                        tracing::info!(upgrade = %info.name, "fleet: `{}` waits: {why}", info.name);
                        self.said = Some(why.clone());
                    }
                    self.wait_until(&info, why, now + ASK_EVERY);
                }
            }
            (Asked::Slot(info), Ok(other)) => {
                let why = format!("the fleet job gave an unexpected answer: {other:?}");
                self.wait_until(&info, why, now + ASK_EVERY);
            }
            (Asked::Slot(info), Err(e)) => {
                // the take may have landed before the answer was lost
                self.maybe_holds = Some(info.version.clone());
                self.state.on_hold = false;
                let why = format!(
                    "the fleet cannot be asked for a slot, so nothing is applied (the node keeps running): {e}"
                );
                let after = self.failed(e);
                if self.said.as_deref() != Some(why.as_str()) {
                    tracing::warn!(upgrade = %info.name, "fleet: `{}` waits: {why}; asked again in {}", info.name, humantime::format_duration(after));
                    self.said = Some(why.clone());
                }
                self.wait_until(&info, why, now + after);
            }
        }
        // an upgrade that waited for this job is asked for now
        if let Some(w) = self.waiting.as_mut()
            && w.ask_at.is_none()
            && self.job.is_none()
        {
            w.ask_at = Some(now);
        }
        self.show();
        refused
    }

    fn wait_until(&mut self, info: &UpgradeInfo, why: String, at: Instant) {
        self.waiting = Some(Waiting {
            upgrade: info.name.clone(),
            why,
            ask_at: Some(at),
        });
    }

    /// A job succeeded: the backoff starts over.
    fn succeeded(&mut self) {
        self.backoff = ASK_EVERY;
        self.state.error = None;
    }

    /// A job failed: said in `status`; returns when to try again (2 s, doubling to a minute).
    fn failed(&mut self, error: String) -> Duration {
        self.state.error = Some(error);
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        after
    }

    /// What `status` and the metrics show, from what this holds.
    fn show(&mut self) {
        self.state.holds = self.holds.as_ref().map(|(n, _)| n.clone());
        self.state.waiting = self.waiting.as_ref().map(|w| w.why.clone());
        self.state.on_hold &= self.state.waiting.is_some();
        self.state.pending = self.records.describe_all();
    }

    /// After each decision of the queue (`entries`): a wait for an upgrade that no longer waits
    /// for the fleet (it left the plan, a hold or a window came first) is forgotten — a take
    /// whose answer was lost is given back then — and a slot taken for an upgrade that is not
    /// applied after all before its transaction began is given back: a slot is never kept by a
    /// member that does not upgrade. `applying`: the upgrade the queue says is due;
    /// `confirming`: an upgrade awaits its confirmation (its slot is kept).
    pub(super) fn tidy(
        &mut self,
        entries: &[QueueEntry],
        applying: Option<&str>,
        confirming: bool,
    ) {
        let still_waits = |name: &str| {
            applying == Some(name)
                || entries
                    .iter()
                    .any(|e| e.name == name && e.waiting_for == Some(WaitingFor::Fleet))
        };
        if self.job.is_none()
            && self
                .waiting
                .as_ref()
                .is_some_and(|w| !still_waits(&w.upgrade))
        {
            self.waiting = None;
            self.said = None;
            if let Some(version) = self.maybe_holds.take() {
                self.record(FleetOp::Abandon { version });
            }
        }
        if let Some((name, version)) = self.holds.clone()
            && !confirming
            && applying != Some(name.as_str())
        {
            tracing::info!(upgrade = %name, "fleet: `{name}` is not applied now after all: its slot is given back");
            self.holds = None;
            self.record(FleetOp::Abandon { version });
        }
        self.show();
    }
}

impl Supervisor {
    /// The upgrade waiting for the fleet, for the queue.
    pub(super) fn fleet_wait(&self) -> Option<FleetWait<'_>> {
        self.fleet.as_ref().and_then(Fleet::wait)
    }

    /// The fleet's job finished: noted, and `status` told when what it shows changed.
    pub(super) fn on_fleet(&mut self, result: Result<FleetReply, String>) {
        let Some(f) = self.fleet.as_mut() else {
            return;
        };
        if let Some((info, why)) = f.on_finished(result) {
            // asked again after a while (`fleet retry` lets it through then); its verified
            // binary stays ready
            let r = crate::refusal::Refusal {
                reason: format!("the fleet group refuses it: {why}"),
                retry: crate::refusal::Retry::After(REFUSED_RETRY),
                verifier: None,
            };
            self.refuse(&info, r);
        }
        self.publish_fleet();
        // what the job's spawn and answer needed is given back once the loop waits again
        self.quiet_later();
    }

    /// Saves the fleet's standing for `status` and the metrics, when it changed.
    pub(super) fn publish_fleet(&mut self) {
        let Some(f) = self.fleet.as_ref() else {
            return;
        };
        let state = f.state.clone();
        self.host.metrics(|m| {
            m.fleet(
                state.holds.is_some(),
                state.waiting.is_some(),
                state.on_hold,
            )
        });
        if self.host.state.fleet.as_ref() != Some(&state) {
            self.host.state.fleet = Some(state);
            self.host.save_state();
        }
    }

    /// The transaction or the confirmation ended for `info`: the fleet's record follows.
    pub(super) fn fleet_outcome(&mut self, info: &UpgradeInfo, outcome: &str, why: &str) {
        if let Some(f) = self.fleet.as_mut() {
            f.upgrade_ended(info, outcome, why);
            self.publish_fleet();
        }
    }
}

#[cfg(test)]
mod tests;
