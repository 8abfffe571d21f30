//! Where upgrades come from: the [`UpgradeSource`] trait (implementations live in the
//! `nymvisor-sources` crate, so that this crate never pulls in an HTTP stack).

use std::fmt::Debug;

use crate::model::UpgradeInfo;

/// Receives the bytes of a download as they arrive.
pub trait ChunkSink: Send {
    /// Takes the next chunk. An error aborts the download.
    fn accept(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

/// Collects a small document in memory (callers cap its size).
impl ChunkSink for Vec<u8> {
    fn accept(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// The most signature files a feed may have (`.minisig`, `.minisig.1` … `.minisig.15`).
pub const MAX_FEED_SIGNATURES: usize = 16;

/// What follows a feed's URL or path for its `i`-th signature: `.minisig`, then `.minisig.1`,
/// … — what nodes look for and `mirror sync` writes.
pub fn feed_signature_suffix(i: usize) -> String {
    match i {
        0 => ".minisig".to_owned(),
        i => format!(".minisig.{i}"),
    }
}

/// A failure of a source, with the URL or path involved in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
    /// The source said when to ask again (a rate limit): asking earlier is pointless.
    pub not_before: Option<time::OffsetDateTime>,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            not_before: None,
        }
    }

    /// A failure that lasts until `at` (a rate limit).
    pub fn not_before(message: impl Into<String>, at: time::OffsetDateTime) -> SourceError {
        SourceError {
            message: message.into(),
            not_before: Some(at),
        }
    }
}

/// A source's failure as the poll path's one refusal type: not before the time the source
/// named, else at the next poll. `verifier` is `None`: no verifier said it.
impl From<SourceError> for crate::refusal::Refusal {
    fn from(e: SourceError) -> crate::refusal::Refusal {
        match e.not_before {
            Some(at) => crate::refusal::Refusal::until(e.message, at),
            None => crate::refusal::Refusal::transient(e.message),
        }
    }
}

/// What a poll found.
#[derive(Debug, Clone)]
pub struct SourcedUpgrade {
    pub info: UpgradeInfo,
    /// The raw document, for signature checks of the feed.
    pub document: Vec<u8>,
    /// Where it came from (also the base of `<url>.minisig`).
    pub document_url: String,
}

/// A source of upgrade information and binaries.
///
/// Methods may block on the network for as long as their timeouts allow; they are cancel-safe
/// (dropping the future abandons the request).
#[async_trait::async_trait]
pub trait UpgradeSource: Debug + Send + Sync {
    /// One line saying what this source is (`http feed https://…`), for logs.
    fn describe(&self) -> String;

    /// The latest release, or `None` when there is nothing (new) to see (e.g. `304 Not Modified`).
    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError>;

    /// Streams the file at `url` into `sink`, refusing more than `max_bytes`. Returns the size.
    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError>;

    /// Forgets conditional-request state (ETag, Last-Modified) so the next [`latest`] returns
    /// the full document even if it did not change. Called when what was found could not be
    /// recorded.
    ///
    /// [`latest`]: UpgradeSource::latest
    fn forget_validators(&self) {}

    /// nymvisor starts: what an earlier run left behind (a staged download) is not trusted.
    /// Not called by the network helper, which continues the running nymvisor's work.
    fn discard_leftovers(&self) {}

    /// What the source remembers between polls (validators, rate limits, a staged download),
    /// for a source rebuilt for every job in the network helper (`crate::helper`). `None`:
    /// nothing worth keeping.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes back what [`UpgradeSource::save_state`] returned; a value it does not understand
    /// is ignored (it came from another version).
    fn load_state(&self, _state: serde_json::Value) {}

    /// Whether this source's documents are feeds that carry their own signature
    /// (`<document url>.minisig`): the HTTP feed and the local mirror. With signatures required,
    /// such a document without a valid one is never used.
    fn signs_documents(&self) -> bool {
        false
    }

    /// Fetches a small document (a signature), refusing more than `max_bytes`.
    async fn fetch_small(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, SourceError> {
        let mut sink = Vec::new();
        self.download(url, max_bytes, &mut sink).await?;
        Ok(sink)
    }
}

/// Size caps (docs/REFERENCE.md "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub document: u64,
    pub signature: u64,
    pub binary: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            document: 1024 * 1024,
            signature: 64 * 1024,
            binary: 512 * 1024 * 1024,
        }
    }
}
