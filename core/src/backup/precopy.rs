//! Live backups for the `copy` strategy: the daemon home is copied while the old daemon still
//! runs (the *pre-copy*), noting each entry's metadata as it goes; once the daemon has stopped,
//! only what changed since is copied again (the *delta*). The downtime then grows with what
//! changed, not with the data — what `rsync` and live migration of virtual machines do.
//!
//! Guarantees:
//! - A finished backup holds the home as it was once the daemon had stopped: an entry whose type,
//!   device, inode, size, mtime, ctime (both to the nanosecond), mode or owner differs from what
//!   the pre-copy noted is copied again; new entries are copied, vanished ones removed;
//!   directories take their current mode, owner and times.
//! - A file changed within the same clock tick as its copy keeps its times, so metadata alone
//!   would miss that change: a file whose ctime lies within [`RACY_MARGIN`] of the moment it was
//!   copied is copied again after the stop whatever its metadata says (git's "racily clean").
//! - A pre-copy never counts as a backup before [`Precopy::finish`] succeeded: it lives under a
//!   `.<timestamp>.partial` name, is removed when dropped unfinished, and a crash's leftover is
//!   removed by the next backup.
//! - The delta is flushed file by file and directory by directory (`fsync`), not with `syncfs`:
//!   the downtime does not wait for the rest of the file system's dirty data. The pre-copy's own
//!   flush (`syncfs`) happens while the daemon still runs.
//!
//! Limit: a file modified through a shared memory map may change without its mtime changing until
//! the kernel writes the page back; a daemon writing its data that way should use
//! `backup_precopy = false` (docs/OPERATOR_GUIDE.md "Backups, rollback, restore").

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::stat::SFlag;

use super::copy::{Visitor, copy_dir_attributes, copy_file, copy_symlink, copy_tree_visited};
use super::store::{commit, remove_partials, sync_filesystem};
use super::watch::{Changes, Watch};
use super::{BackupPlan, Cancel, SkipSet};
use crate::error::{Error, Result};
use crate::fsutil;

/// A file whose ctime is this close to (or after) the moment it was copied is copied again
/// after the stop. Covers the file system's timestamp granularity (a clock tick, ≤ 10 ms) with
/// room to spare.
pub const RACY_MARGIN: Duration = Duration::from_secs(1);

