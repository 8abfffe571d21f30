//! The prepare stage: everything that happens while the old daemon keeps running — fetching the
//! binary if it is not present (streamed into a temporary file
//! in `upgrades/<name>/bin/`, hashed as the bytes arrive, size-capped), verification, and the
//! rename into place. A failure removes the temporary file and touches nothing else.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::policy::check_name;
use crate::build_info;
use crate::config::DaemonConfig;
use crate::model::{PlatformDetails, UpgradeInfo};
use crate::names::platform_keys;
use crate::paths::UpgradeDataDir;
use crate::refusal::Refusal;
use crate::source::{Caps, ChunkSink, UpgradeSource};
use crate::verify::{Candidate, Digest, Verifier};

/// Where preparing happens when it is not done in this process: the sandboxed network helper
/// (`crate::helper::Helper`, a layer above; this keeps the arrow pointing down).
#[async_trait::async_trait]
pub trait Elsewhere: std::fmt::Debug + Send + Sync {
    /// Prepares `info` there; with how long each verifier took (seconds).
    async fn prepare(&self, info: &UpgradeInfo) -> (Result<(), Refusal>, Vec<(String, f64)>);
}

/// What the prepare stage needs; cheap to clone into a background task.
#[derive(Debug, Clone)]
pub struct Preparer {
    pub data: UpgradeDataDir,
    pub daemon: DaemonConfig,
    pub source: Option<Arc<dyn UpgradeSource>>,
    pub verifiers: Arc<Vec<Arc<dyn Verifier>>>,
    pub caps: Caps,
    pub progress: Option<Arc<dyn crate::progress::ProgressSink>>,
    /// Where the work happens when it is not done here: the network helper.
    pub helper: Option<Arc<dyn Elsewhere>>,
    /// How long each verifier took, last time it ran (seconds), for the metrics.
    pub timings: Arc<std::sync::Mutex<Vec<(String, f64)>>>,
}

impl Preparer {
    /// The preparer of `inst`'s upgrades.
    pub fn for_instance(
        inst: &crate::instance::Instance,
        source: Option<Arc<dyn UpgradeSource>>,
        verifiers: Vec<Arc<dyn Verifier>>,
        progress: Option<Arc<dyn crate::progress::ProgressSink>>,
        helper: Option<Arc<dyn Elsewhere>>,
    ) -> Preparer {
        Preparer {
            data: inst.data.clone(),
            daemon: inst.config.daemon.clone(),
            source,
            verifiers: Arc::new(verifiers),
            caps: Caps {
                binary: inst.config.tuning.max_binary_size,
                ..Caps::default()
            },
            progress,
            helper,
            timings: Arc::default(),
        }
    }

