//! The one path from a URL to bytes, for every source (plugins included): `http(s)` through one
//! reqwest client with nymvisor's limits, and `file://` inside a root directory.
//!
//! Guarantees, whatever the scheme: at most `max` bytes, refused as soon as that is known
//! (Content-Length, file size) or reached (streaming); streamed into the caller's sink, never
//! held whole in memory. For http(s): a non-2xx answer is an error and is never read as the
//! document; at most 5 redirects, never from https to http; connect, idle and overall timeouts;
//! an `Authorization` header is not sent on to another host by a redirect. For `file://`: only
//! inside the fetcher's root (none: refused), opened without following a symlink or blocking on
//! a FIFO, and only a regular file.

use std::path::{Component, Path, PathBuf};

use nymvisor_core::source::ChunkSink;
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, redirect};
use tokio::io::AsyncReadExt;

use crate::Limits;
use crate::error::Error;

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

/// A failed request, with its URL and the whole cause chain.
fn describe(url: &str, e: &reqwest::Error) -> Error {
    let mut what = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
    .to_owned();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        what.push_str(": ");
        what.push_str(&c.to_string());
        cause = c.source();
    }
    Error::Request {
        url: url.to_owned(),
        what,
    }
}

fn check_status(url: &str, resp: &reqwest::Response) -> Result<(), Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    Err(Error::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        hint: String::new(),
    })
}

/// Streams a successful response into `sink`, enforcing `max` bytes.
async fn stream(
    url: &str,
    mut resp: reqwest::Response,
    max: u64,
    sink: &mut dyn ChunkSink,
) -> Result<u64, Error> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(Error::TooLarge {
            url: url.to_owned(),
            what: format!("{len} bytes announced"),
            cap: max,
        });
    }
    let mut total: u64 = 0;
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(url, &e))? {
        total += chunk.len() as u64;
        if total > max {
            return Err(Error::TooLarge {
                url: url.to_owned(),
                what: "more was sent; aborted".to_owned(),
                cap: max,
            });
        }
        sink.accept(&chunk).map_err(|source| Error::Store {
            url: url.to_owned(),
            source,
        })?;
    }
    Ok(total)
}

/// A whole (small) HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: Limits,
    file_root: Option<PathBuf>,
}

