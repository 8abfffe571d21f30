//! `upstream-feed-mark.json` in the upgrade data directory: the newest signed feed this instance
//! accepted (its `sequence`, a digest of its bytes and its `expires`), kept across restarts so
//! that an older, validly signed feed served again (a replay) is refused, and a mirror that
//! stopped signing fresh feeds (a freeze) shows as stale. Not in 0.1.41.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;

/// The mark document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedMark {
    /// Where the accepted feed came from: a mark of another feed (the operator moved the
    /// instance to another mirror) does not apply.
    #[serde(default)]
    pub feed: String,
    /// The accepted feed's `sequence` (none: it had none).
    #[serde(default)]
    pub sequence: Option<u64>,
    /// SHA-256 of the accepted feed's bytes, hex.
    pub sha256: String,
    /// The accepted feed's `expires`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// The accepted feed's `signedAt` (for the clock sanity report).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub signed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub accepted_at: OffsetDateTime,
}

impl FeedMark {
    /// The mark, if a signed feed was ever accepted.
    pub fn load(path: &Path) -> Result<Option<FeedMark>> {
        fsutil::read_json_opt(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }
}