/// The metadata that tells whether an entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// File type bits (`S_IFMT`) and permission bits.
    mode: u32,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    uid: u32,
    gid: u32,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            mode: m.mode(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            uid: m.uid(),
            gid: m.gid(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Note {
    stamp: Stamp,
    /// Changed too close to its copy for its times to tell a later change apart.
    racy: bool,
}

/// What the pre-copy saw of each entry it copied, by source path.
#[derive(Debug, Default)]
pub(super) struct Manifest {
    notes: HashMap<PathBuf, Note>,
    /// Files with more than one name: a change through another name raises no event for this
    /// one, so the delta always compares them.
    multi_linked: Vec<PathBuf>,
}

impl Manifest {
    /// Notes `meta`, read from `path` just before its content was copied at `copied_at`.
    pub(super) fn note(&mut self, path: &Path, meta: &fs::Metadata, copied_at: SystemTime) {
        let ctime = SystemTime::UNIX_EPOCH
            .checked_add(Duration::new(
                meta.ctime().max(0) as u64,
                meta.ctime_nsec().clamp(0, 999_999_999) as u32,
            ))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let racy = ctime + RACY_MARGIN >= copied_at;
        if meta.is_file() && meta.nlink() > 1 {
            self.multi_linked.push(path.to_owned());
        }
        self.notes.insert(
            path.to_owned(),
            Note {
                stamp: Stamp::of(meta),
                racy,
            },
        );
    }

    /// Whether the entry at `path`, now with `meta`, is known to be as the pre-copy copied it.
    fn unchanged(&self, path: &Path, meta: &fs::Metadata) -> bool {
        self.notes
            .get(path)
            .is_some_and(|n| !n.racy && n.stamp == Stamp::of(meta))
    }

    /// Whether the pre-copy copied a directory from `path`.
    fn noted_dir(&self, path: &Path) -> bool {
        self.notes
            .get(path)
            .is_some_and(|n| n.stamp.mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits())
    }

    /// Whether `meta` is the very directory the pre-copy copied (and watched) at `path`.
    fn same_dir(&self, path: &Path, meta: &fs::Metadata) -> bool {
        meta.is_dir()
            && self.noted_dir(path)
            && self
                .notes
                .get(path)
                .is_some_and(|n| (n.stamp.dev, n.stamp.ino) == (meta.dev(), meta.ino()))
    }

    /// How many entries were noted.
    fn len(&self) -> usize {
        self.notes.len()
    }
}

/// What follows the pre-copy: each entry's metadata noted before its content is copied (the
/// manifest), each directory watched before it is read.
struct LiveCopy {
    manifest: Manifest,
    watch: Option<Watch>,
}

impl Visitor for LiveCopy {
    fn entering(&mut self, dir: &Path) {
        if let Some(watch) = self.watch.as_mut() {
            watch.add(dir);
        }
    }

    fn noting(&mut self, path: &Path, meta: &fs::Metadata) {
        self.manifest.note(path, meta, SystemTime::now());
    }

    fn wrote_file(&mut self, _to: &Path, cancel: &Cancel) {
        if let Some(watch) = self.watch.as_mut() {
            watch.drain();
        }
        cancel.pause_point("during-precopy");
    }
}

/// What a delta copies whole: every file and directory written, to be flushed.
struct Written(Vec<PathBuf>);

impl Visitor for Written {
    fn wrote_file(&mut self, to: &Path, _cancel: &Cancel) {
        self.0.push(to.to_owned());
    }

    fn wrote_dir(&mut self, to: &Path) {
        self.0.push(to.to_owned());
    }
}

/// A backup copied while the daemon ran, waiting for [`Precopy::finish`] after the stop.
/// Dropped unfinished, it is removed.
#[derive(Debug)]
pub struct Precopy {
    partial: PathBuf,
    done: PathBuf,
    manifest: Manifest,
    /// What changed since each directory was copied (`None`: the delta walks the home).
    watch: Option<Watch>,
}

/// What the delta did, for the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaStats {
    /// Entries copied again or anew (files, symlinks, directories).
    pub copied: u64,
    /// Entries removed from the copy (gone from the home).
    pub removed: u64,
    /// Bytes of file content copied.
    pub bytes: u64,
}

/// Copies the home into `<root>/<upgrade>/.<timestamp>.partial` while the daemon runs, noting
/// what it copied, and flushes it. A failure or a cancel leaves nothing behind.
pub fn precopy(
    plan: &BackupPlan,
    upgrade: &str,
    timestamp: &str,
    cancel: &Cancel,
) -> Result<Precopy> {
    let dir = plan.backup_root.join(upgrade);
    fsutil::create_dir_all(&dir)?;
    remove_partials(&dir);
    let mut precopy = Precopy {
        partial: dir.join(format!(".{timestamp}.partial")),
        done: dir.join(timestamp),
        manifest: Manifest::default(),
        watch: None,
    };
    let skip = plan.skip_set()?;
    let mut live = LiveCopy {
        manifest: Manifest::default(),
        watch: Watch::new(&plan.source),
    };
    copy_tree_visited(
        &plan.source,
        &precopy.partial,
        &skip,
        cancel,
        false,
        &mut live,
    )?;
    sync_filesystem(&precopy.partial)?;
    precopy.manifest = live.manifest;
    precopy.watch = live.watch;
    Ok(precopy)
}

impl Precopy {
    /// Entries the pre-copy copied.
    pub fn entries(&self) -> usize {
        self.manifest.len()
    }

    /// Brings the copy in line with the home (stopped daemon), flushes what changed, and makes
    /// it the upgrade's backup (named as by [`super::take_backup`]; older ones are left for
    /// [`super::retire`]). A failure
    /// or a cancel removes the copy: nothing half-done is left as a backup.
    pub fn finish(mut self, plan: &BackupPlan, cancel: &Cancel) -> Result<(PathBuf, DeltaStats)> {
        let skip = plan.skip_set()?;
        let mut delta = Delta {
            manifest: &self.manifest,
            skip: &skip,
            cancel,
            flush: Vec::new(),
            stats: DeltaStats::default(),
        };
        let meta = fs::symlink_metadata(&plan.source)
            .map_err(|e| Error::io("failed to read", &plan.source, e))?;
        match self.watch.take().and_then(Watch::changes) {
            Some(changes) => delta.events(&plan.source, &self.partial, changes)?,
            None => delta.dir(&plan.source, &self.partial, &meta)?,
        }
        for path in &delta.flush {
            cancel.check()?;
            flush(path)?;
        }
        let stats = delta.stats;
        let done = commit(&self.partial, &self.done)?;
        Ok((done, stats))
    }
}

impl Drop for Precopy {
    fn drop(&mut self) {
        // after a successful finish the partial name no longer exists
        if self.partial.exists() {
            let _ = fs::remove_dir_all(&self.partial);
        }
    }
}

/// The walk that brings a pre-copy up to date.
struct Delta<'a> {
    manifest: &'a Manifest,
    skip: &'a SkipSet,
    cancel: &'a Cancel,
    /// Files and directories written or changed, to flush.
    flush: Vec<PathBuf>,
    stats: DeltaStats,
}

