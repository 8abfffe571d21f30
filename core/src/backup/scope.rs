//! What a backup covers and whether it fits: the [`BackupPlan`] (source, destination,
//! retention), the [`SkipSet`] (nymvisor's own paths, the operator's exclusions) and the
//! free-space check.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where and what to back up.
#[derive(Debug, Clone)]
pub struct BackupPlan {
    /// The daemon's home.
    pub source: PathBuf,
    /// `<backup dir>`; backups go to `<backup dir>/<upgrade>/<timestamp>/`.
    pub backup_root: PathBuf,
    /// Paths never copied: nymvisor's own directory, the backup directory, the upgrade data
    /// directory when they lie inside the source.
    pub skip: Vec<PathBuf>,
    /// Operator's exclusion patterns (`backup_exclude`), relative to `source`.
    pub exclude: Vec<String>,
    /// How many backups to keep (at least 1).
    pub keep: usize,
    /// Free space that must remain after the backup, in bytes.
    pub min_free_after: u64,
}

impl BackupPlan {
    /// What this plan leaves out, as a [`SkipSet`].
    pub fn skip_set(&self) -> Result<SkipSet> {
        SkipSet::new(&self.skip).with_patterns(&self.source, &self.exclude)
    }
}

/// Checks there is room for a copy of `source` in `root`; returns the bytes needed.
pub fn check_free_space(plan: &BackupPlan) -> Result<u64> {
    let needed = tree_size(&plan.source, &plan.skip_set()?);
    let probe = nearest_existing(&plan.backup_root);
    let stat = nix::sys::statvfs::statvfs(&probe).map_err(|e| {
        Error::io(
            "failed to read free space of",
            &probe,
            std::io::Error::from_raw_os_error(e as i32),
        )
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free < needed.saturating_add(plan.min_free_after) {
        return Err(Error::BackupSpace {
            dir: plan.backup_root.clone(),
            needed,
            free,
        });
    }
    Ok(needed)
}

/// What backups and restores leave out: nymvisor's own paths, recognised by device and inode so
/// that another spelling of the same directory (a symlink, `..`) cannot slip through, and the
/// operator's exclusion patterns (`backup_exclude`), matched against the path relative to the
/// daemon home (`*` also matches `/`, so `*.log` matches logs at any depth).
#[derive(Debug, Clone, Default)]
pub struct SkipSet {
    pub(super) ids: HashSet<(u64, u64)>,
    root: Option<PathBuf>,
    patterns: Vec<glob::Pattern>,
}

impl SkipSet {
    pub fn new(paths: &[PathBuf]) -> SkipSet {
        SkipSet {
            ids: paths
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
            root: None,
            patterns: Vec::new(),
        }
    }

    /// Adds exclusion patterns, relative to `root`. A pattern that does not parse is an error
    /// that quotes it.
    pub fn with_patterns(mut self, root: &Path, patterns: &[String]) -> Result<SkipSet> {
        self.root = Some(root.to_owned());
        for p in patterns {
            self.patterns
                .push(glob::Pattern::new(p).map_err(|e| Error::ConfigValue {
                    key: "daemon.backup_exclude".into(),
                    message: format!("{p:?} is not a glob pattern: {e}"),
                })?);
        }
        Ok(self)
    }

    /// Whether the entry at `path` (with `meta`, not followed through symlinks) is left out.
    pub fn skips(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        if self.ids.contains(&(meta.dev(), meta.ino())) {
            return true;
        }
        match (&self.root, self.patterns.is_empty()) {
            (Some(root), false) => path
                .strip_prefix(root)
                .is_ok_and(|rel| self.patterns.iter().any(|p| p.matches_path(rel))),
            _ => false,
        }
    }

    /// The same rules for a tree at another place (the staging copy of a restore).
    pub(super) fn rebased(&self, root: &Path) -> SkipSet {
        SkipSet {
            root: Some(root.to_owned()),
            ..self.clone()
        }
    }
}

fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

/// Bytes of regular files under `dir`, symlinks not followed, what `skip` leaves out left out.
pub fn tree_size(dir: &Path, skip: &SkipSet) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(m) if skip.skips(&path, &m) => {}
                Ok(m) if m.is_dir() => stack.push(path),
                // what it takes on disk: a sparse file's holes are copied as holes
                Ok(m) if m.is_file() => {
                    total += m
                        .len()
                        .min(std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                }
                _ => {}
            }
        }
    }
    total
}