impl Fetcher {
    /// A fetcher for http(s) URLs only.
    pub fn new(limits: Limits) -> Result<Fetcher, Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("nymvisor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect)
            .read_timeout(limits.idle)
            .redirect(redirect_policy())
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Fetcher {
            client,
            limits,
            file_root: None,
        })
    }

    /// Also serves `file://` URLs inside `root`.
    pub fn with_file_root(mut self, root: &Path) -> Fetcher {
        self.file_root = Some(root.to_owned());
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses `url` (relative to `base` when given) into one this fetcher may fetch. A relative
    /// URL against an https base stays https.
    pub fn resolve(&self, url: &str, base: Option<&url::Url>) -> Result<url::Url, Error> {
        let refuse = |reason: String| Error::Url {
            url: url.to_owned(),
            reason,
        };
        let resolved = match base {
            Some(b) => b.join(url),
            None => url::Url::parse(url),
        }
        .map_err(|e| refuse(format!("not a URL ({e})")))?;
        match resolved.scheme() {
            "http" | "https" => {}
            "file" if self.file_root.is_some() => {}
            "file" => {
                return Err(refuse(
                    "file:// URLs are only read from a local mirror (set NYMVISOR_LOCAL_MIRROR_DIRECTORY)"
                        .to_owned(),
                ));
            }
            other => return Err(refuse(format!("{other}: URLs are not fetched"))),
        }
        if base.is_some_and(|b| b.scheme() == "https") && resolved.scheme() == "http" {
            return Err(refuse(
                "the feed is https but the URL is plain http".to_owned(),
            ));
        }
        Ok(resolved)
    }

    /// Fetches `url` into `sink`: at most `max` bytes; `headers` go with an http(s) request.
    pub async fn get_with(
        &self,
        url: &url::Url,
        headers: HeaderMap,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, Error> {
        if url.scheme() == "file" {
            return self.read_file(url, max, sink).await;
        }
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

    /// Fetches `url` into `sink`, at most `max` bytes.
    pub async fn get(
        &self,
        url: &url::Url,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, Error> {
        self.get_with(url, HeaderMap::new(), max, sink).await
    }

    /// Fetches a small document into memory.
    pub async fn get_small(&self, url: &url::Url, max: u64) -> Result<Vec<u8>, Error> {
        let mut doc = Vec::new();
        self.get(url, max, &mut doc).await?;
        Ok(doc)
    }

    /// An http(s) GET with extra headers whose answer is returned whatever its status (the
    /// caller reads 304, 403 and the like): status, headers and at most `max` bytes of body.
    pub async fn exchange(
        &self,
        url: &url::Url,
        headers: HeaderMap,
        max: u64,
    ) -> Result<Answer, Error> {
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

    /// The path a `file://` URL names, if it lies inside the root (no `..`, and no symlinked
    /// directory on the way out of it).
    fn file_path(&self, url: &url::Url) -> Result<PathBuf, Error> {
        let refuse = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let root = self
            .file_root
            .as_deref()
            .ok_or_else(|| refuse("file:// URLs are not read by this source"))?;
        let path = url
            .to_file_path()
            .map_err(|()| refuse("not a usable file:// URL"))?;
        let outside = || {
            refuse(&format!(
                "it is outside the mirror {} (file URLs must stay inside it)",
                root.display()
            ))
        };
        if path.components().any(|c| matches!(c, Component::ParentDir)) || !path.starts_with(root) {
            return Err(outside());
        }
        if let (Ok(root), Some(Ok(parent))) =
            (root.canonicalize(), path.parent().map(Path::canonicalize))
            && !parent.starts_with(&root)
        {
            return Err(outside());
        }
        Ok(path)
    }

    async fn read_file(
        &self,
        url: &url::Url,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, Error> {
        let path = self.file_path(url)?;
        let fail = |what: String| Error::File {
            path: path.clone(),
            what,
        };
        // O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a FIFO cannot hang the
        // open. The checks are made on the opened file, so nothing can be swapped in between.
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .await
            .map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::ELOOP) {
                    fail("is a symlink; local files are not read through symlinks".to_owned())
                } else {
                    fail(format!("cannot be opened: {e}"))
                }
            })?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| fail(format!("cannot be read: {e}")))?;
        if !meta.is_file() {
            return Err(fail("is not a regular file".to_owned()));
        }
        if meta.len() > max {
            return Err(Error::TooLarge {
                url: url.to_string(),
                what: format!("{} bytes", meta.len()),
                cap: max,
            });
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| fail(format!("cannot be read: {e}")))?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            if total > max {
                return Err(Error::TooLarge {
                    url: url.to_string(),
                    what: "it grew while being read".to_owned(),
                    cap: max,
                });
            }
            sink.accept(&buf[..n]).map_err(|source| Error::Store {
                url: url.to_string(),
                source,
            })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn limits() -> Limits {
        Limits::from_config(&nymvisor_core::config::TuningConfig::default())
    }

    #[test]
    fn urls_from_an_https_feed_stay_https() {
        let f = Fetcher::new(limits()).unwrap();
        let base = url::Url::parse("https://mirror.example/nym-node/upgrade-info.json").unwrap();
        assert_eq!(
            f.resolve("bin/x", Some(&base)).unwrap().as_str(),
            "https://mirror.example/nym-node/bin/x"
        );
        assert!(f.resolve("http://mirror.example/x", Some(&base)).is_err());
        assert!(f.resolve("file:///etc/passwd", Some(&base)).is_err());
        assert!(f.resolve("ftp://x/y", None).is_err());
    }

    #[tokio::test]
    async fn files_only_inside_the_root_never_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mirror");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/ok"), b"binary").unwrap();
        std::fs::write(dir.path().join("secret"), b"key").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("bin/link")).unwrap();
        let f = Fetcher::new(limits()).unwrap().with_file_root(&root);
        let url = |p: &Path| url::Url::from_file_path(p).unwrap();
        assert_eq!(
            f.get_small(&url(&root.join("bin/ok")), 100).await.unwrap(),
            b"binary"
        );
        for bad in [
            dir.path().join("secret"),
            root.join("bin/link"),
            root.join("bin/../../secret"),
        ] {
            assert!(
                f.get_small(&url(&bad), 100).await.is_err(),
                "{}",
                bad.display()
            );
        }
        assert!(
            f.get_small(&url(&root.join("bin/ok")), 3).await.is_err(),
            "the cap"
        );
        let no_root = Fetcher::new(limits()).unwrap();
        assert!(
            no_root
                .get_small(&url(&root.join("bin/ok")), 100)
                .await
                .is_err()
        );
    }
}
