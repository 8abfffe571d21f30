//! Noticing changes to `upgrade-plan.json` (and `upgrade-refusals.json`): inotify (via `notify`) on the upgrade data
//! directory, so files replaced by rename are seen, plus a once-a-second `stat` where inotify
//! cannot be trusted (it could not be set up, or the directory is on a network or FUSE file
//! system, whose changes made elsewhere raise no event).
//!
//! Only events that change the plan count (create, write, close after writing, rename, delete,
//! attributes): opening and reading it raise events too, and nymvisor's own reads must never
//! wake it up again (that loop once cost a whole CPU core while idle).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::model::UpgradePlan;

/// Identity and version of the file as seen by `stat`.
type Stamp = (u64, i64, i64, u64);

/// Whether an event can mean that the file changed. Reads (open, access, close without
/// writing) cannot.
fn changes_file(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        // coalesced or unknown: better one read too many than a missed change
        EventKind::Any => true,
    }
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

/// Watches files of one directory (the plan, the refusals) for changes.
#[derive(Debug)]
pub struct FileWatch {
    rx: mpsc::UnboundedReceiver<notify::EventKind>,
    events_alive: bool,
    /// `stat` the files once a second as well (inotify cannot be trusted here).
    poll: bool,
    _watcher: Option<notify::RecommendedWatcher>,
    files: Vec<(PathBuf, Option<Stamp>)>,
    forced: bool,
}

impl FileWatch {
    /// Watches `files`, which must all be in `dir`.
    pub fn new(dir: &Path, files: &[PathBuf]) -> FileWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let names: Vec<_> = files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_owned()))
            .collect();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res
                && changes_file(&event.kind)
                && event
                    .paths
                    .iter()
                    .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
            {
                let _ = tx.send(event.kind);
            }
        })
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); checking it every second instead",
                    dir.display()
                );
                None
            }
        };
        let trusted = inotify_trusted(dir);
        if watcher.is_some() && !trusted {
            tracing::info!(
                "{} is not on a local file system: checking the upgrade plan every second as well",
                dir.display()
            );
        }
        FileWatch {
            rx,
            poll: watcher.is_none() || !trusted,
            events_alive: watcher.is_some(),
            _watcher: watcher,
            files: files.iter().map(|f| (f.clone(), stamp(f))).collect(),
            forced: false,
        }
    }

    /// Resolves when a file may have changed: an event, or (where events cannot be trusted)
    /// the one-second check is due. Never resolves for reads. Cancel-safe.
    pub async fn tick(&mut self) {
        if self.events_alive {
            tokio::select! {
                got = self.rx.recv() => match got {
                    Some(_) => {
                        while self.rx.try_recv().is_ok() {}
                        self.forced = true;
                    }
                    None => {
                        tracing::warn!("the upgrade plan watcher stopped; checking the plan every second instead");
                        self.events_alive = false;
                        self.poll = true;
                    }
                },
                () = sleep_if(self.poll) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
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
    use notify::EventKind;
    use notify::event::*;

    #[test]
    fn reads_are_not_changes() {
        for read in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Any),
            EventKind::Other,
        ] {
            assert!(!changes_file(&read), "{read:?}");
        }
        for change in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_file(&change), "{change:?}");
        }
    }

    #[tokio::test]
    async fn own_reads_do_not_wake_the_watch_but_a_write_does() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("upgrade-plan.json");
        std::fs::write(&plan, b"{}").unwrap();
        let mut watch = FileWatch::new(dir.path(), std::slice::from_ref(&plan));
        for _ in 0..50 {
            let _ = crate::fsutil::read_capped(&plan, 1024).unwrap();
        }
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        std::fs::write(&plan, b"{\"x\":1}").unwrap();
        // inotify keeps the order: had the reads raised anything, it would come first
        let first = tokio::time::timeout(Duration::from_secs(20), watch.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(changes_file(&first), "woken by {first:?}");
        assert!(!matches!(
            first,
            notify::EventKind::Access(AccessKind::Open(_))
        ));
    }
}
