//! `upgrade-history.json`: every upgrade performed or attempted, with its outcome.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::UpgradeInfo;
use crate::error::Result;
use crate::fsutil;

/// What happened to a performed (or attempted) upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    RolledBack,
    Failed,
}

/// One entry of `upgrade-history.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub performed_at: OffsetDateTime,
    pub info: UpgradeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `upgrade-history.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeHistory {
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

impl UpgradeHistory {
    /// Loads the history; a missing file is an empty history.
    pub fn load(path: &Path) -> Result<UpgradeHistory> {
        Ok(fsutil::read_json_opt(path)?.unwrap_or_default())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }
}
