//! The upgrade transaction: prepare (daemon untouched) → stop → backup → swap → restart →
//! record → confirm, with rollback, and recovery of an interrupted upgrade.
//!
//! The single commit point is the rename of the `current` symlink. Before it, an interrupted
//! upgrade is abandoned (and simply applied again later); after it, it is finished.

use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::Supervisor;
use super::journal::{Journal, Stage};
use crate::backup::{self, BackupPlan, Cancel};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::fsutil::{self, FileLock};
use crate::model::{
    self, CurrentVersionInfo, HistoryEntry, Outcome, UpgradeHistory, UpgradeInfo, UpgradePlan,
};

/// What the loop should do after an apply attempt.
#[derive(Debug)]
pub enum Applied {
    /// The upgrade is in place; the new daemon runs (or `None` if a restart is not wanted).
    Done {
        daemon: Option<Daemon>,
        restart_wanted: bool,
    },
    /// A stop signal arrived mid-way: nothing was swapped; nymvisor must exit.
    Interrupted(Signal),
    /// It failed before the swap; the old binary is still `current` and the old daemon must be
    /// started again (if it had been stopped).
    Aborted {
        daemon: Option<Daemon>,
        reason: String,
    },
}

impl Supervisor {
    pub(super) fn backup_enabled(&self) -> bool {
        !self.inst.config.daemon.unsafe_skip_backup && self.backup_strategy.is_some()
    }

    pub(super) fn backup_plan(&self) -> BackupPlan {
        self.inst.backup_plan(self.backup_min_free)
    }

