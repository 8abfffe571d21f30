//! What the upstream source offered (through the document checks and the policy), and changes
//! of the watched files.

use super::Supervisor;
use super::poll::{PollError, PollResult};
use crate::model;
use crate::model::refusals::Origin;
use crate::upgrade::policy::{self, Admission};

impl Supervisor {
    /// A signed feed through the freshness rules ([`crate::upgrade::freshness`]), when feeds
    /// must be signed: a stale, replayed or equivocating feed is refused like a feed without a
    /// valid signature, and so is "nothing new" while the feed last accepted has expired (a
    /// frozen mirror answers `304` forever). Also says which check refused (for the metrics).
    fn check_freshness(&mut self, res: PollResult) -> (PollResult, &'static str) {
        let Some(guard) = self.book.feed.as_mut() else {
            return (res, "signature");
        };
        let now = model::now();
        match res {
            Ok(Some(found)) => {
                match guard.admit(&self.inst, &found.document_url, &found.document, now) {
                    Ok(()) => (Ok(Some(found)), "signature"),
                    Err(note) => {
                        // the whole document next time: a fresh one may come with the same validators
                        self.poller.forget();
                        (Err(PollError::Refused(note)), "feed-freshness")
                    }
                }
            }
            Ok(None) => {
                // nothing new: the clock is still checked against what was accepted
                guard.check_clock(None, now);
                match guard.stale(now) {
                    Some(note) => (Err(PollError::Refused(note)), "feed-freshness"),
                    None => (Ok(None), "signature"),
                }
            }
            other => (other, "signature"),
        }
    }

    /// An offer of the upstream source, through the document checks and the policy.
    pub(super) async fn on_polled(&mut self, res: PollResult) {
        // the HTTP stack's code is not needed again until the next poll
        self.quiet_later();
        let (res, by) = self.check_freshness(res);
        let result = match &res {
            Ok(_) => "ok",
            Err(PollError::Source(_)) => "error",
            Err(PollError::Refused(_)) => "refused",
        };
        self.host.metrics(|m| m.polled(result));
        let refused = match &res {
            Err(PollError::Refused(note)) => Some(note.clone()),
            _ => None,
        };
        if self.host.state.feed_refused != refused && !matches!(res, Err(PollError::Source(_))) {
            self.host.state.feed_refused = refused;
            self.host.save_state();
        }
        let found = match res {
            Ok(None) => return,
            Ok(Some(found)) => found,
            Err(PollError::Refused(note)) => {
                // nothing from that document is used; it is asked for again at the next poll
                self.host.metrics(|m| m.refused(Some(by), "not-now"));
                if self.poller.is_new(&note) {
                    self.host.record_error(note.clone());
                    tracing::error!("{note}; the next poll tries again");
                }
                return;
            }
            Err(PollError::Source(e)) => {
                let note = format!("polling the upstream source failed: {e}");
                // recorded before the log line: whoever reads the line finds the status up to date
                self.host.record_error(note.clone());
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
        let Ok(history) = self.book.history(&self.inst, &mut self.host) else {
            self.poller.forget();
            return;
        };
        let admission = policy::admit_offer(&self.book.context(&self.inst, &history), &offer);
        match admission {
            Admission::Known => {}
            Admission::Refused(r) => {
                if self.book.refusals.for_entry(&offer).is_none() {
                    self.book
                        .refuse(&self.inst, &mut self.host, &offer, r, Origin::Upstream);
                }
            }
            Admission::Queue => {
                if let Err(e) = self.book.queue_offer(&self.inst, &offer) {
                    // ask for the whole document next time, so the release is not lost to a 304
                    self.poller.forget();
                    tracing::error!("could not queue the upgrade offered upstream: {e}");
                    self.host.record_error(e.to_string());
                }
            }
        }
    }

    /// The plan or the refusals changed on disk.
    pub(super) fn reload_files(&mut self) {
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
            if self.book.reload(&self.inst, &mut self.host, &path) {
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
