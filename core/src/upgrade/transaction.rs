//! The upgrade transaction: stop → backup → swap → restart → record, then confirm (or roll
//! back), and the recovery of one interrupted by a crash.
//!
//! The single commit point is the rename of the `current` symlink. The intent is recorded in
//! the journal (`upgrade-journal.json`) before each irreversible step: before the commit point an
//! interrupted upgrade is abandoned (and applied again later); after it, it is finished.
//!
//! Everything the transaction needs from the process side (stopping and starting the daemon,
//! noticing a stop signal, reporting) comes in through [`Control`], which `run` implements.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::backup_step::{self, BackupResult};
use crate::backup::{self, BackupStrategy, Cancel};
use crate::daemon::{Daemon, Stopped};
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::{
    self, CurrentVersionInfo, HistoryEntry, Journal, Outcome, Stage, UpgradeHistory, UpgradeInfo,
    UpgradePlan,
};
use crate::progress::ProgressSink;
use crate::refusal::Refusal;

/// What a rollback needs of the process side: reporting and the crash-test fail points. The
/// `rollback` command, run without a supervisor, provides just this.
pub trait Report {
    /// Records the last error (for `status`).
    fn record_error(&mut self, message: String);
    /// A crash-test fail point (kills nymvisor when it is the active one).
    fn failpoint(&self, name: &str);
}

/// The process side of an upgrade.
pub trait Control: Report {
    /// Stops the running daemon for an upgrade (SIGINT, the grace period, then SIGKILL), noting
    /// a stop signal that arrives meanwhile.
    fn stop_daemon(&mut self, daemon: Daemon) -> impl Future<Output = Stopped>;
    /// Stops the running daemon because nymvisor exits on `sig` (as when no upgrade runs).
    fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) -> impl Future<Output = Stopped>;
    /// Starts the daemon from `current`.
    fn start_daemon(&mut self) -> Result<Daemon>;
    /// The daemon is not running any more (for the run state).
    fn daemon_stopped(&mut self);
    /// A stop signal that has already arrived, if any (never waits).
    fn stop_requested(&mut self) -> impl Future<Output = Option<Signal>>;
    /// Resolves at the next stop signal. Cancel-safe.
    fn next_stop(&mut self) -> impl Future<Output = Signal>;
    /// A status line for the service manager.
    fn notify_status(&self, text: &str);
    /// The daemon runs: readiness for the service manager.
    fn notify_ready(&self, text: &str);
    /// The active crash-test fail point, for those inside blocking work.
    fn active_failpoint(&self) -> Option<&str>;
    /// When the service manager's watchdog wants the next keep-alive, if it watches.
    fn watchdog_due(&self) -> Option<tokio::time::Instant>;
    /// Sends the watchdog keep-alive (long steps wait for it alongside their work).
    fn watchdog_ping(&mut self);
}

/// What an upgrade works with besides the process side.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The backup strategy; `None`: backups are off.
    pub backup: Option<Arc<dyn BackupStrategy>>,
    /// Free space that must remain after a backup, in bytes.
    pub backup_min_free: u64,
    /// Copy the data while the old daemon runs, and only what changed after the stop
    /// (strategies that support it).
    pub precopy: bool,
    pub progress: Option<Arc<dyn ProgressSink>>,
}

