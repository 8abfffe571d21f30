//! What the upstream source offered (through the document checks and the policy), and changes
//! of the watched files.

use super::Supervisor;
use super::poll::{DOCUMENT_CHECKS, PollResult, document_refused};

/// The check that refuses stale, replayed and equivocating signed feeds (for the metrics).
const FRESHNESS: &str = "feed-freshness";
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
            return (res, DOCUMENT_CHECKS);
        };
        let now = model::now();
        match res {
            Ok(Some(found)) => {
                match guard.admit(&self.inst, &found.document_url, &found.document, now) {
                    Ok(()) => (Ok(Some(found)), DOCUMENT_CHECKS),
                    Err(note) => {
                        // the whole document next time: a fresh one may come with the same validators
                        self.poller.forget();
                        (Err(document_refused(note, FRESHNESS)), FRESHNESS)
                    }
                }
            }
            Ok(None) => {
                // nothing new: the clock is still checked against what was accepted
                guard.check_clock(None, now);
                match guard.stale(now) {
                    Some(note) => (Err(document_refused(note, FRESHNESS)), FRESHNESS),
                    None => (Ok(None), DOCUMENT_CHECKS),
                }
            }
            other => (other, DOCUMENT_CHECKS),
        }
    }

    /// An offer of the upstream source, through the document checks and the policy.
    pub(super) async fn on_polled(&mut self, res: PollResult) {
        // the HTTP stack's code is not needed again until the next poll
        self.quiet_later();
        let (res, by) = self.check_freshness(res);
        let result = match &res {
            Ok(_) => "ok",
            Err(r) if r.verifier.is_none() => "error",
            Err(_) => "refused",
        };
        self.host.metrics(|m| m.polled(result));
        let source_failed = matches!(&res, Err(r) if r.verifier.is_none());
        let refused = match &res {
            Err(r) if !source_failed => Some(r.reason.clone()),
            _ => None,
        };
        if self.host.state.feed_refused != refused && !source_failed {
            self.host.state.feed_refused = refused;
            self.host.save_state();
        }
        let found = match res {
            Ok(None) => return,
            Ok(Some(found)) => found,
            Err(r) if r.verifier.is_some() => {
                // nothing from that document is used; it is asked for again at the next poll
                self.host.metrics(|m| m.refused(Some(by), "not-now"));
                if self.poller.is_new(&r.reason) {
                    self.host.record_error(r.reason.clone());
                    tracing::error!("{}; the next poll tries again", r.reason);
                }
                return;
            }
            Err(r) => {
                let note = format!("polling the upstream source failed: {}", r.reason);
                // recorded before the log line: whoever reads the line finds the status up to date
                self.host.record_error(note.clone());
                if self.poller.is_new(&note) {
                    let next = match r.retry {
                        crate::refusal::Retry::At(at) => format!(
                            "the source is not asked again before {}",
                            model::rfc3339(at)
                        ),
                        _ => "the next poll will try again".to_owned(),
                    };
                    tracing::error!("{note}; the daemon keeps running and {next}");
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