    /// Applies a prepared upgrade. `daemon` is the running old daemon, if any.
    pub(super) async fn apply(
        &mut self,
        info: UpgradeInfo,
        daemon: Option<Daemon>,
    ) -> Result<Applied> {
        let data_root = self.inst.data.root().to_owned();
        let current_link = self.inst.data.current_link();
        let previous_link = match std::fs::read_link(&current_link) {
            Ok(link) => link,
            Err(e) => {
                let reason = Error::io("failed to read the symlink", &current_link, e).to_string();
                return Ok(Applied::Aborted { daemon, reason });
            }
        };
        let mut journal = Journal {
            stage: Stage::Stopping,
            upgrade: info.clone(),
            previous: self.plan.current.clone(),
            previous_link,
            backup: None,
            started_at: model::now(),
        };
        let name = info.name.clone();
        tracing::info!(upgrade = %name, "upgrading {} {} → {}", self.inst.config.daemon.name, self.plan.current.version, info.version);
        let total = Instant::now();
        self.notifier.status(&format!(
            "upgrading to {} {}",
            self.inst.config.daemon.name, info.version
        ));
        // nothing irreversible has happened: the daemon keeps running if the intent cannot be recorded
        if let Err(e) = journal.save_at(&data_root, Stage::Stopping) {
            return Ok(Applied::Aborted {
                daemon,
                reason: format!("cannot record the upgrade's intent: {e}"),
            });
        }
        self.failpoint("before-stop");

        // stop
        let downtime = Instant::now();
        if let Some(d) = daemon {
            let t = Instant::now();
            let stopped = d
                .stop(
                    Signal::SIGINT,
                    self.inst.config.daemon.shutdown_grace_period,
                    &mut self.children,
                    &mut self.signals,
                    false,
                )
                .await;
            tracing::info!(upgrade = %name, stage = "stop", elapsed_ms = ms(t), "stopped the old daemon ({})", stopped.exit);
            if let Some(sig) = stopped.stop_signal {
                // the operator wants the node down: nothing is started, the upgrade waits
                self.daemon_stopped();
                let _ = Journal::clear(&data_root);
                tracing::warn!(upgrade = %name, "{sig} received while the old daemon was stopping: upgrade abandoned before the swap, nymvisor exits");
                return Ok(Applied::Interrupted(sig));
            }
        }
        self.daemon_stopped();
        self.failpoint("after-stop");
        // From here to the swap, a failure abandons the upgrade and the old daemon is started again.
        let abort = |reason: String| {
            let _ = Journal::clear(&data_root);
            Ok(Applied::Aborted {
                daemon: None,
                reason,
            })
        };

        // backup
        if self.backup_enabled() {
            if let Err(e) = journal.save_at(&data_root, Stage::BackingUp) {
                return abort(format!("cannot record the upgrade's progress: {e}"));
            }
            let t = Instant::now();
            match self.run_backup(&name).await {
                Ok(BackupResult::Made(path)) => {
                    tracing::info!(upgrade = %name, stage = "backup", elapsed_ms = ms(t), "backed up the daemon's data to {}", path.display());
                    journal.backup = Some(path);
                }
                Ok(BackupResult::Interrupted(sig)) => {
                    let _ = Journal::clear(&data_root);
                    return Ok(Applied::Interrupted(sig));
                }
                Err(e) => return abort(format!("backup failed: {e}")),
            }
            self.failpoint("after-backup");
        } else {
            tracing::info!(upgrade = %name, stage = "backup", "backups are disabled; skipping");
        }

        // swap: the commit point; a stop asked for until now abandons the upgrade
        if let Some(sig) = self.signals.try_recv_stop().await {
            let _ = Journal::clear(&data_root);
            tracing::warn!(upgrade = %name, "{sig} received before the swap: upgrade abandoned, nymvisor exits");
            return Ok(Applied::Interrupted(sig));
        }
        if let Err(e) = journal.save_at(&data_root, Stage::Swapping) {
            return abort(format!("cannot record the upgrade's progress: {e}"));
        }
        self.failpoint("before-swap");
        let t = Instant::now();
        if let Err(e) = fsutil::swap_symlink(&current_link, &self.inst.data.link_target(&name)) {
            return abort(e.to_string());
        }
        tracing::info!(upgrade = %name, stage = "swap", elapsed_ms = ms(t), "current -> {}", self.inst.data.link_target(&name).display());
        self.failpoint("after-swap");

        // restart; a start failure counts as a startup failure of the new binary (and may roll back)
        let restart_wanted = !info.manual && self.inst.config.daemon.restart_after_upgrade;
        // a stop asked for after the commit point: the upgrade is finished, nothing is started;
        // the next `run` watches the new version's start as its confirmation
        let stop_now = self.signals.try_recv_stop().await;
        if let Some(sig) = stop_now {
            tracing::warn!(upgrade = %name, "{sig} received after the swap: the upgrade is recorded but the new daemon is not started; nymvisor exits");
        }
        let daemon = if restart_wanted && stop_now.is_none() {
            let t = Instant::now();
            match self.start_daemon() {
                Ok(d) => {
                    tracing::info!(upgrade = %name, stage = "restart", elapsed_ms = ms(t), downtime_ms = ms(downtime), "started {} {} (pid {})", self.inst.config.daemon.name, info.version, d.pid());
                    Some(d)
                }
                Err(e) => {
                    tracing::error!(upgrade = %name, stage = "restart", "{e}");
                    self.record_error(e.to_string());
                    None
                }
            }
        } else {
            None
        };

        // records: the upgrade is in place whatever happens here, so failures are reported, not fatal
        let t = Instant::now();
        match self.record_upgrade(&journal) {
            Ok(()) => {
                tracing::info!(upgrade = %name, stage = "record", elapsed_ms = ms(t), "recorded the upgrade in the plan, history and current-version-info.json")
            }
            Err(e) => {
                tracing::error!(upgrade = %name, stage = "record", "the upgrade is in place but could not be fully recorded: {e}");
                self.record_error(format!("upgrade `{name}` could not be fully recorded: {e}"));
            }
        }
        self.failpoint("after-record");
        if let Some(d) = &daemon {
            self.notifier.ready(&format!(
                "running {} {} (pid {})",
                self.inst.config.daemon.name,
                info.version,
                d.pid()
            ));
        }
        let journal_result = if let Some(sig) = stop_now {
            let r = journal.save_at(&data_root, Stage::Confirming);
            if let Err(e) = r {
                tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
            }
            return Ok(Applied::Interrupted(sig));
        } else if restart_wanted {
            let r = journal.save_at(&data_root, Stage::Confirming);
            self.confirming = Some(journal);
            r
        } else {
            if info.manual {
                tracing::info!(upgrade = %name, "manual upgrade: the binary is swapped; start the daemon yourself (e.g. restart nymvisor)");
            } else {
                tracing::info!(upgrade = %name, "restart_after_upgrade is off: nymvisor stops here");
            }
            Journal::clear(&data_root)
        };
        if let Err(e) = journal_result {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        tracing::info!(upgrade = %name, elapsed_ms = ms(total), "upgrade applied");
        self.quiet_later();
        Ok(Applied::Done {
            daemon,
            restart_wanted,
        })
    }

    async fn run_backup(&mut self, name: &str) -> Result<BackupResult> {
        let plan = self.backup_plan();
        let Some(strategy) = self.backup_strategy.clone() else {
            return Err(Error::Inconsistent("no backup strategy".into()));
        };
        let cancel = Cancel::default();
        let (name_owned, cancel2) = (name.to_owned(), cancel.clone());
        let stamp = backup_timestamp();
        // a display only when one is wanted (an interactive terminal); its total costs a walk
        let mut bar = self.preparer.progress.as_ref().map(|p| {
            p.begin(
                "backing up",
                Some(
                    plan.skip_set()
                        .map(|s| backup::tree_size(&plan.source, &s))
                        .unwrap_or(0),
                ),
            )
        });
        let mut task = tokio::task::spawn_blocking(move || {
            backup::take_backup(strategy.as_ref(), &plan, &name_owned, &stamp, &cancel2)
        });
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let result = loop {
            tokio::select! {
                r = &mut task => break r,
                sig = self.signals.recv_stop() => {
                    tracing::warn!("{sig} received during the backup: abandoning it");
                    cancel.cancel();
                    let _ = task.await;
                    return Ok(BackupResult::Interrupted(sig));
                }
                _ = tick.tick(), if bar.is_some() => {
                    if let Some(bar) = bar.as_mut() {
                        bar.set(cancel.done());
                    }
                }
            }
        };
        match result {
            Ok(Ok(path)) => Ok(BackupResult::Made(path)),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Inconsistent(format!("the backup task failed: {e}"))),
        }
    }

