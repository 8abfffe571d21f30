//! The operator's rollback (`nymvisor rollback [--with-data] [--now]`): which version it goes
//! back to ([`plan_rollback`], pure), and carrying it out ([`carry_out`]) with the same
//! transaction as an automatic rollback ([`super::transaction::rollback`]: journal, swap,
//! restore, record). Stopping and starting the daemon is the caller's: the running nymvisor's,
//! or nobody's when the command runs without one.

use std::path::PathBuf;

use super::transaction::{self, BackupSettings, Report};
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::model::{self, Journal, Outcome, Stage, UpgradeHistory, UpgradeInfo, UpgradePlan};
use crate::paths::GENESIS;

/// Everything a manual rollback needs, read from the instance's files: what `current` goes
/// back to (and checks that its binary is still there).
pub fn plan_for(
    inst: &Instance,
    plan: &UpgradePlan,
    confirming: Option<&Journal>,
    with_data: bool,
) -> Result<Journal> {
    let history = inst.history()?;
    let genesis: Option<UpgradeInfo> =
        crate::fsutil::read_json_opt(&inst.data.upgrade_info(GENESIS))
            .ok()
            .flatten();
    let journal = plan_rollback(
        &plan.current,
        &history,
        confirming,
        genesis.as_ref(),
        with_data,
        |name| inst.data.link_target(name),
    )
    .map_err(Error::UpgradeRefused)?;
    let bin = inst.data.upgrade_bin(&journal.previous.name);
    if !bin.is_file() {
        return Err(Error::UpgradeRefused(format!(
            "the binary of {} {} (`{}`) is no longer kept ({} is missing); queue it with `nymvisor add-upgrade <BINARY> --upgrade-name <NAME> --allow-downgrade --now`",
            inst.config.daemon.name,
            journal.previous.version,
            journal.previous.name,
            bin.display()
        )));
    }
    if let Some(b) = &journal.backup
        && !b.is_dir()
    {
        return Err(Error::UpgradeRefused(format!(
            "the backup taken before `{}` was installed ({}) is gone; roll back without --with-data",
            journal.upgrade.name,
            b.display()
        )));
    }
    Ok(journal)
}

/// Carries out the rollback in `journal` (the daemon is stopped): [`safety_copy`], then the
/// rollback transaction, recorded as `rolled-back`, [`BY_THE_OPERATOR`]. Returns the safety
/// copy. A failed safety copy changes nothing (the error is returned before any step).
pub async fn carry_out<C: Report>(
    inst: &Instance,
    backups: &BackupSettings,
    control: &mut C,
    plan: &mut UpgradePlan,
    journal: Journal,
) -> Result<Option<PathBuf>> {
    let safety = safety_copy(inst, &journal).await?;
    transaction::rollback(inst, backups, control, plan, journal, BY_THE_OPERATOR).await?;
    Ok(safety)
}

/// With data (`journal.backup`), a copy of the daemon home the restore will replace, taken
/// before anything changes (the daemon is stopped); `None` without data.
pub async fn safety_copy(inst: &Instance, journal: &Journal) -> Result<Option<PathBuf>> {
    let mut safety = None;
    if journal.backup.is_some() {
        let label = format!("{}{}", crate::backup::BEFORE_ROLLBACK, journal.upgrade.name);
        let t = std::time::Instant::now();
        let made = crate::backup::take_safety_copy(inst.backup_plan(0), label).await?;
        tracing::info!(upgrade = %journal.upgrade.name, stage = "backup", elapsed_ms = t.elapsed().as_millis() as u64, "kept a safety copy of the daemon's data it replaces in {}", made.display());
        safety = Some(made);
    }
    Ok(safety)
}

/// The reason recorded in the history for a rollback the operator asked for.
pub const BY_THE_OPERATOR: &str = "rolled back by the operator (`nymvisor rollback`)";

/// What a manual rollback of `current` goes back to: the version an automatic rollback would
/// pick. While an upgrade awaits its confirmation that is its journal's `previous`; otherwise
/// the history says which version ran before `current` was installed, and that version's entry
/// (an earlier upgrade, or genesis) says its name. `with_data`: the backup taken before
/// `current` was installed is restored too (an error when there is none).
///
/// `link_of(name)` is `current`'s target for an upgrade name (`genesis`, `upgrades/<name>`).
pub fn plan_rollback(
    current: &UpgradeInfo,
    history: &UpgradeHistory,
    confirming: Option<&Journal>,
    genesis: Option<&UpgradeInfo>,
    with_data: bool,
    link_of: impl Fn(&str) -> PathBuf,
) -> Result<Journal, String> {
    let now = model::now();
    if let Some(j) = confirming.filter(|j| j.upgrade.name == current.name) {
        let mut journal = j.clone();
        journal.stage = Stage::Confirming;
        journal.started_at = now;
        if !with_data {
            journal.backup = None;
        } else if journal.backup.is_none() {
            return Err(no_backup(current));
        }
        return Ok(journal);
    }
    if current.name == GENESIS {
        return Err(format!(
            "{} is the version nymvisor was initialised with (`genesis`): there is nothing before it to roll back to",
            current.version
        ));
    }
    let installed_at = history
        .history
        .iter()
        .rposition(|h| h.info.name == current.name && Outcome::applied(h.outcome));
    let Some(at) = installed_at else {
        return Err(format!(
            "the history has no record of how `{}` ({}) was installed, so which version ran before it is unknown; queue the version you want with `nymvisor add-upgrade <BINARY> --upgrade-name <NAME> --allow-downgrade --now`",
            current.name, current.version
        ));
    };
    let installed = &history.history[at];
    let Some(previous_version) = installed.previous_version.as_deref() else {
        return Err(format!(
            "the history does not say which version ran before `{}` ({}); queue the version you want with `nymvisor add-upgrade <BINARY> --upgrade-name <NAME> --allow-downgrade --now`",
            current.name, current.version
        ));
    };
    let previous = history.history[..at]
        .iter()
        .rev()
        .find(|h| {
            h.info.version == previous_version
                && Outcome::applied(h.outcome)
                && h.info.name != current.name
        })
        .map(|h| h.info.clone())
        .or_else(|| genesis.filter(|g| g.version == previous_version).cloned());
    let Some(previous) = previous else {
        return Err(format!(
            "{previous_version} ran before `{}`, but no upgrade of that version is recorded (nor is it genesis); queue it with `nymvisor add-upgrade <BINARY> --upgrade-name <NAME> --allow-downgrade --now`",
            current.name
        ));
    };
    let backup = match (with_data, &installed.backup_path) {
        (false, _) => None,
        (true, Some(path)) => Some(path.clone()),
        (true, None) => return Err(no_backup(current)),
    };
    Ok(Journal {
        stage: Stage::Confirming,
        upgrade: current.clone(),
        previous_link: link_of(&previous.name),
        previous,
        backup,
        started_at: now,
    })
}

