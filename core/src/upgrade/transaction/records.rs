//! The records an upgrade writes: the plan (read-modify-write under the plan lock) and, once the
//! upgrade is in place, the plan, the history and `current-version-info.json` together.

use crate::error::Result;
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::{
    CurrentVersionInfo, HistoryEntry, Journal, Outcome, UpgradeHistory, UpgradePlan,
};

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