    /// The verifiers' durations noted since the last call (here or in the network helper).
    pub fn take_timings(&self) -> Vec<(String, f64)> {
        self.timings
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    /// Notes durations (the network helper's, as its answer brought them).
    pub fn note_timings(&self, more: Vec<(String, f64)>) {
        if let Ok(mut t) = self.timings.lock() {
            t.extend(more);
        }
    }

    /// Whether the upgrade's binary is already in place (no download needed).
    pub fn binary_present(&self, info: &UpgradeInfo) -> bool {
        check_name(&info.name).is_ok() && self.data.upgrade_bin(&info.name).is_file()
    }

    /// Makes `info` ready to be applied: its binary in place and verified. Whether it may be
    /// applied at all ([`super::policy::may_apply`]) is the caller's question; only the name is
    /// checked here, since it becomes a path.
    pub async fn prepare(&self, info: &UpgradeInfo) -> Result<(), Refusal> {
        check_name(&info.name)?;
        if let Some(helper) = &self.helper {
            let (result, timings) = helper.prepare(info).await;
            self.note_timings(timings);
            return result;
        }
        let bin = self.data.upgrade_bin(&info.name);
        if !bin.is_file() {
            return self.fetch(info, &bin).await;
        }
        let platform = pick_platform(info).map(|(_, p)| p);
        let digests = self.file_digests(info, platform, &bin).await?;
        match platform.and_then(|p| checksum_mismatch(p, &digests)) {
            // not the announced binary: a leftover of another release, or tampered with; it is
            // not ours to trust, and the announced one can be fetched
            Some(why) if self.can_download() => {
                let aside = move_aside(&bin).map_err(|e| {
                    Refusal::transient(format!(
                        "{} does not match the announced checksum ({why}) and cannot be moved aside: {e}",
                        bin.display()
                    ))
                })?;
                tracing::warn!(upgrade = %info.name, "{} does not match the announced checksum ({why}); moved it aside to {} and downloading the announced binary", bin.display(), aside.display());
                self.fetch(info, &bin).await
            }
            _ => self.verify_present(info, platform, &bin, digests).await,
        }
    }

    /// Right before the stop (outside the downtime): the binary prepared earlier is hashed again
    /// against the checksum the plan announces, so a file changed on disk since it was verified
    /// is never started. A mismatch moves it aside (the next attempt fetches and verifies the
    /// announced one) and is a refusal. Entries without an announced checksum are left to the
    /// checks they had.
    pub async fn recheck(&self, info: &UpgradeInfo) -> Result<(), Refusal> {
        check_name(&info.name)?;
        let Some(platform) = pick_platform(info)
            .map(|(_, p)| p)
            .filter(|p| !p.checksum.trim().is_empty())
        else {
            return Ok(());
        };
        let bin = self.data.upgrade_bin(&info.name);
        let digests = self.file_digests(info, Some(platform), &bin).await?;
        let algo = crate::names::checksum_algorithm_name(&platform.checksum_algorithm);
        if !digests.contains_key(&algo) {
            // no verifier computes this digest here: the helper's check stands
            return Ok(());
        }
        let Some(why) = checksum_mismatch(platform, &digests) else {
            return Ok(());
        };
        let aside = move_aside(&bin)
            .map(|p| format!("moved aside to {}", p.display()))
            .unwrap_or_else(|e| format!("could not be moved aside: {e}"));
        Err(Refusal::transient(format!(
            "{} changed on disk since it was verified ({why}); it was not started and was {aside}",
            bin.display()
        )))
    }

    /// Whether a missing or wrong binary can be fetched from upstream.
    fn can_download(&self) -> bool {
        self.daemon.allow_binaries_download && (self.source.is_some() || self.helper.is_some())
    }

    /// The digests the verifiers need, of a file in place.
    async fn file_digests(
        &self,
        info: &UpgradeInfo,
        platform: Option<&PlatformDetails>,
        bin: &Path,
    ) -> Result<BTreeMap<String, String>, Refusal> {
        let mut digests = self.digesters(info, platform);
        if !digests.is_empty() {
            let mut file = tokio::fs::File::open(bin)
                .await
                .map_err(|e| Refusal::transient(format!("cannot read {}: {e}", bin.display())))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| {
                    Refusal::transient(format!("cannot read {}: {e}", bin.display()))
                })?;
                if n == 0 {
                    break;
                }
                for (_, d) in digests.iter_mut() {
                    d.update(&buf[..n]);
                }
            }
        }
        Ok(finish(digests))
    }

    /// A binary the operator placed (or a previous download): re-checked, never trusted.
    async fn verify_present(
        &self,
        info: &UpgradeInfo,
        platform: Option<&PlatformDetails>,
        bin: &Path,
        digests: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        let candidate = Candidate {
            daemon: &self.daemon.name,
            info,
            platform,
            path: bin,
            digests: &digests,
            downloaded: false,
        };
        self.run_verifiers(&candidate).await?;
        self.check_build_info(info, bin).await
    }

    /// Downloads, verifies and installs the binary.
    async fn fetch(&self, info: &UpgradeInfo, bin: &Path) -> Result<(), Refusal> {
        if !self.daemon.allow_binaries_download {
            return Err(Refusal::never(format!(
                "its binary {} is not present and downloads are disabled (DAEMON_ALLOW_BINARIES_DOWNLOAD=false); add it with `nymvisor add-upgrade <BINARY> --upgrade-name {} --add-binary`",
                bin.display(),
                info.name
            )));
        }
        let Some((key, platform)) = pick_platform(info) else {
            let offered: Vec<_> = info.platforms.keys().cloned().collect();
            return Err(Refusal::never(format!(
                "no download for platform {} (offered: {})",
                platform_keys()[0],
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                }
            )));
        };
        if self.daemon.enforce_download_checksum && platform.checksum.trim().is_empty() {
            return Err(Refusal::never(format!(
                "the {key} download has no checksum and DAEMON_ENFORCE_DOWNLOAD_CHECKSUM is on"
            )));
        }
        // what cannot be verified is not fetched
        for v in self.verifiers.iter() {
            v.verify_metadata(info, platform)
                .map_err(|r| r.context(format_args!("{} verification failed", v.name())))?;
        }
        let Some(source) = self.source.clone() else {
            return Err(Refusal::never(format!(
                "its binary {} is not present and no upstream source is configured to download it from",
                bin.display()
            )));
        };
        let dir = self.data.upgrade_bin_dir(&info.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Refusal::transient(format!("cannot create {}: {e}", dir.display())))?;
        // dropped (and deleted) on every early return below
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.daemon.name))
            .suffix(".download")
            .tempfile_in(&dir)
            .map_err(|e| {
                Refusal::transient(format!(
                    "cannot create a temporary file in {}: {e}",
                    dir.display()
                ))
            })?;
        let bar = self.progress.as_ref().map(|p| {
            p.begin(
                &format!("downloading {} {}", self.daemon.name, info.version),
                None,
            )
        });
        let mut sink = FileSink {
            bar,
            done: 0,
            file: tmp
                .as_file()
                .try_clone()
                .map_err(|e| Refusal::transient(e.to_string()))?,
            digests: self.digesters(info, Some(platform)),
        };
        let t = std::time::Instant::now();
        let size = source
            .download(&platform.url, self.caps.binary, &mut sink)
            .await
            .map_err(|e| Refusal::transient(format!("download failed: {e}")))?;
        let FileSink {
            file, digests, bar, ..
        } = sink;
        drop(bar); // the display ends before the next log line
        // flushing hundreds of MiB can take a while: off the supervisor's thread
        let synced = tokio::task::spawn_blocking(move || file.sync_all()).await;
        if let Err(e) = synced.map_err(std::io::Error::other).and_then(|r| r) {
            return Err(Refusal::transient(format!(
                "cannot write {}: {e}",
                tmp.path().display()
            )));
        }
        tracing::info!(upgrade = %info.name, stage = "download", elapsed_ms = t.elapsed().as_millis() as u64, bytes = size, "downloaded {}", platform.url);
        // close every handle: a file open for writing cannot be executed (ETXTBSY)
        let tmp = tmp.into_temp_path();
        let digests = finish(digests);
        let candidate = Candidate {
            daemon: &self.daemon.name,
            info,
            platform: Some(platform),
            path: &tmp,
            digests: &digests,
            downloaded: true,
        };
        self.run_verifiers(&candidate).await?;
        std::fs::set_permissions(
            &tmp,
            std::fs::Permissions::from_mode(crate::fsutil::BINARY_MODE),
        )
        .map_err(|e| {
            Refusal::transient(format!("cannot make {} executable: {e}", tmp.display()))
        })?;
        self.check_build_info(info, &tmp).await?;
        tmp.persist_noclobber(bin).map_err(|e| {
            Refusal::transient(format!("cannot install {}: {}", bin.display(), e.error))
        })?;
        crate::fsutil::sync_dir(&dir).map_err(|e| Refusal::transient(e.to_string()))?;
        Ok(())
    }

    fn digesters(
        &self,
        info: &UpgradeInfo,
        platform: Option<&PlatformDetails>,
    ) -> Vec<(String, Box<dyn Digest>)> {
        let mut all: Vec<(String, Box<dyn Digest>)> = Vec::new();
        for v in self.verifiers.iter() {
            for (name, d) in v.digests(info, platform) {
                if !all.iter().any(|(n, _)| n == &name) {
                    all.push((name, d));
                }
            }
        }
        all
    }

    /// Every verifier in order; each verdict, accept included, is one INFO line naming the
    /// verifier with its message (journald is the audit trail).
    async fn run_verifiers(&self, candidate: &Candidate<'_>) -> Result<(), Refusal> {
        for v in self.verifiers.iter() {
            let t = std::time::Instant::now();
            let verdict = v
                .verify_with_message(candidate, self.source.as_deref())
                .await;
            let elapsed_ms = t.elapsed().as_millis() as u64;
            let (name, upgrade) = (v.name(), &candidate.info.name);
            self.note_timings(vec![(name.to_owned(), t.elapsed().as_secs_f64())]);
            match verdict {
                Ok(message) => {
                    tracing::info!(%upgrade, verifier = name, elapsed_ms, message = message.as_deref().unwrap_or(""), "{name} accepted `{upgrade}`{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default());
                }
                Err(r) => {
                    let kind = if r.retryable() { "not now" } else { "refused" };
                    tracing::info!(%upgrade, verifier = name, elapsed_ms, kind, message = %r.reason, "{name} said {kind} to `{upgrade}`: {}", r.reason);
                    return Err(r
                        .by(name)
                        .context(format_args!("{name} verification failed")));
                }
            }
        }
        Ok(())
    }

    /// The last check: the binary's own build information matches the upgrade.
    async fn check_build_info(&self, info: &UpgradeInfo, bin: &Path) -> Result<(), Refusal> {
        let build = build_info::probe_daemon(bin, &self.daemon.name)
            .await
            .map_err(|e| Refusal::never(e.to_string()))?;
        if build.build_version != info.version {
            return Err(Refusal::never(format!(
                "the binary reports version {} but the upgrade is for {}",
                build.build_version, info.version
            )));
        }
        if let Some(expected) = &info.binary_details
            && let Some(diff) = build.first_difference(expected)
        {
            return Err(Refusal::never(format!(
                "the binary's build information differs from the upgrade's binaryDetails: {diff}"
            )));
        }
        Ok(())
    }
}

