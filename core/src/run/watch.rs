//! Noticing changes to `upgrade-plan.json`: inotify (via `notify`) on the upgrade data
//! directory, so files replaced by rename are seen, plus a once-a-second `stat` as a fallback
//! for file systems without inotify events.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::model::UpgradePlan;

/// Identity and version of the file as seen by `stat`.
type Stamp = (u64, i64, i64, u64);

#[derive(Debug)]
pub struct PlanWatch {
    rx: mpsc::UnboundedReceiver<()>,
    events_alive: bool,
    _watcher: Option<notify::RecommendedWatcher>,
    path: PathBuf,
    stamp: Option<Stamp>,
    forced: bool,
    last_error: Option<String>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

impl PlanWatch {
    pub fn new(data_root: &Path, plan: &Path) -> PlanWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = plan.file_name().map(|n| n.to_owned());
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res
                && event.paths.iter().any(|p| p.file_name() == name.as_deref())
            {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(data_root, RecursiveMode::NonRecursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); checking it every second instead",
                    data_root.display()
                );
                None
            }
        };
        PlanWatch {
            rx,
            events_alive: watcher.is_some(),
            _watcher: watcher,
            path: plan.to_owned(),
            stamp: stamp(plan),
            forced: false,
            last_error: None,
        }
    }

    /// Resolves when the plan may have changed (an event, or the one-second check is due).
    /// Cancel-safe.
    pub async fn tick(&mut self) {
        if self.events_alive {
            tokio::select! {
                got = self.rx.recv() => match got {
                    Some(()) => {
                        while self.rx.try_recv().is_ok() {}
                        self.forced = true;
                    }
                    None => self.events_alive = false,
                },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Re-reads the plan if it changed since the last read. `None`: unchanged, or invalid (the
    /// error is logged once per change; the last valid plan stays in force).
    pub fn reload(&mut self) -> Option<UpgradePlan> {
        let now = stamp(&self.path);
        if !self.forced && now == self.stamp {
            return None;
        }
        self.forced = false;
        self.stamp = now;
        match UpgradePlan::load(&self.path) {
            Ok(plan) => {
                if self.last_error.take().is_some() {
                    tracing::info!("{} is valid again", self.path.display());
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

    /// Forget the file's stamp after nymvisor wrote the plan itself.
    pub fn mark_written(&mut self) -> Result<()> {
        self.stamp = stamp(&self.path);
        Ok(())
    }

    /// Records that the plan file is broken (found outside [`PlanWatch::reload`]).
    pub fn set_error(&mut self, message: String) {
        self.last_error = Some(message);
    }

    /// The current problem with the plan file, if any.
    pub fn error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}
