//! `nymvisor rollback [--with-data] [--now]`: back to the version that ran before the current
//! one, with the transaction of an automatic rollback. With `run` running, the running
//! nymvisor does it (it owns the daemon): the command leaves it a request
//! (`upgrade-rollback.json`) and waits for the outcome. Without, the command does it itself,
//! holding the run lock so that nothing starts the daemon meanwhile; the daemon runs the older
//! version at the next `nymvisor run`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::{self, HistoryEntry, Journal, Outcome, RollbackRequest, Stage, UpgradeInfo};
use crate::upgrade::rollback::{self, BY_THE_OPERATOR};
use crate::upgrade::transaction::{BackupSettings, Report};

/// What `rollback` came to.
#[derive(Debug, Clone)]
pub enum RolledBack {
    /// Done here (no nymvisor was running).
    Done {
        from: Box<UpgradeInfo>,
        to: Box<UpgradeInfo>,
        /// The safety copy of the data the restore replaced (`--with-data`).
        safety_copy: Option<PathBuf>,
    },
    /// Left to the running nymvisor (pid, if known), to be applied once `waits_for` allows
    /// (`None`: at once).
    Requested {
        pid: Option<u32>,
        from: Box<UpgradeInfo>,
        to: Box<UpgradeInfo>,
        waits_for: Option<String>,
    },
}

/// Reports of a rollback done by the command: to the log (there is no run state to keep).
struct Offline;

impl Report for Offline {
    fn record_error(&mut self, message: String) {
        tracing::error!("{message}");
    }

    fn failpoint(&self, _name: &str) {}
}

/// Rolls back (or asks the running nymvisor to). Everything is checked first: what it goes
/// back to, that its binary is kept, and with `with_data` that the backup exists.
pub async fn rollback(inst: &Instance, with_data: bool, now: bool) -> Result<RolledBack> {
    super::owner::check_writer(
        inst,
        &format!(
            "rollback{}{}",
            if with_data { " --with-data" } else { "" },
            if now { " --now" } else { "" }
        ),
    )?;
    let mut plan = inst.plan()?;
    let journal = Journal::load(inst.data.root())?;
    if let Some(j) = journal.as_ref().filter(|j| j.stage != Stage::Confirming) {
        return Err(Error::UpgradeRefused(format!(
            "upgrade `{}` is being applied right now ({:?}); try again once it runs",
            j.upgrade.name, j.stage
        )));
    }
    let target = rollback::plan_for(inst, &plan, journal.as_ref(), with_data)?;
    let (from, to) = (
        Box::new(target.upgrade.clone()),
        Box::new(target.previous.clone()),
    );
    let lock = match FileLock::try_acquire(&inst.data.run_lock()) {
        Ok(lock) => lock,
        Err(Error::Locked { holder, .. }) => {
            let request = RollbackRequest {
                from: plan.current.name.clone(),
                with_data,
                now,
                requested_at: model::now(),
            };
            request.save(&inst.data.rollback_request())?;
            return Ok(RolledBack::Requested {
                pid: holder,
                from,
                to,
                waits_for: if now { None } else { waits_for(inst)? },
            });
        }
        Err(e) => return Err(e),
    };
    let backups = BackupSettings {
        backup: None,
        backup_min_free: 0,
        precopy: false,
        progress: None,
    };
    let safety_copy = rollback::carry_out(inst, &backups, &mut Offline, &mut plan, target).await?;
    drop(lock);
    Ok(RolledBack::Done {
        from,
        to,
        safety_copy,
    })
}

/// What a rollback that is not `--now` waits for: the hold, or the next maintenance window.
fn waits_for(inst: &Instance) -> Result<Option<String>> {
    if let Some(h) = inst.hold().unwrap_or(None) {
        return Ok(Some(format!(
            "the hold{} to be lifted (`nymvisor unhold`, or roll back with --now)",
            h.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        )));
    }
    let timing = inst.timing_readonly()?;
    if let Some(w) = &timing.windows {
        let now = model::now();
        if !w.contains(now) {
            return Ok(Some(format!(
                "the next maintenance window ({}, at {}; or roll back with --now)",
                w,
                model::rfc3339(w.place(now, Duration::ZERO))
            )));
        }
    }
    Ok(None)
}

/// Waits until the running nymvisor has acted on the request (it removes the file), at most
/// `patience`; then returns the history entry of its rollback, if it made one.
pub async fn wait_for_running(
    inst: &Instance,
    from: &str,
    patience: Duration,
) -> Result<Option<HistoryEntry>> {
    let path = inst.data.rollback_request();
    let deadline = std::time::Instant::now() + patience;
    while path.exists() {
        if std::time::Instant::now() > deadline {
            return Err(Error::UpgradeRefused(format!(
                "the running nymvisor has not acted on the rollback yet ({} is still there); `nymvisor status` shows what it does",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(inst.history()?.history.into_iter().rev().find(|h| {
        h.info.name == from
            && h.outcome == Some(Outcome::RolledBack)
            && h.error
                .as_deref()
                .is_some_and(|e| e.starts_with(BY_THE_OPERATOR))
    }))
}
