//! The backups on disk: taking one (complete or not at all), committing it, retiring and
//! pruning old ones, listing them, and the safety copy taken before a restore or a rollback.

use std::path::{Path, PathBuf};

use super::{
    BackupPlan, BackupStrategy, Cancel, CopyBackup, SkipSet, is_legacy_archive, tree_size,
};
use crate::error::{Error, Result};
use crate::fsutil;

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
pub(super) fn commit(partial: &Path, done: &Path) -> Result<PathBuf> {
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
pub(super) fn remove_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.ends_with(".partial") || name.ends_with(".removing")) {
            tracing::info!(path = %entry.path().display(), "removing an interrupted backup");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Flushes the file system holding `path` (one `syncfs`, instead of an fsync per file).
pub(super) fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|e| Error::io("failed to open", path, e))?;
    nix::unistd::syncfs(&dir).map_err(|e| {
        Error::io(
            "failed to flush the backup to disk",
            path,
            std::io::Error::from_raw_os_error(e as i32),
        )
    })
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

/// Every entry `root/<upgrade>/<name>`, as (upgrade, name, path).
fn entries(root: &Path) -> Vec<(String, String, PathBuf)> {
    let mut all = Vec::new();
    for upgrade in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let label = upgrade.file_name().to_string_lossy().into_owned();
        for backup in std::fs::read_dir(upgrade.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = backup.file_name().to_string_lossy().into_owned();
            all.push((label.clone(), name, backup.path()));
        }
    }
    all
}

/// Complete backups under `root`, oldest first.
pub fn list_backups(root: &Path) -> Vec<BackupEntry> {
    let mut all = Vec::new();
    for (upgrade, name, path) in entries(root) {
        if !name.starts_with('.') && path.is_dir() {
            all.push(BackupEntry {
                upgrade,
                bytes: tree_size(&path, &SkipSet::default()),
                sort_key: name.clone(),
                timestamp: name,
                path,
            });
        } else if is_legacy_archive(&path) && path.is_file() {
            all.push(BackupEntry {
                upgrade,
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                sort_key: legacy_sort_key(&name),
                timestamp: name,
                path,
            });
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
    let mut all: Vec<(String, PathBuf)> = entries(root)
        .into_iter()
        .filter(|(_, name, path)| !name.starts_with('.') && path.is_dir())
        .map(|(_, name, path)| (name, path))
        .collect();
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, path) in all.into_iter().take(excess) {
        discard(&path);
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent); // only succeeds when empty
        }
    }
}

/// Label prefixes of the safety copies a rollback and a restore keep of the data they replace
/// (`<prefix><name of the upgrade that ran>`).
pub const BEFORE_ROLLBACK: &str = "before-rollback-of-";
pub const BEFORE_RESTORE: &str = "before-restore-of-";

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC: the name of a backup's directory.
pub fn timestamp() -> String {
    let now = crate::model::now();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// A copy of the daemon home as it is now, in `backups/<label>/<UTC time>` (the `copy`
/// strategy, whatever the configured one): what a restore or a rollback is about to replace,
/// so that it can be undone with another restore.
pub async fn take_safety_copy(plan: BackupPlan, label: String) -> Result<PathBuf> {
    let stamp = timestamp();
    tokio::task::spawn_blocking(move || {
        take_backup(&CopyBackup, &plan, &label, &stamp, &Cancel::default())
    })
    .await
    .map_err(|e| Error::Task {
        what: "the safety copy of the daemon's data",
        message: e.to_string(),
    })?
}
