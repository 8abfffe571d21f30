//! A mock of the GitHub REST API shaped like the real `nymtech/nym` repository, for the GitHub
//! source's tests: many tag families, `Link`-header pagination, ETags and `304`s, rate limits
//! (`403` with `X-RateLimit-*`, or `Retry-After`), release assets that answer `302` to an
//! object-storage host (a second server, so a second origin), and private repositories whose API
//! and asset URLs need a token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::feed::{FeedServer, Reply, Request};

/// A release asset.
#[derive(Debug, Clone)]
pub struct MockAsset {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Whether the listing carries its `digest` (`sha256:<hex>`), as GitHub does since 2025.
    pub digest: bool,
}

impl MockAsset {
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        MockAsset {
            name: name.to_owned(),
            bytes,
            digest: true,
        }
    }

    pub fn without_digest(mut self) -> Self {
        self.digest = false;
        self
    }
}

/// A release.
#[derive(Debug, Clone)]
pub struct MockRelease {
    pub tag: String,
    pub published: String,
    pub draft: bool,
    pub prerelease: bool,
    pub assets: Vec<MockAsset>,
}

impl MockRelease {
    pub fn new(tag: &str, published: &str, assets: Vec<MockAsset>) -> Self {
        MockRelease {
            tag: tag.to_owned(),
            published: published.to_owned(),
            draft: false,
            prerelease: false,
            assets,
        }
    }
}

/// `n` releases of Nym's other tag families (wallet, VPN, connect, contracts, desktop apps),
/// published after `after` (RFC 3339 date `YYYY-MM-DD`), newest first.
pub fn other_families(n: usize, year: u32) -> Vec<MockRelease> {
    let families = [
        ("nym-wallet-v", "nym-wallet_{v}_amd64.AppImage"),
        ("nym-vpn-core-v", "nym-vpn-core-v{v}_linux_x86_64.tar.gz"),
        ("nym-connect-v", "nym-connect_{v}_amd64.AppImage"),
        ("nym-contracts-v", "mixnet_contract.wasm"),
        ("nym-vpn-desktop-v", "NymVPN_{v}_x64.msi"),
    ];
    (0..n)
        .map(|i| {
            let (prefix, asset) = families[i % families.len()];
            let v = format!("1.{}.{}", (n - i) / 10, (n - i) % 10);
            MockRelease::new(
                &format!("{prefix}{v}"),
                &format!(
                    "{year}-{:02}-{:02}T12:00:00Z",
                    12 - (i / 28) % 12,
                    28 - i % 28
                ),
                vec![MockAsset::new(
                    &asset.replace("{v}", &v),
                    format!("{prefix}{v}").into_bytes(),
                )],
            )
        })
        .collect()
}

/// When the API answers `403`/`429` instead of the listing.
#[derive(Debug, Clone, Copy)]
pub enum RateLimit {
    /// `403` with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` at this time.
    Reset(SystemTime),
    /// `429` with `Retry-After` of this many seconds, until the given time.
    RetryAfter(u64, SystemTime),
    /// The next listing request is limited for `secs` seconds from when it arrives, with a
    /// `403` + `X-RateLimit-Reset` or (`retry_after`) a `429` + `Retry-After`.
    Next { secs: u64, retry_after: bool },
}

#[derive(Debug, Default)]
struct MockState {
    releases: Vec<MockRelease>,
    token: Option<String>,
    rate_limit: Option<RateLimit>,
}

/// The mock: `api` plays api.github.com (and github.com's download URLs), `storage` plays the
/// object storage downloads are redirected to.
#[derive(Debug)]
pub struct GithubMock {
    pub api: FeedServer,
    pub storage: FeedServer,
    state: Arc<Mutex<MockState>>,
}

pub const REPO: &str = "nymtech/nym";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn asset_id(release: usize, asset: usize) -> usize {
    1_000_000 + release * 100 + asset
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &sha256(body)[..32])
}

impl GithubMock {
    /// A mock serving `releases` (newest first).
    pub fn start(releases: Vec<MockRelease>) -> GithubMock {
        let mock = GithubMock {
            api: FeedServer::start(),
            storage: FeedServer::start(),
            state: Arc::new(Mutex::new(MockState {
                releases,
                ..MockState::default()
            })),
        };
        mock.install();
        mock
    }

