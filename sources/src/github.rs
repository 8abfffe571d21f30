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

/// Most pages of 100 releases read to find the daemon's release.
pub const MAX_PAGES: usize = 10;
/// Longest a rate limit keeps the source from asking the API again.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);
/// Wait after a `429` that says nothing about when to come back.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
const PER_PAGE: u32 = 100;

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
    /// The API URL of the asset (downloads with a token).
    #[serde(default)]
    url: Option<String>,
    browser_download_url: String,
    #[serde(default)]
    digest: Option<String>,
}

/// What is remembered of one listing page between polls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PageMemo {
    etag: Option<String>,
    next: Option<String>,
    /// The offer was found on this page.
    matched: bool,
}

/// A probed download kept for the prepare stage.
#[derive(Debug, Serialize, Deserialize)]
struct Staged {
    url: String,
    path: PathBuf,
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

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| url.to_owned())
    })
}

/// When a rate-limited answer allows the next request, if it is one.
fn rate_limited_until(answer: &Answer, now: SystemTime) -> Option<SystemTime> {
    if !matches!(
        answer.status,
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) {
        return None;
    }
    let until = if let Some(secs) = answer
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        now + Duration::from_secs(secs)
    } else if answer.header("x-ratelimit-remaining").map(str::trim) == Some("0") {
        let reset = answer
            .header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        SystemTime::UNIX_EPOCH + Duration::from_secs(reset)
    } else if answer.status == StatusCode::TOO_MANY_REQUESTS {
        now + DEFAULT_RATE_LIMIT_WAIT
    } else {
        // a 403 for another reason (a bad token, no access)
        return None;
    };
    Some(until.clamp(now, now + MAX_RATE_LIMIT_WAIT))
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map(nymvisor_core::model::rfc3339)
        .unwrap_or_else(|_| format!("{secs} (unix time)"))
}

fn parse_time(s: Option<&str>) -> Option<time::OffsetDateTime> {
    s.and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    })
}

