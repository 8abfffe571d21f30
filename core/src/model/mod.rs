//! The documents nymvisor reads and writes, one module each, in 0.1.41's shapes where 0.1.41 had
//! them: camelCase keys, RFC 3339 times, unknown keys ignored on read, written atomically
//! (docs/REFERENCE.md "Files and formats").

mod build_info;
mod current;
pub mod feed_mark;
pub mod fleet;
mod history;
pub mod hold;
pub mod journal;
mod plan;
mod queue_entry;
pub mod refusals;
pub mod rollback;
pub mod run_state;
mod upgrade;

pub use build_info::BuildInfo;
pub use current::CurrentVersionInfo;
pub use history::{HistoryEntry, Outcome, UpgradeHistory};
pub use hold::Hold;
pub use journal::{Journal, Stage};
pub use plan::UpgradePlan;
pub use queue_entry::{Entry as QueueEntry, State as QueueState, WaitingFor};
pub use refusals::{RefusalRecord, Refusals};
pub use rollback::RollbackRequest;
pub use run_state::RunState;
pub use upgrade::{PlatformDetails, UpgradeInfo};

use time::OffsetDateTime;

/// Current UTC time (the one place that reads the clock for state files).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a time as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A time for people: to the second, in UTC, and how far from `now` (`2026-12-06 03:07:14 UTC
/// (3 min ago)`, `… (in 2h 35m)`).
pub fn human_time(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let at = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let secs = (t - now).whole_seconds();
    let span = human_span(secs.unsigned_abs());
    if secs.abs() < 1 {
        format!("{at} (now)")
    } else if secs > 0 {
        format!("{at} (in {span})")
    } else {
        format!("{at} ({span} ago)")
    }
}

/// A span of seconds in at most two units (`45s`, `3 min`, `2h 35m`, `4d 2h`).
pub fn human_span(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> std::result::Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-05-20T12:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil;
    use crate::paths::DaemonHomeDir;
    use std::path::{Path, PathBuf};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/nymvisor-0.1.41")
            .join(name)
    }

    #[test]
    fn times_for_people_have_seconds_and_a_distance() {
        let now = time::macros::datetime!(2026-12-06 03:00:00.123456789 UTC);
        assert_eq!(
            human_time(now - time::Duration::minutes(3), now),
            "2026-12-06 02:57:00 UTC (3 min ago)"
        );
        assert_eq!(
            human_time(now + time::Duration::minutes(155), now),
            "2026-12-06 05:35:00 UTC (in 2h 35m)"
        );
        assert_eq!(human_time(now, now), "2026-12-06 03:00:00 UTC (now)");
        assert_eq!(human_span(4 * 86_400 + 7300), "4d 2h");
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
        // fields only one side has are not compared (release metadata may carry more)
        assert!(info.matches(&full));
        // fields both have must agree
        let mut forged = full.clone();
        forged.commit_sha = Some("def".into());
        assert!(!forged.matches(&full));
        assert!(
            forged
                .first_difference(&full)
                .unwrap()
                .contains("commit_sha")
        );
        forged.commit_sha = full.commit_sha.clone();
        forged.extra.insert("features".into(), "c".into());
        assert!(forged.first_difference(&full).unwrap().contains("features"));
        let mut other = full.clone();
        other.build_version = "1.3.0".into();
        assert!(!other.matches(&info));
        other.build_version = "1.2.0".into();
        other.binary_name = "nym-api".into();
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
