//! The prepare task of the event loop: started when the queue says what to prepare (the
//! policy asked first), and its outcome — ready, with when it will be applied, or refused.

use super::{Supervisor, book};
use crate::model;
use crate::model::refusals::Origin;
use crate::refusal::Refusal;
use crate::upgrade::queue::Decision;

impl Supervisor {
    /// Starts preparing what the queue says, once the policy allows it.
    pub(super) fn start_preparing(&mut self, d: &Decision) {
        let Some(info) = d.prepare.clone() else {
            return;
        };
        if self.book.preparing.is_some() {
            return;
        }
        // without the history the rules cannot be asked; the queue waits for it (not a refusal
        // of this upgrade, whose backoff would outlast the fix)
        if self.book.history(&self.inst, &mut self.host).is_err() {
            return;
        }
        if let Err(r) = self.book.may_apply(&self.inst, &mut self.host, &info) {
            self.book
                .refuse(&self.inst, &mut self.host, &info, r, Origin::Plan);
            return;
        }
        let preparer = self.preparer.clone();
        let task_info = info.clone();
        tracing::debug!(upgrade = %info.name, "preparing");
        let handle = tokio::spawn(async move { preparer.prepare(&task_info).await });
        self.book.preparing = Some((info, handle));
        self.book.save_progress(&mut self.host);
    }

    pub(super) fn on_prepared(&mut self, res: Result<(), Refusal>) {
        for (verifier, secs) in self.preparer.take_timings() {
            self.host.metrics(|m| m.verifier_ran(&verifier, secs));
        }
        let Some((info, _)) = self.book.preparing.take() else {
            return;
        };
        if self.book.plan.queued(&info.name) != Some(&info) {
            // cancelled or changed while it was being prepared: what is queued now is looked at anew
            tracing::debug!(upgrade = %info.name, "prepared an entry that is no longer queued as it was");
            self.book.save_progress(&mut self.host);
            return;
        }
        match res {
            Ok(()) => {
                self.book.forget_refusal(&self.inst, &info);
                self.book.ready.insert(info.name.clone(), info.clone());
                // when it will really be applied: after the spread, windows and hold
                let d = self
                    .book
                    .decide(&self.inst, self.confirm_at, self.fleet_wait());
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
                .refuse(&self.inst, &mut self.host, &info, r, Origin::Plan),
        }
        self.book.save_progress(&mut self.host);
    }
}
