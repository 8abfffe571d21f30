//! `nymvisor cancel <name>`: the operator takes a queued upgrade out of the plan. A cancelled
//! release stays out: an upstream source offering the very same release again (same version,
//! checksums and URLs) is not queued until upstream changes it or `nymvisor retry <name>`.
//! A running nymvisor picks the change up within a second; an upgrade past its stop cannot be
//! cancelled (`nymvisor rollback` takes the node back once it runs).

use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::refusals::Origin;
use crate::model::{self, Journal, Refusals, UpgradeInfo};
use crate::refusal::Refusal;

/// Removes `name` from the queue and records the cancellation; returns the cancelled entry.
pub fn cancel(inst: &Instance, name: &str) -> Result<UpgradeInfo> {
    super::owner::check_writer(inst, &format!("cancel {name}"))?;
    crate::upgrade::policy::check_name(name).map_err(|r| Error::UpgradeRefused(r.reason))?;
    let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
    if let Some(j) = Journal::load(inst.data.root())?
        && j.upgrade.name == name
    {
        return Err(Error::UpgradeRefused(format!(
            "upgrade `{name}` ({} {}) is already being applied or awaits its confirmation; it cannot be cancelled any more: once it runs, `nymvisor rollback` takes the node back to {}",
            inst.config.daemon.name, j.upgrade.version, j.previous.version
        )));
    }
    let path = inst.data.plan();
    let mut plan = inst.plan()?;
    let Some(entry) = plan.queued(name).cloned() else {
        let queued: Vec<_> = plan.queued_up.iter().map(|q| q.name.as_str()).collect();
        return Err(Error::UpgradeRefused(format!(
            "no queued upgrade `{name}` (queued: {})",
            if queued.is_empty() {
                "none".to_owned()
            } else {
                queued.join(", ")
            }
        )));
    };
    let now = model::now();
    let mut refusals = Refusals::load(&inst.data.refusals())?;
    refusals.record(
        &entry,
        &Refusal::never(format!(
            "cancelled by the operator at {}",
            model::rfc3339(now)
        )),
        Origin::Cancelled,
        now,
    );
    // the refusal first: a running nymvisor that sees the plan change also finds why
    refusals.save(&inst.data.refusals())?;
    plan.remove(name);
    plan.save(&path)?;
    Ok(entry)
}
