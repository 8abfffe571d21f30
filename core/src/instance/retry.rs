//! `nymvisor retry <name>`: forgets a refusal, so the upgrade (or the upstream offer) is
//! considered again at once — by a running nymvisor within a second, else at the next start.

use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::{RefusalRecord, Refusals};

/// Forgets the refusal of `name`; returns what was forgotten.
pub fn retry(inst: &Instance, name: &str) -> Result<RefusalRecord> {
    super::owner::check_writer(inst, &format!("retry {name}"))?;
    let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
    let path = inst.data.refusals();
    let mut refusals = Refusals::load(&path)?;
    let Some(record) = refusals.get(name).cloned() else {
        let known: Vec<_> = refusals.refusals.iter().map(|r| r.name.as_str()).collect();
        return Err(Error::UpgradeRefused(format!(
            "no refused upgrade `{name}` (refused: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    refusals.clear(name);
    refusals.save(&path)?;
    Ok(record)
}
