//! GitHub releases, for operators who follow Nym's releases directly (`nymtech/nym` by default).
//!
//! How it works, against the real repository's shapes:
//! - **Listing.** `GET <api>/repos/<owner>/<repo>/releases?per_page=100`, following the
//!   `Link: rel="next"` pages (at most [`MAX_PAGES`]) until a page holds a release that is neither
//!   a draft nor a prerelease, whose tag matches the pattern (`nym-binaries-v*`) and that carries
//!   the daemon's asset; the newest such release on that page is the offer. `nymtech/nym`
//!   publishes many tag families (wallet, VPN, contracts, desktop apps), so ours can be far down.
//!   Every page is asked for conditionally (`If-None-Match` with its last ETag): a poll that finds
//!   nothing new costs `304`s, which GitHub does not count against the rate limit.
//! - **Checksum and version** come from the release's `hashes.json` (written by Nym's release
//!   action: `{id, name, tag_name, html_url, componentName, componentVersion, assets: {<asset>:
//!   {sha256|sha512, downloadUrl, platform?, kind?, signature?, details?}}}`), read entry by entry
//!   so another asset's broken entry never matters. `details` is what `<asset> build-info
//!   --output=json` printed; it is used when it has `binary_name` (= the daemon) and
//!   `build_version`. Without a checksum there, the asset's `digest` (`sha256:<hex>`) is used; the
//!   two must agree when both exist.
//! - **Probe.** With a checksum but no usable `details`, the version is learned by downloading the
//!   asset, checking it against that checksum, and only then asking it for its build information
//!   (never when downloads are off or signatures are required: the signature is checked by the
//!   prepare stage). The verified file is kept and handed to the prepare stage, which hashes and
//!   verifies it again without a second download. A release is probed at most once.
//! - **Rate limits.** A `403`/`429` with `X-RateLimit-Remaining: 0` + `X-RateLimit-Reset`, or
//!   `Retry-After`, stops all API requests until then (at most [`MAX_RATE_LIMIT_WAIT`]); the
//!   error says until when, and suggests a token.
//! - **Private repositories and GitHub Enterprise.** With a token, assets are fetched through the
//!   API (`Accept: application/octet-stream`), which answers with a redirect to object storage;
//!   the token goes to the API host only, never to the host a redirect leads to.
//! - **Upgrade time** is the release's publication time (spread it with the fleet settings).

mod api;
mod probe;
mod select;

pub use api::{MAX_PAGES, MAX_RATE_LIMIT_WAIT, next_link};
pub use select::{tag_matches, upgrade_name};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nymvisor_core::build_info;
use nymvisor_core::model::{BuildInfo, PlatformDetails, UpgradeInfo};
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Limits;
use crate::error::Error;
use crate::fetch::{Answer, Fetcher};
// the parts (API client, release selection, probe) share one set of imports and see each other
use api::*;
use probe::*;
use select::*;

/// Settings of the GitHub source.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub api_url: String,
    pub repository: String,
    pub tag_pattern: String,
    pub asset: String,
    pub daemon: String,
    pub token: Option<String>,
    /// The environment variable the token is read from (for messages).
    pub token_env: String,
    /// Whether a release without usable build details may be downloaded (and, once it matches
    /// its checksum, run) to learn its version. Off when downloads are disabled or signatures
    /// are required: the signature can only be checked by the prepare stage.
    pub allow_probe: bool,
    /// Where a probed download waits for the prepare stage (emptied when the source is made).
    pub staging: PathBuf,
}

/// Everything remembered between polls; it travels with the network helper's jobs as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    pages: Vec<PageMemo>,
    /// No API request before this time (a rate limit), and the message to repeat until then.
    blocked: Option<(SystemTime, String)>,
    /// The last release evaluated (tag and checksum) and what came of it.
    evaluated: Option<(String, Result<UpgradeInfo, String>)>,
    staged: Option<Staged>,
}

/// See the module docs.
#[derive(Debug)]
pub struct GithubSource {
    fetcher: Fetcher,
    api: url::Url,
    settings: GithubSettings,
    state: Mutex<State>,
}

