//! The `archive` strategy: one uncompressed tar file per backup (`backup.tar` inside the backup
//! directory), for operators who ship backups elsewhere. Symlinks are stored as links, never
//! followed; modes and times are kept. Restoring unpacks it (entries cannot escape the target).

use std::fs::File;
use std::path::Path;

use super::{BackupStrategy, Cancel, SkipSet};
use crate::error::{Error, Result};

/// File name of the archive inside a backup directory.
pub const ARCHIVE_NAME: &str = "backup.tar";
/// File name of a zstd-compressed archive.
pub const COMPRESSED_ARCHIVE_NAME: &str = "backup.tar.zst";

/// Whether `path` is a backup nymvisor 0.1.41 made: a gzip'd tar file
/// `<backup dir>/<upgrade>/backup-<YYYY-MM-DD-HHMMSSmmm>-preupgrade.tar.gz` of the daemon home's
/// entries (its `nymvisor/` directory left out). Restored by [`ArchiveBackup`].
pub fn is_legacy_archive(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("backup-") && n.ends_with("-preupgrade.tar.gz"))
}

/// See the module docs. With `zstd_level`, the archive is compressed
/// (`DAEMON_BACKUP_COMPRESSION=zstd`, level 3).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveBackup {
    pub zstd_level: Option<i32>,
}

fn tar_err(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(action, path, e)
}

impl BackupStrategy for ArchiveBackup {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()> {
        std::fs::create_dir(dest).map_err(|e| Error::io("failed to create", dest, e))?;
        let out = dest.join(if self.zstd_level.is_some() {
            COMPRESSED_ARCHIVE_NAME
        } else {
            ARCHIVE_NAME
        });
        let file = File::create(&out).map_err(|e| Error::io("failed to create", &out, e))?;
        let writer: Box<dyn std::io::Write> = match self.zstd_level {
            Some(level) => Box::new(
                zstd::Encoder::new(
                    file.try_clone()
                        .map_err(|e| Error::io("failed to open", &out, e))?,
                    level,
                )
                .map_err(|e| Error::io("failed to start compressing", &out, e))?
                .auto_finish(),
            ),
            None => Box::new(
                file.try_clone()
                    .map_err(|e| Error::io("failed to open", &out, e))?,
            ),
        };
        let mut tar = tar::Builder::new(writer);
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
        let writer = tar
            .into_inner()
            .map_err(|e| tar_err("failed to finish", &out, e))?;
        drop(writer); // ends the zstd frame
        file.sync_all()
            .map_err(|e| Error::io("failed to write", &out, e))
    }

    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()> {
        cancel.check()?;
        let compressed = backup.join(COMPRESSED_ARCHIVE_NAME);
        let (input, reader): (std::path::PathBuf, Box<dyn std::io::Read>) =
            if is_legacy_archive(backup) {
                let file =
                    File::open(backup).map_err(|e| Error::io("failed to open", backup, e))?;
                (
                    backup.to_owned(),
                    Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file))),
                )
            } else if compressed.is_file() {
                let file = File::open(&compressed)
                    .map_err(|e| Error::io("failed to open", &compressed, e))?;
                let decoder = zstd::Decoder::new(file)
                    .map_err(|e| Error::io("failed to decompress", &compressed, e))?;
                (compressed, Box::new(decoder))
            } else {
                let plain = backup.join(ARCHIVE_NAME);
                let file =
                    File::open(&plain).map_err(|e| Error::io("failed to open", &plain, e))?;
                (plain, Box::new(file))
            };
        std::fs::create_dir(target).map_err(|e| Error::io("failed to create", target, e))?;
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive
            .unpack(target)
            .map_err(|e| tar_err("failed to unpack", &input, e))
    }
}