/// How an apply ended.
#[derive(Debug)]
pub enum Applied {
    /// The upgrade is in place. The new daemon runs (`None` if no restart is wanted), and
    /// `confirming` holds what a rollback needs until it is confirmed.
    Done {
        daemon: Option<Daemon>,
        restart_wanted: bool,
        confirming: Option<Box<Journal>>,
        /// From the old daemon's stop to the new one's start.
        downtime: Option<std::time::Duration>,
        /// The upgrade could not be fully recorded (plan, history): what to record again.
        unrecorded: Option<Box<Journal>>,
    },
    /// A stop signal arrived: nothing new was started; nymvisor must exit.
    Interrupted(Signal),
    /// The operator withdrew it during the pre-copy (cancelled it, put upgrades on hold) or its
    /// maintenance window closed: nothing was stopped; the old daemon runs on.
    Withdrawn { daemon: Option<Daemon>, why: String },
    /// It failed before the swap: the old binary is still `current` and the old daemon must be
    /// started again if `daemon` is `None`.
    Aborted {
        daemon: Option<Daemon>,
        refusal: Refusal,
    },
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Applies the prepared upgrade `info` in place of `plan.current`. `daemon` is the running old
/// daemon, if any. `plan` is kept in step with what is recorded.
pub async fn apply<C: Control>(
    inst: &Instance,
    setup: &Setup,
    control: &mut C,
    plan: &mut UpgradePlan,
    info: UpgradeInfo,
    daemon: Option<Daemon>,
) -> Result<Applied> {
    let data_root = inst.data.root().to_owned();
    let current_link = inst.data.current_link();
    let previous_link = match std::fs::read_link(&current_link) {
        Ok(link) => link,
        Err(e) => {
            let reason = Error::io("failed to read the symlink", &current_link, e).to_string();
            return Ok(Applied::Aborted {
                daemon,
                refusal: Refusal::transient(reason),
            });
        }
    };
    let mut journal = Journal {
        stage: Stage::Stopping,
        upgrade: info.clone(),
        previous: plan.current.clone(),
        previous_link,
        backup: None,
        started_at: model::now(),
    };
    let (name, daemon_name) = (info.name.clone(), inst.config.daemon.name.clone());
    tracing::info!(upgrade = %name, "upgrading {daemon_name} {} → {}", plan.current.version, info.version);
    let total = Instant::now();
    control.notify_status(&format!("upgrading to {daemon_name} {}", info.version));

    // pre-copy: the bulk of the backup, while the old daemon still serves
    let mut daemon = daemon;
    let mut precopy = None;
    if let Some(strategy) = &setup.backup
        && setup.precopy
        && strategy.supports_precopy()
        && daemon.is_some()
    {
        let t = Instant::now();
        let plan_of_backup = inst.backup_plan(setup.backup_min_free);
        match backup_step::precopy(plan_of_backup, &name, setup.progress.clone(), control).await {
            Ok(BackupResult::Made(copy)) => {
                tracing::info!(upgrade = %name, stage = "precopy", elapsed_ms = ms(t), "copied the daemon's data while it runs ({} entries); what changes until it has stopped is copied after the stop", copy.entries());
                precopy = Some(copy);
            }
            Ok(BackupResult::Interrupted(sig)) => {
                // nothing is in place yet: the node stops as it would without an upgrade
                if let Some(d) = daemon.take() {
                    let stopped = control.stop_for_exit(d, sig).await;
                    control.daemon_stopped();
                    tracing::info!("daemon stopped ({}); nymvisor exits", stopped.exit);
                }
                return Ok(Applied::Interrupted(sig));
            }
            Err(e) => {
                tracing::warn!(upgrade = %name, stage = "precopy", "the live copy of the daemon's data failed: {e}; the backup is taken after the stop instead");
            }
        }
    }

    // the pre-copy may have taken minutes: the operator's word is asked again, and the intent
    // recorded, under the plan lock (`cancel`, `hold` and `add-upgrade` take it too), so a
    // cancel either comes before this point or finds the upgrade in flight
    let lock = FileLock::acquire_blocking(&inst.data.plan_lock());
    if let Some(why) = withdrawn(inst, &info) {
        return Ok(Applied::Withdrawn { daemon, why });
    }
    // nothing irreversible has happened: the daemon keeps running if the intent cannot be recorded
    if let Err(e) = journal.save_at(&data_root, Stage::Stopping) {
        return Ok(Applied::Aborted {
            daemon,
            refusal: Refusal::transient(format!("cannot record the upgrade's intent: {e}")),
        });
    }
    drop(lock);
    control.failpoint("before-stop");

    // stop
    let downtime = Instant::now();
    if let Some(d) = daemon {
        let t = Instant::now();
        let stopped = control.stop_daemon(d).await;
        tracing::info!(upgrade = %name, stage = "stop", elapsed_ms = ms(t), "stopped the old daemon ({})", stopped.exit);
        control.daemon_stopped();
        if let Some(sig) = stopped.stop_signal {
            // the operator wants the node down: nothing is started, the upgrade waits
            let _ = Journal::clear(&data_root);
            tracing::warn!(upgrade = %name, "{sig} received while the old daemon was stopping: upgrade abandoned before the swap, nymvisor exits");
            return Ok(Applied::Interrupted(sig));
        }
    }
    control.daemon_stopped();
    control.failpoint("after-stop");
    // From here to the swap, a failure abandons the upgrade and the old daemon is started again.
    let abort = |reason: String| {
        let _ = Journal::clear(&data_root);
        Ok(Applied::Aborted {
            daemon: None,
            refusal: Refusal::transient(reason),
        })
    };

    // backup
    if let Some(strategy) = setup.backup.clone() {
        if let Err(e) = journal.save_at(&data_root, Stage::BackingUp) {
            return abort(format!("cannot record the upgrade's progress: {e}"));
        }
        let t = Instant::now();
        let plan_of_backup = inst.backup_plan(setup.backup_min_free);
        let made = match precopy.take() {
            Some(copy) => {
                match backup_step::finish(copy, plan_of_backup, setup.progress.clone(), control)
                    .await
                {
                    Ok(BackupResult::Made((path, delta))) => {
                        tracing::info!(upgrade = %name, stage = "backup", elapsed_ms = ms(t), "backed up the daemon's data to {}: the live copy, with {} entries copied again and {} removed ({} bytes) after the stop", path.display(), delta.copied, delta.removed, delta.bytes);
                        Ok(BackupResult::Made(path))
                    }
                    Ok(BackupResult::Interrupted(sig)) => Ok(BackupResult::Interrupted(sig)),
                    Err(e) => Err(e),
                }
            }
            None => {
                let made = backup_step::run(
                    strategy,
                    plan_of_backup,
                    &name,
                    setup.progress.clone(),
                    control,
                )
                .await;
                if let Ok(BackupResult::Made(path)) = &made {
                    tracing::info!(upgrade = %name, stage = "backup", elapsed_ms = ms(t), "backed up the daemon's data to {}", path.display());
                }
                made
            }
        };
        match made {
            Ok(BackupResult::Made(path)) => {
                journal.backup = Some(path);
            }
            Ok(BackupResult::Interrupted(sig)) => {
                let _ = Journal::clear(&data_root);
                return Ok(Applied::Interrupted(sig));
            }
            Err(e) => return abort(format!("backup failed: {e}")),
        }
        control.failpoint("after-backup");
    } else {
        tracing::info!(upgrade = %name, stage = "backup", "backups are disabled; skipping");
    }

    // swap: the commit point; a stop asked for until now abandons the upgrade
    if let Some(sig) = control.stop_requested().await {
        let _ = Journal::clear(&data_root);
        tracing::warn!(upgrade = %name, "{sig} received before the swap: upgrade abandoned, nymvisor exits");
        return Ok(Applied::Interrupted(sig));
    }
    if let Err(e) = journal.save_at(&data_root, Stage::Swapping) {
        return abort(format!("cannot record the upgrade's progress: {e}"));
    }
    control.failpoint("before-swap");
    let t = Instant::now();
    let target = inst.data.link_target(&name);
    if let Err(e) = fsutil::swap_symlink(&current_link, &target) {
        return abort(e.to_string());
    }
    tracing::info!(upgrade = %name, stage = "swap", elapsed_ms = ms(t), "current -> {}", target.display());
    control.failpoint("after-swap");

    // restart; a start failure counts as a startup failure of the new binary (and may roll back)
    let restart_wanted = !info.manual && inst.config.daemon.restart_after_upgrade;
    // a stop asked for after the commit point: the upgrade is finished, nothing is started; the
    // next `run` watches the new version's start as its confirmation
    let stop_now = control.stop_requested().await;
    if let Some(sig) = stop_now {
        tracing::warn!(upgrade = %name, "{sig} received after the swap: the upgrade is recorded but the new daemon is not started; nymvisor exits");
    }
    let mut down_for = None;
    let daemon = if restart_wanted && stop_now.is_none() {
        let t = Instant::now();
        match control.start_daemon() {
            Ok(d) => {
                down_for = Some(downtime.elapsed());
                tracing::info!(upgrade = %name, stage = "restart", elapsed_ms = ms(t), downtime_ms = ms(downtime), "started {daemon_name} {} (pid {})", info.version, d.pid());
                Some(d)
            }
            Err(e) => {
                tracing::error!(upgrade = %name, stage = "restart", "{e}");
                control.record_error(e.to_string());
                None
            }
        }
    } else {
        None
    };

    // records: the upgrade is in place whatever happens here, so failures are reported, not fatal
    let t = Instant::now();
    let mut unrecorded = None;
    match record_upgrade(inst, plan, &journal) {
        Ok(()) => {
            tracing::info!(upgrade = %name, stage = "record", elapsed_ms = ms(t), "recorded the upgrade in the plan, history and current-version-info.json")
        }
        Err(e) => {
            // `plan` (in memory) has it as current already: it is not applied again
            control.record_error(format!("upgrade `{name}` is in place but could not be fully recorded: {e}; nymvisor retries the record (it does not apply the upgrade again)"));
            tracing::error!(upgrade = %name, stage = "record", "the upgrade is in place but could not be fully recorded: {e}; nymvisor retries the record (it does not apply the upgrade again)");
            unrecorded = Some(Box::new(journal.clone()));
        }
    }
    control.failpoint("after-record");
    // retention once the new daemon runs: removing old backups takes time that is not downtime
    if let Some(made) = journal.backup.clone() {
        let plan_of_backup = inst.backup_plan(setup.backup_min_free);
        let _ = tokio::task::spawn_blocking(move || backup::retire(&plan_of_backup, &made)).await;
    }
    if let Some(d) = &daemon {
        control.notify_ready(&format!(
            "running {daemon_name} {} (pid {})",
            info.version,
            d.pid()
        ));
    }
    if let Some(sig) = stop_now {
        if let Err(e) = journal.save_at(&data_root, Stage::Confirming) {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        return Ok(Applied::Interrupted(sig));
    }
    let confirming = if restart_wanted {
        if let Err(e) = journal.save_at(&data_root, Stage::Confirming) {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        Some(Box::new(journal))
    } else {
        if info.manual {
            tracing::info!(upgrade = %name, "manual upgrade: the binary is swapped; start the daemon yourself (e.g. restart nymvisor)");
        } else {
            tracing::info!(upgrade = %name, "restart_after_upgrade is off: nymvisor stops here");
        }
        if let Err(e) = Journal::clear(&data_root) {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        None
    };
    tracing::info!(upgrade = %name, elapsed_ms = ms(total), "upgrade applied");
    Ok(Applied::Done {
        daemon,
        restart_wanted,
        confirming,
        downtime: down_for,
        unrecorded,
    })
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

/// Read-modify-write of the plan under the plan lock (shared with `add-upgrade`), keeping
/// `plan` in step. A file that does not parse is the operator's to fix and is not overwritten;
/// on that or any other failure the change is made in memory only, and the error returned.
pub fn update_plan(
    inst: &Instance,
    plan: &mut UpgradePlan,
    change: impl Fn(&mut UpgradePlan),
) -> Result<()> {
    // whatever fails below, memory has the change: what is recorded there is what nymvisor acts
    // on (an upgrade applied but not written down is not applied again)
    let written = (|| {
        let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
        let path = inst.data.plan();
        // the file may have gained entries since we last read it
        let mut on_disk = UpgradePlan::load(&path)?;
        change(&mut on_disk);
        on_disk.save(&path)?;
        Ok(on_disk)
    })();
    match written {
        Ok(on_disk) => {
            *plan = on_disk;
            Ok(())
        }
        Err(e) => {
            change(plan);
            Err(e)
        }
    }
}

/// Plan (current = the upgrade, dropped from the queue), history and current version info.
/// Idempotent, so recovery can repeat it.
pub fn record_upgrade(inst: &Instance, plan: &mut UpgradePlan, journal: &Journal) -> Result<()> {
    let info = &journal.upgrade;
    // the plan first: it changes memory even when it cannot be written, so what nymvisor acts
    // on says the upgrade is in place whatever fails after
    let planned = update_plan(inst, plan, |p| {
        p.remove(&info.name);
        p.current = info.clone();
    });
    CurrentVersionInfo::from_upgrade(info).save(&inst.daemon_home)?;
    planned?;
    let path = inst.data.history();
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
            // until its start is confirmed
            outcome: Some(Outcome::Pending),
            backup_path: journal.backup.clone(),
            error: None,
        });
        history.save(&path)?;
    }
    Ok(())
}

/// Rolls back the upgrade in `journal`: swap back, restore the backup, record the failure.
pub async fn rollback<C: Report>(
    inst: &Instance,
    setup: &Setup,
    control: &mut C,
    plan: &mut UpgradePlan,
    mut journal: Journal,
    reason: &str,
) -> Result<()> {
    let data_root = inst.data.root().to_owned();
    let name = journal.upgrade.name.clone();
    // the operator's own rollback is no error of the node's
    let asked = reason == super::rollback::BY_THE_OPERATOR;
    if asked {
        tracing::info!(upgrade = %name, "rolling back to {} {}: {reason}", journal.previous.name, journal.previous.version);
    } else {
        tracing::error!(upgrade = %name, "rolling back to {} {}: {reason}", journal.previous.name, journal.previous.version);
    }
    journal.save_at(&data_root, Stage::RollingBack)?;
    let t = Instant::now();
    fsutil::swap_symlink(&inst.data.current_link(), &journal.previous_link)?;
    control.failpoint("rollback-after-swap");
    let mut restore_error: Option<String> = None;
    if let Some(from) = journal.backup.clone() {
        let strategy = backup::restorer_for(&from);
        let target = inst.config.daemon.home.clone();
        let skip = inst.backup_plan(setup.backup_min_free).skip_set()?;
        let source = from.clone();
        let restored = tokio::task::spawn_blocking(move || {
            backup::restore_backup(
                strategy.as_ref(),
                &source,
                &target,
                &skip,
                &Cancel::default(),
            )
        })
        .await
        .map_err(|e| Error::Task {
            what: "restoring the backup",
            message: e.to_string(),
        })
        .and_then(|r| r);
        match restored {
            Ok(()) => {
                tracing::info!(upgrade = %name, "restored the daemon's data from {}", from.display())
            }
            // the previous binary is back in place; running it beats leaving the node down
            Err(e) => {
                tracing::error!(upgrade = %name, "could not restore the daemon's data from {}: {e}; starting the previous version on the current data", from.display());
                restore_error = Some(e.to_string());
            }
        }
    }
    CurrentVersionInfo::from_upgrade(&journal.previous).save(&inst.daemon_home)?;
    let previous = journal.previous.clone();
    update_plan(inst, plan, |p| {
        p.remove(&name);
        p.current = previous.clone();
    })?;
    let path = inst.data.history();
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
    if !asked || restore_error.is_some() {
        control.record_error(format!(
            "upgrade `{name}` was rolled back: {reason}{}",
            restore_error
                .as_ref()
                .map(|e| format!("; restoring the backup failed: {e}"))
                .unwrap_or_default()
        ));
    }
    tracing::info!(upgrade = %name, stage = "rollback", elapsed_ms = ms(t), "rolled back to {} {}", journal.previous.name, journal.previous.version);
    Ok(())
}
