//! The GitHub REST API as the source uses it: the listing's pages (conditional, with `Link`
//! pagination), rate limits, the headers a token adds on the API host only, and asset downloads.

use super::*;

/// Most pages of 100 releases read to find the daemon's release.
pub const MAX_PAGES: usize = 10;

/// Longest a rate limit keeps the source from asking the API again.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// Wait after a `429` that says nothing about when to come back.
pub(super) const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

pub(super) const PER_PAGE: u32 = 100;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Release {
    pub(super) tag_name: String,
    #[serde(default)]
    pub(super) draft: bool,
    #[serde(default)]
    pub(super) prerelease: bool,
    #[serde(default)]
    pub(super) published_at: Option<String>,
    #[serde(default)]
    pub(super) html_url: Option<String>,
    #[serde(default)]
    pub(super) assets: Vec<Asset>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Asset {
    pub(super) name: String,
    /// The API URL of the asset (downloads with a token).
    #[serde(default)]
    pub(super) url: Option<String>,
    pub(super) browser_download_url: String,
    #[serde(default)]
    pub(super) digest: Option<String>,
}

/// What is remembered of one listing page between polls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct PageMemo {
    pub(super) etag: Option<String>,
    pub(super) next: Option<String>,
    /// The offer was found on this page.
    pub(super) matched: bool,
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
pub(super) fn rate_limited_until(answer: &Answer, now: SystemTime) -> Option<SystemTime> {
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

pub(super) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .map(nymvisor_core::model::rfc3339)
        .unwrap_or_else(|_| format!("{secs} (unix time)"))
}

impl GithubSource {
    pub(super) fn first_page(&self) -> String {
        format!(
            "{}repos/{}/releases?per_page={PER_PAGE}",
            self.api, self.settings.repository
        )
    }

    /// Whether `url` is on the API host (the only one that gets the token).
    pub(super) fn on_api_host(&self, url: &url::Url) -> bool {
        url.scheme() == self.api.scheme()
            && url.host_str() == self.api.host_str()
            && url.port_or_known_default() == self.api.port_or_known_default()
    }

    pub(super) fn api_headers(&self, accept: &'static str) -> HeaderMap {
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

    pub(super) fn check_blocked(&self) -> Result<(), Error> {
        let mut state = self.state();
        if let Some((until, msg)) = &state.blocked {
            if SystemTime::now() < *until {
                return Err(Error::RateLimited {
                    message: msg.clone(),
                    until: *until,
                });
            }
            state.blocked = None;
        }
        Ok(())
    }

    /// One listing page (conditionally, when its ETag is known). `Ok(None)`: not modified.
    pub(super) async fn page(
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
            return Err(Error::RateLimited {
                message: msg,
                until,
            });
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

    /// Where an asset is downloaded from: through the API with a token (private repositories),
    /// else its public URL.
    pub(super) fn download_url(&self, asset: &Asset) -> String {
        match (&self.settings.token, &asset.url) {
            (Some(_), Some(api)) => api.clone(),
            _ => asset.browser_download_url.clone(),
        }
    }

    /// Streams an asset (by [`GithubSource::download_url`]) into `sink`.
    pub(super) async fn fetch_asset(
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
}
