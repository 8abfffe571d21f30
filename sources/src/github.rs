//! GitHub releases (octocrab), for operators who follow Nym's releases directly.
//!
//! The newest release that is neither a draft nor a prerelease, whose tag matches the pattern
//! (`nym-binaries-v*`) and that carries an asset named like the daemon, becomes an upgrade named
//! after its tag (`nym-binaries-v2026.9-venaco` → `v2026.9-venaco`). Checksum and version come
//! from the release's `hashes.json` asset, so nothing is downloaded to learn the version. Without
//! `hashes.json`, the asset's `digest` (`sha256:<hex>`) gives the checksum, and the version is
//! read from the binary's own build information — after the download matched that digest, so an
//! unverified binary is never run; a release with neither is not offered. The result of that
//! probe is remembered per release, so a poll does not download the binary again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use nymvisor_core::build_info;
use nymvisor_core::model::{BuildInfo, PlatformDetails, UpgradeInfo};
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use serde::Deserialize;

use crate::Limits;
use crate::http::{Fetcher, web_url};

/// Settings of the GitHub source.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub api_url: String,
    pub repository: String,
    pub tag_pattern: String,
    pub asset: String,
    pub daemon: String,
    pub token: Option<String>,
    /// Whether a release without `hashes.json` may be downloaded (and, once it matches the
    /// release's digest, run) to learn its version. Off when downloads are disabled or signatures
    /// are required: the signature can only be checked by the prepare stage.
    pub allow_probe: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(Debug, Clone, Deserialize)]
struct Asset {
    name: String,
    browser_download_url: String,
    #[serde(default)]
    digest: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Hashes {
    #[serde(default)]
    assets: BTreeMap<String, HashEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct HashEntry {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default, rename = "downloadUrl")]
    download_url: Option<String>,
    #[serde(default)]
    details: Option<BuildInfo>,
}

/// See the module docs.
#[derive(Debug)]
pub struct GithubSource {
    client: octocrab::Octocrab,
    fetcher: Fetcher,
    settings: GithubSettings,
    /// The last release probed (tag and digest) and what was learned.
    probed: Mutex<Option<(String, Result<UpgradeInfo, String>)>>,
}

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

impl GithubSource {
    pub fn new(settings: GithubSettings, limits: Limits) -> Result<GithubSource, SourceError> {
        let mut builder = octocrab::Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| {
                SourceError(format!(
                    "invalid GitHub API URL {:?}: {e}",
                    settings.api_url
                ))
            })?
            .set_connect_timeout(Some(limits.connect))
            .set_read_timeout(Some(limits.idle));
        if let Some(token) = &settings.token {
            builder = builder.personal_token(token.clone());
        }
        let client = builder
            .build()
            .map_err(|e| SourceError(format!("cannot set up the GitHub client: {e}")))?;
        Ok(GithubSource {
            client,
            fetcher: Fetcher::new(limits)?,
            settings,
            probed: Mutex::new(None),
        })
    }

    fn repo_route(&self) -> String {
        format!("/repos/{}/releases", self.settings.repository)
    }

    async fn releases(&self) -> Result<Vec<Release>, SourceError> {
        let route = self.repo_route();
        let limit = self.fetcher.limits().document;
        let call = self.client.get(&route, Some(&[("per_page", "30")]));
        match tokio::time::timeout(limit, call).await {
            Ok(r) => r.map_err(|e| {
                SourceError(format!(
                    "GET {}{route}: {}",
                    self.settings.api_url,
                    chain(&e)
                ))
            }),
            Err(_) => Err(SourceError(format!(
                "GET {}{route}: no complete answer within {}",
                self.settings.api_url,
                humantime::format_duration(limit)
            ))),
        }
    }

    /// Checksum and version for the daemon's asset of `release`.
    async fn describe_release(
        &self,
        release: &Release,
        asset: &Asset,
    ) -> Result<(String, BuildInfoOrVersion), SourceError> {
        let caps = self.fetcher.limits().caps;
        if let Some(hashes) = release.assets.iter().find(|a| a.name == "hashes.json") {
            let url = web_url(&hashes.browser_download_url, None)?;
            let doc = self.fetcher.get_small(&url, caps.document).await?;
            let hashes: Hashes = serde_json::from_slice(&doc)
                .map_err(|e| SourceError(format!("{url}: not a valid hashes.json: {e}")))?;
            if let Some(entry) = hashes.assets.get(&asset.name)
                && let (Some(sha), Some(details)) = (&entry.sha256, &entry.details)
            {
                if entry
                    .download_url
                    .as_deref()
                    .is_some_and(|u| u != asset.browser_download_url)
                {
                    tracing::debug!(
                        "hashes.json names another download URL for {}; the release asset's URL is used",
                        asset.name
                    );
                }
                return Ok((
                    sha.to_ascii_lowercase(),
                    BuildInfoOrVersion::Details(details.clone()),
                ));
            }
        }
        let digest = asset
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                SourceError(format!(
                    "release {} has neither hashes.json nor a sha256 digest for {}; its version cannot be learned without running an unverified binary",
                    release.tag_name, asset.name
                ))
            })?;
        let key = format!("{}:{digest}", release.tag_name);
        if let Ok(guard) = self.probed.lock()
            && let Some((k, known)) = guard.as_ref()
            && k == &key
        {
            // a release is probed once, whatever the outcome
            return match known {
                Ok(info) => Ok((digest, BuildInfoOrVersion::Known(info.clone()))),
                Err(e) => Err(SourceError(e.clone())),
            };
        }
        if !self.settings.allow_probe {
            return Err(SourceError(format!(
                "release {} has no hashes.json, and learning its version would mean running the download before its signature is checked (or downloads are disabled)",
                release.tag_name
            )));
        }
        match self.probe_asset(asset, &digest).await {
            Ok(details) => Ok((digest, BuildInfoOrVersion::Details(details))),
            Err(e) => {
                if let Ok(mut guard) = self.probed.lock() {
                    *guard = Some((key, Err(e.0.clone())));
                }
                Err(e)
            }
        }
    }

    /// Downloads the asset to a temporary file, checks it against `digest`, then asks it for its
    /// build information.
    async fn probe_asset(&self, asset: &Asset, digest: &str) -> Result<BuildInfo, SourceError> {
        use sha2::Digest as _;
        let dir = tempfile::tempdir()
            .map_err(|e| SourceError(format!("cannot create a temporary directory: {e}")))?;
        let path = dir.path().join(&self.settings.daemon);
        let mut file = std::fs::File::create(&path)
            .map_err(|e| SourceError(format!("cannot create {}: {e}", path.display())))?;
        struct Sink<'a>(&'a mut std::fs::File, sha2::Sha256);
        impl ChunkSink for Sink<'_> {
            fn accept(&mut self, chunk: &[u8]) -> std::io::Result<()> {
                self.1.update(chunk);
                std::io::Write::write_all(self.0, chunk)
            }
        }
        let url = web_url(&asset.browser_download_url, None)?;
        let mut sink = Sink(&mut file, sha2::Sha256::new());
        self.fetcher
            .get(&url, self.fetcher.limits().caps.binary, &mut sink)
            .await?;
        let actual = hex::encode(sink.1.finalize());
        drop(file);
        if actual != digest {
            return Err(SourceError(format!(
                "{url}: sha256 {actual} does not match the release's digest {digest}"
            )));
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| SourceError(format!("cannot make {} executable: {e}", path.display())))?;
        build_info::probe_daemon(&path, &self.settings.daemon)
            .await
            .map_err(|e| SourceError(e.to_string()))
    }
}

