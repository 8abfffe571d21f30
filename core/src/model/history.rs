//! `upgrade-history.json`: every upgrade performed or attempted, with its outcome.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::UpgradeInfo;
use crate::error::Result;
use crate::fsutil;

/// What happened to a performed (or attempted) upgrade — the same words as the metrics and
/// the post-upgrade hook (0.1.41 readers ignore the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Applied; its start is being watched (or was never watched: a manual upgrade).
    Pending,
    /// Applied and confirmed (ran through its startup period, or answered healthy).
    Confirmed,
    /// Applied, in the words of earlier versions (read, never written).
    Success,
    RolledBack,
    Failed,
}

impl Outcome {
    /// Whether the upgrade is in place (not rolled back nor failed).
    pub fn applied(outcome: Option<Outcome>) -> bool {
        matches!(
            outcome,
            Some(Outcome::Pending | Outcome::Confirmed | Outcome::Success) | None
        )
    }
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

    /// Writes the history, pruned first ([`UpgradeHistory::prune`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut pruned = self.clone();
        pruned.prune(MAX_KEPT);
        fsutil::write_json(path, &pruned)
    }

    /// Marks the record of the upgrade `name` applied at `performed_at` as confirmed. Returns
    /// whether there was such a pending record.
    pub fn confirm(&mut self, name: &str, performed_at: time::OffsetDateTime) -> bool {
        match self
            .history
            .iter_mut()
            .rev()
            .find(|h| h.info.name == name && h.performed_at == performed_at)
        {
            Some(h) if h.outcome == Some(Outcome::Pending) => {
                h.outcome = Some(Outcome::Confirmed);
                true
            }
            _ => false,
        }
    }

    /// Keeps every `rolled-back` record (they keep a release from being taken again) and the
    /// newest `keep` others, so the file stays far below the 4 MiB read cap (an entry is a few
    /// KiB). Order is kept.
    pub fn prune(&mut self, keep: usize) {
        let others = self
            .history
            .iter()
            .filter(|h| h.outcome != Some(Outcome::RolledBack))
            .count();
        let mut drop = others.saturating_sub(keep);
        self.history.retain(|h| {
            if drop > 0 && h.outcome != Some(Outcome::RolledBack) {
                drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// How many records other than rollbacks the history keeps.
pub const MAX_KEPT: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_every_rollback_and_the_newest_others() {
        let entry = |i: usize, outcome| HistoryEntry {
            performed_at: time::macros::datetime!(2026-05-01 10:00 UTC),
            info: serde_json::from_value(serde_json::json!({
                "name": format!("v{i}"), "version": format!("1.{i}.0"),
                "upgradeTime": "2026-05-20T12:00:00Z"
            }))
            .unwrap(),
            previous_version: None,
            outcome: Some(outcome),
            backup_path: None,
            error: None,
        };
        let mut h = UpgradeHistory {
            history: (0..10)
                .map(|i| {
                    entry(
                        i,
                        if i % 3 == 0 {
                            Outcome::RolledBack
                        } else {
                            Outcome::Success
                        },
                    )
                })
                .collect(),
        };
        h.prune(2);
        let names: Vec<_> = h.history.iter().map(|e| e.info.name.as_str()).collect();
        assert_eq!(names, ["v0", "v3", "v6", "v7", "v8", "v9"]);
        // a history written with many records stays small
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade-history.json");
        let big = UpgradeHistory {
            history: (0..5000).map(|i| entry(i, Outcome::Success)).collect(),
        };
        big.save(&path).unwrap();
        assert_eq!(UpgradeHistory::load(&path).unwrap().history.len(), MAX_KEPT);
    }
}