    /// Plan (current = upgrade, dropped from the queue), history and current version info.
    /// Idempotent, so recovery can repeat it.
    pub(super) fn record_upgrade(&mut self, journal: &Journal) -> Result<()> {
        let info = &journal.upgrade;
        CurrentVersionInfo::from_upgrade(info).save(&self.inst.daemon_home)?;
        self.update_plan(|plan| {
            plan.remove(&info.name);
            plan.current = info.clone();
        })?;
        let path = self.inst.data.history();
        let mut history = UpgradeHistory::load(&path)?;
        let already = history
            .history
            .iter()
            .any(|h| h.info.name == info.name && h.performed_at == journal.started_at);
        if !already {
            history.history.push(HistoryEntry {
                performed_at: journal.started_at,
                info: info.clone(),
                previous_version: Some(journal.previous.version.clone()),
                outcome: Some(Outcome::Success),
                backup_path: journal.backup.clone(),
                error: None,
            });
            history.save(&path)?;
        }
        Ok(())
    }

    /// Read-modify-write of the plan under the plan lock (shared with `add-upgrade`).
    pub(super) fn update_plan(&mut self, change: impl FnOnce(&mut UpgradePlan)) -> Result<()> {
        let _lock = FileLock::acquire_blocking(&self.inst.data.plan_lock())?;
        let path = self.inst.data.plan();
        // the file may have gained entries since we last read it; a file that does not parse is
        // the operator's to fix and is not overwritten (the change is kept in memory)
        let mut plan = match UpgradePlan::load(&path) {
            Ok(plan) => plan,
            Err(e) => {
                change(&mut self.plan);
                return Err(e);
            }
        };
        change(&mut plan);
        plan.save(&path)?;
        self.watch.mark_written()?;
        self.plan = plan;
        Ok(())
    }

