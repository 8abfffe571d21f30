//! The fleet as the event loop sees it: a slot asked for before the stop of an upgrade (a task,
//! so the node stays supervised while etcd answers or says "not yet"), and the records that
//! follow the upgrade — confirming, released with its confirmation, kept as failed, given back —
//! written in order, remembered on disk until etcd took them (`fleet-pending.json`).
//!
//! Requests: none while nothing is due; while a due upgrade waits, one read every
//! [`ASK_EVERY`]; after a failure, backoff from [`ASK_EVERY`] to [`MAX_BACKOFF`].

use std::collections::VecDeque;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Supervisor;
use crate::helper::fleet::{FleetLink, FleetOp, FleetReply};
use crate::model::run_state::FleetState;
use crate::model::{self, UpgradeInfo};
use crate::upgrade::queue::FleetWait;

/// How often a waiting upgrade asks again.
pub const ASK_EVERY: Duration = Duration::from_secs(2);
/// When a version the group refuses (it failed on a member) is asked for again.
const REFUSED_RETRY: Duration = Duration::from_secs(60);
/// Longest wait between attempts while etcd cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    ask_at: Option<(Instant, OffsetDateTime)>,
}

/// See the module docs.
pub(super) struct Fleet {
    link: FleetLink,
    job: Option<(Asked, JoinHandle<Result<FleetReply, String>>)>,
    pending: VecDeque<FleetOp>,
    pending_path: std::path::PathBuf,
    /// The upgrade (name, version) this member holds a slot for.
    holds: Option<(String, String)>,
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
    /// awaiting its confirmation, whose slot is kept until then.
    pub(super) fn new(
        link: FleetLink,
        inst: &crate::instance::Instance,
        current_version: &str,
        confirming: Option<&UpgradeInfo>,
    ) -> Fleet {
        let pending_path = inst.data.fleet_pending();
        let mut pending: VecDeque<FleetOp> = match crate::fsutil::read_json_opt(&pending_path) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                // fail closed on what it would have said: the slot is settled by what runs
                tracing::warn!(
                    "{e}; the fleet records it held are not written (this member's slot is settled from what runs instead)"
                );
                VecDeque::new()
            }
        };
        pending.push_back(FleetOp::Settle {
            current: current_version.to_owned(),
            confirming: confirming.map(|c| c.version.clone()),
        });
        let f = &inst.config.fleet;
        let state = FleetState {
            group: f.group.clone(),
            member: inst.fleet_member.clone(),
            ..FleetState::default()
        };
        tracing::info!(
            "fleet: member {} of group {} ({} slot(s){})",
            state.member,
            state.group,
            f.slots,
            if f.canary { ", a canary" } else { "" }
        );
        Fleet {
            link,
            job: None,
            pending,
            pending_path,
            holds: confirming.map(|c| (c.name.clone(), c.version.clone())),
            waiting: None,
            retry_at: None,
            backoff: ASK_EVERY,
            state,
            said: None,
        }
    }

    /// Whether this member holds a slot for `upgrade`.
    pub(super) fn holds(&self, upgrade: &str) -> bool {
        self.holds.as_ref().is_some_and(|(n, _)| n == upgrade)
    }

    /// What the queue needs to know: the upgrade waiting for the fleet, if any.
    pub(super) fn wait(&self) -> Option<FleetWait<'_>> {
        self.waiting.as_ref().map(|w| FleetWait {
            upgrade: &w.upgrade,
            why: &w.why,
            ask_at: w.ask_at.map(|(_, wall)| wall),
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
        if let Some(op) = self.pending.front().cloned() {
            self.retry_at = None;
            self.spawn(Asked::Record, op);
        }
    }

    /// Asks for a slot for `info` (now, unless a job is in flight or it was told to wait).
    pub(super) fn ask(&mut self, info: &UpgradeInfo) {
        let due = self
            .waiting
            .as_ref()
            .filter(|w| w.upgrade == info.name)
            .is_none_or(|w| w.ask_at.is_some_and(|(at, _)| at <= Instant::now()));
        if self.job.is_some() || !self.pending.is_empty() || !due {
            // after the job in flight, or the records pending (in that order)
            let why = match (self.pending.front(), &self.state.error) {
                (Some(_), Some(e)) => format!(
                    "nothing is applied until this member's fleet records are written, so the node keeps running ({e})"
                ),
                _ => self
                    .waiting
                    .as_ref()
                    .filter(|w| w.upgrade == info.name)
                    .map_or_else(
                        || "asking the fleet for a slot".to_owned(),
                        |w| w.why.clone(),
                    ),
            };
            if self.job.is_some() || !self.pending.is_empty() {
                self.waiting = Some(Waiting {
                    upgrade: info.name.clone(),
                    why,
                    ask_at: None,
                });
            }
            return;
        }
        let why = self
            .waiting
            .take()
            .filter(|w| w.upgrade == info.name)
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
    }

    /// Queues a record (written to disk first, so a restart still writes it).
    fn record(&mut self, op: FleetOp) {
        self.pending.push_back(op);
        self.save_pending();
        self.retry_at = None;
        self.backoff = ASK_EVERY;
    }

    fn save_pending(&mut self) {
        // the settle of the start is not saved: every start settles anew
        let lasting: Vec<&FleetOp> = self
            .pending
            .iter()
            .filter(|op| !matches!(op, FleetOp::Settle { .. }))
            .collect();
        let saved = if lasting.is_empty() {
            match std::fs::remove_file(&self.pending_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(crate::Error::io("failed to remove", &self.pending_path, e))
                }
                _ => Ok(()),
            }
        } else {
            crate::fsutil::write_json(&self.pending_path, &lasting)
        };
        if let Err(e) = saved {
            tracing::warn!("the fleet records to write are kept in memory only: {e}");
        }
        self.state.pending = self.pending.iter().map(describe).collect();
    }

    fn spawn(&mut self, asked: Asked, op: FleetOp) {
        let link = self.link.clone();
        let handle = tokio::spawn(async move { link.call(op).await });
        self.job = Some((asked, handle));
    }

    /// The upgrade's transaction ended (`outcome` as for the post-upgrade hook: `applied`,
    /// `confirmed`, `rolled-back`, `failed` before the swap, `withdrawn`); `why` for a failure.
    pub(super) fn upgrade_ended(&mut self, info: &UpgradeInfo, outcome: &str, why: &str) {
        let holds = self.holds(&info.name);
        match outcome {
            "confirming" if holds => self.record(FleetOp::Confirming {
                upgrade: info.name.clone(),
                version: info.version.clone(),
            }),
            "confirmed" | "applied" if holds => {
                self.holds = None;
                self.record(FleetOp::Release {
                    version: info.version.clone(),
                });
            }
            "rolled-back" if holds => {
                self.holds = None;
                self.record(FleetOp::Fail {
                    upgrade: info.name.clone(),
                    version: info.version.clone(),
                    reason: why.to_owned(),
                });
            }
            "failed" | "withdrawn" if holds => {
                self.holds = None;
                self.record(FleetOp::Abandon {
                    version: info.version.clone(),
                });
            }
            _ => {}
        }
        self.state.holds = self.holds.as_ref().map(|(n, _)| n.clone());
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
                self.backoff = ASK_EVERY;
                self.state.error = None;
                let op = self.pending.pop_front();
                self.save_pending();
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
                    other => tracing::debug!(?op, ?other, "fleet record written"),
                }
            }
            (Asked::Record, Err(e)) => {
                let what = self.pending.front().map(describe).unwrap_or_default();
                let error = format!("cannot write {what}: {e}");
                if self.state.error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(
                        "fleet: {error}; kept and tried again (2 s doubling to a minute)"
                    );
                }
                self.fail(now, error);
                self.retry_at = Some(now + self.backoff);
            }
            (Asked::Slot(info), Ok(FleetReply::Acquired { through_hold })) => {
                if through_hold {
                    tracing::warn!(upgrade = %info.name, "fleet: the group is on hold, but `{}` was queued with `add-upgrade --now`: the fleet hold is overridden for it", info.name);
                }
                self.backoff = ASK_EVERY;
                self.state.error = None;
                self.waiting = None;
                self.said = None;
                self.holds = Some((info.name.clone(), info.version.clone()));
                tracing::info!(upgrade = %info.name, "fleet: took a slot of group {} for {} {}", self.state.group, info.name, info.version);
            }
            (Asked::Slot(info), Ok(FleetReply::Waiting { why, refused: true, .. })) => {
                self.state.on_hold = false;
                self.backoff = ASK_EVERY;
                self.state.error = None;
                self.waiting = None;
                self.said = None;
                refused = Some((*info, why));
            }
            (Asked::Slot(info), Ok(FleetReply::Waiting { why, on_hold, .. })) => {
                self.backoff = ASK_EVERY;
                self.state.error = None;
                self.state.on_hold = on_hold;
                if self.said.as_deref() != Some(why.as_str()) {
                    tracing::info!(upgrade = %info.name, "fleet: `{}` waits: {why}", info.name);
                    self.said = Some(why.clone());
                }
                self.wait_until(&info, why, now + ASK_EVERY);
            }
            (Asked::Slot(info), Ok(other)) => {
                let why = format!("the fleet job gave an unexpected answer: {other:?}");
                self.wait_until(&info, why, now + ASK_EVERY);
            }
            (Asked::Slot(info), Err(e)) => {
                self.state.on_hold = false;
                let why = format!(
                    "the fleet cannot be asked for a slot, so nothing is applied (the node keeps running): {e}"
                );
                self.fail(now, e);
                if self.said.as_deref() != Some(why.as_str()) {
                    tracing::warn!(upgrade = %info.name, "fleet: `{}` waits: {why}; asked again in {}", info.name, humantime::format_duration(self.backoff));
                    self.said = Some(why.clone());
                }
                let at = now + self.backoff;
                self.wait_until(&info, why, at);
            }
        }
        // an upgrade that waited for this job is asked for now
        if let Some(w) = self.waiting.as_mut()
            && w.ask_at.is_none()
            && self.job.is_none()
        {
            w.ask_at = Some((now, model::now()));
        }
        self.state.holds = self.holds.as_ref().map(|(n, _)| n.clone());
        self.state.waiting = self.waiting.as_ref().map(|w| w.why.clone());
        self.state.on_hold &= self.state.waiting.is_some();
        refused
    }

    fn wait_until(&mut self, info: &UpgradeInfo, why: String, at: Instant) {
        let wall = model::now() + at.saturating_duration_since(Instant::now());
        self.waiting = Some(Waiting {
            upgrade: info.name.clone(),
            why,
            ask_at: Some((at, wall)),
        });
    }

    /// A failed job: said in `status`, and the next attempt backs off.
    fn fail(&mut self, _now: Instant, error: String) {
        self.state.error = Some(error);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// After each decision of the queue: a wait for an upgrade no longer queued is forgotten,
    /// and a slot taken for an upgrade that is not applied after all (a hold or a window came
    /// first, it was cancelled) before its transaction began is given back — a slot is never
    /// kept by a member that does not upgrade. `applying`: the upgrade the queue says is due;
    /// `confirming`: an upgrade awaits its confirmation (its slot is kept).
    pub(super) fn tidy(
        &mut self,
        queued: impl Fn(&str) -> bool,
        applying: Option<&str>,
        confirming: bool,
    ) {
        if self.waiting.as_ref().is_some_and(|w| !queued(&w.upgrade)) {
            self.waiting = None;
            self.said = None;
            self.state.waiting = None;
            self.state.on_hold = false;
        }
        if let Some((name, version)) = self.holds.clone()
            && !confirming
            && applying != Some(name.as_str())
        {
            tracing::info!(upgrade = %name, "fleet: `{name}` is not applied now after all: its slot is given back");
            self.holds = None;
            self.record(FleetOp::Abandon { version });
            self.state.holds = None;
        }
    }
}

/// A pending record, in words (for `status`).
fn describe(op: &FleetOp) -> String {
    match op {
        FleetOp::Confirming { version, .. } => format!("the slot's state (confirming {version})"),
        FleetOp::Release { version } => format!("the release of the slot ({version} confirmed)"),
        FleetOp::Fail {
            version, reason, ..
        } => format!("the failure of {version} ({reason})"),
        FleetOp::Abandon { version } => format!("the return of the slot for {version}"),
        FleetOp::Settle { .. } => "the check of this member's slot at start".to_owned(),
        other => format!("{other:?}"),
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
            // asked again after a while: `fleet retry` lets it through then
            let r = crate::refusal::Refusal {
                reason: format!("the fleet group refuses it: {why}"),
                retry: crate::refusal::Retry::After(REFUSED_RETRY),
                verifier: None,
            };
            self.book.ready.remove(&info.name);
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
