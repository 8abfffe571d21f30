//! The `copy` strategy: a full tree copy preserving modes, times, symlinks (as links), hard
//! links between files of the tree and holes of sparse files (as `cp -a` does), with
//! copy-on-write clones (reflinks) where the file system supports them; and `hardlink`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::{BackupStrategy, Cancel, SkipSet};
use crate::error::{Error, Result};

/// Recursive copy; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyBackup;

impl BackupStrategy for CopyBackup {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()> {
        copy_tree(source, dest, skip, cancel, false)
    }

    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()> {
        copy_tree(backup, target, &SkipSet::default(), cancel, false)
    }

    fn supports_precopy(&self) -> bool {
        true
    }
}

/// The `hardlink` strategy: a snapshot whose files are hard links to the daemon's files (a
/// plain copy where linking is impossible, e.g. across file systems). Nearly free in time and
/// space, with one caveat: a file the daemon later modifies *in place* (instead of writing a new
/// file and renaming it) changes in the backup too. Databases that rewrite pages in place are
/// not protected by it; use `copy` for them. Restoring copies the files back.
#[derive(Debug, Clone, Copy, Default)]
pub struct HardlinkBackup;

impl BackupStrategy for HardlinkBackup {
    fn name(&self) -> &'static str {
        "hardlink"
    }

    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()> {
        copy_tree(source, dest, skip, cancel, true)
    }

    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()> {
        copy_tree(backup, target, &SkipSet::default(), cancel, false)
    }
}

/// Copies `src` to `dst` (created). Directory times are set after their content.
pub fn copy_tree(
    src: &Path,
    dst: &Path,
    skip: &SkipSet,
    cancel: &Cancel,
    link_files: bool,
) -> Result<()> {
    copy_tree_visited(src, dst, skip, cancel, link_files, &mut Unwatched)
}

/// Whoever follows a copy as it goes (the pre-copy's manifest and watch, the delta's list of
/// what to flush): the copier calls it and knows nothing of it.
pub(super) trait Visitor {
    /// A directory is about to be read (before its metadata is: a change from now on is seen).
    fn entering(&mut self, _dir: &Path) {}
    /// An entry's metadata, read just before its content is copied.
    fn noting(&mut self, _path: &Path, _meta: &fs::Metadata) {}
    /// A file's content was written to `to`.
    fn wrote_file(&mut self, _to: &Path, _cancel: &Cancel) {}
    /// A directory was completed at `to`.
    fn wrote_dir(&mut self, _to: &Path) {}
}

/// Nobody follows the copy.
struct Unwatched;

impl Visitor for Unwatched {}

/// [`copy_tree`], telling `visitor` what it does.
pub(super) fn copy_tree_visited(
    src: &Path,
    dst: &Path,
    skip: &SkipSet,
    cancel: &Cancel,
    link_files: bool,
    visitor: &mut dyn Visitor,
) -> Result<()> {
    // files with more than one link, by (device, inode), and where their first copy went: the
    // next name of the same file becomes a hard link to it
    let mut links = std::collections::HashMap::new();
    copy_dir(src, dst, skip, cancel, link_files, visitor, &mut links)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    skip: &SkipSet,
    cancel: &Cancel,
    link_files: bool,
    visitor: &mut dyn Visitor,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    visitor.entering(src);
    let meta = fs::symlink_metadata(src).map_err(|e| Error::io("failed to read", src, e))?;
    visitor.noting(src, &meta);
    fs::create_dir(dst).map_err(|e| Error::io("failed to create", dst, e))?;
    let entries = fs::read_dir(src).map_err(|e| Error::io("failed to list", src, e))?;
    for entry in entries {
        cancel.check()?;
        let entry = entry.map_err(|e| Error::io("failed to list", src, e))?;
        let from = entry.path();
        let entry_meta =
            fs::symlink_metadata(&from).map_err(|e| Error::io("failed to read", &from, e))?;
        if skip.skips(&from, &entry_meta) {
            continue;
        }
        let to = dst.join(entry.file_name());
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("failed to read", &from, e))?;
        if ft.is_dir() {
            copy_dir(&from, &to, skip, cancel, link_files, visitor, links)?;
            continue;
        }
        if !(ft.is_symlink() || ft.is_file()) {
            continue; // sockets, fifos and devices are not data: left out
        }
        visitor.noting(&from, &entry_meta);
        if ft.is_symlink() {
            copy_symlink(&from, &to)?;
            continue;
        }
        if link_files && fs::hard_link(&from, &to).is_ok() {
            cancel.add_done(entry_meta.len());
            continue; // the link shares the file's inode: mode, owner and times included
        }
        // another name of a file already copied: linked to that copy, as in the source
        if entry_meta.nlink() > 1 {
            let key = (entry_meta.dev(), entry_meta.ino());
            if let Some(first) = links.get(&key)
                && fs::hard_link(first, &to).is_ok()
            {
                continue;
            }
            links.insert(key, to.clone());
        }
        copy_file(&from, &to)?;
        cancel.add_done(entry_meta.len());
        visitor.wrote_file(&to, cancel);
    }
    copy_dir_attributes(dst, &meta)?;
    visitor.wrote_dir(dst);
    Ok(())
}

