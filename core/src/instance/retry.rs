//! `nymvisor retry <name> [--now]`: considers an upgrade again at once — by a running nymvisor
//! within a second, else at the next start:
//! - a refused plan entry: its refusal is forgotten; one that came from upstream is taken out
//!   of the plan, so the next poll (at once) queues what upstream offers now rather than the
//!   stale entry (a release fixed upstream is not checked against the broken document);
//! - a refused upstream offer: forgotten, and upstream is asked again;
//! - a cancelled upgrade: queued again as it was;
//! - a rolled-back upgrade (automatically or by `nymvisor rollback`): queued again from its
//!   kept binary (verified again before it is applied), honouring spread and windows unless
//!   `now`.

use crate::config::UpstreamSource;
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::instance::Instance;
use crate::model::refusals::Origin;
use crate::model::{Journal, Outcome, RefusalRecord, Refusals, UpgradeInfo};

/// What `retry` did.
#[derive(Debug, Clone)]
pub enum Retried {
    /// A refusal (or cancellation) was forgotten; `requeued` when the entry is queued again,
    /// `repoll` when upstream is asked for the release again.
    Refusal {
        record: Box<RefusalRecord>,
        requeued: bool,
        repoll: bool,
    },
    /// A rolled-back upgrade is queued again.
    RolledBack(Box<UpgradeInfo>),
}

/// As `add-upgrade --now`: due now, whatever the spread, windows or hold.
fn at_once(entry: &mut UpgradeInfo) {
    entry.immediate = true;
    entry.upgrade_time = crate::model::now();
}

/// Considers `name` again; `now`: a re-queued upgrade is applied as soon as it is verified
/// (as `add-upgrade --now`: spread, windows and a hold do not delay it).
pub fn retry(inst: &Instance, name: &str, now: bool) -> Result<Retried> {
    super::owner::check_writer(inst, &format!("retry {name}"))?;
    crate::upgrade::policy::check_name(name).map_err(|r| Error::UpgradeRefused(r.reason))?;
    let _lock = FileLock::acquire_blocking(&inst.data.plan_lock())?;
    let path = inst.data.refusals();
    let mut refusals = Refusals::load(&path)?;
    let mut plan = inst.plan()?;
    let polls = inst.config.nymvisor.upstream_source != UpstreamSource::None;
    if let Some(record) = refusals.get(name).cloned() {
        let mut requeued = false;
        let mut repoll = record.origin == Origin::Upstream && polls;
        match record.origin {
            Origin::Cancelled => {
                if plan.queued(name).is_none() {
                    let mut entry = record.upgrade.clone();
                    if now {
                        at_once(&mut entry);
                    }
                    plan.insert(entry);
                    requeued = true;
                }
            }
            Origin::Plan | Origin::Hook => {
                if let Some(queued) = plan.queued(name).cloned() {
                    if !queued.platforms.is_empty() && polls {
                        // what upstream offers now is queued by the next poll
                        plan.remove(name);
                        repoll = true;
                    } else if now {
                        let mut entry = queued;
                        at_once(&mut entry);
                        plan.remove(name);
                        plan.insert(entry);
                    }
                }
            }
            Origin::Upstream => {}
        }
        refusals.clear(name);
        // the plan first: a running nymvisor that sees the refusal go finds the plan as meant
        plan.save(&inst.data.plan())?;
        refusals.save(&path)?;
        return Ok(Retried::Refusal {
            record: Box::new(record),
            requeued,
            repoll,
        });
    }
    let history = inst.history()?;
    let rolled_back = history
        .history
        .iter()
        .rev()
        .find(|h| h.info.name == name)
        .filter(|h| h.outcome == Some(Outcome::RolledBack));
    let Some(entry) = rolled_back else {
        let refused: Vec<_> = refusals.refusals.iter().map(|r| r.name.as_str()).collect();
        // names whose last record is a rollback
        let mut back: Vec<&str> = Vec::new();
        for h in history.history.iter().rev() {
            let n = h.info.name.as_str();
            if !back.contains(&n)
                && h.outcome == Some(Outcome::RolledBack)
                && !history
                    .history
                    .iter()
                    .rev()
                    .take_while(|l| !std::ptr::eq(*l, h))
                    .any(|l| l.info.name == n)
            {
                back.push(n);
            }
        }
        let list = |v: Vec<&str>| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        return Err(Error::UpgradeRefused(format!(
            "no refused, cancelled or rolled-back upgrade `{name}` (refused or cancelled: {}; rolled back: {})",
            list(refused),
            list(back)
        )));
    };
    if plan.current.name == name {
        return Err(Error::UpgradeRefused(format!(
            "`{name}` is the version that runs now"
        )));
    }
    if Journal::load(inst.data.root())?.is_some() {
        return Err(Error::UpgradeRefused(
            "an upgrade is being applied or awaits its confirmation; retry once it is confirmed or rolled back".into(),
        ));
    }
    if plan.queued(name).is_some() {
        return Err(Error::UpgradeRefused(format!(
            "`{name}` is queued already (`nymvisor status` shows what it waits for)"
        )));
    }
    // the entry as it was queued, from its own directory (else as the history recorded it)
    let mut info = fsutil::read_json_opt::<UpgradeInfo>(&inst.data.upgrade_info(name))
        .ok()
        .flatten()
        .filter(|i| i.name == name && i.version == entry.info.version)
        .unwrap_or_else(|| entry.info.clone());
    let bin = inst.data.upgrade_bin(name);
    if !bin.is_file() && info.platforms.is_empty() {
        return Err(Error::UpgradeRefused(format!(
            "the binary of `{name}` is gone ({} is missing) and it has no download URL; queue it again with `nymvisor add-upgrade <BINARY> --upgrade-name {name} --force`",
            bin.display()
        )));
    }
    info.immediate = false;
    if now {
        at_once(&mut info);
    }
    info.allow_downgrade |= entry.info.allow_downgrade;
    plan.insert(info.clone());
    plan.save(&inst.data.plan())?;
    Ok(Retried::RolledBack(Box::new(info)))
}
