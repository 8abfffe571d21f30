//! Recovery of an upgrade interrupted by a crash, before anything runs: the journal says how
//! far it got. Before the commit point (the `current` swap) it is abandoned and applied again
//! later; after it, it is finished; an interrupted rollback is finished; an unreadable journal is
//! moved aside, since `current` always names a complete, verified binary.

use super::transaction::{BackupSettings, Control, record_upgrade, rollback};
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::model::{Journal, Stage, UpgradePlan};

/// Finishes or abandons an upgrade interrupted by a crash (called before anything runs).
/// Returns the upgrade whose start is to be watched as its confirmation, if any.
pub async fn recover<C: Control>(
    inst: &Instance,
    backups: &BackupSettings,
    control: &mut C,
    plan: &mut UpgradePlan,
) -> Result<Option<Journal>> {
    let data_root = inst.data.root().to_owned();
    sweep_downloads(&inst.data.upgrades_dir());
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
            let path = inst.data.journal();
            tracing::error!(
                "the upgrade journal {} cannot be read ({cause}); it was moved aside to {} and nymvisor starts what `current` points to",
                path.display(),
                aside
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| format!("nowhere: {e}"))
            );
            control.record_error(format!(
                "the upgrade journal {} could not be read and was moved aside: {cause}",
                path.display()
            ));
            None
        }
    };
    let Some(mut journal) = journal else {
        return Ok(None);
    };
    let name = journal.upgrade.name.clone();
    let link = std::fs::read_link(inst.data.current_link()).ok();
    let swapped = link.as_deref() == Some(inst.data.link_target(&name).as_path());
    match journal.stage {
        Stage::RollingBack => {
            tracing::warn!(upgrade = %name, "an interrupted rollback was found; finishing it");
            rollback(
                inst,
                backups,
                control,
                plan,
                journal,
                "rollback interrupted by a crash, finished on restart",
            )
            .await?;
            Ok(None)
        }
        Stage::Confirming => {
            tracing::warn!(upgrade = %name, "upgrade `{name}` was not confirmed before nymvisor last stopped; watching its start again");
            Ok(Some(journal))
        }
        _ if swapped => {
            tracing::warn!(upgrade = %name, "an interrupted upgrade was found after its swap; finishing it");
            record_upgrade(inst, plan, &journal)?;
            journal.save_at(&data_root, Stage::Confirming)?;
            Ok(Some(journal))
        }
        _ => {
            tracing::warn!(upgrade = %name, "an interrupted upgrade was found before its swap; `current` was not changed and the upgrade will be applied again");
            Journal::clear(&data_root)?;
            Ok(None)
        }
    }
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
