//! Backups of the daemon's data before a swap (SPEC §11).
//!
//! A [`BackupStrategy`] copies a tree into a directory that does not exist yet; [`take_backup`]
//! wraps it with what every strategy shares: the free-space check, the temporary name renamed
//! when complete, one backup per upgrade, and retention.

mod copy;

pub use copy::CopyBackup;

use std::collections::HashSet;
use std::fmt::Debug;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::BackupStrategyKind;
use crate::error::{Error, Result};
use crate::fsutil;

/// Lets a long backup be abandoned promptly (a stop signal arrived).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>, Arc<std::sync::atomic::AtomicU64>);

impl Cancel {
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
            Err(Error::Inconsistent("backup cancelled".into()))
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
}

/// The strategy for a configured kind. Kinds not implemented yet fall back to `copy`, with a
/// warning, so that the operator's data is still backed up.
pub fn strategy_for(kind: BackupStrategyKind) -> Option<Arc<dyn BackupStrategy>> {
    match kind {
        BackupStrategyKind::None => None,
        BackupStrategyKind::Copy => Some(Arc::new(CopyBackup)),
        other => {
            tracing::warn!(
                "backup strategy `{other}` is not available in this build; using `copy`"
            );
            Some(Arc::new(CopyBackup))
        }
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
    /// How many backups to keep (at least 1).
    pub keep: usize,
    /// Free space that must remain after the backup, in bytes.
    pub min_free_after: u64,
}

/// Checks there is room for a copy of `source` in `root`; returns the bytes needed.
pub fn check_free_space(plan: &BackupPlan) -> Result<u64> {
    let needed = tree_size(&plan.source, &plan.skip);
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
/// and renamed to `<root>/<upgrade>/<timestamp>` when complete; then earlier backups of the same
/// upgrade (a retry) and the oldest backups beyond `keep` are removed. A failed or cancelled
/// backup leaves nothing behind, nor do earlier interrupted ones.
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
    let skip = SkipSet::new(&plan.skip);
    let made = strategy
        .backup(&plan.source, &partial, &skip, cancel)
        .and_then(|()| sync_filesystem(&partial));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &done).map_err(|e| Error::io("failed to finish backup", &done, e))?;
    fsutil::sync_dir(&dir)?;
    // one backup per upgrade: a retry replaces the earlier one
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path() != done {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    prune(&plan.backup_root, plan.keep);
    Ok(done)
}

/// Removes `.<timestamp>.partial` directories left by an interrupted backup.
fn remove_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".partial") {
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

/// Paths left out of backups and restores, recognised by device and inode so that another
/// spelling of the same directory (a symlink, `..`) cannot slip through.
#[derive(Debug, Clone, Default)]
pub struct SkipSet {
    ids: HashSet<(u64, u64)>,
}

impl SkipSet {
    pub fn new(paths: &[PathBuf]) -> SkipSet {
        SkipSet {
            ids: paths
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
        }
    }

    /// Whether the entry with this metadata (not followed through symlinks) is skipped.
    pub fn contains(&self, meta: &std::fs::Metadata) -> bool {
        self.ids.contains(&(meta.dev(), meta.ino()))
    }

    /// Directories strictly between `root` and each skipped path: a restore descends into them
    /// instead of replacing them whole.
    pub fn ancestors_below(&self, root: &Path, paths: &[PathBuf]) -> HashSet<(u64, u64)> {
        let mut out = HashSet::new();
        let Ok(root) = root.canonicalize() else {
            return out;
        };
        for p in paths {
            let Ok(mut cur) = p.canonicalize() else {
                continue;
            };
            while cur.pop() && cur.starts_with(&root) && cur != root {
                if let Ok(m) = std::fs::metadata(&cur) {
                    out.insert((m.dev(), m.ino()));
                }
            }
        }
        out
    }
}

/// Replaces the content of `target` with the backup, leaving `skip` (and the way to it) alone.
/// The backup is first copied next to the target, so a failure in that copy changes nothing, and
/// the whole operation can be repeated after a crash.
pub fn restore_backup(
    strategy: &dyn BackupStrategy,
    backup: &Path,
    target: &Path,
    skip: &[PathBuf],
    cancel: &Cancel,
) -> Result<()> {
    let staging = target.join(".nymvisor-restore.partial");
    let _ = std::fs::remove_dir_all(&staging);
    strategy.restore(backup, &staging, cancel)?;
    let mut all_skip = skip.to_vec();
    all_skip.push(staging.clone());
    let set = SkipSet::new(&all_skip);
    let ancestors = set.ancestors_below(target, &all_skip);
    replace_contents(target, Some(&staging), &set, &ancestors)?;
    std::fs::remove_dir_all(&staging).map_err(|e| Error::io("failed to remove", &staging, e))?;
    fsutil::sync_dir(target)
}

fn replace_contents(
    target: &Path,
    staged: Option<&Path>,
    skip: &SkipSet,
    ancestors: &HashSet<(u64, u64)>,
) -> Result<()> {
    let entries = std::fs::read_dir(target).map_err(|e| Error::io("failed to list", target, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        if skip.contains(&meta) {
            continue;
        }
        if meta.is_dir() && ancestors.contains(&(meta.dev(), meta.ino())) {
            let sub = staged
                .map(|s| s.join(entry.file_name()))
                .filter(|s| s.is_dir());
            replace_contents(&path, sub.as_deref(), skip, ancestors)?;
            continue;
        }
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io("failed to remove before restoring", &path, e))?;
    }
    let Some(staged) = staged else { return Ok(()) };
    let staged_entries =
        std::fs::read_dir(staged).map_err(|e| Error::io("failed to list", staged, e))?;
    for entry in staged_entries.flatten() {
        let dest = target.join(entry.file_name());
        if std::fs::symlink_metadata(&dest).is_ok() {
            continue; // a directory on the way to a skipped path, restored inside above
        }
        std::fs::rename(entry.path(), &dest)
            .map_err(|e| Error::io("failed to restore", &dest, e))?;
    }
    Ok(())
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
        tracing::info!(path = %path.display(), "removing old backup");
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), "failed to remove old backup: {e}");
        }
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

