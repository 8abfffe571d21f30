//! The JSON documents nymvisor reads and writes (SPEC §5), in 0.1.41's shapes: camelCase keys,
//! RFC 3339 times, unknown keys ignored on read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;
use crate::paths::DaemonHomeDir;

/// Build information printed by `<bin> build-info --output=json` (snake_case, as the daemons
/// print it).
///
/// Only `binary_name` and `build_version` are required: older Nym binaries print fewer fields
/// (`cargo_triple` came late), newer ones may add fields. Unknown fields are kept, so what a
/// binary printed is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub binary_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_timestamp: Option<String>,
    pub build_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cargo_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cargo_triple: Option<String>,
    /// Fields this version of nymvisor does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BuildInfo {
    /// Build information with only the required fields.
    pub fn new(binary_name: impl Into<String>, build_version: impl Into<String>) -> Self {
        BuildInfo {
            binary_name: binary_name.into(),
            build_timestamp: None,
            build_version: build_version.into(),
            commit_sha: None,
            commit_timestamp: None,
            commit_branch: None,
            rustc_version: None,
            rustc_channel: None,
            cargo_profile: None,
            cargo_triple: None,
            extra: serde_json::Map::new(),
        }
    }

    fn known_fields(&self) -> [(&'static str, Option<&str>); 10] {
        [
            ("binary_name", Some(self.binary_name.as_str())),
            ("build_timestamp", self.build_timestamp.as_deref()),
            ("build_version", Some(self.build_version.as_str())),
            ("commit_sha", self.commit_sha.as_deref()),
            ("commit_timestamp", self.commit_timestamp.as_deref()),
            ("commit_branch", self.commit_branch.as_deref()),
            ("rustc_version", self.rustc_version.as_deref()),
            ("rustc_channel", self.rustc_channel.as_deref()),
            ("cargo_profile", self.cargo_profile.as_deref()),
            ("cargo_triple", self.cargo_triple.as_deref()),
        ]
    }

    /// Whether this binary's build information agrees with `expected` (what an upgrade
    /// announced): every field `expected` has must have the same value here. A field `expected`
    /// lacks (it was recorded from an older format) is not compared.
    pub fn matches(&self, expected: &BuildInfo) -> bool {
        let mine = self.known_fields();
        expected
            .known_fields()
            .iter()
            .zip(mine.iter())
            .all(|((_, want), (_, have))| want.is_none() || want == have)
            && expected
                .extra
                .iter()
                .all(|(k, v)| self.extra.get(k) == Some(v))
    }

    /// The first field that differs from `expected`, for messages (see [`BuildInfo::matches`]).
    pub fn first_difference(&self, expected: &BuildInfo) -> Option<String> {
        for ((name, want), (_, have)) in expected.known_fields().iter().zip(self.known_fields()) {
            if want.is_some() && *want != have {
                return Some(format!(
                    "{name} is {:?}, expected {:?}",
                    have.unwrap_or("(missing)"),
                    want.unwrap_or_default()
                ));
            }
        }
        expected
            .extra
            .iter()
            .find(|(k, v)| self.extra.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k} is {}, expected {v}",
                    self.extra.get(k).unwrap_or(&serde_json::Value::Null)
                )
            })
    }

    /// `Label: value` lines, for `-o text`.
    pub fn to_text(&self) -> String {
        let labels = [
            "Binary Name",
            "Build Timestamp",
            "Build Version",
            "Commit SHA",
            "Commit Date",
            "Commit Branch",
            "rustc Version",
            "rustc Channel",
            "cargo Profile",
            "cargo Triple",
        ];
        let mut rows: Vec<(String, String)> = labels
            .iter()
            .zip(self.known_fields())
            .filter_map(|(label, (_, v))| Some(((*label).to_owned(), v?.to_owned())))
            .collect();
        rows.extend(self.extra.iter().map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        }));
        let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
        rows.iter()
            .map(|(label, value)| format!("{:<width$} {value}\n", format!("{label}:")))
            .collect()
    }
}

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
}

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
    pub fn save(&self, home: &DaemonHomeDir) -> Result<()> {
        fsutil::create_dir_all(home.dir())?;
        fsutil::write_json(&home.current_version_info(), self)
    }
}