    /// A private repository: the API and its asset URLs answer 404 without `Bearer <token>`,
    /// and the public download URLs always do.
    pub fn private(self, token: &str) -> Self {
        self.state.lock().unwrap().token = Some(token.to_owned());
        self
    }

    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.state.lock().unwrap().rate_limit = limit;
    }

    /// When the rate limit announced ends (once one was announced).
    pub fn rate_limited_until(&self) -> Option<SystemTime> {
        match self.state.lock().unwrap().rate_limit {
            Some(RateLimit::Reset(t) | RateLimit::RetryAfter(_, t)) => Some(t),
            _ => None,
        }
    }

    /// Replaces the releases (e.g. a new one is published); routes follow.
    pub fn set_releases(&self, releases: Vec<MockRelease>) {
        self.state.lock().unwrap().releases = releases;
        self.install();
    }

    /// `NYMVISOR_GITHUB_API_URL`.
    pub fn api_url(&self) -> String {
        self.api.base()
    }

    /// Requests for the release listing.
    pub fn listing_requests(&self) -> Vec<Request> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&format!("/repos/{REPO}/releases?")))
            .collect()
    }

    /// Downloads of an asset's bytes (what reached the object storage).
    pub fn downloads_of(&self, name: &str) -> usize {
        self.storage
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/{name}")))
            .count()
    }

    fn install(&self) {
        let (api, storage) = (self.api.base(), self.storage.base());
        let releases = self.state.lock().unwrap().releases.clone();
        for (ri, release) in releases.iter().enumerate() {
            for (ai, asset) in release.assets.iter().enumerate() {
                let id = asset_id(ri, ai);
                let object = format!("/objects/{id}/{}", asset.name);
                self.storage
                    .route(&object, Reply::Body(asset.bytes.clone()));
                let location = format!("{storage}{object}");
                let state = self.state.clone();
                let to = location.clone();
                // the API asset URL: a token for private repositories, octet-stream wanted
                self.api.route(
                    &format!("/repos/{REPO}/releases/assets/{id}"),
                    Reply::Func(Arc::new(move |req: &Request| {
                        if !authorized(&state, req) {
                            return Reply::Status(404);
                        }
                        if req.header("accept") != Some("application/octet-stream") {
                            return Reply::Status(415);
                        }
                        Reply::Redirect(to.clone())
                    })),
                );
                let state = self.state.clone();
                self.api.route(
                    &format!("/{REPO}/releases/download/{}/{}", release.tag, asset.name),
                    Reply::Func(Arc::new(move |_: &Request| {
                        if state.lock().unwrap().token.is_some() {
                            Reply::Status(404)
                        } else {
                            Reply::Redirect(location.clone())
                        }
                    })),
                );
            }
        }
        let state = self.state.clone();
        self.api.route(
            &format!("/repos/{REPO}/releases"),
            Reply::Func(Arc::new(move |req: &Request| listing(&state, req, &api))),
        );
    }
}

fn authorized(state: &Mutex<MockState>, req: &Request) -> bool {
    match &state.lock().unwrap().token {
        None => true,
        Some(t) => req.header("authorization") == Some(&format!("Bearer {t}")),
    }
}

