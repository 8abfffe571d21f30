//! Backups of the daemon's data before a swap (docs/OPERATOR_GUIDE.md "Backups, rollback,
//! restore").
//!
//! A [`BackupStrategy`] copies a tree into a directory that does not exist yet; [`take_backup`]
//! wraps it with what every strategy shares: the free-space check, the temporary name renamed
//! when complete, one backup per upgrade, and retention.

mod archive;
mod copy;
mod precopy;
mod restore;
mod scope;
mod store;
mod watch;

pub use archive::{ARCHIVE_NAME, ArchiveBackup, COMPRESSED_ARCHIVE_NAME, is_legacy_archive};
pub use copy::{CopyBackup, HardlinkBackup};
pub use precopy::{DeltaStats, Precopy, RACY_MARGIN, precopy};
pub use restore::restore_backup;
pub use scope::{BackupPlan, SkipSet, check_free_space, tree_size};
pub use store::{
    BEFORE_RESTORE, BEFORE_ROLLBACK, BackupEntry, list_backups, prune, retire, take_backup,
    take_safety_copy, timestamp,
};

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::BackupStrategyKind;
use crate::error::{Error, Result};

/// Lets a long backup be abandoned promptly (a stop signal arrived), and counts its progress.
#[derive(Debug, Clone, Default)]
pub struct Cancel(
    Arc<AtomicBool>,
    Arc<std::sync::atomic::AtomicU64>,
    /// The active crash-test fail point, if any (see [`Cancel::pause_point`]).
    Option<Arc<str>>,
);

impl Cancel {
    /// With the active fail point of a crash test (`NYMVISOR_FAILPOINT`).
    pub fn with_failpoint(mut self, active: Option<&str>) -> Cancel {
        self.2 = active.map(Arc::from);
        self
    }

