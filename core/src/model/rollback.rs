//! `upgrade-rollback.json` in the upgrade data directory: the operator's `nymvisor rollback`,
//! left for the running nymvisor (which removes it once it acted on it). Applied only while the
//! version it was asked for still runs, so a request that outlives its rollback (a crash between
//! the rollback and the file's removal) never takes the node back a second step.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;

/// The request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRequest {
    /// The name of the upgrade to roll back from (what ran when it was asked).
    pub from: String,
    /// Restore the backup taken before `from` was installed (a safety copy of the data it
    /// replaces is kept).
    pub with_data: bool,
    /// At once, even on hold or outside the maintenance windows.
    pub now: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

impl RollbackRequest {
    pub fn load(path: &Path) -> Result<Option<RollbackRequest>> {
        fsutil::read_json_opt(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }

    /// Removes the request (a missing file is fine).
    pub fn clear(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    fsutil::sync_dir(dir)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::error::Error::io("failed to remove", path, e)),
        }
    }
}
