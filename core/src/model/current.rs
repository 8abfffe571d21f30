//! `current-version-info.json` in the daemon home (0.1.41 named it `current-version.json`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BuildInfo, UpgradeInfo};
use crate::error::Result;
use crate::fsutil;
use crate::paths::DaemonHomeDir;

/// `current-version-info.json`: what the daemon runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentVersionInfo {
    pub name: String,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub upgrade_time: OffsetDateTime,
    #[serde(default)]
    pub binary_details: Option<BuildInfo>,
}

impl CurrentVersionInfo {
    /// The current version record of an upgrade.
    pub fn from_upgrade(info: &UpgradeInfo) -> Self {
        CurrentVersionInfo {
            name: info.name.clone(),
            version: info.version.clone(),
            upgrade_time: info.upgrade_time,
            binary_details: info.binary_details.clone(),
        }
    }

    /// Reads `current-version-info.json`, else 0.1.41's `current-version.json`; `None` if neither
    /// exists.
    pub fn load(home: &DaemonHomeDir) -> Result<Option<CurrentVersionInfo>> {
        match fsutil::read_json_opt(&home.current_version_info())? {
            Some(info) => Ok(Some(info)),
            None => fsutil::read_json_opt(&home.legacy_current_version_info()),
        }
    }

    /// Writes `current-version-info.json` atomically.
    /// 0.1.41's `current-version.json`, when it is there, is kept in step too: going back to
    /// 0.1.41 then reads the version that really runs (docs/MIGRATION.md).
    pub fn save(&self, home: &DaemonHomeDir) -> Result<()> {
        fsutil::create_dir_all(home.dir())?;
        fsutil::write_json(&home.current_version_info(), self)?;
        let legacy = home.legacy_current_version_info();
        if legacy.exists() {
            fsutil::write_json(&legacy, self)?;
        }
        Ok(())
    }
}
