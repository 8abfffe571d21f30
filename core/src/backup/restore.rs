//! Restoring a backup into the daemon home, leaving what the skip rules leave out alone.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{BackupStrategy, Cancel, SkipSet};
use crate::error::{Error, Result};
use crate::fsutil;

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
