//! `nymvisor backups list` and `nymvisor backups restore`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backup::{self, BackupEntry, Cancel};
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::{UpgradeHistory, UpgradeInfo};

pub use crate::backup::{BEFORE_RESTORE, BEFORE_ROLLBACK};

/// A backup and the daemon version whose data it holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    #[serde(flatten)]
    pub backup: BackupEntry,
    /// The version of the daemon whose data it holds (`None`: not known, e.g. 0.1.41's history
    /// did not record the version an upgrade replaced).
    pub version: Option<String>,
}

/// The instance's backups, oldest first, with the version each holds.
pub fn list(inst: &Instance) -> Vec<Listed> {
    let history = inst.history().unwrap_or_default();
    backup::list_backups(&inst.config.backup_dir())
        .into_iter()
        .map(|b| Listed {
            version: holds_version(inst, &history, &b),
            backup: b,
        })
        .collect()
}

/// The backup of upgrade X holds the data of the version X replaced; a safety copy holds the
/// data of the version that ran when it was taken.
fn holds_version(inst: &Instance, history: &UpgradeHistory, b: &BackupEntry) -> Option<String> {
    if let Some(name) = b
        .upgrade
        .strip_prefix(BEFORE_ROLLBACK)
        .or_else(|| b.upgrade.strip_prefix(BEFORE_RESTORE))
    {
        return version_of(inst, history, name);
    }
    let mut of_upgrade = history
        .history
        .iter()
        .rev()
        .filter(|h| h.info.name == b.upgrade);
    let exact = of_upgrade
        .clone()
        .find(|h| h.backup_path.as_deref() == Some(b.path.as_path()));
    exact
        .or_else(|| of_upgrade.next())
        .and_then(|h| h.previous_version.clone())
}

/// The version of upgrade `name`: from the history, else its `upgrade-info.json`.
fn version_of(inst: &Instance, history: &UpgradeHistory, name: &str) -> Option<String> {
    history
        .history
        .iter()
        .rev()
        .find(|h| h.info.name == name)
        .map(|h| h.info.version.clone())
        .or_else(|| {
            crate::names::validate_name(name).ok()?;
            crate::fsutil::read_json_opt::<UpgradeInfo>(&inst.data.upgrade_info(name))
                .ok()
                .flatten()
                .map(|i| i.version)
        })
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub from: PathBuf,
    /// The safety copy of the data the restore replaced.
    pub safety_copy: PathBuf,
}

/// Restores the backup named `selector` (`<upgrade>` for its newest backup, or
/// `<upgrade>/<timestamp>`) into the daemon home. Refuses while a nymvisor runs the daemon,
/// unless `stop` is set: then that nymvisor is sent SIGTERM (it stops the daemon and exits) and
/// the restore waits for it. The run lock is held during the restore, so nothing starts the
/// daemon on half-restored data.
pub async fn restore(inst: &Instance, selector: &str, stop: bool) -> Result<Restored> {
    super::owner::check_writer(inst, &format!("backups restore {selector}"))?;
    let all = backup::list_backups(&inst.config.backup_dir());
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
    // the data about to be replaced is kept first: a restore of the wrong backup is undone
    // with another restore
    let running = inst
        .plan()
        .map(|p| p.current.name)
        .unwrap_or_else(|_| "unknown".to_owned());
    let safety_copy =
        backup::take_safety_copy(inst.backup_plan(0), format!("{BEFORE_RESTORE}{running}")).await?;
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
    Ok(Restored {
        from: chosen.path.clone(),
        safety_copy,
    })
}