    /// A fail point inside a copy: when it is the active one, the copy waits there until it is
    /// cancelled (once), so a test can send a signal in the middle of it. Nothing otherwise.
    pub fn pause_point(&self, name: &str) {
        if crate::failpoint::is_active(name, self.2.as_deref()) {
            tracing::warn!("fail point `{name}` reached: waiting until cancelled");
            let resume = crate::failpoint::resume_file(self.2.as_deref());
            while !self.is_cancelled() && !resume.as_ref().is_some_and(|f| f.exists()) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    /// Counts bytes copied (for progress displays).
    pub fn add_done(&self, bytes: u64) {
        self.1.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes copied so far.
    pub fn done(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error if cancelled, for `?` inside copy loops.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// One way of making (and restoring) a backup. Implementations block: call them from a blocking
/// thread. They must check `cancel` regularly.
pub trait BackupStrategy: Debug + Send + Sync {
    /// Short name, as in the configuration (`copy`, `none`, …).
    fn name(&self) -> &'static str;

    /// Copies `source` into `dest` (which does not exist), leaving out every path in `skip`.
    fn backup(&self, source: &Path, dest: &Path, skip: &SkipSet, cancel: &Cancel) -> Result<()>;

    /// Copies a backup made by [`BackupStrategy::backup`] into `target` (which does not exist).
    fn restore(&self, backup: &Path, target: &Path, cancel: &Cancel) -> Result<()>;

    /// Whether its backup can be taken as a [`precopy`] while the daemon runs, then brought up
    /// to date after the stop ([`Precopy::finish`]).
    fn supports_precopy(&self) -> bool {
        false
    }
}

/// The strategy for a configured kind (`None` for `none`); `zstd` compresses archives.
pub fn strategy_for(kind: BackupStrategyKind, zstd: bool) -> Option<Arc<dyn BackupStrategy>> {
    match kind {
        BackupStrategyKind::None => None,
        BackupStrategyKind::Copy => Some(Arc::new(CopyBackup)),
        BackupStrategyKind::Hardlink => Some(Arc::new(HardlinkBackup)),
        BackupStrategyKind::Archive => Some(Arc::new(ArchiveBackup {
            zstd_level: zstd.then_some(3),
        })),
    }
}

/// How to restore the backup at `path`: an archive holds `backup.tar`, anything else is a
/// plain tree (made by `copy` or `hardlink`), whatever the strategy configured now.
pub fn restorer_for(path: &Path) -> Arc<dyn BackupStrategy> {
    if is_legacy_archive(path)
        || path.join(ARCHIVE_NAME).is_file()
        || path.join(COMPRESSED_ARCHIVE_NAME).is_file()
    {
        Arc::new(ArchiveBackup::default())
    } else {
        Arc::new(CopyBackup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A plan backing `home` up to `<dir>/b`, keeping 3, nothing skipped but `exclude`.
    fn plan_for(home: &Path, dir: &Path, exclude: Vec<String>) -> BackupPlan {
        BackupPlan {
            source: home.to_owned(),
            backup_root: dir.join("b"),
            skip: vec![],
            exclude,
            keep: 3,
            min_free_after: 0,
        }
    }

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A sparse file keeps its holes and hard-linked names stay one file, in the backup and
    /// after a restore (the pre-copy's first pass uses the same copier).
    #[test]
    fn sparse_files_and_hard_links_are_kept() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("db")).unwrap();
        let sparse = home.join("db/big.sparse");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(1 << 30).unwrap();
        f.write_all_at(&[7u8; 8192], 512 << 20).unwrap();
        f.write_all_at(b"end", (1 << 30) - 3).unwrap();
        drop(f);
        let on_disk = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
        if on_disk(&sparse) > 1 << 20 {
            eprintln!("this file system does not make sparse files; nothing to check");
            return;
        }
        write(&home.join("a/one"), "shared");
        std::fs::create_dir_all(home.join("b")).unwrap();
        std::fs::hard_link(home.join("a/one"), home.join("b/two")).unwrap();
        let plan = plan_for(&home, dir.path(), vec![]);
        assert!(
            tree_size(&home, &SkipSet::default()) < 1 << 20,
            "the free-space check counts what is allocated"
        );
        let made = take_backup(
            &CopyBackup,
            &plan,
            "v2",
            "20260101T000000.000Z",
            &Cancel::default(),
        )
        .unwrap();
        let copy = made.join("db/big.sparse");
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), 1 << 30);
        assert!(
            on_disk(&copy) < 1 << 20,
            "inflated to {} bytes",
            on_disk(&copy)
        );
        let mut buf = [0u8; 8192];
        let c = std::fs::File::open(&copy).unwrap();
        c.read_exact_at(&mut buf, 512 << 20).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
        let mut end = [0u8; 3];
        c.read_exact_at(&mut end, (1 << 30) - 3).unwrap();
        assert_eq!(&end, b"end");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&made.join("a/one")), ino(&made.join("b/two")));
        // restored the same way
        std::fs::remove_dir_all(home.join("a")).unwrap();
        std::fs::remove_dir_all(home.join("b")).unwrap();
        std::fs::remove_file(&sparse).unwrap();
        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &SkipSet::default(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(ino(&home.join("a/one")), ino(&home.join("b/two")));
        assert!(on_disk(&sparse) < 1 << 20);
        assert_eq!(std::fs::metadata(&sparse).unwrap().len(), 1 << 30);
    }

    #[test]
    fn backup_and_restore_round_trip_without_touching_skipped_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db.sqlite"), "v1");
        write(&home.join("keys/id.key"), "secret");
        std::fs::set_permissions(
            home.join("keys/id.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        symlink("../keys/id.key", home.join("data/link")).unwrap();
        // backups nested two levels deep inside the home, reached through a symlinked spelling
        let backups = home.join("data/nymvisor-backups");
        std::fs::create_dir_all(&backups).unwrap();
        symlink(&backups, dir.path().join("alias")).unwrap();
        let plan = BackupPlan {
            source: home.clone(),
            backup_root: dir.path().join("alias"),
            skip: vec![dir.path().join("alias")],
            exclude: vec![],
            keep: 2,
            min_free_after: 0,
        };
        let made = take_backup(
            &CopyBackup,
            &plan,
            "v2",
            "20260101T000000.000Z",
            &Cancel::default(),
        )
        .unwrap();
        assert!(
            !made.join("data/nymvisor-backups").exists(),
            "the backup must not contain itself"
        );
        assert_eq!(
            std::fs::read_link(made.join("data/link")).unwrap(),
            Path::new("../keys/id.key")
        );
        let mode = std::fs::metadata(made.join("keys/id.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);

        // the new version changes things
        write(&home.join("data/db.sqlite"), "v2 migrated");
        write(&home.join("data/new-file"), "x");
        std::fs::remove_dir_all(home.join("keys")).unwrap();

        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(home.join("data/db.sqlite")).unwrap(),
            "v1"
        );
        assert!(!home.join("data/new-file").exists());
        assert_eq!(
            std::fs::read_to_string(home.join("keys/id.key")).unwrap(),
            "secret"
        );
        assert!(
            made.is_dir(),
            "restoring must not delete the backups kept inside the home"
        );
        assert!(!home.join(".nymvisor-restore.partial").exists());
    }

    #[test]
    fn a_retry_replaces_the_earlier_backup_and_partials_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("f"), "1");
        let plan = plan_for(&home, dir.path(), vec![]);
        std::fs::create_dir_all(plan.backup_root.join("up/.old.partial")).unwrap();
        take_backup(&CopyBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        let made = take_backup(&CopyBackup, &plan, "up", "2", &Cancel::default()).unwrap();
        retire(&plan, &made);
        let names: Vec<_> = std::fs::read_dir(plan.backup_root.join("up"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2")]);
        // retention across upgrades
        for (i, up) in ["a", "b", "c", "d"].iter().enumerate() {
            let made =
                take_backup(&CopyBackup, &plan, up, &format!("3{i}"), &Cancel::default()).unwrap();
            retire(&plan, &made);
        }
        assert!(!plan.backup_root.join("up").exists() && !plan.backup_root.join("a").exists());
        assert!(plan.backup_root.join("d/33").is_dir());
    }

    #[test]
    fn cancelled_backup_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("f"), "1");
        let plan = plan_for(&home, dir.path(), vec![]);
        let cancel = Cancel::default();
        cancel.cancel();
        assert!(take_backup(&CopyBackup, &plan, "up", "1", &cancel).is_err());
        assert_eq!(
            std::fs::read_dir(plan.backup_root.join("up"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn exclusions_are_left_out_and_left_alone_by_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        write(&home.join("data/debug.log"), "old log");
        write(&home.join("cache/blob"), "cache");
        let plan = plan_for(&home, dir.path(), vec!["*.log".into(), "cache".into()]);
        let made = take_backup(&CopyBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        assert!(made.join("data/db").is_file());
        assert!(!made.join("data/debug.log").exists() && !made.join("cache").exists());
        write(&home.join("data/db"), "v2");
        write(&home.join("data/debug.log"), "new log");
        restore_backup(
            &CopyBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        assert_eq!(
            std::fs::read_to_string(home.join("data/debug.log")).unwrap(),
            "new log",
            "excluded files stay"
        );
        assert_eq!(
            std::fs::read_to_string(home.join("cache/blob")).unwrap(),
            "cache"
        );
        let bad = BackupPlan {
            exclude: vec!["[".into()],
            ..plan
        };
        assert!(bad.skip_set().is_err());
    }

    #[test]
    fn hardlink_backups_share_inodes_and_restore_by_copy() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        symlink("data/db", home.join("link")).unwrap();
        let plan = plan_for(&home, dir.path(), vec![]);
        let made = take_backup(&HardlinkBackup, &plan, "up", "1", &Cancel::default()).unwrap();
        let (a, b) = (
            std::fs::metadata(home.join("data/db")).unwrap(),
            std::fs::metadata(made.join("data/db")).unwrap(),
        );
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "a hard link, not a copy"
        );
        assert_eq!(
            std::fs::read_link(made.join("link")).unwrap(),
            Path::new("data/db")
        );
        // the daemon replaces the file (write + rename): the backup keeps the old content
        write(&home.join("data/db.new"), "v2");
        std::fs::rename(home.join("data/db.new"), home.join("data/db")).unwrap();
        assert_eq!(std::fs::read_to_string(made.join("data/db")).unwrap(), "v1");
        restore_backup(
            &HardlinkBackup,
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        let restored = std::fs::metadata(home.join("data/db")).unwrap();
        assert_ne!(
            restored.ino(),
            b.ino(),
            "restored by copy, so the backup stays independent"
        );
    }

    #[test]
    fn archive_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), "v1");
        write(&home.join("skip.log"), "log");
        std::fs::set_permissions(home.join("data/db"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        symlink("data/db", home.join("link")).unwrap();
        let plan = plan_for(&home, dir.path(), vec!["*.log".into()]);
        let made = take_backup(
            &ArchiveBackup::default(),
            &plan,
            "up",
            "1",
            &Cancel::default(),
        )
        .unwrap();
        assert!(made.join(ARCHIVE_NAME).is_file());
        write(&home.join("data/db"), "v2");
        std::fs::remove_file(home.join("link")).unwrap();
        restore_backup(
            &ArchiveBackup::default(),
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(home.join("data/db")).unwrap(), "v1");
        let mode = std::fs::metadata(home.join("data/db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_link(home.join("link")).unwrap(),
            Path::new("data/db")
        );
        assert_eq!(
            std::fs::read_to_string(home.join("skip.log")).unwrap(),
            "log"
        );
    }

    #[test]
    fn compressed_archive_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        write(&home.join("data/db"), &"compressible ".repeat(10_000));
        let plan = plan_for(&home, dir.path(), vec![]);
        let zstd = ArchiveBackup {
            zstd_level: Some(3),
        };
        let made = take_backup(&zstd, &plan, "up", "1", &Cancel::default()).unwrap();
        let archive = made.join(COMPRESSED_ARCHIVE_NAME);
        assert!(
            std::fs::metadata(&archive).unwrap().len() < 10_000,
            "compressed"
        );
        write(&home.join("data/db"), "changed");
        // restored by the method the backup itself calls for
        restore_backup(
            restorer_for(&made).as_ref(),
            &made,
            &home,
            &plan.skip_set().unwrap(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(home.join("data/db")).unwrap(),
            "compressible ".repeat(10_000)
        );
    }
}
