//! The `archive` strategy: one uncompressed tar file per backup (`backup.tar` inside the backup
//! directory), for operators who ship backups elsewhere. Symlinks are stored as links, never
//! followed; modes and times are kept. Restoring unpacks it (entries cannot escape the target).

use std::fs::File;
use std::path::Path;

use super::{BackupStrategy, Cancel, SkipSet};
use crate::error::{Error, Result};

/// File name of the archive inside a backup directory.
pub const ARCHIVE_NAME: &str = "backup.tar";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveBackup;

fn tar_err(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path, e)
}

impl BackupStrategy for ArchiveBackup {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()> {
        std::fs::create_dir(dest).map_err(|e| Error::io("failed to create", dest, e))?;
        let out = dest.join(ARCHIVE_NAME);
        let file = File::create(&out).map_err(|e| Error::io("failed to create", &out, e))?;
        let mut tar = tar::Builder::new(file);
        tar.follow_symlinks(false);
        let mut stack = vec![source.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| Error::io("failed to list", &dir, e))?;
            for entry in entries {
                cancel.check()?;
                let entry = entry.map_err(|e| Error::io("failed to list", &dir, e))?;
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| Error::io("failed to read", &path, e))?;
                if skip.skips(&path, &meta)
                    || !(meta.is_dir() || meta.is_file() || meta.is_symlink())
                {
                    continue;
                }
                let rel = path.strip_prefix(source).unwrap_or(&path);
                tar.append_path_with_name(&path, rel)
                    .map_err(|e| tar_err("failed to archive", &path, e))?;
                if meta.is_file() {
                    cancel.add_done(meta.len());
                }
                if meta.is_dir() {
                    stack.push(path);
                }
            }
        }
        let file = tar
            .into_inner()
            .map_err(|e| tar_err("failed to finish", &out, e))?;
        file.sync_all()
            .map_err(|e| Error::io("failed to write", &out, e))
    }

    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()> {
        cancel.check()?;
        let input = backup.join(ARCHIVE_NAME);
        let file = File::open(&input).map_err(|e| Error::io("failed to open", &input, e))?;
        std::fs::create_dir(target).map_err(|e| Error::io("failed to create", target, e))?;
        let mut archive = tar::Archive::new(file);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive
            .unpack(target)
            .map_err(|e| tar_err("failed to unpack", &input, e))
    }
}