/// Gives the directory `dst` the owner, mode and times in `meta` (after its content is in place:
/// adding an entry changes a directory's times).
pub(super) fn copy_dir_attributes(dst: &Path, meta: &fs::Metadata) -> Result<()> {
    set_owner(dst, meta, true);
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io("failed to set permissions of", dst, e))?;
    set_times(dst, meta, true);
    Ok(())
}

/// Copies the symlink `from` as a symlink (same target, owner and times).
pub(super) fn copy_symlink(from: &Path, to: &Path) -> Result<()> {
    let target = fs::read_link(from).map_err(|e| Error::io("failed to read link", from, e))?;
    symlink(&target, to).map_err(|e| Error::io("failed to create link", to, e))?;
    let m = fs::symlink_metadata(from).map_err(|e| Error::io("failed to read", from, e))?;
    set_times(to, &m, false);
    set_owner(to, &m, false);
    Ok(())
}

/// Copies the regular file `from` to `to` (which does not exist) with its owner, mode and
/// times: a copy-on-write clone where the file system supports it (btrfs, XFS, …), else a copy
/// that keeps a sparse file's holes.
pub(super) fn copy_file(from: &Path, to: &Path) -> Result<()> {
    // named by the destination: where a copy fails, it is usually for lack of space there
    copy_contents(from, to).map_err(|e| Error::io("failed to copy into", to, e))?;
    let m = fs::symlink_metadata(from).map_err(|e| Error::io("failed to read", from, e))?;
    set_owner(to, &m, true);
    fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))
        .map_err(|e| Error::io("failed to set permissions of", to, e))?;
    set_times(to, &m, true);
    Ok(())
}

/// The bytes of `from` into the new file `to`: a reflink, else the kernel's copy for a dense
/// file, else (a sparse file) its data extents only (`SEEK_DATA`/`SEEK_HOLE`), so a 10 GiB file
/// with 8 KiB of data takes 8 KiB in the backup too.
fn copy_contents(from: &Path, to: &Path) -> std::io::Result<()> {
    if reflink_copy::reflink(from, to).is_ok() {
        return Ok(());
    }
    // a failed clone may leave an empty file behind
    let _ = fs::remove_file(to);
    let src = fs::File::open(from)?;
    let meta = src.metadata()?;
    if meta.blocks().saturating_mul(512) >= meta.len() {
        return fs::copy(from, to).map(|_| ());
    }
    let dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    copy_extents(&src, &dst, meta.len())?;
    dst.set_len(meta.len())
}

/// Copies the data extents of `src` (up to `len`) to the same offsets of `dst`.
fn copy_extents(src: &fs::File, dst: &fs::File, len: u64) -> std::io::Result<()> {
    use nix::unistd::{Whence, lseek};
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    while pos < len {
        let data = match lseek(src, pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            // no data after `pos`: the rest is a hole
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = (lseek(src, data as i64, Whence::SeekHole).map_err(std::io::Error::from)?
            as u64)
            .min(len);
        let mut at = data;
        while at < hole {
            let want = ((hole - at) as usize).min(buf.len());
            let n = src.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break; // the file shrank meanwhile
            }
            dst.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        pos = hole.max(data + 1);
    }
    Ok(())
}

fn set_times(path: &Path, m: &fs::Metadata, follow: bool) {
    let atime = TimeSpec::new(m.atime(), m.atime_nsec());
    let mtime = TimeSpec::new(m.mtime(), m.mtime_nsec());
    let flag = if follow {
        UtimensatFlags::FollowSymlink
    } else {
        UtimensatFlags::NoFollowSymlink
    };
    let _ = utimensat(nix::fcntl::AT_FDCWD, path, &atime, &mtime, flag);
}

/// Ownership is kept where permitted (as root); otherwise files belong to the backup's owner.
fn set_owner(path: &Path, m: &fs::Metadata, follow: bool) {
    let (uid, gid) = (
        Some(nix::unistd::Uid::from_raw(m.uid())),
        Some(nix::unistd::Gid::from_raw(m.gid())),
    );
    let flag = if follow {
        nix::fcntl::AtFlags::empty()
    } else {
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW
    };
    let _ = nix::unistd::fchownat(nix::fcntl::AT_FDCWD, path, uid, gid, flag);
}
