//! A local directory mirror laid out like the feed: `<dir>/<daemon>/upgrade-info.json`, with
//! binary URLs relative to that file (or `file://` URLs). For air-gapped hosts and private
//! mirrors. Symlinks are not followed, and relative URLs may not leave the mirror.

use std::path::{Component, Path, PathBuf};

use nymvisor_core::model::UpgradeInfo;
use nymvisor_core::source::{Caps, ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use tokio::io::AsyncReadExt;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LocalSource {
    root: PathBuf,
    info_dir: PathBuf,
    caps: Caps,
}

impl LocalSource {
    pub fn new(root: &Path, daemon: &str, caps: Caps) -> LocalSource {
        LocalSource {
            root: root.to_owned(),
            info_dir: root.join(daemon),
            caps,
        }
    }

    fn info_path(&self) -> PathBuf {
        self.info_dir.join("upgrade-info.json")
    }

    /// The file a URL names: `file:///abs` as is, anything else relative to the info file and
    /// inside the mirror.
    fn resolve(&self, url: &str) -> Result<PathBuf, SourceError> {
        if url.starts_with("file://") {
            return url::Url::parse(url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| SourceError(format!("{url}: not a usable file:// URL")));
        }
        if url.contains("://") {
            return Err(SourceError(format!(
                "{url}: the local source only reads files (relative paths or file:// URLs)"
            )));
        }
        let rel = Path::new(url);
        let outside = || {
            SourceError(format!(
                "{url}: relative URLs must stay inside the mirror {}",
                self.root.display()
            ))
        };
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(outside());
        }
        // a symlinked directory on the way must not lead out of the mirror either
        let path = self.info_dir.join(rel);
        if let (Ok(root), Some(Ok(parent))) = (
            self.root.canonicalize(),
            path.parent().map(Path::canonicalize),
        ) && !parent.starts_with(&root)
        {
            return Err(outside());
        }
        Ok(path)
    }

    async fn read_capped(
        path: &Path,
        max: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        // O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a FIFO cannot hang the open.
        // The checks are made on the opened file, so nothing can be swapped in between.
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path)
            .await
            .map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::ELOOP) {
                    SourceError(format!(
                        "{} is a symlink; the local source does not follow symlinks",
                        path.display()
                    ))
                } else {
                    SourceError(format!("cannot open {}: {e}", path.display()))
                }
            })?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| SourceError(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(SourceError(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() > max {
            return Err(SourceError(format!(
                "{} is {} bytes, more than the {max}-byte cap",
                path.display(),
                meta.len()
            )));
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| SourceError(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            if total > max {
                return Err(SourceError(format!(
                    "{} grew past the {max}-byte cap while being read",
                    path.display()
                )));
            }
            sink.accept(&buf[..n])
                .map_err(|e| SourceError(format!("cannot store {}: {e}", path.display())))?;
        }
    }
}

#[async_trait::async_trait]
impl UpgradeSource for LocalSource {
    fn describe(&self) -> String {
        format!("the local mirror {}", self.info_path().display())
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        let path = self.info_path();
        if !path.exists() {
            return Ok(None);
        }
        let mut doc = Vec::new();
        Self::read_capped(&path, self.caps.document, &mut doc).await?;
        let info: UpgradeInfo = serde_json::from_slice(&doc).map_err(|e| {
            SourceError(format!(
                "{} is not a valid upgrade-info document: {e}",
                path.display()
            ))
        })?;
        Ok(Some(SourcedUpgrade {
            info,
            document: doc,
            document_url: format!("file://{}", path.display()),
        }))
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let path = self.resolve(url)?;
        Self::read_capped(&path, max_bytes, sink).await
    }
}
