//! Polling the upstream source: when the next poll is due (the polling rate with ±10 % jitter,
//! so many nodes do not poll in lockstep), the poll in flight, the feed-document checks of the
//! verifiers, and logging each kind of poll failure once.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::source::{SourceError, SourcedUpgrade, UpgradeSource};
use crate::verify::Verifier;

type PollResult = Result<Option<SourcedUpgrade>, SourceError>;

/// See the module docs.
#[derive(Debug)]
pub struct Poller {
    pub source: Option<Arc<dyn UpgradeSource>>,
    verifiers: Arc<Vec<Arc<dyn Verifier>>>,
    rate: Duration,
    task: Option<JoinHandle<PollResult>>,
    next: Instant,
    last_note: Option<String>,
}

impl Poller {
    /// The first poll is due at once.
    pub fn new(
        source: Option<Arc<dyn UpgradeSource>>,
        verifiers: Arc<Vec<Arc<dyn Verifier>>>,
        rate: Duration,
    ) -> Poller {
        Poller {
            source,
            verifiers,
            rate,
            task: None,
            next: Instant::now(),
            last_note: None,
        }
    }

    /// When the next poll is due (`None`: no source, or a poll is in flight).
    pub fn due_at(&self) -> Option<Instant> {
        (self.source.is_some() && self.task.is_none()).then_some(self.next)
    }

    /// Starts a poll in the background.
    pub fn start(&mut self) {
        let Some(source) = self.source.clone() else {
            return;
        };
        self.task = Some(tokio::spawn(async move { source.latest().await }));
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
        result.unwrap_or_else(|e| Err(SourceError(format!("the poll task failed: {e}"))))
    }

    /// The verifiers' checks of the document itself (e.g. its detached signature). `Err`: the
    /// reason it was refused.
    pub async fn vet(&self, found: &SourcedUpgrade) -> Result<(), String> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        for v in self.verifiers.iter() {
            if let Err(r) = v.verify_document(found, source.as_ref()).await {
                // its signature may be fixed without the document changing
                source.forget_validators();
                return Err(format!(
                    "the upstream document was refused by {}: {}",
                    v.name(),
                    r.reason
                ));
            }
        }
        Ok(())
    }

    /// Asks the source for the whole document next time (what it found could not be recorded).
    pub fn forget(&self) {
        if let Some(source) = &self.source {
            source.forget_validators();
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
