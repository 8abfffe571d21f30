//! The mirror's feed document and the rules that make it (pure: no files, no clock).

use time::OffsetDateTime;

use crate::model::{PlatformDetails, UpgradeInfo};

/// What the mirror publishes for one release.
#[derive(Debug, Clone)]
pub struct MirrorFeed<'a> {
    /// The release as upstream described it (name, version, notes, times, build information).
    pub info: &'a UpgradeInfo,
    /// The platform key of the mirrored binary (`x86_64-linux`, …).
    pub platform: &'a str,
    /// Where nodes fetch the binary: relative to the document, or absolute under `--base-url`.
    pub url: String,
    /// SHA-256 of the verified binary, hex.
    pub sha256: String,
    pub expires: OffsetDateTime,
    pub sequence: u64,
    pub signed_at: OffsetDateTime,
}

impl MirrorFeed<'_> {
    /// The document's bytes: the upstream format (`run` and 0.1.41 read it; 0.1.41 ignores the
    /// freshness keys), with one platform, the mirror's URL and checksum, and no signature URL
    /// (nodes look for `<url>.minisig`, which the mirror writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut info = self.info.clone().from_upstream();
        info.platforms = [(
            self.platform.to_owned(),
            PlatformDetails {
                checksum: self.sha256.clone(),
                checksum_algorithm: "sha256".to_owned(),
                url: self.url.clone(),
                signature_url: None,
            },
        )]
        .into();
        let mut value = serde_json::to_value(&info)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("expires".into(), crate::model::rfc3339(self.expires).into());
            map.insert("sequence".into(), self.sequence.into());
            map.insert(
                "signedAt".into(),
                crate::model::rfc3339(self.signed_at).into(),
            );
        }
        let mut bytes = serde_json::to_vec_pretty(&value)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The sequence of the next signing: above the last one, and at least the Unix time of `now`,
/// so that a mirror whose record was lost still signs higher than any feed it signed before
/// (nodes refuse a lower one as a replay).
pub fn next_sequence(last: Option<u64>, now: OffsetDateTime) -> u64 {
    let clock = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    last.map_or(clock, |l| l.saturating_add(1)).max(clock)
}

/// The binary's URL as the feed names it: relative to the document (`<name>/<daemon>`), or
/// `<base>/<daemon>/<name>/<daemon>` with a base URL.
pub fn binary_url(base: Option<&str>, daemon: &str, name: &str) -> String {
    match base {
        None => format!("{name}/{daemon}"),
        Some(b) => format!("{}/{daemon}/{name}/{daemon}", b.trim_end_matches('/')),
    }
}

/// Whether a release named `name` would take the place of one of the mirror's own files in
/// `<out>/<daemon>/` (the feed, its signatures, the state) or a hidden one (work directories).
pub fn takes_a_mirror_file(name: &str) -> bool {
    name.starts_with('.') || name.starts_with("upgrade-info.json") || name == super::STATE_FILE
}

/// Which mirrored releases (oldest first in `names`) go when `keep` are kept: the oldest ones,
/// never the newest (`keep` 0 counts as 1).
pub fn to_prune(names: &[String], keep: usize) -> Vec<String> {
    let keep = keep.max(1);
    let drop = names.len().saturating_sub(keep);
    names[..drop].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn info() -> UpgradeInfo {
        serde_json::from_value(serde_json::json!({
            "name": "v2026.9-venaco",
            "version": "1.2.0",
            "notes": "n",
            "upgradeTime": "2026-09-16T15:00:00Z",
            "immediate": true,
            "platforms": {
                "x86_64-linux": {"url": "https://github.com/x/nym-node", "checksum": "AA", "checksumAlgorithm": "sha512", "signatureUrl": "https://github.com/x/nym-node.sig"},
                "aarch64-linux": {"url": "https://github.com/y/nym-node"}
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_feed_names_the_mirror_s_copy_and_its_freshness() {
        let info = info();
        let feed = MirrorFeed {
            info: &info,
            platform: "x86_64-linux",
            url: "v2026.9-venaco/nym-node".into(),
            sha256: "ab".repeat(32),
            expires: datetime!(2026-12-13 00:00 UTC),
            sequence: 7,
            signed_at: datetime!(2026-12-06 00:00 UTC),
        };
        let bytes = feed.to_bytes().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["expires"], "2026-12-13T00:00:00Z");
        assert_eq!(v["signedAt"], "2026-12-06T00:00:00Z");
        let platforms = v["platforms"].as_object().unwrap();
        assert_eq!(platforms.len(), 1, "only the verified binary: {v}");
        let p = &platforms["x86_64-linux"];
        assert_eq!(p["url"], "v2026.9-venaco/nym-node");
        assert_eq!(p["checksumAlgorithm"], "sha256");
        assert!(p.get("signatureUrl").is_none());
        // the operator's overrides are never a feed's
        assert!(v.get("immediate").is_none());
        // what `run` reads
        let back: UpgradeInfo = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.version, "1.2.0");
        let claims = crate::upgrade::freshness::Claims::of(&bytes).unwrap();
        assert_eq!(claims.sequence, Some(7));
    }

    #[test]
    fn sequences_only_go_up() {
        let now = datetime!(2026-12-06 00:00 UTC);
        let clock = now.unix_timestamp() as u64;
        assert_eq!(next_sequence(None, now), clock);
        assert_eq!(
            next_sequence(Some(5), now),
            clock,
            "the record was lost or old"
        );
        assert_eq!(
            next_sequence(Some(clock), now),
            clock + 1,
            "twice in a second"
        );
        assert_eq!(
            next_sequence(Some(clock + 10), now),
            clock + 11,
            "clock set back"
        );
        assert_eq!(next_sequence(Some(u64::MAX), now), u64::MAX);
        let before_1970 = datetime!(1960-01-01 00:00 UTC);
        assert_eq!(next_sequence(None, before_1970), 0);
    }

    #[test]
    fn release_names_never_take_the_mirror_s_files() {
        for name in [
            "upgrade-info.json",
            "upgrade-info.json.minisig.3",
            "mirror-state.json",
            ".nymvisor-sync-x",
        ] {
            assert!(takes_a_mirror_file(name), "{name}");
        }
        assert!(!takes_a_mirror_file("v2026.9-venaco"));
    }

    #[test]
    fn urls_and_pruning() {
        assert_eq!(binary_url(None, "nym-node", "v1"), "v1/nym-node");
        assert_eq!(
            binary_url(Some("https://m.example/nym/"), "nym-node", "v1"),
            "https://m.example/nym/nym-node/v1/nym-node"
        );
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        assert_eq!(to_prune(&names, 2), ["a", "b"]);
        assert_eq!(to_prune(&names, 0), ["a", "b", "c"]);
        assert!(to_prune(&names, 9).is_empty());
    }
}
