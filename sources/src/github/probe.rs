//! The probe: a release without usable build details is downloaded, checked against its
//! checksum and asked for its version; the verified file is kept for the prepare stage.

use super::*;

/// A probed download kept for the prepare stage.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Staged {
    pub(super) url: String,
    pub(super) path: PathBuf,
}

impl GithubSource {
    /// Downloads the asset into the staging directory, checks it against `checksum`, then asks
    /// it for its build information. The verified file is kept for the prepare stage.
    pub(super) async fn probe(
        &self,
        asset: &Asset,
        checksum: &Checksum,
    ) -> Result<BuildInfo, String> {
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
    pub(super) fn take_staged(
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
pub(super) struct HashingFile {
    file: std::fs::File,
    hasher: Hasher,
}

pub(super) enum Hasher {
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

pub(super) fn stream_file(path: &Path, max: u64, sink: &mut dyn ChunkSink) -> Result<u64, Error> {
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
