//! `nymvisor backups list` and `nymvisor backups restore`.

use std::path::PathBuf;
use std::time::Duration;

use crate::backup::{self, BackupEntry, Cancel};
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::instance::Instance;

/// The instance's backups, oldest first.
pub fn list(inst: &Instance) -> Vec<BackupEntry> {
    backup::list_backups(&inst.config.backup_dir())
}

/// Restores the backup named `selector` (`<upgrade>` for its newest backup, or
/// `<upgrade>/<timestamp>`) into the daemon home. Refuses while a nymvisor runs the daemon,
/// unless `stop` is set: then that nymvisor is sent SIGTERM (it stops the daemon and exits) and
/// the restore waits for it. The run lock is held during the restore, so nothing starts the
/// daemon on half-restored data.
pub async fn restore(inst: &Instance, selector: &str, stop: bool) -> Result<PathBuf> {
    super::owner::check_writer(inst, &format!("backups restore {selector}"))?;
    let all = list(inst);
    let (upgrade, stamp) = match selector.split_once('/') {
        Some((u, t)) => (u, Some(t)),
        None => (selector, None),
    };
    let Some(chosen) = all
        .iter()
        .rev()
        .find(|b| b.upgrade == upgrade && stamp.is_none_or(|t| t == b.timestamp))
    else {
        let known: Vec<_> = all
            .iter()
            .map(|b| format!("{}/{}", b.upgrade, b.timestamp))
            .collect();
        return Err(Error::UpgradeRefused(format!(
            "no backup {selector:?} in {} (backups: {})",
            inst.config.backup_dir().display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let lock_path = inst.data.run_lock();
    if let Some(holder) = FileLock::holder(&lock_path)? {
        let who = holder.map(|p| format!(" (pid {p})")).unwrap_or_default();
        if !stop {
            return Err(Error::UpgradeRefused(format!(
                "nymvisor{who} is running the daemon; stop it first (e.g. `systemctl stop nymvisor`) or pass --stop"
            )));
        }
        let Some(pid) = holder else {
            return Err(Error::UpgradeRefused(format!(
                "a nymvisor is running the daemon but its pid is unknown ({}); stop it yourself",
                lock_path.display()
            )));
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now()
            + inst.config.daemon.shutdown_grace_period
            + Duration::from_secs(30);
        while FileLock::holder(&lock_path)?.is_some() {
            if std::time::Instant::now() > deadline {
                return Err(Error::UpgradeRefused(format!(
                    "nymvisor{who} did not stop in time; nothing was restored"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _lock = FileLock::try_acquire(&lock_path)?;
    let skip = inst.backup_plan(0).skip_set()?;
    let (from, target) = (chosen.path.clone(), inst.config.daemon.home.clone());
    let strategy = backup::restorer_for(&from);
    tokio::task::spawn_blocking(move || {
        backup::restore_backup(strategy.as_ref(), &from, &target, &skip, &Cancel::default())
    })
    .await
    .map_err(|e| Error::Task {
        what: "restoring the backup",
        message: e.to_string(),
    })??;
    Ok(chosen.path.clone())
}