/// Current UTC time (the one place that reads the clock for state files).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a time as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> std::result::Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-05-20T12:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/nymvisor-0.1.41")
            .join(name)
    }

    #[test]
    fn every_legacy_fixture_loads() {
        for name in [
            "genesis-upgrade-info.json",
            "add-upgrade-upgrade-info.json",
            "upstream-upgrade-info.json",
        ] {
            let info: UpgradeInfo = fsutil::read_json(&fixture(name)).unwrap();
            assert!(!info.version.is_empty(), "{name}");
        }
        let plan = UpgradePlan::load(&fixture("upgrade-plan.json")).unwrap();
        assert_eq!(plan.current.name, "v1.2.0-rollback");
        assert_eq!(plan.queued_up.len(), 3);
        assert_eq!(
            plan.current.upgrade_time,
            time::macros::datetime!(2025-12-31 23:00:00 UTC)
        );
        let history = UpgradeHistory::load(&fixture("upgrade-history.json")).unwrap();
        assert_eq!(history.history.len(), 3);
        assert!(history.history[1].info.binary_details.is_none());
        let cvi: CurrentVersionInfo = fsutil::read_json(&fixture("current-version.json")).unwrap();
        assert_eq!(cvi.version, "1.2.0");
        let upstream: UpgradeInfo =
            fsutil::read_json(&fixture("upstream-upgrade-info.json")).unwrap();
        assert_eq!(
            upstream.platforms["linux-x86_64"].checksum_algorithm,
            "sha256"
        );
    }

    #[test]
    fn round_trip_keeps_shape_and_offsets() {
        let text = std::fs::read_to_string(fixture("upgrade-plan.json")).unwrap();
        let plan: UpgradePlan = serde_json::from_str(&text).unwrap();
        let again: serde_json::Value = serde_json::to_value(&plan).unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(again, original, "written in the same shape as read");
    }

    #[test]
    fn current_version_falls_back_to_the_legacy_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = DaemonHomeDir::new(dir.path());
        assert!(CurrentVersionInfo::load(&home).unwrap().is_none());
        std::fs::create_dir_all(home.dir()).unwrap();
        std::fs::copy(
            fixture("current-version.json"),
            home.legacy_current_version_info(),
        )
        .unwrap();
        let legacy = CurrentVersionInfo::load(&home).unwrap().unwrap();
        assert_eq!(legacy.name, "v1.2.0-rollback");
        let mut newer = legacy.clone();
        newer.name = "v1.3.0".into();
        newer.save(&home).unwrap();
        assert_eq!(
            CurrentVersionInfo::load(&home).unwrap().unwrap().name,
            "v1.3.0"
        );
    }

    #[test]
    fn build_info_of_older_and_newer_binaries() {
        // an old binary: no binary_name-less shape is accepted (the name is required)…
        let old = r#"{"build_timestamp":"t","build_version":"1.1.0","commit_sha":"x"}"#;
        assert!(serde_json::from_str::<BuildInfo>(old).is_err());
        // …but every other field may be missing, and unknown ones are kept as they were
        let newer = r#"{"binary_name":"nym-node","build_version":"1.2.0","rustc_version":"1.86.0","sbom":{"x":1},"features":"a,b"}"#;
        let info: BuildInfo = serde_json::from_str(newer).unwrap();
        assert_eq!(info.commit_sha, None);
        assert_eq!(info.extra["features"], "a,b");
        let again: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(newer).unwrap()
        );
        // a partial record matches the full build information of the same binary
        let mut full = info.clone();
        full.commit_sha = Some("abc".into());
        full.extra.insert("more".into(), 1.into());
        assert!(full.matches(&info));
        assert!(!info.matches(&full));
        assert!(info.first_difference(&full).unwrap().contains("commit_sha"));
        let mut other = full.clone();
        other.build_version = "1.3.0".into();
        assert!(!other.matches(&info));
    }

    #[test]
    fn plan_insert_keeps_time_order() {
        let text = std::fs::read_to_string(fixture("upstream-upgrade-info.json")).unwrap();
        let base: UpgradeInfo = serde_json::from_str(&text).unwrap();
        let mut plan = UpgradePlan::new(base.clone());
        for (name, secs) in [("c", 30), ("a", 10), ("b", 20), ("a2", 10)] {
            let mut info = base.clone();
            info.name = name.into();
            info.upgrade_time = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs);
            plan.insert(info);
        }
        let names: Vec<_> = plan.queued_up.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["a", "a2", "b", "c"]);
        assert!(plan.remove("b").is_some());
        assert!(plan.queued("b").is_none());
    }
}