impl Delta<'_> {
    /// Makes the copy's directory `dst` hold what the home's directory `src` (with `meta`,
    /// read before listing it) holds.
    ///
    /// Cheap where nothing changed, since the downtime pays for this walk: one `stat` (relative to
    /// the open directory) per entry of the home; the copy is looked at only where something
    /// changed; a directory whose own times are as noted lost no entry (unlinking or renaming
    /// an entry changes its directory's mtime and ctime), so its copy is not listed.
    fn dir(&mut self, src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<()> {
        let dir_unchanged = self.manifest.unchanged(src, meta);
        let mut entries_changed = false;
        let mut seen: HashSet<OsString> = HashSet::new();
        let entries = fs::read_dir(src).map_err(|e| Error::io("failed to list", src, e))?;
        for entry in entries {
            self.cancel.check()?;
            let entry = entry.map_err(|e| Error::io("failed to list", src, e))?;
            let from = entry.path();
            // not followed through symlinks
            let m = entry
                .metadata()
                .map_err(|e| Error::io("failed to read", &from, e))?;
            let ft = m.file_type();
            if self.skip.skips(&from, &m) || !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                continue;
            }
            let name = entry.file_name();
            let to = dst.join(&name);
            if !dir_unchanged {
                seen.insert(name);
            }
            if ft.is_dir() {
                // the pre-copy made a directory there, and nothing since removed it
                if self.manifest.noted_dir(&from) {
                    self.dir(&from, &to, &m)?;
                    continue;
                }
                self.remove_if_present(&to)?;
                self.copy_new_tree(&from, &to)?;
                entries_changed = true;
                continue;
            }
            if self.manifest.unchanged(&from, &m) {
                continue;
            }
            self.remove_if_present(&to)?;
            if ft.is_symlink() {
                copy_symlink(&from, &to)?;
            } else {
                copy_file(&from, &to)?;
                self.stats.bytes += m.len();
                self.cancel.add_done(m.len());
                self.flush.push(to);
            }
            self.stats.copied += 1;
            entries_changed = true;
        }
        // what is gone from the home goes from the copy
        if !dir_unchanged {
            let copied = fs::read_dir(dst).map_err(|e| Error::io("failed to list", dst, e))?;
            for entry in copied {
                let entry = entry.map_err(|e| Error::io("failed to list", dst, e))?;
                if seen.contains(&entry.file_name()) {
                    continue;
                }
                self.remove_if_present(&entry.path())?;
                self.stats.removed += 1;
                entries_changed = true;
            }
        }
        // adding or removing entries changed the copy's times; a chmod or touch changed the home's
        if entries_changed || !dir_unchanged {
            copy_dir_attributes(dst, meta)?;
            self.flush.push(dst.to_owned());
        }
        Ok(())
    }

    /// Makes the copy rooted at `dst_root` hold what the home at `src_root` holds, visiting only
    /// the entries inotify reported (and files with several names), parents before children.
    fn events(&mut self, src_root: &Path, dst_root: &Path, changes: Changes) -> Result<()> {
        let mut paths = changes.entries;
        paths.extend(self.manifest.multi_linked.iter().cloned());
        let mut dirs_changed = changes.dirs;
        // directories copied whole in this pass: what lies below them is done
        let mut copied_whole: Vec<PathBuf> = Vec::new();
        for from in paths {
            self.cancel.check()?;
            if copied_whole.iter().any(|d| from.starts_with(d)) {
                continue;
            }
            let (Ok(rel), Some(parent)) = (from.strip_prefix(src_root), from.parent()) else {
                continue;
            };
            let to = dst_root.join(rel);
            // an ancestor that was replaced or removed was handled with it
            if !to.parent().is_some_and(Path::is_dir) {
                continue;
            }
            let m = match fs::symlink_metadata(&from) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if fs::symlink_metadata(&to).is_ok() {
                        self.remove_if_present(&to)?;
                        self.stats.removed += 1;
                        dirs_changed.insert(parent.to_owned());
                    }
                    continue;
                }
                Err(e) => return Err(Error::io("failed to read", &from, e)),
            };
            let ft = m.file_type();
            if self.skip.skips(&from, &m) {
                continue;
            }
            if ft.is_dir() && self.manifest.same_dir(&from, &m) {
                // watched itself: only its own attributes are this event's concern
                dirs_changed.insert(from);
                continue;
            }
            self.remove_if_present(&to)?;
            dirs_changed.insert(parent.to_owned());
            if ft.is_dir() {
                self.copy_new_tree(&from, &to)?;
                copied_whole.push(from);
            } else if ft.is_symlink() {
                copy_symlink(&from, &to)?;
                self.stats.copied += 1;
            } else if ft.is_file() {
                copy_file(&from, &to)?;
                self.stats.bytes += m.len();
                self.stats.copied += 1;
                self.cancel.add_done(m.len());
                self.flush.push(to);
            }
        }
        // directories whose entries or attributes changed take the home's attributes again
        for dir in dirs_changed {
            let (Ok(rel), Ok(meta)) = (dir.strip_prefix(src_root), fs::symlink_metadata(&dir))
            else {
                continue;
            };
            let to = dst_root.join(rel);
            if meta.is_dir() && to.is_dir() {
                copy_dir_attributes(&to, &meta)?;
                self.flush.push(to);
            }
        }
        Ok(())
    }

    /// Copies a directory the pre-copy did not see, whole, noting what to flush.
    fn copy_new_tree(&mut self, from: &Path, to: &Path) -> Result<()> {
        let mut written = Written(Vec::new());
        copy_tree_visited(from, to, self.skip, self.cancel, false, &mut written)?;
        self.stats.copied += written.0.len() as u64;
        self.flush.extend(written.0);
        Ok(())
    }

    /// Removes whatever is at `path` in the copy (nothing there is fine).
    fn remove_if_present(&self, path: &Path) -> Result<()> {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return Ok(());
        };
        self.remove(path, &meta)
    }

    fn remove(&self, path: &Path, meta: &fs::Metadata) -> Result<()> {
        let removed = if meta.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        removed.map_err(|e| Error::io("failed to remove from the backup", path, e))
    }
}

