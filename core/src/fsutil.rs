//! File-system primitives with crash-safety guarantees: atomic writes and copies, the atomic
//! symlink swap, and advisory locks.
//!
//! Every write goes to a temporary file in the destination's directory, is fsynced, renamed over
//! the destination, and the directory is fsynced: a reader (or a crash) sees the old content or
//! the new content, never a mix. Temporary files are removed when anything fails.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Mode of the JSON state files.
pub const STATE_FILE_MODE: u32 = 0o644;
/// Mode of installed binaries.
pub const BINARY_MODE: u32 = 0o755;

fn parent_of(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

fn temp_in(dir: &Path, path: &Path) -> Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("failed to create a temporary file in", dir, e))
}

/// fsyncs a directory so that a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("failed to sync directory", dir, e))
}

/// Creates a directory and its parents.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("failed to create directory", dir, e))
}

/// Atomically replaces `path` with `contents`, with permission bits `mode`.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = parent_of(path)?;
    let mut tmp = temp_in(dir, path)?;
    let tmp_path = tmp.path().to_owned();
    tmp.write_all(contents)
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("failed to write", &tmp_path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("failed to rename a temporary file onto", path, e.error))?;
    sync_dir(dir)
}

/// Atomically writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| Error::CorruptJson {
        path: path.to_owned(),
        source: e,
    })?;
    text.push(b'\n');
    atomic_write(path, &text, STATE_FILE_MODE)
}

/// Largest state file nymvisor reads (plan, history, journal, run state, current version,
/// upgrade info, config). A real one is a few KiB; anything near this is not ours.
pub const MAX_STATE_FILE: u64 = 4 * 1024 * 1024;

/// Opens `path` for reading without ever blocking (a FIFO or a device in its place would hang
/// an ordinary `open`), and refuses anything that is not a regular file.
pub fn open_regular(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io("failed to open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("failed to inspect", path, e))?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegular {
            path: path.to_owned(),
            kind: describe_kind(&meta.file_type()),
        });
    }
    Ok(file)
}

fn describe_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Reads a whole state file: opened without blocking, a regular file, at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("failed to read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            cap,
        });
    }
    Ok(bytes)
}

/// Reads and parses a JSON state file ([`read_capped`] with [`MAX_STATE_FILE`]); the error
/// names the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_capped(path, MAX_STATE_FILE)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::CorruptJson {
        path: path.to_owned(),
        source,
    })
}

/// Like [`read_json`], but a missing file is `Ok(None)`.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("failed to read", path, e)),
        Ok(_) => read_json(path).map(Some),
    }
}

/// Copies `src` to `dest` atomically with mode `mode`: the content goes to a temporary file in
/// `dest`'s directory, is fsynced and then renamed into place. With `overwrite` false an existing
/// `dest` is an error and is left untouched.
pub fn atomic_copy(src: &Path, dest: &Path, mode: u32, overwrite: bool) -> Result<()> {
    let dir = parent_of(dest)?;
    let mut input = File::open(src).map_err(|e| Error::io("failed to open", src, e))?;
    let mut tmp = temp_in(dir, dest)?;
    let tmp_path = tmp.path().to_owned();
    std::io::copy(&mut input, &mut tmp)
        .map_err(|e| Error::io("failed to copy into", &tmp_path, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("failed to write", &tmp_path, e))?;
    if overwrite {
        tmp.persist(dest)
            .map_err(|e| Error::io("failed to rename a temporary file onto", dest, e.error))?;
    } else {
        tmp.persist_noclobber(dest)
            .map_err(|e| Error::io("refusing to replace existing", dest, e.error))?;
    }
    sync_dir(dir)
}

/// Points the symlink `link` at `target` atomically: a new link under a temporary name is
/// renamed over the old one, so `link` always resolves to either the old or the new target.
pub fn swap_symlink(link: &Path, target: &Path) -> Result<()> {
    let dir = parent_of(link)?;
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // a leftover from a crashed swap of ours would make symlink() fail
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| Error::io("failed to create symlink", &tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, link) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("failed to swap symlink", link, e));
    }
    // the link points to `target` from here on, whatever the flush says: reporting the swap as
    // failed would have the caller act as if the old target were still in place
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(
            "{} points to {} now, but {e}; a power cut before the next flush could undo it",
            link.display(),
            target.display()
        );
    }
    Ok(())
}

/// Files identical byte for byte (used to confirm a repeated `init`).
pub fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let (ma, mb) = (
        std::fs::metadata(a).map_err(|e| Error::io("failed to read", a, e))?,
        std::fs::metadata(b).map_err(|e| Error::io("failed to read", b, e))?,
    );
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = File::open(a).map_err(|e| Error::io("failed to open", a, e))?;
    let mut fb = File::open(b).map_err(|e| Error::io("failed to open", b, e))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa
            .read(&mut ba)
            .map_err(|e| Error::io("failed to read", a, e))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])
            .map_err(|e| Error::io("failed to read", b, e))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// An exclusive advisory lock (`flock`) on a file that is never deleted. Released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock without waiting; records our pid in the file so that a refused process
    /// can say who holds it.
    pub fn try_acquire(path: &Path) -> Result<FileLock> {
        let mut file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = read_pid_text(&mut file);
                return Err(Error::Locked {
                    path: path.to_owned(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("failed to lock", path, e));
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(|e| Error::io("failed to write the pid into", path, e))?;
        Ok(FileLock {
            file,
            path: path.to_owned(),
        })
    }

    /// Takes the lock, waiting for the holder to release it (for short critical sections).
    /// A lock file this user may not write (another user created it) is locked through a
    /// read-only descriptor: `flock` needs no write permission, and a lock that cannot be taken
    /// must never keep an upgrade that is in place from being recorded.
    pub fn acquire_blocking(path: &Path) -> Result<FileLock> {
        let file = match Self::open(path) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                open_regular(path)?
            }
            other => other?,
        };
        file.lock()
            .map_err(|e| Error::io("failed to lock", path, e))?;
        Ok(FileLock {
            file,
            path: path.to_owned(),
        })
    }

    /// Who holds the lock: `None` if nobody (or the file does not exist), `Some(pid)` if held
    /// (the pid when the holder recorded it). Does not write to the file.
    pub fn holder(path: &Path) -> Result<Option<Option<u32>>> {
        let mut file = match open_regular(path) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = read_pid_text(&mut file);
                Ok(Some(text.trim().parse().ok()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io("failed to check the lock", path, e))
            }
        }
    }

    fn open(path: &Path) -> Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| Error::io("failed to open lock file", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("failed to inspect", path, e))?;
        if !meta.file_type().is_file() {
            return Err(Error::NotRegular {
                path: path.to_owned(),
                kind: describe_kind(&meta.file_type()),
            });
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid a lock holder wrote (a few bytes at most are read).
fn read_pid_text(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.take(32).read_to_string(&mut text);
    text
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        atomic_write(&p, b"one", 0o600).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn symlink_swap_is_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let link = dir.path().join("current");
        swap_symlink(&link, Path::new("a")).unwrap();
        swap_symlink(&link, Path::new("b")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn copy_without_overwrite_keeps_existing() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("src"), dir.path().join("dest"));
        std::fs::write(&src, b"new").unwrap();
        std::fs::write(&dest, b"old").unwrap();
        assert!(atomic_copy(&src, &dest, 0o755, false).is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        atomic_copy(&src, &dest, 0o755, true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("upgrade.lock");
        let held = FileLock::try_acquire(&p).unwrap();
        match FileLock::try_acquire(&p) {
            Err(Error::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        FileLock::try_acquire(&p).unwrap();
        assert!(p.exists());
    }
}
