//! The HTTP feed: `GET <base>/<daemon>/upgrade-info.json` (or the absolute URL).
//!
//! Guarantees: a non-2xx answer is an error and is never parsed; documents over 1 MiB and
//! binaries over the cap are refused as soon as that is known (Content-Length) or reached
//! (streaming); at most 5 redirects, never from https to http; connect, idle and overall
//! timeouts; conditional requests (ETag / Last-Modified) so an unchanged feed costs one `304`.

use std::sync::Mutex;

use nymvisor_core::model::UpgradeInfo;
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, redirect};

use crate::Limits;

/// Longest redirect chain followed.
pub const MAX_REDIRECTS: usize = 5;

fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if from_https && attempt.url().scheme() != "https" {
            attempt.error("refusing a redirect from https to http")
        } else {
            attempt.follow()
        }
    })
}

/// The error text of a failed request, with its URL and the whole cause chain.
fn describe(url: &str, e: &reqwest::Error) -> SourceError {
    let mut msg = format!("GET {url}: ");
    if e.is_timeout() {
        msg.push_str("timed out");
    } else if e.is_redirect() {
        msg.push_str("redirect refused");
    } else if e.is_connect() {
        msg.push_str("could not connect");
    } else {
        msg.push_str("request failed");
    }
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    SourceError(msg)
}

fn check_status(url: &str, resp: &reqwest::Response) -> Result<(), SourceError> {
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(SourceError(format!(
            "GET {url}: HTTP {status}; the response is ignored"
        )))
    }
}

/// Streams a successful response into `sink`, enforcing `max` bytes.
async fn stream(
    url: &str,
    mut resp: reqwest::Response,
    max: u64,
    sink: &mut dyn ChunkSink,
) -> Result<u64, SourceError> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(SourceError(format!(
            "GET {url}: {len} bytes announced, more than the {max}-byte cap"
        )));
    }
    let mut total: u64 = 0;
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(url, &e))? {
        total += chunk.len() as u64;
        if total > max {
            return Err(SourceError(format!(
                "GET {url}: more than the {max}-byte cap was sent; aborted"
            )));
        }
        sink.accept(&chunk)
            .map_err(|e| SourceError(format!("GET {url}: cannot store the data: {e}")))?;
    }
    Ok(total)
}

/// An HTTP client with nymvisor's limits, shared by the feed and the GitHub source.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: Limits,
}