impl GithubSource {
    pub fn new(settings: GithubSettings, limits: Limits) -> Result<GithubSource, Error> {
        let base = settings.api_url.trim_end_matches('/');
        let fetcher = Fetcher::new(limits)?;
        let api = fetcher
            .resolve(&format!("{base}/"), None)
            .map_err(|e| Error::Setup(format!("the GitHub API URL: {e}")))?;
        Ok(GithubSource {
            fetcher,
            api,
            settings,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl UpgradeSource for GithubSource {
    fn describe(&self) -> String {
        format!(
            "GitHub releases of {} ({}) tagged {}",
            self.settings.repository, self.api, self.settings.tag_pattern
        )
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        self.check_blocked()?;
        let mut url = self.first_page();
        let mut found = None;
        // whether a page read so far differs from the last poll's
        let mut changed = false;
        let mut index = 0;
        while index < MAX_PAGES {
            match self.page(index, &url).await? {
                None => {
                    let memo = self.state().pages.get(index).cloned().unwrap_or_default();
                    if memo.matched {
                        if !changed {
                            // the offer's page and every page before it are as they were
                            return Ok(None);
                        }
                        // an earlier page changed but still holds no offer, so this one still
                        // does: read it again, whole (its content was not kept)
                        if let Some(p) = self.state().pages.get_mut(index) {
                            p.etag = None;
                        }
                        continue;
                    }
                    match memo.next {
                        Some(next) => url = next,
                        None => break,
                    }
                }
                Some((releases, mut memo)) => {
                    changed = true;
                    let next = memo.next.clone();
                    let pick = self.pick(&releases).map(|(r, a)| (r.clone(), a.clone()));
                    memo.matched = pick.is_some();
                    {
                        let mut state = self.state();
                        state.pages.truncate(index);
                        state.pages.push(memo);
                    }
                    if let Some(pick) = pick {
                        found = Some(pick);
                        break;
                    }
                    match next {
                        Some(next) => url = next,
                        None => break,
                    }
                }
            }
            index += 1;
        }
        let Some((release, asset)) = found else {
            let read = self.state().pages.len();
            let capped = read >= MAX_PAGES;
            // nothing to remember: ask for whole pages next time
            self.state().pages.clear();
            return Err(Error::Github(format!(
                "no release of {} {}is tagged {} (not a draft or prerelease) with an asset named {}{}",
                self.settings.repository,
                if capped {
                    format!("among the newest {} ", MAX_PAGES * PER_PAGE as usize)
                } else {
                    String::new()
                },
                self.settings.tag_pattern,
                self.settings.asset,
                if capped {
                    format!(
                        "; nymvisor reads at most {MAX_PAGES} pages of {PER_PAGE}: check NYMVISOR_GITHUB_TAG_PATTERN and NYMVISOR_GITHUB_ASSET_NAME"
                    )
                } else {
                    "; check NYMVISOR_GITHUB_TAG_PATTERN and NYMVISOR_GITHUB_ASSET_NAME".to_owned()
                }
            ))
            .into());
        };
        // a release is evaluated (and probed) once, whatever the outcome
        let key = format!(
            "{}:{}:{}",
            release.tag_name,
            asset.name,
            asset.digest.as_deref().unwrap_or_default()
        );
        let known = self
            .state()
            .evaluated
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, r)| r.clone());
        let result = match known {
            Some(r) => r,
            None => {
                let r = self.evaluate(&release, &asset).await;
                // a failed fetch of hashes.json is worth another try; anything else is not
                if !matches!(&r, Err(e) if e.contains("cannot fetch hashes.json")) {
                    self.state().evaluated = Some((key, r.clone()));
                }
                r
            }
        };
        let info = result.map_err(SourceError::new)?;
        let document = serde_json::to_vec(&info).unwrap_or_default();
        Ok(Some(SourcedUpgrade {
            info,
            document,
            document_url: self.first_page(),
        }))
    }

    fn forget_validators(&self) {
        let mut state = self.state();
        state.pages.clear();
        state.evaluated = None;
    }

    fn discard_leftovers(&self) {
        // a probe left by an earlier nymvisor is not trusted: it is fetched again if needed
        let _ = std::fs::remove_dir_all(&self.settings.staging);
    }

    fn save_state(&self) -> Option<Value> {
        serde_json::to_value(&*self.state()).ok()
    }

    fn load_state(&self, state: Value) {
        if let Ok(loaded) = serde_json::from_value::<State>(state) {
            *self.state() = loaded;
        }
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        if let Some(result) = self.take_staged(url, max_bytes, sink) {
            return Ok(result?);
        }
        Ok(self.fetch_asset(url, max_bytes, sink).await?)
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

    #[test]
    fn link_headers() {
        let link = r#"<https://api.github.com/repositories/1/releases?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/releases?per_page=100&page=9>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/releases?per_page=100&page=2")
        );
        let last_page = r#"<https://x/r?page=1>; rel="prev", <https://x/r?page=1>; rel="first""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn entries_are_read_one_by_one() {
        let doc = br#"{"assets": {
            "nym-api": {"sha256": 42, "details": "broken"},
            "nym-node": {"sha512": "ABCDEF", "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
                          "details": {"binary_name": "nym-node", "build_version": "1.2.0", "new_field": true}}
        }}"#;
        let e = hash_entry(doc, "nym-node", "nym-node");
        assert_eq!(e.checksum.unwrap().0, "sha256");
        let d = e.details.unwrap();
        assert_eq!(d.build_version, "1.2.0");
        assert_eq!(d.extra["new_field"], true);
        let e = hash_entry(doc, "nym-api", "nym-api");
        assert!(e.checksum.is_none() && e.details.is_none());
        assert_eq!(e.problems.len(), 2);
        let e = hash_entry(b"not json", "nym-node", "nym-node");
        assert!(e.problems[0].contains("not JSON"));
        // details of another binary are not taken for ours
        let e = hash_entry(doc, "nym-node", "nym-api");
        assert!(e.details.is_none());
    }

    #[test]
    fn rate_limits() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let answer = |status: u16, headers: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            Answer {
                status: StatusCode::from_u16(status).unwrap(),
                headers: h,
                body: Vec::new(),
            }
        };
        let reset = answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000600"),
            ],
        );
        assert_eq!(
            rate_limited_until(&reset, now),
            Some(now + Duration::from_secs(600))
        );
        let retry = answer(429, &[("retry-after", "30")]);
        assert_eq!(
            rate_limited_until(&retry, now),
            Some(now + Duration::from_secs(30))
        );
        // bounded
        let far = answer(429, &[("retry-after", "999999")]);
        assert_eq!(
            rate_limited_until(&far, now),
            Some(now + MAX_RATE_LIMIT_WAIT)
        );
        // a 403 that is not a rate limit
        assert_eq!(rate_limited_until(&answer(403, &[]), now), None);
        assert_eq!(rate_limited_until(&answer(200, &[]), now), None);
    }
}
