//! The error type of the sources crate. Every variant names the URL or file and says what went
//! wrong; at the `UpgradeSource` boundary it becomes the core's `SourceError` with that message.

use std::path::PathBuf;

use nymvisor_core::source::SourceError;

/// What can go wrong while fetching from upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request failed before an answer (connection, timeout, redirect policy).
    #[error("GET {url}: {what}")]
    Request { url: String, what: String },

    /// The answer's status is not a success; its body is ignored.
    #[error("GET {url}: HTTP {status}; the answer is ignored{hint}")]
    Status {
        url: String,
        status: u16,
        hint: String,
    },

    /// More bytes than allowed were announced or sent.
    #[error("{url}: {what}, more than the {cap}-byte cap")]
    TooLarge { url: String, what: String, cap: u64 },

    /// A URL that cannot or may not be fetched.
    #[error("refusing {url:?}: {reason}")]
    Url { url: String, reason: String },

    /// A local file that cannot or may not be read.
    #[error("{}: {what}", path.display())]
    File { path: PathBuf, what: String },

    /// What arrived is not the document it should be.
    #[error("{url}: {what}")]
    Document { url: String, what: String },

    /// The data could not be stored where it goes.
    #[error("{url}: cannot store the data: {source}")]
    Store {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),

    /// A source's settings are incomplete or invalid.
    #[error("{0}")]
    Setup(String),

    /// A refusal of the GitHub source (no release, no checksum…), already in words.
    #[error("{0}")]
    Github(String),

    /// The API asked not to be asked again before `until` (a rate limit), already in words.
    #[error("{message}")]
    RateLimited {
        message: String,
        until: std::time::SystemTime,
    },
}

impl From<Error> for SourceError {
    fn from(e: Error) -> SourceError {
        match e {
            Error::RateLimited { message, until } => {
                SourceError::not_before(message, time::OffsetDateTime::from(until))
            }
            other => SourceError::new(other.to_string()),
        }
    }
}
