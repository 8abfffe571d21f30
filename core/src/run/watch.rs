//! Noticing changes to `upgrade-plan.json` (and the refusals and hold files): inotify on the
//! upgrade data directory, read on the runtime's own thread (no watcher thread), so files replaced
//! by rename are seen, plus a once-a-second `stat` where inotify cannot be trusted (it could not
//! be set up, or the directory is on a file system not known to report every change, such as a
//! network or FUSE one, whose changes made elsewhere raise no event).
//!
//! Only changes are asked of the kernel (create, write, close after writing, rename, delete,
//! attributes): opening and reading files raise no event at all, so nymvisor's own reads, and
//! `nymvisor status` run by a probe every few seconds, never wake it up (a loop of reads and
//! read events once cost a whole CPU core while idle).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::model::UpgradePlan;

/// Identity and version of the file as seen by `stat`.
type Stamp = (u64, i64, i64, u64);

/// The events that can mean a file of the directory changed. Reads (open, access, close without
/// writing) cannot, and are not asked for.
fn change_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Whether inotify reports every change on the file system holding `dir` (local file systems
/// do; on NFS, SMB, FUSE and the like a change made by another host raises nothing).
fn inotify_trusted(dir: &Path) -> bool {
    use nix::sys::statfs::*;
    const ZFS: i64 = 0x2fc1_2fc1;
    let Ok(fs) = statfs(dir) else {
        return false;
    };
    let t = fs.filesystem_type();
    // the magic's C type differs between architectures
    #[allow(clippy::unnecessary_cast)]
    let zfs = t.0 as i64 == ZFS;
    [
        EXT4_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        TMPFS_MAGIC,
        F2FS_SUPER_MAGIC,
        OVERLAYFS_SUPER_MAGIC,
        REISERFS_SUPER_MAGIC,
    ]
    .contains(&t)
        || zfs
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// The inotify descriptor, as the runtime's reactor needs it.
#[derive(Debug)]
struct Events(Inotify);

impl AsRawFd for Events {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Watches files of one directory (the plan, the refusals) for changes.
#[derive(Debug)]
pub struct FileWatch {
    /// The inotify instance, while its events can be read.
    events: Option<AsyncFd<Events>>,
    /// `stat` the files once a second as well (inotify cannot be trusted here).
    poll: bool,
    dir: PathBuf,
    files: Vec<(PathBuf, Option<Stamp>)>,
    forced: bool,
}

impl FileWatch {
    /// Watches `files`, which must all be in `dir`. Must be called within the runtime.
    pub fn new(dir: &Path, files: &[PathBuf]) -> FileWatch {
        let events = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .and_then(|fd| fd.add_watch(dir, change_mask()).map(|_| fd))
            .map_err(std::io::Error::from)
            .and_then(|fd| {
                // SAFETY: `Events` owns the inotify descriptor, never replaces it and closes
                // it only when dropped, which the AsyncFd owning it does last.
                unsafe { AsyncFd::register_with_interest(Events(fd), Interest::READABLE) }
                    .map_err(std::io::Error::from)
            });
        let events = match events {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); checking it every second instead",
                    dir.display()
                );
                None
            }
        };
        let trusted = inotify_trusted(dir);
        if events.is_some() && !trusted {
            tracing::info!(
                "{} is not on a local file system: checking the upgrade plan every second as well",
                dir.display()
            );
        }
        FileWatch {
            poll: events.is_none() || !trusted,
            events,
            dir: dir.to_owned(),
            files: files.iter().map(|f| (f.clone(), stamp(f))).collect(),
            forced: false,
        }
    }

    /// Resolves when a file may have changed: an event for one of the files (or one that may
    /// concern them: a queue overflow, the directory itself moved), or (where events cannot be
    /// trusted) the one-second check is due. Cancel-safe.
    pub async fn tick(&mut self) {
        loop {
            let Some(fd) = &self.events else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            };
            let mut ready = tokio::select! {
                ready = fd.readable() => match ready {
                    Ok(guard) => guard,
                    Err(e) => {
                        self.watcher_stopped(&e.to_string());
                        return;
                    }
                },
                () = sleep_if(self.poll) => return,
            };
            match ready.get_inner().0.read_events() {
                Ok(events) => {
                    if events.iter().any(|e| self.concerns_us(e)) {
                        self.forced = true;
                        return;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => {
                    self.watcher_stopped(&e.to_string());
                    return;
                }
            }
        }
    }

    fn concerns_us(&self, event: &nix::sys::inotify::InotifyEvent) -> bool {
        let whole_dir = AddWatchFlags::IN_Q_OVERFLOW
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_IGNORED;
        event.mask.intersects(whole_dir)
            || event.name.as_ref().is_some_and(|name| {
                self.files
                    .iter()
                    .any(|(f, _)| f.file_name() == Some(name.as_os_str()))
            })
    }

    fn watcher_stopped(&mut self, why: &str) {
        tracing::warn!(
            "the upgrade plan watcher on {} stopped ({why}); checking the plan every second instead",
            self.dir.display()
        );
        self.events = None;
        self.poll = true;
        self.forced = true;
    }

    /// The watched files that changed since the last call (all of them after an event: the
    /// event may have come before the `stat` could tell).
    pub fn changed(&mut self) -> Vec<PathBuf> {
        let forced = std::mem::take(&mut self.forced);
        let mut out = Vec::new();
        for (path, last) in &mut self.files {
            let now = stamp(path);
            if forced || now != *last {
                *last = now;
                out.push(path.clone());
            }
        }
        out
    }
}

/// The plan file and what is wrong with it: the last valid plan stays in force while the file
/// is broken, and the problem is logged once per change.
#[derive(Debug, Default)]
pub struct PlanProblem {
    last_error: Option<String>,
}

impl PlanProblem {
    /// Reads the plan at `path`; `None` if it is invalid (the problem is kept and logged once).
    pub fn reload(&mut self, path: &Path) -> Option<UpgradePlan> {
        match UpgradePlan::load(path) {
            Ok(plan) => {
                if self.last_error.take().is_some() {
                    tracing::info!("{} is valid again", path.display());
                }
                Some(plan)
            }
            Err(e) => {
                let msg = e.to_string();
                if self.last_error.as_deref() != Some(&msg) {
                    tracing::error!("ignoring the changed upgrade plan until it is fixed: {msg}");
                    self.last_error = Some(msg);
                }
                None
            }
        }
    }

    /// Records that the plan file is broken (found outside [`PlanProblem::reload`]).
    pub fn set(&mut self, message: String) {
        self.last_error = Some(message);
    }

    /// The current problem with the plan file, if any.
    pub fn get(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

async fn sleep_if(poll: bool) {
    if poll {
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn own_reads_do_not_wake_the_watch_but_a_write_does() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("upgrade-plan.json");
        std::fs::write(&plan, b"{}").unwrap();
        let mut watch = FileWatch::new(dir.path(), std::slice::from_ref(&plan));
        assert!(watch.events.is_some());
        for _ in 0..50 {
            let _ = crate::fsutil::read_capped(&plan, 1024).unwrap();
        }
        // another file of the directory changing is not ours either
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), watch.tick()).await;
        assert!(quiet.is_err(), "woken by reads or by another file");
        assert!(watch.changed().is_empty());
        std::fs::write(&plan, b"{\"x\":1}").unwrap();
        tokio::time::timeout(Duration::from_secs(20), watch.tick())
            .await
            .unwrap();
        assert_eq!(watch.changed(), vec![plan.clone()]);
    }

    #[tokio::test]
    async fn a_plan_replaced_by_rename_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("upgrade-plan.json");
        std::fs::write(&plan, b"{}").unwrap();
        let mut watch = FileWatch::new(dir.path(), std::slice::from_ref(&plan));
        let tmp = dir.path().join(".upgrade-plan.json.tmp");
        std::fs::write(&tmp, b"{\"y\":2}").unwrap();
        std::fs::rename(&tmp, &plan).unwrap();
        tokio::time::timeout(Duration::from_secs(20), watch.tick())
            .await
            .unwrap();
        assert_eq!(watch.changed(), vec![plan.clone()]);
    }
}
