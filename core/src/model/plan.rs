//! `upgrade-plan.json`: what runs now and what is queued.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::UpgradeInfo;
use crate::error::Result;
use crate::fsutil;

/// `upgrade-plan.json`: what runs now and what is queued, sorted by upgrade time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    pub current: UpgradeInfo,
    #[serde(default)]
    pub queued_up: Vec<UpgradeInfo>,
}

impl UpgradePlan {
    /// A plan with nothing queued.
    pub fn new(current: UpgradeInfo) -> Self {
        UpgradePlan {
            current,
            queued_up: Vec::new(),
        }
    }

    /// Inserts an upgrade, keeping the queue sorted by upgrade time (stable for equal times).
    pub fn insert(&mut self, info: UpgradeInfo) {
        let at = self
            .queued_up
            .partition_point(|q| q.upgrade_time <= info.upgrade_time);
        self.queued_up.insert(at, info);
    }

    /// The queued upgrade with that name.
    pub fn queued(&self, name: &str) -> Option<&UpgradeInfo> {
        self.queued_up.iter().find(|q| q.name == name)
    }

    /// Removes and returns the queued upgrade with that name.
    pub fn remove(&mut self, name: &str) -> Option<UpgradeInfo> {
        let at = self.queued_up.iter().position(|q| q.name == name)?;
        Some(self.queued_up.remove(at))
    }

    pub fn load(path: &Path) -> Result<UpgradePlan> {
        fsutil::read_json(path)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }
}
