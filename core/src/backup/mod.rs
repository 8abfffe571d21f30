//! Backups of the daemon's data before a swap (docs/OPERATOR_GUIDE.md "Backups, rollback,
//! restore").
//!
//! A [`BackupStrategy`] copies a tree into a directory that does not exist yet; [`take_backup`]
//! wraps it with what every strategy shares: the free-space check, the temporary name renamed
//! when complete, one backup per upgrade, and retention.

mod archive;
mod copy;
mod precopy;
mod watch;

pub use archive::{ARCHIVE_NAME, ArchiveBackup, COMPRESSED_ARCHIVE_NAME, is_legacy_archive};
pub use copy::{CopyBackup, HardlinkBackup};
pub use precopy::{DeltaStats, Precopy, RACY_MARGIN, precopy};

use std::collections::HashSet;
use std::fmt::Debug;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::BackupStrategyKind;
use crate::error::{Error, Result};
use crate::fsutil;

/// Lets a long backup be abandoned promptly (a stop signal arrived), and counts its progress.
#[derive(Debug, Clone, Default)]
pub struct Cancel(
    Arc<AtomicBool>,
    Arc<std::sync::atomic::AtomicU64>,
    /// The active crash-test fail point, if any (see [`Cancel::pause_point`]).
    Option<Arc<str>>,
);

impl Cancel {
    /// With the active fail point of a crash test (`NYMVISOR_FAILPOINT`).
    pub fn with_failpoint(mut self, active: Option<&str>) -> Cancel {
        self.2 = active.map(Arc::from);
        self
    }