fn no_backup(current: &UpgradeInfo) -> String {
    format!(
        "no backup was taken before `{}` ({}) was installed; roll back without --with-data (the data stays as it is)",
        current.name, current.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistoryEntry;
    use std::path::Path;

    fn info(name: &str, version: &str) -> UpgradeInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": version, "upgradeTime": "2026-05-20T12:00:00Z"
        }))
        .unwrap()
    }

    fn entry(name: &str, version: &str, prev: &str, outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            performed_at: time::macros::datetime!(2026-05-01 10:00 UTC),
            info: info(name, version),
            previous_version: Some(prev.into()),
            outcome: Some(outcome),
            backup_path: Some(format!("/b/{name}/1").into()),
            error: None,
        }
    }

    fn link(name: &str) -> PathBuf {
        if name == GENESIS {
            GENESIS.into()
        } else {
            Path::new("upgrades").join(name)
        }
    }

    #[test]
    fn goes_back_one_version_through_the_history() {
        let genesis = info("genesis", "1.1.0");
        let history = UpgradeHistory {
            history: vec![
                entry("v1.2.0", "1.2.0", "1.1.0", Outcome::Success),
                entry("v1.3.0", "1.3.0", "1.2.0", Outcome::RolledBack),
                entry("v1.3.1", "1.3.1", "1.2.0", Outcome::Success),
            ],
        };
        let j = plan_rollback(
            &info("v1.3.1", "1.3.1"),
            &history,
            None,
            Some(&genesis),
            false,
            link,
        )
        .unwrap();
        assert_eq!(j.previous.name, "v1.2.0");
        assert_eq!(j.previous_link, Path::new("upgrades/v1.2.0"));
        assert_eq!(j.backup, None);
        // and from v1.2.0, to genesis, with its backup
        let j = plan_rollback(
            &info("v1.2.0", "1.2.0"),
            &history,
            None,
            Some(&genesis),
            true,
            link,
        )
        .unwrap();
        assert_eq!(
            (j.previous.name.as_str(), j.previous_link),
            ("genesis", "genesis".into())
        );
        assert_eq!(j.backup, Some("/b/v1.2.0/1".into()));
    }

    #[test]
    fn refuses_what_it_cannot_know() {
        let genesis = info("genesis", "1.1.0");
        let empty = UpgradeHistory::default();
        let e = plan_rollback(&genesis, &empty, None, Some(&genesis), false, link).unwrap_err();
        assert!(e.contains("nothing before it"), "{e}");
        let e = plan_rollback(
            &info("v2", "2.0.0"),
            &empty,
            None,
            Some(&genesis),
            false,
            link,
        )
        .unwrap_err();
        assert!(e.contains("no record"), "{e}");
        let mut h = UpgradeHistory {
            history: vec![entry("v2", "2.0.0", "1.9.0", Outcome::Success)],
        };
        let e =
            plan_rollback(&info("v2", "2.0.0"), &h, None, Some(&genesis), false, link).unwrap_err();
        assert!(e.contains("1.9.0 ran before"), "{e}");
        h.history[0].previous_version = Some("1.1.0".into());
        h.history[0].backup_path = None;
        let e =
            plan_rollback(&info("v2", "2.0.0"), &h, None, Some(&genesis), true, link).unwrap_err();
        assert!(e.contains("no backup"), "{e}");
    }

    #[test]
    fn an_unconfirmed_upgrade_goes_back_as_its_journal_says() {
        let j = Journal {
            stage: Stage::Confirming,
            upgrade: info("v2", "2.0.0"),
            previous: info("v1", "1.0.0"),
            previous_link: "upgrades/v1".into(),
            backup: Some("/b/v2/1".into()),
            started_at: time::macros::datetime!(2026-05-01 10:00 UTC),
        };
        let got = plan_rollback(
            &info("v2", "2.0.0"),
            &UpgradeHistory::default(),
            Some(&j),
            None,
            false,
            link,
        )
        .unwrap();
        assert_eq!((got.previous.name.as_str(), got.backup), ("v1", None));
    }
}
