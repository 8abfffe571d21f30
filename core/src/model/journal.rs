//! The upgrade journal: the intent recorded before each irreversible step of an upgrade, so a
//! nymvisor killed at any point can finish or roll back what it was doing (docs/REFERENCE.md
//! "The upgrade pipeline").
//!
//! It lives in the upgrade data directory (`upgrade-journal.json`), is written atomically, and
//! exists only while an upgrade is in flight or awaiting confirmation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;
use crate::model::UpgradeInfo;

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// About to stop the old daemon (nothing irreversible yet).
    Stopping,
    /// Old daemon stopped, backup being made.
    BackingUp,
    /// The backup is complete (its path recorded); `current` is swapped next. Without backups
    /// the journal stays at [`Stage::Stopping`]: the swap records itself (recovery looks at
    /// where `current` points).
    Swapping,
    /// `current` points at the new binary; records written; watching its first start.
    Confirming,
    /// Swapping back to the previous binary and restoring the backup.
    RollingBack,
}

/// The journal document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub stage: Stage,
    /// The upgrade being applied.
    pub upgrade: UpgradeInfo,
    /// What ran before (for rollback and history).
    pub previous: UpgradeInfo,
    /// `current`'s target before the swap (`genesis` or `upgrades/<name>`).
    pub previous_link: PathBuf,
    #[serde(default)]
    pub backup: Option<PathBuf>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

impl Journal {
    pub fn path(data_root: &Path) -> PathBuf {
        data_root.join("upgrade-journal.json")
    }

    pub fn load(data_root: &Path) -> Result<Option<Journal>> {
        fsutil::read_json_opt(&Self::path(data_root))
    }

    /// Records the journal (atomically) at `stage`.
    pub fn save_at(&mut self, data_root: &Path, stage: Stage) -> Result<()> {
        self.stage = stage;
        fsutil::write_json(&Self::path(data_root), self)
    }

    /// Renames an unreadable journal to `upgrade-journal.json.corrupt-<UTC time>`, so it is kept
    /// for the operator and no longer stands in the way. Returns the new path.
    pub fn move_aside(data_root: &Path) -> Result<PathBuf> {
        let path = Self::path(data_root);
        let now = crate::model::now();
        let aside = data_root.join(format!(
            "upgrade-journal.json.corrupt-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        ));
        std::fs::rename(&path, &aside)
            .map_err(|e| crate::Error::io("failed to move aside", &path, e))?;
        fsutil::sync_dir(data_root)?;
        Ok(aside)
    }

    /// Removes the journal: the upgrade is finished, confirmed or abandoned.
    pub fn clear(data_root: &Path) -> Result<()> {
        let path = Self::path(data_root);
        match std::fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(data_root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::Error::io("failed to remove", path, e)),
        }
    }
}