/// This machine's platform entry, else `any`.
pub fn pick_platform(info: &UpgradeInfo) -> Option<(String, &PlatformDetails)> {
    platform_keys()
        .into_iter()
        .find_map(|k| info.platforms.get(&k).map(|p| (k, p)))
}

/// Why a file's digests contradict the platform entry's checksum, if they do (`None` also when
/// there is no checksum or its digest was not computed).
fn checksum_mismatch(
    platform: &PlatformDetails,
    digests: &BTreeMap<String, String>,
) -> Option<String> {
    let expected = platform.checksum.trim();
    if expected.is_empty() {
        return None;
    }
    let algo = crate::names::checksum_algorithm_name(&platform.checksum_algorithm);
    let actual = digests.get(&algo)?;
    (!actual.eq_ignore_ascii_case(expected)).then(|| {
        format!(
            "its {algo} is {actual}, the upgrade says {}",
            expected.to_ascii_lowercase()
        )
    })
}

/// Renames `bin` to `<bin>.stale-<UTC time>` next to it.
fn move_aside(bin: &Path) -> std::io::Result<std::path::PathBuf> {
    let now = crate::model::now();
    let mut name = bin.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".stale-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    ));
    let aside = bin.with_file_name(name);
    std::fs::rename(bin, &aside)?;
    Ok(aside)
}

fn finish(digests: Vec<(String, Box<dyn Digest>)>) -> BTreeMap<String, String> {
    digests
        .into_iter()
        .map(|(n, d)| (n, d.finish_hex()))
        .collect()
}

struct FileSink {
    file: std::fs::File,
    digests: Vec<(String, Box<dyn Digest>)>,
    bar: Option<Box<dyn crate::progress::Progress>>,
    done: u64,
}

impl ChunkSink for FileSink {
    fn accept(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        for (_, d) in self.digests.iter_mut() {
            d.update(chunk);
        }
        self.done += chunk.len() as u64;
        if let Some(bar) = self.bar.as_mut() {
            bar.set(self.done);
        }
        self.file.write_all(chunk)
    }
}
