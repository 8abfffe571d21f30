//! The live [`Port`]: the instance's files (journal, `current`, plan, history, backups) and the
//! process side of `run` ([`Control`]: the daemon, signals, the service manager).

use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::backups as backup_step;
use super::port::{Halted, Port, Refused, Waited};
use super::{BackupSettings, Control, ms, record_upgrade};
use crate::backup::{self, Precopy};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::{self, Journal, UpgradeInfo, UpgradePlan};

/// See the module docs. `plan` is kept in step with what is recorded.
#[derive(Debug)]
pub struct LivePort<'a, C: Control> {
    pub inst: &'a Instance,
    pub settings: &'a BackupSettings,
    pub control: &'a mut C,
    pub plan: &'a mut UpgradePlan,
}

impl<C: Control> Port for LivePort<'_, C> {
    type Daemon = Daemon;
    type Copy = Precopy;

    fn announce(&mut self, text: &str) {
        self.control.notify_status(text);
    }

    fn ready(&mut self, text: &str) {
        self.control.notify_ready(text);
    }

    fn report_error(&mut self, message: String) {
        self.control.record_error(message);
    }

    fn failpoint(&self, name: &str) {
        self.control.failpoint(name);
    }

    fn pid(daemon: &Daemon) -> u32 {
        daemon.pid()
    }

    async fn stop(&mut self, daemon: Daemon) -> Halted {
        let stopped = self.control.stop_daemon(daemon).await;
        if self.settings.backup.is_some() {
            // a backup may take minutes: `status` must not show the old daemon running meanwhile
            self.control.daemon_stopped();
        } else {
            // a millisecond before the new daemon's start writes it anyway
            self.control.daemon_stopped_unsaved();
        }
        Halted {
            exit: stopped.exit.to_string(),
            signal: stopped.stop_signal,
        }
    }

    async fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) {
        // the service manager told, the outcome logged, the run state written: the host's
        self.control.stop_for_exit(daemon, sig).await;
    }

    fn start(&mut self) -> Result<Daemon> {
        self.control.start_daemon()
    }

    async fn stop_requested(&mut self) -> Option<Signal> {
        self.control.stop_requested().await
    }

    fn backups_on(&self) -> bool {
        self.settings.backup.is_some()
    }

    async fn precopy(&mut self, name: &str) -> Option<Result<Waited<Precopy>>> {
        let s = self.settings;
        if !(s.precopy && s.backup.as_ref().is_some_and(|b| b.supports_precopy())) {
            return None;
        }
        let t = Instant::now();
        let plan = self.inst.backup_plan(s.backup_min_free);
        let made = backup_step::precopy(plan, name, s.progress.clone(), self.control).await;
        if let Ok(Waited::Done(copy)) = &made {
            tracing::info!(upgrade = %name, stage = "precopy", elapsed_ms = ms(t), "copied the daemon's data while it runs ({} entries); what changes until it has stopped is copied after the stop", copy.entries());
        }
        Some(made)
    }

    async fn backup(&mut self, name: &str, copy: Option<Precopy>) -> Result<Waited<PathBuf>> {
        let s = self.settings;
        let Some(strategy) = s.backup.clone() else {
            return Err(Error::Setup("backups are off".into()));
        };
        let t = Instant::now();
        let plan = self.inst.backup_plan(s.backup_min_free);
        match copy {
            Some(copy) => {
                let made =
                    backup_step::finish(copy, plan, s.progress.clone(), self.control).await?;
                Ok(match made {
                    Waited::Done((path, delta)) => {
                        tracing::info!(upgrade = %name, stage = "backup", elapsed_ms = ms(t), "backed up the daemon's data to {}: the live copy, with {} entries copied again and {} removed ({} bytes) after the stop", path.display(), delta.copied, delta.removed, delta.bytes);
                        Waited::Done(path)
                    }
                    Waited::Interrupted(sig) => Waited::Interrupted(sig),
                })
            }
            None => {
                let made = backup_step::run(strategy, plan, name, s.progress.clone(), self.control)
                    .await?;
                if let Waited::Done(path) = &made {
                    tracing::info!(upgrade = %name, stage = "backup", elapsed_ms = ms(t), "backed up the daemon's data to {}", path.display());
                }
                Ok(made)
            }
        }
    }

    async fn retire(&mut self, made: PathBuf) {
        let plan = self.inst.backup_plan(self.settings.backup_min_free);
        let _ = tokio::task::spawn_blocking(move || backup::retire(&plan, &made)).await;
    }

    fn current(&self) -> Result<PathBuf> {
        let link = self.inst.data.current_link();
        std::fs::read_link(&link).map_err(|e| Error::io("failed to read the symlink", &link, e))
    }

    fn gate(&mut self, journal: &Journal) -> std::result::Result<(), Refused> {
        // asked, and the intent recorded, under the plan lock (`cancel`, `hold` and
        // `add-upgrade` take it too), so a cancel either comes before this point or finds the
        // upgrade in flight
        let _lock = FileLock::acquire_blocking(&self.inst.data.plan_lock());
        if let Some(why) = withdrawn(self.inst, &journal.upgrade) {
            return Err(Refused::Withdrawn(why));
        }
        self.journal(journal)
            .map_err(|e| Refused::Unrecorded(e.to_string()))
    }

    fn journal(&mut self, journal: &Journal) -> Result<()> {
        let mut j = journal.clone();
        j.save_at(self.inst.data.root(), journal.stage)
    }

    fn clear_journal(&mut self) {
        if let Err(e) = Journal::clear(self.inst.data.root()) {
            tracing::warn!("could not update the upgrade journal: {e}");
        }
    }

    fn swap(&mut self, name: &str) -> Result<PathBuf> {
        let target = self.inst.data.link_target(name);
        fsutil::swap_symlink(&self.inst.data.current_link(), &target)?;
        Ok(target)
    }

    fn record(&mut self, journal: &Journal) -> Result<()> {
        record_upgrade(self.inst, self.plan, journal)
    }
}

/// Why `info` is not to be applied after all, asked right before the stop: it left the queue
/// or changed (`nymvisor cancel`), or — for an automatic upgrade — a hold appeared (an
/// unreadable hold file counts) or its maintenance window closed.
fn withdrawn(inst: &Instance, info: &UpgradeInfo) -> Option<String> {
    match UpgradePlan::load(&inst.data.plan()) {
        Ok(plan) if plan.queued(&info.name) != Some(info) => {
            return Some(format!(
                "upgrade `{}` is no longer queued as it was (cancelled or changed)",
                info.name
            ));
        }
        _ => {}
    }
    if info.immediate {
        return None;
    }
    if !matches!(inst.hold(), Ok(None)) {
        return Some("upgrades were put on hold".into());
    }
    if info.follows_fleet_timing()
        && let Ok(timing) = inst.timing_readonly()
        && let Some(w) = timing.windows
        && !w.contains(model::now())
    {
        return Some(format!("the maintenance window ({w}) closed"));
    }
    None
}