enum BuildInfoOrVersion {
    Details(BuildInfo),
    Known(UpgradeInfo),
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

fn parse_time(s: Option<&str>) -> Option<time::OffsetDateTime> {
    s.and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    })
}

#[async_trait::async_trait]
impl UpgradeSource for GithubSource {
    fn describe(&self) -> String {
        format!(
            "GitHub releases of {} ({}) tagged {}",
            self.settings.repository, self.settings.api_url, self.settings.tag_pattern
        )
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        let mut releases = self.releases().await?;
        releases.retain(|r| {
            !r.draft && !r.prerelease && tag_matches(&self.settings.tag_pattern, &r.tag_name)
        });
        releases.sort_by(|a, b| b.published_at.cmp(&a.published_at));
        let Some((release, asset)) = releases.iter().find_map(|r| {
            r.assets
                .iter()
                .find(|a| a.name == self.settings.asset)
                .map(|a| (r, a))
        }) else {
            return Ok(None);
        };
        let (checksum, described) = self.describe_release(release, asset).await?;
        let published = parse_time(release.published_at.as_deref());
        let info = match described {
            BuildInfoOrVersion::Known(info) => info,
            BuildInfoOrVersion::Details(details) => UpgradeInfo {
                manual: false,
                name: upgrade_name(&self.settings.tag_pattern, &release.tag_name),
                notes: release.html_url.clone().unwrap_or_default(),
                publish_date: published,
                version: details.build_version.clone(),
                // Nym publishes Linux x86_64 binaries as release assets
                platforms: [(
                    "linux-x86_64".to_owned(),
                    PlatformDetails {
                        checksum: checksum.clone(),
                        checksum_algorithm: "sha256".to_owned(),
                        url: asset.browser_download_url.clone(),
                        signature_url: None,
                    },
                )]
                .into_iter()
                .collect(),
                upgrade_time: published.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                binary_details: Some(details),
            },
        };
        if let Ok(mut guard) = self.probed.lock() {
            *guard = Some((format!("{}:{checksum}", release.tag_name), Ok(info.clone())));
        }
        let document = serde_json::to_vec(&info).unwrap_or_default();
        Ok(Some(SourcedUpgrade {
            info,
            document,
            document_url: format!("{}{}", self.settings.api_url, self.repo_route()),
        }))
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        self.fetcher
            .get(&web_url(url, None)?, max_bytes, sink)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(tag_matches(
            "nym-binaries-v*",
            "nym-binaries-v2026.9-venaco"
        ));
        assert!(!tag_matches("nym-binaries-v*", "nym-wallet-v1.2.3"));
        assert!(tag_matches("*", "anything"));
        assert!(tag_matches("a*c*e", "abcde"));
        assert!(!tag_matches("a*c*e", "abde"));
        assert!(tag_matches("exact", "exact") && !tag_matches("exact", "exactly"));
        assert_eq!(
            upgrade_name("nym-binaries-v*", "nym-binaries-v2026.9-venaco"),
            "v2026.9-venaco"
        );
        assert_eq!(upgrade_name("release-*", "release-1.2.3"), "1.2.3");
        assert_eq!(upgrade_name("*", "v1"), "v1");
    }
}