impl Fetcher {
    pub fn new(limits: Limits) -> Result<Fetcher, SourceError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("nymvisor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect)
            .read_timeout(limits.idle)
            .redirect(redirect_policy())
            .build()
            .map_err(|e| SourceError(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Fetcher { client, limits })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// GETs `url` into `sink`: non-2xx is an error, at most `max` bytes.
    pub async fn get(
        &self,
        url: &url::Url,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let timeout = if max <= self.limits.caps.document {
            self.limits.document
        } else {
            self.limits.download
        };
        let resp = self
            .client
            .get(url.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe(url.as_str(), &e))?;
        check_status(url.as_str(), &resp)?;
        stream(url.as_str(), resp, max, sink).await
    }

    /// GETs a small document into memory.
    pub async fn get_small(&self, url: &url::Url, max: u64) -> Result<Vec<u8>, SourceError> {
        let mut doc = Vec::new();
        self.get(url, max, &mut doc).await?;
        Ok(doc)
    }

    /// GETs `url` with extra request headers into `sink`: non-2xx is an error, at most `max`
    /// bytes. Headers such as `Authorization` are not sent on to another host when the answer
    /// redirects there.
    pub async fn get_with(
        &self,
        url: &url::Url,
        headers: reqwest::header::HeaderMap,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let timeout = if max <= self.limits.caps.document {
            self.limits.document
        } else {
            self.limits.download
        };
        let resp = self
            .client
            .get(url.clone())
            .headers(headers)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe(url.as_str(), &e))?;
        check_status(url.as_str(), &resp)?;
        stream(url.as_str(), resp, max, sink).await
    }

    /// GETs a document with extra request headers and returns the answer whatever its status
    /// (the caller reads 304, 403 and the like): status, headers and at most `max` bytes of body.
    pub async fn exchange(
        &self,
        url: &url::Url,
        headers: reqwest::header::HeaderMap,
        max: u64,
    ) -> Result<Answer, SourceError> {
        let resp = self
            .client
            .get(url.clone())
            .headers(headers)
            .timeout(self.limits.document)
            .send()
            .await
            .map_err(|e| describe(url.as_str(), &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        if status != StatusCode::NOT_MODIFIED {
            stream(url.as_str(), resp, max, &mut body).await?;
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// A whole (small) HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Parses a URL that must be http(s); `base`'s https may not be downgraded.
pub(crate) fn web_url(url: &str, base: Option<&url::Url>) -> Result<url::Url, SourceError> {
    let resolved = match base {
        Some(b) => b.join(url),
        None => url::Url::parse(url),
    }
    .map_err(|e| SourceError(format!("invalid URL {url:?}: {e}")))?;
    if !matches!(resolved.scheme(), "http" | "https") {
        return Err(SourceError(format!(
            "refusing to fetch {resolved}: only http(s) URLs are allowed"
        )));
    }
    if base.is_some_and(|b| b.scheme() == "https") && resolved.scheme() == "http" {
        return Err(SourceError(format!(
            "refusing {resolved}: the feed is https but the URL is plain http"
        )));
    }
    Ok(resolved)
}

/// See the module docs.
#[derive(Debug)]
pub struct HttpSource {
    fetcher: Fetcher,
    url: url::Url,
    validators: Mutex<(Option<String>, Option<String>)>,
}

impl HttpSource {
    pub fn new(url: &str, limits: Limits) -> Result<HttpSource, SourceError> {
        let url = web_url(url, None).map_err(|e| SourceError(format!("the feed URL: {e}")))?;
        Ok(HttpSource {
            fetcher: Fetcher::new(limits)?,
            url,
            validators: Mutex::new((None, None)),
        })
    }
}

#[async_trait::async_trait]
impl UpgradeSource for HttpSource {
    fn describe(&self) -> String {
        format!("the feed {}", self.url)
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        let url = self.url.as_str();
        let limits = self.fetcher.limits();
        let mut req = self
            .fetcher
            .client
            .get(self.url.clone())
            .timeout(limits.document);
        let (etag, modified) = self
            .validators
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        if let Some(etag) = &etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &modified {
            req = req.header(IF_MODIFIED_SINCE, modified);
        }
        let resp = req.send().await.map_err(|e| describe(url, &e))?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        check_status(url, &resp)?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let validators = (header(ETAG), header(LAST_MODIFIED));
        let mut doc = Vec::new();
        stream(url, resp, limits.caps.document, &mut doc).await?;
        let info: UpgradeInfo = serde_json::from_slice(&doc).map_err(|e| {
            SourceError(format!("GET {url}: not a valid upgrade-info document: {e}"))
        })?;
        if let Ok(mut v) = self.validators.lock() {
            *v = validators;
        }
        Ok(Some(SourcedUpgrade {
            info,
            document: doc,
            document_url: url.to_owned(),
        }))
    }

    fn forget_validators(&self) {
        if let Ok(mut v) = self.validators.lock() {
            *v = (None, None);
        }
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let resolved = web_url(url, Some(&self.url))?;
        self.fetcher.get(&resolved, max_bytes, sink).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_from_an_https_feed_stay_https() {
        let base = url::Url::parse("https://mirror.example/nym-node/upgrade-info.json").unwrap();
        assert_eq!(
            web_url("bin/x", Some(&base)).unwrap().as_str(),
            "https://mirror.example/nym-node/bin/x"
        );
        assert!(web_url("http://mirror.example/x", Some(&base)).is_err());
        assert!(web_url("file:///etc/passwd", Some(&base)).is_err());
        assert!(web_url("ftp://x/y", None).is_err());
    }
}
