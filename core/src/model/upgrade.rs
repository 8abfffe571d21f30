//! `upgrade-info.json`: one release of the daemon — what to run, where to get it, when.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::BuildInfo;

/// Download details of one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDetails {
    /// Hex digest; empty means none.
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub checksum_algorithm: String,
    pub url: String,
    /// Optional detached minisign signature URL (not in 0.1.41, which ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_url: Option<String>,
}

/// One release of the daemon: what to run and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeInfo {
    #[serde(default)]
    pub manual: bool,
    pub name: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub publish_date: Option<OffsetDateTime>,
    pub version: String,
    #[serde(default)]
    pub platforms: BTreeMap<String, PlatformDetails>,
    #[serde(with = "time::serde::rfc3339")]
    pub upgrade_time: OffsetDateTime,
    #[serde(default)]
    pub binary_details: Option<BuildInfo>,
    /// Queued with `add-upgrade --now`: applied as soon as it is prepared, regardless of the
    /// spread, the windows and a hold (not in 0.1.41, which ignores it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immediate: bool,
    /// Queued with `add-upgrade --allow-downgrade`: may replace a newer version (not in 0.1.41,
    /// which ignores it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
    /// When this node first saw the offer upstream (the spread counts from the later of this
    /// and `upgradeTime`; not in 0.1.41, which ignores it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub first_seen_at: Option<OffsetDateTime>,
}

impl UpgradeInfo {
    /// Whether the timing rules (spread, windows) apply: to upgrades from upstream (they come
    /// with downloads), not to binaries the operator queued (`add-upgrade` writes no platforms)
    /// and never to `--now`.
    pub fn follows_fleet_timing(&self) -> bool {
        !self.immediate && !self.platforms.is_empty()
    }

    /// The offer as an upstream source may make it: the operator's own overrides (`--now`,
    /// `--allow-downgrade`) are the operator's to give, never a feed's.
    pub fn from_upstream(mut self) -> UpgradeInfo {
        self.immediate = false;
        self.allow_downgrade = false;
        self.first_seen_at = None;
        self
    }
}