    /// Rolls back the upgrade in `journal`: swap back, restore the backup, record the failure.
    pub(super) async fn rollback(&mut self, mut journal: Journal, reason: &str) -> Result<()> {
        let data_root = self.inst.data.root().to_owned();
        let name = journal.upgrade.name.clone();
        tracing::error!(upgrade = %name, "rolling back to {} {}: {reason}", journal.previous.name, journal.previous.version);
        journal.save_at(&data_root, Stage::RollingBack)?;
        let t = Instant::now();
        fsutil::swap_symlink(&self.inst.data.current_link(), &journal.previous_link)?;
        self.failpoint("rollback-after-swap");
        let mut restore_error: Option<String> = None;
        if let Some(backup) = &journal.backup {
            let strategy = backup::restorer_for(backup);
            let (backup, target) = (backup.clone(), self.inst.config.daemon.home.clone());
            let skip = self.backup_plan().skip_set()?;
            let restored = tokio::task::spawn_blocking(move || {
                backup::restore_backup(
                    strategy.as_ref(),
                    &backup,
                    &target,
                    &skip,
                    &Cancel::default(),
                )
            })
            .await
            .map_err(|e| Error::Inconsistent(format!("the restore task failed: {e}")))
            .and_then(|r| r);
            let from = journal
                .backup
                .as_ref()
                .map(|b| b.display().to_string())
                .unwrap_or_default();
            match restored {
                Ok(()) => tracing::info!(upgrade = %name, "restored the daemon's data from {from}"),
                // the previous binary is back in place; running it beats leaving the node down
                Err(e) => {
                    tracing::error!(upgrade = %name, "could not restore the daemon's data from {from}: {e}; starting the previous version on the current data");
                    restore_error = Some(e.to_string());
                }
            }
        }
        CurrentVersionInfo::from_upgrade(&journal.previous).save(&self.inst.daemon_home)?;
        let previous = journal.previous.clone();
        self.update_plan(|plan| {
            plan.remove(&name);
            plan.current = previous;
        })?;
        let path = self.inst.data.history();
        let mut history = UpgradeHistory::load(&path)?;
        history.history.push(HistoryEntry {
            performed_at: model::now(),
            info: journal.upgrade.clone(),
            previous_version: Some(journal.previous.version.clone()),
            outcome: Some(Outcome::RolledBack),
            backup_path: journal.backup.clone(),
            error: Some(match &restore_error {
                Some(e) => format!("{reason}; restoring the backup failed: {e}"),
                None => reason.to_owned(),
            }),
        });
        history.save(&path)?;
        Journal::clear(&data_root)?;
        // recorded before the log line: whoever reads the log line finds the status up to date
        self.record_error(format!("upgrade `{name}` was rolled back: {reason}"));
        tracing::info!(upgrade = %name, stage = "rollback", elapsed_ms = ms(t), "rolled back to {} {}", journal.previous.name, journal.previous.version);
        Ok(())
    }

    /// Finishes or abandons an upgrade interrupted by a crash (called before anything runs).
    pub(super) async fn recover(&mut self) -> Result<()> {
        let data_root = self.inst.data.root().to_owned();
        sweep_downloads(&self.inst.data.upgrades_dir());
        let journal = match Journal::load(&data_root) {
            Ok(journal) => journal,
            Err(e) => {
                // only a recovery aid: `current` always names a complete, verified binary (the
                // swap is one rename), so the node runs what it points to
                let aside = Journal::move_aside(&data_root);
                let cause = match &e {
                    Error::CorruptJson { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                let journal = Journal::path(&data_root);
                tracing::error!(
                    "the upgrade journal {} cannot be read ({cause}); it was moved aside to {} and nymvisor starts what `current` points to",
                    journal.display(),
                    aside
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|e| format!("nowhere: {e}"))
                );
                self.record_error(format!(
                    "the upgrade journal {} could not be read and was moved aside: {cause}",
                    journal.display()
                ));
                None
            }
        };
        let Some(journal) = journal else {
            return Ok(());
        };
        let name = journal.upgrade.name.clone();
        let link = std::fs::read_link(self.inst.data.current_link()).ok();
        let swapped = link.as_deref() == Some(self.inst.data.link_target(&name).as_path());
        match journal.stage {
            Stage::RollingBack => {
                tracing::warn!(upgrade = %name, "an interrupted rollback was found; finishing it");
                self.rollback(
                    journal,
                    "rollback interrupted by a crash, finished on restart",
                )
                .await?;
            }
            Stage::Confirming => {
                tracing::warn!(upgrade = %name, "upgrade `{name}` was not confirmed before nymvisor last stopped; watching its start again");
                self.confirming = Some(journal);
            }
            _ if swapped => {
                tracing::warn!(upgrade = %name, "an interrupted upgrade was found after its swap; finishing it");
                let mut journal = journal;
                self.record_upgrade(&journal)?;
                journal.save_at(&data_root, Stage::Confirming)?;
                self.confirming = Some(journal);
            }
            _ => {
                tracing::warn!(upgrade = %name, "an interrupted upgrade was found before its swap; `current` was not changed and the upgrade will be applied again");
                Journal::clear(&data_root)?;
            }
        }
        Ok(())
    }

    fn failpoint(&self, name: &str) {
        failpoint::hit(name, self.failpoint.as_deref());
    }
}

enum BackupResult {
    Made(PathBuf),
    Interrupted(Signal),
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

fn backup_timestamp() -> String {
    let now = model::now();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// Removes partial downloads (`upgrades/*/bin/.<daemon>.*.download`) left by a nymvisor that was
/// killed while downloading.
fn sweep_downloads(upgrades: &std::path::Path) {
    for upgrade in std::fs::read_dir(upgrades).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(upgrade.path().join("bin"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".download") {
                tracing::info!(path = %entry.path().display(), "removing an interrupted download");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
