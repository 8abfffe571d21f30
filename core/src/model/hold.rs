//! `upgrade-hold.json` in the upgrade data directory: while it exists, nothing is applied
//! automatically (`nymvisor hold`); only `add-upgrade --now` goes through. Removing it
//! (`nymvisor unhold`) lets upgrades through again; a running nymvisor notices either at once.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::fsutil;

/// The hold document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Hold {
    /// The hold in force, if any.
    pub fn load(path: &Path) -> Result<Option<Hold>> {
        fsutil::read_json_opt(path)
    }

    /// The hold an unreadable hold file stands for: fail closed (the operator meant something
    /// by putting a file there), until it is fixed or removed (`nymvisor unhold` removes it).
    pub fn unreadable(e: &Error) -> Hold {
        Hold {
            reason: Some(format!(
                "the hold file cannot be read ({e}); held until it is fixed or `nymvisor unhold` removes it"
            )),
            since: crate::model::now(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }

    /// Lifts the hold. Returns whether there was one.
    pub fn clear(path: &Path) -> Result<bool> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    fsutil::sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("failed to remove", path, e)),
        }
    }
}