/// Bytes of regular files under `dir`, symlinks not followed, `skip` left out.
pub fn tree_size(dir: &Path, skip: &[PathBuf]) -> u64 {
    let skip = SkipSet::new(skip);
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if skip.contains(&m) => {}
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) if m.is_file() => total += m.len(),
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

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
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

        restore_backup(&CopyBackup, &made, &home, &plan.skip, &Cancel::default()).unwrap();
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
        let plan = BackupPlan {
            source: home.clone(),
            backup_root: dir.path().join("b"),
            skip: vec![],
            keep: 3,
            min_free_after: 0,
        };
        std::fs::create_dir_all(plan.backup_root.join("up/.old.partial")).unwrap();
        take_backup(&CopyBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        take_backup(&CopyBackup, &plan, "up", "2", &Cancel::default()).unwrap();
        let names: Vec<_> = std::fs::read_dir(plan.backup_root.join("up"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2")]);
        // retention across upgrades
        for (i, up) in ["a", "b", "c", "d"].iter().enumerate() {
            take_backup(&CopyBackup, &plan, up, &format!("3{i}"), &Cancel::default()).unwrap();
        }
        assert!(!plan.backup_root.join("up").exists() && !plan.backup_root.join("a").exists());
        assert!(plan.backup_root.join("d/33").is_dir());
    }

    #[test]
    fn cancelled_backup_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("f"), "1");
        let plan = BackupPlan {
            source: home,
            backup_root: dir.path().join("b"),
            skip: vec![],
            keep: 3,
            min_free_after: 0,
        };
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
}
