//! A local directory mirror laid out like the feed: `<dir>/<daemon>/upgrade-info.json`, with
//! binary URLs relative to that file (or `file://` URLs inside the mirror). For air-gapped hosts
//! and private mirrors. Files are read by [`crate::fetch::Fetcher`]: never through a symlink,
//! never outside the mirror, capped.

use std::path::{Path, PathBuf};

use nymvisor_core::model::UpgradeInfo;
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};

use crate::Limits;
use crate::error::Error;
use crate::fetch::Fetcher;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LocalSource {
    fetcher: Fetcher,
    root: PathBuf,
    info: url::Url,
}

impl LocalSource {
    pub fn new(root: &Path, daemon: &str, limits: Limits) -> Result<LocalSource, Error> {
        let path = root.join(daemon).join("upgrade-info.json");
        let info = url::Url::from_file_path(&path).map_err(|()| {
            Error::Setup(format!(
                "the local mirror directory {} must be an absolute path",
                root.display()
            ))
        })?;
        Ok(LocalSource {
            fetcher: Fetcher::new(limits)?.with_file_root(root),
            root: root.to_owned(),
            info,
        })
    }

    fn info_path(&self) -> PathBuf {
        self.info.to_file_path().unwrap_or_default()
    }

    /// The URL a link in the document names: relative to the document, or `file://`.
    fn resolve(&self, link: &str) -> Result<url::Url, Error> {
        let url = self.fetcher.resolve(link, Some(&self.info))?;
        if url.scheme() != "file" {
            return Err(Error::Url {
                url: link.to_owned(),
                reason: format!(
                    "the local source only reads files inside the mirror {} (relative paths or file:// URLs)",
                    self.root.display()
                ),
            });
        }
        Ok(url)
    }
}

#[async_trait::async_trait]
impl UpgradeSource for LocalSource {
    fn describe(&self) -> String {
        format!("the local mirror {}", self.info_path().display())
    }

    fn signs_documents(&self) -> bool {
        true
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        // a mirror that is gone (an unmounted share) is a failure, not a quiet week
        if !self.root.is_dir() {
            return Err(SourceError::new(format!(
                "the local mirror directory {} does not exist (an unmounted share?)",
                self.root.display()
            )));
        }
        if !self.info_path().exists() {
            return Ok(None);
        }
        let cap = self.fetcher.limits().caps.document;
        let doc = self.fetcher.get_small(&self.info, cap).await?;
        let info: UpgradeInfo = serde_json::from_slice(&doc).map_err(|e| Error::Document {
            url: self.info.to_string(),
            what: format!("not a valid upgrade-info document: {e}"),
        })?;
        Ok(Some(SourcedUpgrade {
            info,
            document: doc,
            document_url: self.info.to_string(),
        }))
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let url = self.resolve(url)?;
        Ok(self.fetcher.get(&url, max_bytes, sink).await?)
    }
}