    /// A fail point inside a copy: when it is the active one, the copy waits there until it is
    /// cancelled (once), so a test can send a signal in the middle of it. Nothing otherwise.
    pub fn pause_point(&self, name: &str) {
        if crate::failpoint::is_active(name, self.2.as_deref()) {
            tracing::warn!("fail point `{name}` reached: waiting until cancelled");
            let resume = crate::failpoint::resume_file(self.2.as_deref());
            while !self.is_cancelled() && !resume.as_ref().is_some_and(|f| f.exists()) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    /// Counts bytes copied (for progress displays).
    pub fn add_done(&self, bytes: u64) {
        self.1.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes copied so far.
    pub fn done(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error if cancelled, for `?` inside copy loops.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// One way of making (and restoring) a backup. Implementations block: call them from a blocking
/// thread. They must check `cancel` regularly.
pub trait BackupStrategy: Debug + Send + Sync {
    /// Short name, as in the configuration (`copy`, `none`, …).
    fn name(&self) -> &'static str;

    /// Copies `source` into `dest` (which does not exist), leaving out every path in `skip`.
    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()>;

    /// Copies a backup made by [`BackupStrategy::backup`] into `target` (which does not exist).
    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()>;

    /// Whether its backup can be taken as a [`precopy`] while the daemon runs, then brought up
    /// to date after the stop ([`Precopy::finish`]).
    fn supports_precopy(&self) -> bool {
        false
    }
}

/// The strategy for a configured kind (`None` for `none`); `zstd` compresses archives.
pub fn strategy_for(kind: BackupStrategyKind, zstd: bool) -> Option<Arc<dyn BackupStrategy>> {
    match kind {
        BackupStrategyKind::None => None,
        BackupStrategyKind::Copy => Some(Arc::new(CopyBackup)),
        BackupStrategyKind::Hardlink => Some(Arc::new(HardlinkBackup)),
        BackupStrategyKind::Archive => Some(Arc::new(ArchiveBackup {
            zstd_level: zstd.then_some(3),
        })),
    }
}

/// How to restore the backup at `path`: an archive holds `backup.tar`, anything else is a
/// plain tree (made by `copy` or `hardlink`), whatever the strategy configured now.
pub fn restorer_for(path: &Path) -> Arc<dyn BackupStrategy> {
    if is_legacy_archive(path)
        || path.join(ARCHIVE_NAME).is_file()
        || path.join(COMPRESSED_ARCHIVE_NAME).is_file()
    {
        Arc::new(ArchiveBackup::default())
    } else {
        Arc::new(CopyBackup)
    }
}

/// Where and what to back up.
#[derive(Debug, Clone)]
pub struct BackupPlan {
    /// The daemon's home.
    pub source: PathBuf,
    /// `<backup dir>`; backups go to `<backup dir>/<upgrade>/<timestamp>/`.
    pub backup_root: PathBuf,
    /// Paths never copied: nymvisor's own directory, the backup directory, the upgrade data
    /// directory when they lie inside the source.
    pub skip: Vec<PathBuf>,
    /// Operator's exclusion patterns (`backup_exclude`), relative to `source`.
    pub exclude: Vec<String>,
    /// How many backups to keep (at least 1).
    pub keep: usize,
    /// Free space that must remain after the backup, in bytes.
    pub min_free_after: u64,
}

impl BackupPlan {
    /// What this plan leaves out, as a [`SkipSet`].
    pub fn skip_set(&self) -> Result<SkipSet> {
        SkipSet::new(&self.skip).with_patterns(&self.source, &self.exclude)
    }
}

/// Checks there is room for a copy of `source` in `root`; returns the bytes needed.
pub fn check_free_space(plan: &BackupPlan) -> Result<u64> {
    let needed = tree_size(&plan.source, &plan.skip_set()?);
    let probe = nearest_existing(&plan.backup_root);
    let stat = nix::sys::statvfs::statvfs(&probe).map_err(|e| {
        Error::io(
            "failed to read free space of",
            &probe,
            std::io::Error::from_raw_os_error(e as i32),
        )
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free < needed.saturating_add(plan.min_free_after) {
        return Err(Error::BackupSpace {
            dir: plan.backup_root.clone(),
            needed,
            free,
        });
    }
    Ok(needed)
}

/// Makes the backup for `upgrade`: into `<root>/<upgrade>/.<timestamp>.partial`, flushed to disk
/// and renamed to `<root>/<upgrade>/<timestamp>` when complete. A failed or cancelled backup
/// leaves nothing behind, nor do earlier interrupted ones. Older backups are left for
/// [`retire`], which the upgrade calls once the new daemon runs (removing them takes time that
/// should not count as downtime).
pub fn take_backup(
    strategy: &dyn BackupStrategy,
    plan: &BackupPlan,
    upgrade: &str,
    timestamp: &str,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let dir = plan.backup_root.join(upgrade);
    fsutil::create_dir_all(&dir)?;
    remove_partials(&dir);
    let partial = dir.join(format!(".{timestamp}.partial"));
    let done = dir.join(timestamp);
    let skip = plan.skip_set()?;
    let made = strategy
        .backup(&plan.source, &partial, &skip, cancel)
        .and_then(|()| sync_filesystem(&partial));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    commit(&partial, &done)
}

/// Renames the complete, flushed backup `partial` to `done`: the moment it becomes a backup.
fn commit(partial: &Path, done: &Path) -> Result<PathBuf> {
    std::fs::rename(partial, done).map_err(|e| Error::io("failed to finish backup", done, e))?;
    if let Some(dir) = done.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(done.to_owned())
}

/// Retention after a new backup `made`: earlier backups of the same upgrade (a retry) go, then
/// the oldest beyond `keep`. Each is first renamed to a hidden name, so an interrupted removal
/// never leaves half a backup that looks like one; leftovers go at the next backup.
pub fn retire(plan: &BackupPlan, made: &Path) {
    if let Some(dir) = made.parent() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path() != made && !name.starts_with('.') {
                discard(&entry.path());
            }
        }
    }
    prune(&plan.backup_root, plan.keep);
}

/// Removes a backup: hidden first (`.<name>.removing`), then deleted.
fn discard(path: &Path) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let hidden = path.with_file_name(format!(".{name}.removing"));
    let target = if std::fs::rename(path, &hidden).is_ok() {
        hidden
    } else {
        path.to_owned()
    };
    tracing::info!(path = %path.display(), "removing old backup");
    if let Err(e) = std::fs::remove_dir_all(&target) {
        tracing::warn!(path = %path.display(), "failed to remove old backup: {e}");
    }
}

/// Removes `.<timestamp>.partial` directories left by an interrupted backup or pre-copy, and
/// `.<timestamp>.removing` ones left by an interrupted removal.
fn remove_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.ends_with(".partial") || name.ends_with(".removing")) {
            tracing::info!(path = %entry.path().display(), "removing an interrupted backup");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Flushes the file system holding `path` (one `syncfs`, instead of an fsync per file).
fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|e| Error::io("failed to open", path, e))?;
    nix::unistd::syncfs(&dir).map_err(|e| {
        Error::io(
            "failed to flush the backup to disk",
            path,
            std::io::Error::from_raw_os_error(e as i32),
        )
    })
}

/// What backups and restores leave out: nymvisor's own paths, recognised by device and inode so
/// that another spelling of the same directory (a symlink, `..`) cannot slip through, and the
/// operator's exclusion patterns (`backup_exclude`), matched against the path relative to the
/// daemon home (`*` also matches `/`, so `*.log` matches logs at any depth).
#[derive(Debug, Clone, Default)]
pub struct SkipSet {
    ids: HashSet<(u64, u64)>,
    root: Option<PathBuf>,
    patterns: Vec<glob::Pattern>,
}

impl SkipSet {
    pub fn new(paths: &[PathBuf]) -> SkipSet {
        SkipSet {
            ids: paths
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
            root: None,
            patterns: Vec::new(),
        }
    }

    /// Adds exclusion patterns, relative to `root`. A pattern that does not parse is an error
    /// that quotes it.
    pub fn with_patterns(mut self, root: &Path, patterns: &[String]) -> Result<SkipSet> {
        self.root = Some(root.to_owned());
        for p in patterns {
            self.patterns
                .push(glob::Pattern::new(p).map_err(|e| Error::ConfigValue {
                    key: "daemon.backup_exclude".into(),
                    message: format!("{p:?} is not a glob pattern: {e}"),
                })?);
        }
        Ok(self)
    }

    /// Whether the entry at `path` (with `meta`, not followed through symlinks) is left out.
    pub fn skips(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        if self.ids.contains(&(meta.dev(), meta.ino())) {
            return true;
        }
        match (&self.root, self.patterns.is_empty()) {
            (Some(root), false) => path
                .strip_prefix(root)
                .is_ok_and(|rel| self.patterns.iter().any(|p| p.matches_path(rel))),
            _ => false,
        }
    }

    /// The same rules for a tree at another place (the staging copy of a restore).
    fn rebased(&self, root: &Path) -> SkipSet {
        SkipSet {
            root: Some(root.to_owned()),
            ..self.clone()
        }
    }
}

/// Replaces the content of `target` with the backup, leaving what `skip` leaves out alone.
/// The backup is first copied next to the target, so a failure in that copy changes nothing, and
/// the whole operation can be repeated after a crash.
pub fn restore_backup(
    strategy: &dyn BackupStrategy,
    backup: &Path,
    target: &Path,
    skip: &SkipSet,
    cancel: &Cancel,
) -> Result<()> {
    let staging = target.join(".nymvisor-restore.partial");
    let _ = std::fs::remove_dir_all(&staging);
    strategy.restore(backup, &staging, cancel)?;
    let mut skip = skip.rebased(target);
    if let Ok(m) = std::fs::metadata(&staging) {
        skip.ids.insert((m.dev(), m.ino()));
    }
    merge_into(target, Some(&staging), &skip)?;
    std::fs::remove_dir_all(&staging).map_err(|e| Error::io("failed to remove", &staging, e))?;
    fsutil::sync_dir(target)
}

/// Makes `target` hold what `staged` holds, except what `skip` leaves out, which stays as it is.
/// Directories are merged rather than replaced whole, so left-out paths inside them survive.
fn merge_into(target: &Path, staged: Option<&Path>, skip: &SkipSet) -> Result<()> {
    let entries = std::fs::read_dir(target).map_err(|e| Error::io("failed to list", target, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        if skip.skips(&path, &meta) {
            continue;
        }
        if meta.is_dir() {
            let sub = staged
                .map(|s| s.join(entry.file_name()))
                .filter(|s| std::fs::symlink_metadata(s).is_ok_and(|m| m.is_dir()));
            merge_into(&path, sub.as_deref(), skip)?;
            if sub.is_none() {
                // only succeeds when nothing left out remains inside
                let _ = std::fs::remove_dir(&path);
            }
            continue;
        }
        std::fs::remove_file(&path)
            .map_err(|e| Error::io("failed to remove before restoring", &path, e))?;
    }
    let Some(staged) = staged else { return Ok(()) };
    let staged_entries =
        std::fs::read_dir(staged).map_err(|e| Error::io("failed to list", staged, e))?;
    for entry in staged_entries.flatten() {
        let dest = target.join(entry.file_name());
        if std::fs::symlink_metadata(&dest).is_ok() {
            continue; // a directory merged above, or a left-out path kept as it is
        }
        std::fs::rename(entry.path(), &dest)
            .map_err(|e| Error::io("failed to restore", &dest, e))?;
    }
    // merged directories take the backup's permissions
    if let Ok(m) = std::fs::metadata(staged) {
        let _ = std::fs::set_permissions(target, m.permissions());
    }
    Ok(())
}

/// One backup on disk.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupEntry {
    /// The upgrade it was taken for (or the safety copy's label).
    pub upgrade: String,
    /// Its directory's name (a legacy archive's file name).
    pub timestamp: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Orders backups of both kinds by time.
    #[serde(skip)]
    pub sort_key: String,
}

/// Complete backups under `root`, oldest first.
pub fn list_backups(root: &Path) -> Vec<BackupEntry> {
    let mut all = Vec::new();
    for upgrade in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for backup in std::fs::read_dir(upgrade.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = backup.file_name().to_string_lossy().into_owned();
            let path = backup.path();
            if !name.starts_with('.') && path.is_dir() {
                all.push(BackupEntry {
                    upgrade: upgrade.file_name().to_string_lossy().into_owned(),
                    bytes: tree_size(&path, &SkipSet::default()),
                    sort_key: name.clone(),
                    timestamp: name,
                    path,
                });
            } else if is_legacy_archive(&path) && path.is_file() {
                all.push(BackupEntry {
                    upgrade: upgrade.file_name().to_string_lossy().into_owned(),
                    bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    sort_key: legacy_sort_key(&name),
                    timestamp: name,
                    path,
                });
            }
        }
    }
    all.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    all
}

/// `backup-2024-03-05-101112345-preupgrade.tar.gz` → `20240305T101112.345Z`, the form of our
/// own backup names, so both kinds sort by time together.
fn legacy_sort_key(name: &str) -> String {
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 17 {
        format!("{}T{}.{}Z", &digits[..8], &digits[8..14], &digits[14..17])
    } else {
        name.to_owned()
    }
}

/// Keeps the newest `keep` backups under `root/<upgrade>/<timestamp>` (by timestamp name).
pub fn prune(root: &Path, keep: usize) {
    let mut all: Vec<(String, PathBuf)> = Vec::new();
    for upgrade in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for backup in std::fs::read_dir(upgrade.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = backup.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && backup.path().is_dir() {
                all.push((name, backup.path()));
            }
        }
    }
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, path) in all.into_iter().take(excess) {
        discard(&path);
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent); // only succeeds when empty
        }
    }
}

fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

/// Bytes of regular files under `dir`, symlinks not followed, what `skip` leaves out left out.
pub fn tree_size(dir: &Path, skip: &SkipSet) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(m) if skip.skips(&path, &m) => {}
                Ok(m) if m.is_dir() => stack.push(path),
                // what it takes on disk: a sparse file's holes are copied as holes
                Ok(m) if m.is_file() => {
                    total += m
                        .len()
                        .min(std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                }
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A plan backing `home` up to `<dir>/b`, keeping 3, nothing skipped but `exclude`.
    fn plan_for(home: &Path, dir: &Path, exclude: Vec<String>) -> BackupPlan {
        BackupPlan {
            source: home.to_owned(),
            backup_root: dir.join("b"),
            skip: vec![],
            exclude,
            keep: 3,
            min_free_after: 0,
        }
    }

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A sparse file keeps its holes and hard-linked names stay one file, in the backup and
    /// after a restore (the pre-copy's first pass uses the same copier).
    #[test]
    fn sparse_files_and_hard_links_are_kept() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("db")).unwrap();
        let sparse = home.join("db/big.sparse");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(1 << 30).unwrap();
        f.write_all_at(&[7u8; 8192], 512 << 20).unwrap();
        f.write_all_at(b"end", (1 << 30) - 3).unwrap();
        drop(f);
        let on_disk = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
        if on_disk(&sparse) > 1 << 20 {
            eprintln!("this file system does not make sparse files; nothing to check");
            return;
        }
        write(&home.join("a/one"), "shared");
        std::fs::create_dir_all(home.join("b")).unwrap();
        std::fs::hard_link(home.join("a/one"), home.join("b/two")).unwrap();
        let plan = plan_for(&home, dir.path(), vec![]);
        assert!(
            tree_size(&home, &SkipSet::default()) < 1 << 20,
            "the free-space check counts what is allocated"
        );
        let made = take_backup(
            &CopyBackup,
            &plan,
            "v2",
            "20260101T000000.000Z",
            &Cancel::default(),
        )
        .unwrap();
        let copy = made.join("db/big.sparse");
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), 1 << 30);
        assert!(
            on_disk(&copy) < 1 << 20,
            "inflated to {} bytes",
            on_disk(&copy)
        );
        let mut buf = [0u8; 8192];
        let c = std::fs::File::open(&copy).unwrap();
        c.read_exact_at(&mut buf, 512 << 20).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
        let mut end = [0u8; 3];
        c.read_exact_at(&mut end, (1 << 30) - 3).unwrap();
        assert_eq!(&end, b"end");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&made.join("a/one")), ino(&made.join("b/two")));
        // restored the same way
        std::fs::remove_dir_all(home.join("a")).unwrap();
        std::fs::remove_dir_all(home.join("b")).unwrap();
        std::fs::remove_file(&sparse).unwrap();
        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &SkipSet::default(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(ino(&home.join("a/one")), ino(&home.join("b/two")));
        assert!(on_disk(&sparse) < 1 << 20);
        assert_eq!(std::fs::metadata(&sparse).unwrap().len(), 1 << 30);
    }

    #[test]
    fn backup_and_restore_round_trip_without_touching_skipped_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db.sqlite"), "v1");
        write(&home.join("keys/id.key"), "secret");
        std::fs::set_permissions(
            home.join("keys/id.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        symlink("../keys/id.key", home.join("data/link")).unwrap();
        // backups nested two levels deep inside the home, reached through a symlinked spelling
        let backups = home.join("data/nymvisor-backups");
        std::fs::create_dir_all(&backups).unwrap();
        symlink(&backups, dir.path().join("alias")).unwrap();
        let plan = BackupPlan {
            source: home.clone(),
            backup_root: dir.path().join("alias"),
            skip: vec![dir.path().join("alias")],
            exclude: vec![],
            keep: 2,
            min_free_after: 0,
        };
        let made = take_backup(
            &CopyBackup,
            &plan,
            "v2",
            "20260101T000000.000Z",
            &Cancel::default(),
        )
        .unwrap();
        assert!(
            !made.join("data/nymvisor-backups").exists(),
            "the backup must not contain itself"
        );
        assert_eq!(
            std::fs::read_link(made.join("data/link")).unwrap(),
            Path::new("../keys/id.key")
        );
        let mode = std::fs::metadata(made.join("keys/id.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);

        // the new version changes things
        write(&home.join("data/db.sqlite"), "v2 migrated");
        write(&home.join("data/new-file"), "x");
        std::fs::remove_dir_all(home.join("keys")).unwrap();

        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(home.join("data/db.sqlite")).unwrap(),
            "v1"
        );
        assert!(!home.join("data/new-file").exists());
        assert_eq!(
            std::fs::read_to_string(home.join("keys/id.key")).unwrap(),
            "secret"
        );
        assert!(
            made.is_dir(),
            "restoring must not delete the backups kept inside the home"
        );
        assert!(!home.join(".nymvisor-restore.partial").exists());
    }

    #[test]
    fn a_retry_replaces_the_earlier_backup_and_partials_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("f"), "1");
        let plan = plan_for(&home, dir.path(), vec![]);
        std::fs::create_dir_all(plan.backup_root.join("up/.old.partial")).unwrap();
        take_backup(&CopyBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        let made = take_backup(&CopyBackup, &plan, "up", "2", &Cancel::default()).unwrap();
        retire(&plan, &made);
        let names: Vec<_> = std::fs::read_dir(plan.backup_root.join("up"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2")]);
        // retention across upgrades
        for (i, up) in ["a", "b", "c", "d"].iter().enumerate() {
            let made =
                take_backup(&CopyBackup, &plan, up, &format!("3{i}"), &Cancel::default()).unwrap();
            retire(&plan, &made);
        }
        assert!(!plan.backup_root.join("up").exists() && !plan.backup_root.join("a").exists());
        assert!(plan.backup_root.join("d/33").is_dir());
    }

    #[test]
    fn cancelled_backup_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("f"), "1");
        let plan = plan_for(&home, dir.path(), vec![]);
        let cancel = Cancel::default();
        cancel.cancel();
        assert!(take_backup(&CopyBackup, &plan, "up", "1", &cancel).is_err());
        assert_eq!(
            std::fs::read_dir(plan.backup_root.join("up"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn exclusions_are_left_out_and_left_alone_by_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        write(&home.join("data/debug.log"), "old log");
        write(&home.join("cache/blob"), "cache");
        let plan = plan_for(&home, dir.path(), vec!["*.log".into(), "cache".into()]);
        let made = take_backup(&CopyBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        assert!(made.join("data/db").is_file());
        assert!(!made.join("data/debug.log").exists() && !made.join("cache").exists());
        write(&home.join("data/db"), "v2");
        write(&home.join("data/debug.log"), "new log");
        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        assert_eq!(
            std::fs::read_to_string(home.join("data/debug.log")).unwrap(),
            "new log",
            "excluded files stay"
        );
        assert_eq!(
            std::fs::read_to_string(home.join("cache/blob")).unwrap(),
            "cache"
        );
        let bad = BackupPlan {
            exclude: vec!["[".into()],
            ..plan
        };
        assert!(bad.skip_set().is_err());
    }

    #[test]
    fn hardlink_backups_share_inodes_and_restore_by_copy() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        symlink("data/db", home.join("link")).unwrap();
        let plan = plan_for(&home, dir.path(), vec![]);
        let made = take_backup(&HardlinkBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        let (a, b) = (
            std::fs::metadata(home.join("data/db")).unwrap(),
            std::fs::metadata(made.join("data/db")).unwrap(),
        );
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "a hard link, not a copy"
        );
        assert_eq!(
            std::fs::read_link(made.join("link")).unwrap(),
            Path::new("data/db")
        );
        // the daemon replaces the file (write + rename): the backup keeps the old content
        write(&home.join("data/db.new"), "v2");
        std::fs::rename(home.join("data/db.new"), home.join("data/db")).unwrap();
        assert_eq!(std::fs::read_to_string(made.join("data/db")).unwrap(), "v1");
        restore_backup(
            &HardlinkBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        let restored = std::fs::metadata(home.join("data/db")).unwrap();
        assert_ne!(
            restored.ino(),
            b.ino(),
            "restored by copy, so the backup stays independent"
        );
    }

    #[test]
    fn archive_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        write(&home.join("skip.log"), "log");
        std::fs::set_permissions(home.join("data/db"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        symlink("data/db", home.join("link")).unwrap();
        let plan = plan_for(&home, dir.path(), vec!["*.log".into()]);
        let made = take_backup(
            &ArchiveBackup::default(),
            &plan,
            "up",
            "1",
            &Cancel::default(),
        )
        .unwrap();
        assert!(made.join(ARCHIVE_NAME).is_file());
        write(&home.join("data/db"), "v2");
        std::fs::remove_file(home.join("link")).unwrap();
        restore_backup(
            &ArchiveBackup::default(),
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        let mode = std::fs::metadata(home.join("data/db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_link(home.join("link")).unwrap(),
            Path::new("data/db")
        );
        assert_eq!(
            std::fs::read_to_string(home.join("skip.log")).unwrap(),
            "log"
        );
    }

    #[test]
    fn compressed_archive_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), &"compressible ".repeat(10_000));
        let plan = plan_for(&home, dir.path(), vec![]);
        let zstd = ArchiveBackup {
            zstd_level: Some(3),
        };
        let made = take_backup(&zstd, &plan, "up", "1", &Cancel::default()).unwrap();
        let archive = made.join(COMPRESSED_ARCHIVE_NAME);
        assert!(
            std::fs::metadata(&archive).unwrap().len() < 10_000,
            "compressed"
        );
        write(&home.join("data/db"), "changed");
        // restored by the method the backup itself calls for
        restore_backup(
            restorer_for(&made).as_ref(),
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(home.join("data/db")).unwrap(),
            "compressible ".repeat(10_000)
        );
    }
}
