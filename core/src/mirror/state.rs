//! `<out>/<daemon>/mirror-state.json`: what the mirror holds (oldest first) and the last
//! sequence it signed. Written by `mirror sync` only; nodes never read it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorState {
    /// The sequence of the last feed signed.
    #[serde(default)]
    pub sequence: Option<u64>,
    /// The mirrored releases, oldest first; the last one is the feed's.
    #[serde(default)]
    pub releases: Vec<MirroredRelease>,
}

/// One release in the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirroredRelease {
    pub name: String,
    pub version: String,
    /// What upstream announced for the binary (URL, checksum and its algorithm): while it stays
    /// the same, the binary is not fetched again.
    pub upstream_url: String,
    #[serde(default)]
    pub upstream_checksum: String,
    #[serde(default)]
    pub upstream_checksum_algorithm: String,
    /// SHA-256 of the mirrored binary (what the feed announces).
    pub sha256: String,
    /// The key id of the binary's signature (`None`: not signed).
    #[serde(default)]
    pub signed_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub synced_at: OffsetDateTime,
}

impl MirrorState {
    /// The record in `path`; none yet is an empty record.
    pub fn load(path: &Path) -> Result<MirrorState> {
        Ok(fsutil::read_json_opt(path)?.unwrap_or_default())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }

    /// The release the feed names now.
    pub fn newest(&self) -> Option<&MirroredRelease> {
        self.releases.last()
    }
}
