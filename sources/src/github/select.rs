//! Which release is the offer and what it says: tag patterns, the release picked from a page,
//! and its checksum and version from `hashes.json` (entry by entry) or the asset's digest.

use super::*;

/// `*` matches any run of characters; everything else literally.
pub fn tag_matches(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == tag;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !tag.starts_with(first)
        || !tag[first.len()..].ends_with(last)
        || tag.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// The upgrade name for a tag: the pattern's literal prefix is dropped, keeping a `v` that
/// starts the version (`nym-binaries-v2026.9-venaco` → `v2026.9-venaco`).
pub fn upgrade_name(pattern: &str, tag: &str) -> String {
    let prefix = pattern.split('*').next().unwrap_or("");
    let prefix = prefix.strip_suffix('v').unwrap_or(prefix);
    tag.strip_prefix(prefix)
        .filter(|n| !n.is_empty())
        .unwrap_or(tag)
        .to_owned()
}

pub(super) fn parse_time(s: Option<&str>) -> Option<time::OffsetDateTime> {
    s.and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    })
}

/// A checksum as `(algorithm, lower-case hex)`.
pub(super) type Checksum = (&'static str, String);

pub(super) fn hex_of_len(v: Option<&Value>, len: usize) -> Option<String> {
    let s = v?.as_str()?.trim();
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// What `hashes.json` says about one asset.
#[derive(Debug, Default)]
pub(super) struct HashEntry {
    pub(super) checksum: Option<Checksum>,
    pub(super) details: Option<BuildInfo>,
    /// Why the entry (or the document) could not give what was needed, for messages.
    pub(super) problems: Vec<String>,
}

/// Reads the entry for `asset` of a `hashes.json` document, and nothing else of it.
pub(super) fn hash_entry(doc: &[u8], asset: &str, daemon: &str) -> HashEntry {
    let mut out = HashEntry::default();
    let root: Value = match serde_json::from_slice(doc) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(format!("hashes.json is not JSON ({e})"));
            return out;
        }
    };
    let Some(entry) = root.get("assets").and_then(|a| a.get(asset)) else {
        out.problems
            .push(format!("hashes.json has no entry for {asset}"));
        return out;
    };
    out.checksum = hex_of_len(entry.get("sha256"), 64)
        .map(|h| ("sha256", h))
        .or_else(|| hex_of_len(entry.get("sha512"), 128).map(|h| ("sha512", h)));
    if out.checksum.is_none() {
        out.problems.push(format!(
            "the hashes.json entry for {asset} has no usable sha256 or sha512"
        ));
    }
    match entry.get("details") {
        None | Some(Value::Null) => out.problems.push(format!(
            "the hashes.json entry for {asset} has no build details"
        )),
        Some(details) => match serde_json::from_value::<BuildInfo>(details.clone()) {
            Ok(d) if d.binary_name == daemon => out.details = Some(d),
            Ok(d) => out.problems.push(format!(
                "the hashes.json details for {asset} describe a `{}` binary, not `{daemon}`",
                d.binary_name
            )),
            Err(e) => out.problems.push(format!(
                "the hashes.json details for {asset} are unusable ({e})"
            )),
        },
    }
    out
}

impl GithubSource {
    /// The newest release on `releases` that the daemon can take, with its asset.
    pub(super) fn pick<'a>(&self, releases: &'a [Release]) -> Option<(&'a Release, &'a Asset)> {
        releases
            .iter()
            .filter(|r| {
                !r.draft && !r.prerelease && tag_matches(&self.settings.tag_pattern, &r.tag_name)
            })
            .filter_map(|r| {
                r.assets
                    .iter()
                    .find(|a| a.name == self.settings.asset)
                    .map(|a| (r, a))
            })
            .max_by(|(a, _), (b, _)| {
                parse_time(a.published_at.as_deref()).cmp(&parse_time(b.published_at.as_deref()))
            })
    }

    /// The upgrade a release offers, or why it cannot be offered.
    pub(super) async fn evaluate(
        &self,
        release: &Release,
        asset: &Asset,
    ) -> Result<UpgradeInfo, String> {
        let what = format!("release {} (asset {})", release.tag_name, asset.name);
        let mut entry = HashEntry::default();
        if let Some(hashes) = release.assets.iter().find(|a| a.name == "hashes.json") {
            let mut doc = Vec::new();
            let cap = self.fetcher.limits().caps.document;
            match self
                .fetch_asset(&self.download_url(hashes), cap, &mut doc)
                .await
            {
                Ok(_) => entry = hash_entry(&doc, &asset.name, &self.settings.daemon),
                // transient: the next poll asks again
                Err(e) => return Err(format!("{what}: cannot fetch hashes.json: {e}")),
            }
        } else {
            entry.problems.push("the release has no hashes.json".into());
        }
        let digest = asset
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .and_then(|h| hex_of_len(Some(&Value::String(h.to_owned())), 64))
            .map(|h| ("sha256", h));
        if let (Some((algo, from_hashes)), Some((_, from_api))) = (&entry.checksum, &digest)
            && *algo == "sha256"
            && from_hashes != from_api
        {
            return Err(format!(
                "{what}: hashes.json says sha256 {from_hashes} but the API's digest is {from_api}; one of them is wrong, nothing is offered (report it to the publisher)"
            ));
        }
        let Some(checksum) = entry.checksum.clone().or(digest) else {
            return Err(format!(
                "{what}: no checksum to verify the download against ({}, and the API listing has no sha256 digest for it); nymvisor does not run unverified binaries — queue it with `nymvisor add-upgrade` once you have checked it yourself",
                entry.problems.join("; ")
            ));
        };
        let details = match entry.details.clone() {
            Some(d) => d,
            None if !self.settings.allow_probe => {
                return Err(format!(
                    "{what}: its version is unknown ({}), and learning it means running the download before its signature is checked (or downloads are disabled)",
                    entry.problems.join("; ")
                ));
            }
            None => {
                tracing::info!(
                    "{what}: {}; downloading it to ask it for its version",
                    entry.problems.join("; ")
                );
                self.probe(asset, &checksum)
                    .await
                    .map_err(|e| format!("{what}: {e}"))?
            }
        };
        let published = parse_time(release.published_at.as_deref());
        Ok(UpgradeInfo {
            manual: false,
            name: upgrade_name(&self.settings.tag_pattern, &release.tag_name),
            notes: release.html_url.clone().unwrap_or_default(),
            publish_date: published,
            version: details.build_version.clone(),
            // Nym publishes Linux x86_64 binaries as release assets
            platforms: [(
                "linux-x86_64".to_owned(),
                PlatformDetails {
                    checksum: checksum.1,
                    checksum_algorithm: checksum.0.to_owned(),
                    url: self.download_url(asset),
                    signature_url: None,
                },
            )]
            .into_iter()
            .collect(),
            upgrade_time: published.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            binary_details: Some(details),
            immediate: false,
            allow_downgrade: false,
            first_seen_at: None,
        })
    }
}