/// A checksum as `(algorithm, lower-case hex)`.
type Checksum = (&'static str, String);

fn hex_of_len(v: Option<&Value>, len: usize) -> Option<String> {
    let s = v?.as_str()?.trim();
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// What `hashes.json` says about one asset.
#[derive(Debug, Default)]
struct HashEntry {
    checksum: Option<Checksum>,
    details: Option<BuildInfo>,
    /// Why the entry (or the document) could not give what was needed, for messages.
    problems: Vec<String>,
}

/// Reads the entry for `asset` of a `hashes.json` document, and nothing else of it.
fn hash_entry(doc: &[u8], asset: &str, daemon: &str) -> HashEntry {
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

    fn first_page(&self) -> String {
        format!(
            "{}repos/{}/releases?per_page={PER_PAGE}",
            self.api, self.settings.repository
        )
    }

    /// Whether `url` is on the API host (the only one that gets the token).
    fn on_api_host(&self, url: &url::Url) -> bool {
        url.scheme() == self.api.scheme()
            && url.host_str() == self.api.host_str()
            && url.port_or_known_default() == self.api.port_or_known_default()
    }

    fn api_headers(&self, accept: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(accept));
        h.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        if let Some(token) = &self.settings.token
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    fn check_blocked(&self) -> Result<(), Error> {
        let mut state = self.state();
        if let Some((until, msg)) = &state.blocked {
            if SystemTime::now() < *until {
                return Err(Error::Github(msg.clone()));
            }
            state.blocked = None;
        }
        Ok(())
    }

    /// One listing page (conditionally, when its ETag is known). `Ok(None)`: not modified.
    async fn page(
        &self,
        index: usize,
        url: &str,
    ) -> Result<Option<(Vec<Release>, PageMemo)>, Error> {
        let url = self.fetcher.resolve(url, None)?;
        if !self.on_api_host(&url) {
            return Err(Error::Github(format!(
                "the release listing of {} points to {url}, outside the API at {}; not followed",
                self.settings.repository, self.api
            )));
        }
        let mut headers = self.api_headers("application/vnd.github+json");
        let etag = self.state().pages.get(index).and_then(|p| p.etag.clone());
        if let Some(etag) = &etag
            && let Ok(v) = HeaderValue::from_str(etag)
        {
            headers.insert(IF_NONE_MATCH, v);
        }
        let caps = self.fetcher.limits().caps;
        // a page of 100 releases with their assets is a few hundred KiB
        let answer = self
            .fetcher
            .exchange(&url, headers, caps.document * 8)
            .await?;
        if answer.status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(None);
        }
        if let Some(until) = rate_limited_until(&answer, SystemTime::now()) {
            let msg = format!(
                "GET {url}: HTTP {}: the GitHub API rate limit is exhausted{}; no request to the API before {} (unauthenticated clients get 60 requests an hour: put a token in {} for 5,000)",
                answer.status,
                answer
                    .header("x-ratelimit-limit")
                    .map(|l| format!(" ({l} requests an hour)"))
                    .unwrap_or_default(),
                rfc3339(until),
                self.settings.token_env,
            );
            self.state().blocked = Some((until, msg.clone()));
            return Err(Error::Github(msg));
        }
        if !answer.status.is_success() {
            let hint = match answer.status {
                StatusCode::NOT_FOUND => format!(
                    "; check NYMVISOR_GITHUB_REPOSITORY ({}) and, for a private repository, the token in {}",
                    self.settings.repository, self.settings.token_env
                ),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    format!("; check the token in {}", self.settings.token_env)
                }
                _ => String::new(),
            };
            return Err(Error::Github(format!(
                "GET {url}: HTTP {}; the answer is ignored{hint}",
                answer.status
            )));
        }
        let releases: Vec<Release> = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Github(format!("GET {url}: not a GitHub release listing: {e}")))?;
        let memo = PageMemo {
            etag: answer.header(ETAG.as_str()).map(str::to_owned),
            next: answer.header("link").and_then(next_link),
            matched: false,
        };
        Ok(Some((releases, memo)))
    }

    /// The newest release on `releases` that the daemon can take, with its asset.
    fn pick<'a>(&self, releases: &'a [Release]) -> Option<(&'a Release, &'a Asset)> {
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

    /// Where an asset is downloaded from: through the API with a token (private repositories),
    /// else its public URL.
    fn download_url(&self, asset: &Asset) -> String {
        match (&self.settings.token, &asset.url) {
            (Some(_), Some(api)) => api.clone(),
            _ => asset.browser_download_url.clone(),
        }
    }

    /// Streams an asset (by [`GithubSource::download_url`]) into `sink`.
    async fn fetch_asset(
        &self,
        url: &str,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, Error> {
        let url = self.fetcher.resolve(url, None)?;
        let headers = if self.on_api_host(&url) {
            self.api_headers("application/octet-stream")
        } else {
            HeaderMap::new()
        };
        self.fetcher.get_with(&url, headers, max, sink).await
    }

    /// The upgrade a release offers, or why it cannot be offered.
    async fn evaluate(&self, release: &Release, asset: &Asset) -> Result<UpgradeInfo, String> {
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

    /// Downloads the asset into the staging directory, checks it against `checksum`, then asks
    /// it for its build information. The verified file is kept for the prepare stage.
    async fn probe(&self, asset: &Asset, checksum: &Checksum) -> Result<BuildInfo, String> {
        let dir = &self.settings.staging;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(&self.settings.daemon);
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let url = self.download_url(asset);
        let mut sink = HashingFile::new(file, checksum.0);
        self.fetch_asset(&url, self.fetcher.limits().caps.binary, &mut sink)
            .await
            .map_err(|e| e.to_string())?;
        let actual = sink
            .finish()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if actual != checksum.1 {
            let _ = std::fs::remove_dir_all(dir);
            return Err(format!(
                "the download {url} has {} {actual}, not the announced {}; it was deleted",
                checksum.0, checksum.1
            ));
        }
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
        let details = build_info::probe_daemon(&path, &self.settings.daemon)
            .await
            .map_err(|e| e.to_string())?;
        self.state().staged = Some(Staged { url, path });
        Ok(details)
    }

    /// Streams a staged probe download into `sink` (and forgets it), if `url` is the one staged.
    fn take_staged(
        &self,
        url: &str,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Option<Result<u64, Error>> {
        let staged = {
            let mut state = self.state();
            if state.staged.as_ref().is_none_or(|s| s.url != url) {
                return None;
            }
            state.staged.take()?
        };
        let result = stream_file(&staged.path, max, sink);
        if let Some(dir) = staged.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        tracing::debug!(%url, "handed the probed download to the prepare stage");
        Some(result)
    }
}

/// A file that hashes what is written to it.
struct HashingFile {
    file: std::fs::File,
    hasher: Hasher,
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl HashingFile {
    fn new(file: std::fs::File, algorithm: &str) -> Self {
        use sha2::Digest as _;
        let hasher = if algorithm == "sha512" {
            Hasher::Sha512(sha2::Sha512::new())
        } else {
            Hasher::Sha256(sha2::Sha256::new())
        };
        HashingFile { file, hasher }
    }

    fn finish(self) -> std::io::Result<String> {
        use sha2::Digest as _;
        self.file.sync_all()?;
        Ok(match self.hasher {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        })
    }
}

impl ChunkSink for HashingFile {
    fn accept(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        use sha2::Digest as _;
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(chunk),
            Hasher::Sha512(h) => h.update(chunk),
        }
        std::io::Write::write_all(&mut self.file, chunk)
    }
}

fn stream_file(path: &Path, max: u64, sink: &mut dyn ChunkSink) -> Result<u64, Error> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Github(format!("cannot read {}: {e}", path.display())))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::Github(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > max {
            return Err(Error::Github(format!(
                "{} is more than the {max}-byte cap",
                path.display()
            )));
        }
        sink.accept(&buf[..n])
            .map_err(|e| Error::Github(format!("cannot store the data: {e}")))?;
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
        let info = result.map_err(SourceError)?;
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