fn listing(state: &Mutex<MockState>, req: &Request, api: &str) -> Reply {
    let now = SystemTime::now();
    let mut limit = state.lock().unwrap().rate_limit;
    if let Some(RateLimit::Next { secs, retry_after }) = limit {
        // whole seconds, as X-RateLimit-Reset has them, rounded up
        let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs() + 1 + secs);
        let next = if retry_after {
            RateLimit::RetryAfter(secs + 1, reset)
        } else {
            RateLimit::Reset(reset)
        };
        state.lock().unwrap().rate_limit = Some(next);
        limit = Some(next);
    }
    match limit {
        Some(RateLimit::Reset(at)) if now < at => {
            let reset = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
            return Reply::Full {
                status: 403,
                headers: vec![
                    ("X-RateLimit-Limit".into(), "60".into()),
                    ("X-RateLimit-Remaining".into(), "0".into()),
                    ("X-RateLimit-Reset".into(), reset.to_string()),
                ],
                body: br#"{"message":"API rate limit exceeded for 127.0.0.1."}"#.to_vec(),
            };
        }
        Some(RateLimit::RetryAfter(secs, until)) if now < until => {
            return Reply::Full {
                status: 429,
                headers: vec![("Retry-After".into(), secs.to_string())],
                body: br#"{"message":"secondary rate limit"}"#.to_vec(),
            };
        }
        _ => {}
    }
    if !authorized(state, req) {
        return Reply::Full {
            status: 404,
            headers: Vec::new(),
            body: br#"{"message":"Not Found"}"#.to_vec(),
        };
    }
    let per_page: usize = req
        .query("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let page: usize = req.query("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let releases = state.lock().unwrap().releases.clone();
    let pages = releases.len().div_ceil(per_page).max(1);
    let first = (page - 1) * per_page;
    let items: Vec<serde_json::Value> = releases
        .iter()
        .enumerate()
        .skip(first)
        .take(per_page)
        .map(|(ri, r)| release_json(api, ri, r))
        .collect();
    let body = serde_json::to_vec(&items).unwrap();
    let etag = etag_of(&body);
    let mut headers = vec![("ETag".into(), etag.clone())];
    let link = |p: usize, rel: &str| {
        format!("<{api}/repos/{REPO}/releases?per_page={per_page}&page={p}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    if !links.is_empty() {
        headers.push(("Link".into(), links.join(", ")));
    }
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Reply::Full {
            status: 304,
            headers,
            body: Vec::new(),
        };
    }
    headers.push(("Content-Type".into(), "application/json".into()));
    Reply::Full {
        status: 200,
        headers,
        body,
    }
}

fn release_json(api: &str, ri: usize, r: &MockRelease) -> serde_json::Value {
    let assets: Vec<serde_json::Value> = r
        .assets
        .iter()
        .enumerate()
        .map(|(ai, a)| {
            let id = asset_id(ri, ai);
            let mut v = serde_json::json!({
                "url": format!("{api}/repos/{REPO}/releases/assets/{id}"),
                "id": id,
                "node_id": format!("RA_{id}"),
                "name": a.name,
                "label": "",
                "content_type": "application/octet-stream",
                "state": "uploaded",
                "size": a.bytes.len(),
                "download_count": 17,
                "created_at": r.published,
                "updated_at": r.published,
                "browser_download_url": format!("{api}/{REPO}/releases/download/{}/{}", r.tag, a.name),
            });
            if a.digest {
                v["digest"] = format!("sha256:{}", sha256(&a.bytes)).into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "url": format!("{api}/repos/{REPO}/releases/{}", 50_000 + ri),
        "html_url": format!("https://github.com/{REPO}/releases/tag/{}", r.tag),
        "id": 50_000 + ri,
        "tag_name": r.tag,
        "target_commitish": "master",
        "name": r.tag,
        "draft": r.draft,
        "prerelease": r.prerelease,
        "created_at": r.published,
        "published_at": if r.draft { serde_json::Value::Null } else { r.published.clone().into() },
        "assets": assets,
        "body": "release notes",
    })
}

/// What `bin build-info --output=json` prints: the `details` of its `hashes.json` entry.
pub fn build_details(bin: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(bin)
        .args(["build-info", "--output=json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap()
}

/// The fixture `hashes.json` (a real release's shape) for `tag`, with the entries of `ours`
/// (asset name, bytes, `details` or `None` to drop them) replaced.
pub fn hashes_json(tag: &str, ours: &[(&str, &[u8], Option<serde_json::Value>)]) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/github/hashes.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["tag_name"] = tag.into();
    doc["html_url"] = format!("https://github.com/{REPO}/releases/tag/{tag}").into();
    for (name, bytes, details) in ours {
        let mut entry = serde_json::json!({
            "sha256": sha256(bytes),
            "downloadUrl": format!("https://github.com/{REPO}/releases/download/{tag}/{name}"),
        });
        if let Some(d) = details {
            entry["details"] = d.clone();
        }
        doc["assets"][*name] = entry;
    }
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// Seconds until `t` (for messages).
pub fn secs_until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or_default()
}
