//! `nymvisor hold [--reason TEXT]` and `nymvisor unhold`: the operator's switch over automatic
//! upgrades, kept on disk (`upgrade-hold.json`), so it holds across restarts, whether or not
//! `run` runs (a running one picks it up at once).

use crate::error::Result;
use crate::fsutil::FileLock;
use crate::instance::Instance;
use crate::model::{self, Hold};

/// Puts upgrades on hold (or changes the reason of the hold in force). Returns the hold.
pub fn hold(inst: &Instance, reason: Option<String>) -> Result<Hold> {
    super::owner::check_writer(inst, "hold …")?;
    let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
    let path = inst.data.hold();
    let since = Hold::load(&path)?.map_or_else(model::now, |h| h.since);
    let hold = Hold { reason, since };
    hold.save(&path)?;
    Ok(hold)
}

/// Lifts the hold. Returns the one that was in force, if any.
pub fn unhold(inst: &Instance) -> Result<Option<Hold>> {
    super::owner::check_writer(inst, "unhold")?;
    let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
    let path = inst.data.hold();
    let held = Hold::load(&path).ok().flatten();
    Hold::clear(&path)?;
    Ok(held)
}
