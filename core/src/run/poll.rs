//! Polling the upstream source: when the next poll is due (the polling rate with ±10 % jitter,
//! so many nodes do not poll in lockstep), the poll in flight with the feed-document checks of
//! the verifiers (here or in the network helper), and logging each kind of poll failure once.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::helper::PollOutcome;
use crate::refusal::{Refusal, Retry};
use crate::source::{SourceError, SourcedUpgrade};
use crate::verify::{Verifier, check_document};

/// What a poll found: nothing new, or a release whose document passed the verifiers' checks;
/// or why nothing usable — the one refusal type: the source failed (`verifier` is `None`; not
/// before the time it named, a rate limit, else at the next poll), or a check refused the
/// document (`verifier` says which).
pub type PollResult = Result<Option<SourcedUpgrade>, Refusal>;

/// The verifier name of a document refused by the verifiers' checks.
pub const DOCUMENT_CHECKS: &str = "signature";

/// A feed document refused by a check (`by`), looked at again at the next poll.
pub fn document_refused(note: String, by: &str) -> Refusal {
    Refusal {
        verifier: Some(by.to_owned()),
        ..Refusal::transient(note)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Poller {
    upstream: super::Upstream,
    verifiers: Arc<Vec<Arc<dyn Verifier>>>,
    rate: Duration,
    task: Option<JoinHandle<PollResult>>,
    next: Instant,
    /// The source asked not to be asked again before this (a rate limit).
    not_before: Option<Instant>,
    last_note: Option<String>,
}

/// Longest a source's "not before" keeps the poller waiting (what a source that says more
/// gets, from the helper or in process).
const MAX_NOT_BEFORE: Duration = Duration::from_secs(3600);

impl Poller {
    /// The first poll is due at once.
    pub fn new(
        upstream: super::Upstream,
        verifiers: Arc<Vec<Arc<dyn Verifier>>>,
        rate: Duration,
    ) -> Poller {
        Poller {
            upstream,
            verifiers,
            rate,
            task: None,
            next: Instant::now(),
            not_before: None,
            last_note: None,
        }
    }

    /// When the next poll is due (`None`: no source, or a poll is in flight).
    pub fn due_at(&self) -> Option<Instant> {
        let polls = self.upstream.describe().is_some();
        (polls && self.task.is_none()).then_some(self.next)
    }

    /// Starts a poll in the background: the source is asked, then the verifiers check its
    /// document — here, or both in the network helper.
    pub fn start(&mut self) {
        let task = match &self.upstream {
            super::Upstream::Helper(helper) if helper.describe().is_some() => {
                let helper = helper.clone();
                tokio::spawn(async move {
                    match helper.poll().await {
                        PollOutcome::Nothing => Ok(None),
                        PollOutcome::Found {
                            upgrade,
                            document_url,
                            document,
                        } => Ok(Some(SourcedUpgrade {
                            info: *upgrade,
                            // its signature already checked by the helper
                            document: document.into_bytes(),
                            document_url,
                        })),
                        PollOutcome::Failed { error, not_before } => Err(SourceError {
                            message: error,
                            not_before,
                        }
                        .into()),
                        PollOutcome::Refused { note } => {
                            Err(document_refused(note, DOCUMENT_CHECKS))
                        }
                    }
                })
            }
            super::Upstream::InProcess(Some(source)) => {
                let (source, verifiers) = (source.clone(), self.verifiers.clone());
                tokio::spawn(async move {
                    match source.latest().await {
                        Ok(Some(found)) => check_document(&verifiers, &found, source.as_ref())
                            .await
                            .map(|()| Some(found))
                            .map_err(|note| document_refused(note, DOCUMENT_CHECKS)),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                })
            }
            _ => return,
        };
        self.task = Some(task);
        let jittered = self.rate.mul_f64(0.9 + 0.2 * fastrand::f64());
        self.next = Instant::now() + jittered;
    }

    /// The poll in flight, once it is done; never resolves without one. Cancel-safe.
    pub async fn finished(&mut self) -> PollResult {
        let result = match self.task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        };
        self.task = None;
        let result = result
            .unwrap_or_else(|e| Err(Refusal::transient(format!("the poll task failed: {e}"))));
        // a source that named a time (a rate limit) is not asked again before it
        if let Err(Refusal {
            retry: Retry::At(at),
            verifier: None,
            ..
        }) = &result
        {
            let wait = (*at - crate::model::now()).whole_milliseconds().max(0) as u64;
            let until = Instant::now() + Duration::from_millis(wait).min(MAX_NOT_BEFORE);
            self.not_before = Some(until);
            if until > self.next {
                self.next = until;
            }
        }
        result
    }

    /// Polls as soon as the loop waits again, for the whole document (`nymvisor retry` or
    /// `cancel` asked to look at upstream again).
    pub fn poll_soon(&mut self) {
        self.forget();
        // but never before the time a source named (a rate limit): asking earlier only
        // spends what is left of it
        let now = Instant::now();
        self.next = self.not_before.filter(|t| *t > now).unwrap_or(now);
    }

    /// Asks the source for the whole document next time (what it found could not be recorded).
    pub fn forget(&self) {
        match &self.upstream {
            super::Upstream::Helper(helper) => helper.forget(),
            super::Upstream::InProcess(Some(source)) => source.forget_validators(),
            super::Upstream::InProcess(None) => {}
        }
    }

    /// Whether `note` differs from the last one (so it deserves a log line).
    pub fn is_new(&mut self, note: &str) -> bool {
        if self.last_note.as_deref() == Some(note) {
            return false;
        }
        self.last_note = Some(note.to_owned());
        true
    }
}
