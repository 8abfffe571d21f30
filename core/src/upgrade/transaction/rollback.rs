//! The rollback transaction (an unconfirmed upgrade that failed, the operator's `rollback`, or
//! one interrupted by a crash): journal, swap back, restore the backup, record.

use std::time::Instant;

use super::{BackupSettings, Report, ms, update_plan};
use crate::backup::{self, Cancel};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::instance::Instance;
use crate::model::{
    self, CurrentVersionInfo, HistoryEntry, Journal, Outcome, Stage, UpgradeHistory, UpgradePlan,
};

/// Rolls back the upgrade in `journal`: swap back, restore the backup, record the failure.
pub async fn rollback<C: Report>(
    inst: &Instance,
    settings: &BackupSettings,
    control: &mut C,
    plan: &mut UpgradePlan,
    mut journal: Journal,
    reason: &str,
) -> Result<()> {
    let data_root = inst.data.root().to_owned();
    let name = journal.upgrade.name.clone();
    // the operator's own rollback is no error of the node's
    let asked = reason == crate::upgrade::rollback::BY_THE_OPERATOR;
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
        let skip = inst.backup_plan(settings.backup_min_free).skip_set()?;
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
