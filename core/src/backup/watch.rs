//! What changed in the daemon home between the pre-copy and the stop, as inotify saw it: every
//! directory the pre-copy copies is watched *before* it is read, so any later change to one of
//! its entries (content, attributes, creation, deletion, rename) is reported. The delta then
//! visits only those entries instead of the whole tree, so its cost follows the change, not the
//! size of the home.
//!
//! The report is all or nothing: when a watch could not be added (the per-user limit), the
//! kernel's queue overflowed, or the home itself was moved, [`Watch::changes`] says `None` and
//! the delta walks the whole tree instead.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// Events that mean an entry of a watched directory (or the directory itself) changed.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_DONT_FOLLOW
        | AddWatchFlags::IN_ONLYDIR
}

/// The inotify watches of one pre-copy. Dropping it closes them.
#[derive(Debug)]
pub(super) struct Watch {
    fd: Inotify,
    root: PathBuf,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    changed: Changes,
    /// Why the events cannot be trusted to be complete, if they cannot.
    broken: Option<String>,
}

/// What changed, by path in the home.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Entries of watched directories that were written, created, deleted, renamed or had their
    /// attributes changed.
    pub entries: BTreeSet<PathBuf>,
    /// Watched directories whose own attributes changed.
    pub dirs: BTreeSet<PathBuf>,
}

impl Watch {
    /// A watch for the tree at `root`; `None` where inotify is not available.
    pub(super) fn new(root: &Path) -> Option<Watch> {
        match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(fd) => Some(Watch {
                fd,
                root: root.to_owned(),
                dirs: HashMap::new(),
                changed: Changes::default(),
                broken: None,
            }),
            Err(e) => {
                tracing::debug!("no inotify for the live backup ({e}): the delta walks the home");
                None
            }
        }
    }

    /// Watches the directory `dir`; call before reading it.
    pub(super) fn add(&mut self, dir: &Path) {
        if self.broken.is_some() {
            return;
        }
        match self.fd.add_watch(dir, mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_owned());
            }
            Err(e) => {
                self.broken = Some(format!("cannot watch {}: {e}", dir.display()));
            }
        }
        // keeps the kernel's queue short during a long copy
        self.drain();
    }

    /// Reads the events queued so far.
    pub(super) fn drain(&mut self) {
        while self.broken.is_none() {
            let events = match self.fd.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    self.broken = Some(format!("reading inotify events failed: {e}"));
                    return;
                }
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    self.broken = Some("the inotify queue overflowed".into());
                    return;
                }
                let Some(dir) = self.dirs.get(&ev.wd) else {
                    continue;
                };
                let gone = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
                if ev.mask.intersects(gone) {
                    if *dir == self.root {
                        self.broken = Some(format!("{} itself was moved", dir.display()));
                        return;
                    }
                    // its parent reports the entry: nothing more to learn here
                    continue;
                }
                match ev.name {
                    Some(name) => {
                        self.changed.entries.insert(dir.join(name));
                    }
                    None => {
                        self.changed.dirs.insert(dir.clone());
                    }
                }
            }
        }
    }

    /// Everything that changed since each directory was watched, or `None` (with the reason,
    /// logged) when that cannot be known for sure.
    pub(super) fn changes(mut self) -> Option<Changes> {
        self.drain();
        if let Some(why) = &self.broken {
            tracing::info!("{why}: the live backup's delta walks the whole home instead");
            return None;
        }
        Some(self.changed)
    }
}