/// `fsync` of one file or directory.
fn flush(path: &Path) -> Result<()> {
    let file = fs::File::open(path).map_err(|e| Error::io("failed to open", path, e))?;
    file.sync_all()
        .map_err(|e| Error::io("failed to flush the backup to disk", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn plan_for(home: &Path, root: &Path) -> BackupPlan {
        BackupPlan {
            source: home.to_owned(),
            backup_root: root.to_owned(),
            skip: vec![],
            exclude: vec!["*.log".into()],
            keep: 3,
            min_free_after: 0,
        }
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Every entry under `root` with what identifies its content and attributes (symlinks as
    /// their targets), relative to `root`.
    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let m = fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let what = if m.is_dir() {
                    stack.push(path.clone());
                    "dir".to_owned()
                } else if m.file_type().is_symlink() {
                    format!("-> {}", fs::read_link(&path).unwrap().display())
                } else {
                    fs::read_to_string(&path).unwrap()
                };
                let mtime = if m.is_dir() { 0 } else { m.mtime_nsec() };
                out.push(format!("{rel} {what} {:o} {mtime}", m.mode() & 0o7777));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn delta_brings_the_precopy_to_the_home_as_it_was_at_the_stop() {
        delta_scenario(true);
    }

    #[test]
    fn without_inotify_the_delta_walks_the_home_to_the_same_result() {
        delta_scenario(false);
    }

    fn delta_scenario(watched: bool) {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("db/main.db"), "v1");
        write(&home.join("db/same-size.db"), "aaaa");
        write(&home.join("keys/id.key"), "secret");
        write(&home.join("old/a"), "a");
        write(&home.join("becomes-dir"), "file");
        write(&home.join("debug.log"), "excluded");
        symlink("db/main.db", home.join("current")).unwrap();
        let plan = plan_for(&home, &dir.path().join("b"));
        write(&home.join("db/linked.db"), "one");
        fs::hard_link(home.join("db/linked.db"), home.join("other-name.db")).unwrap();
        let mut pc = precopy(&plan, "v2", "T1", &Cancel::default()).unwrap();
        assert!(pc.watch.is_some(), "inotify is available here");
        if !watched {
            pc.watch = None;
        }
        assert!(dir.path().join("b/v2/.T1.partial/db/main.db").exists());
        assert!(!dir.path().join("b/v2/T1").exists());

        // what the daemon does between the pre-copy and its stop
        write(&home.join("db/main.db"), "v2 longer");
        write(&home.join("db/same-size.db"), "bbbb"); // same size, likely the same tick
        fs::set_permissions(home.join("keys/id.key"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_dir_all(home.join("old")).unwrap();
        fs::remove_file(home.join("becomes-dir")).unwrap();
        write(&home.join("becomes-dir/inside"), "now a directory");
        write(&home.join("new/deep/file"), "new");
        fs::remove_file(home.join("current")).unwrap();
        symlink("db/same-size.db", home.join("current")).unwrap();
        write(&home.join("other.log"), "excluded too");
        // changed through its other name: no event for this one
        fs::write(home.join("other-name.db"), "two").unwrap();

        let (done, stats) = pc.finish(&plan, &Cancel::default()).unwrap();
        assert_eq!(done, dir.path().join("b/v2/T1"));
        assert!(!dir.path().join("b/v2/.T1.partial").exists());
        fs::remove_file(home.join("debug.log")).unwrap();
        fs::remove_file(home.join("other.log")).unwrap();
        assert_eq!(listing(&done), listing(&home));
        assert!(stats.copied >= 6, "{stats:?}");
        assert_eq!(stats.removed, 1, "{stats:?}"); // `old`; `becomes-dir` was replaced
    }

    #[test]
    fn unchanged_files_are_not_copied_again() {
        // with inotify, only what an event names is visited, even just-written ("racy") files
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("a"), "a");
        write(&home.join("b"), "b");
        let plan = plan_for(&home, &dir.path().join("b"));
        let pc = precopy(&plan, "v2", "T1", &Cancel::default()).unwrap();
        write(&home.join("b"), "B");
        let (_, stats) = pc.finish(&plan, &Cancel::default()).unwrap();
        assert_eq!((stats.copied, stats.removed, stats.bytes), (1, 0, 1));

        // walking, the notes decide: files changed within the racy margin of their copy are
        // copied again, the others only when their metadata changed
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("a"), "a");
        write(&home.join("b"), "b");
        let plan = plan_for(&home, &dir.path().join("b"));
        let mut pc = precopy(&plan, "v2", "T1", &Cancel::default()).unwrap();
        pc.watch = None;
        let later = SystemTime::now() + RACY_MARGIN + Duration::from_millis(50);
        for p in [home.clone(), home.join("a")] {
            pc.manifest
                .note(&p, &fs::symlink_metadata(&p).unwrap(), later);
        }
        // `b` keeps its racy note; `a` is trusted and unchanged
        let (_, stats) = pc.finish(&plan, &Cancel::default()).unwrap();
        assert_eq!((stats.copied, stats.removed, stats.bytes), (1, 0, 1));
    }

    #[test]
    fn a_cancelled_or_dropped_precopy_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("a"), "a");
        let plan = plan_for(&home, &dir.path().join("b"));
        let pc = precopy(&plan, "v2", "T1", &Cancel::default()).unwrap();
        drop(pc);
        assert!(!dir.path().join("b/v2/.T1.partial").exists());

        let pc = precopy(&plan, "v2", "T2", &Cancel::default()).unwrap();
        write(&home.join("c"), "c");
        let cancel = Cancel::default();
        cancel.cancel();
        assert!(matches!(pc.finish(&plan, &cancel), Err(Error::Cancelled)));
        assert_eq!(fs::read_dir(dir.path().join("b/v2")).unwrap().count(), 0);

        let cancel = Cancel::default();
        cancel.cancel();
        assert!(matches!(
            precopy(&plan, "v2", "T3", &cancel),
            Err(Error::Cancelled)
        ));
        assert_eq!(fs::read_dir(dir.path().join("b/v2")).unwrap().count(), 0);
    }
}
