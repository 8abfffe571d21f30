//! The named steps of an upgrade, in order. Each returns what the next needs, or (`Err`) how
//! the transaction ends right there; [`run`] chains them.

use std::time::{Duration, Instant};

use super::port::{Halted, Port, Refused, Waited};
use super::{Applied, Upgrade, ms, us};
use crate::model::{self, Journal, Stage};
use crate::refusal::Refusal;

/// A step's result: go on with `T`, or end with this.
type Step<T, D> = Result<T, Applied<D>>;

/// The whole transaction.
pub(super) async fn run<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    daemon: Option<P::Daemon>,
) -> Step<Applied<P::Daemon>, P::Daemon> {
    let total = Instant::now();
    let (mut journal, daemon) = begin(port, up, daemon)?;
    let (daemon, copy) = precopy(port, up, daemon).await?;
    let daemon = gate(port, &journal, daemon)?;
    let downtime = stop(port, up, daemon).await?;
    backup(port, up, &mut journal, copy).await?;
    commit(port, up).await?;
    let (daemon, stop_now, down_for) = restart(port, up, downtime).await;
    let unrecorded = record(port, up, &journal);
    Ok(settle(
        port, up, journal, daemon, stop_now, down_for, unrecorded, total,
    )
    .await)
}

/// An upgrade abandoned before its swap: the journal goes, the old binary stays `current`
/// and the old daemon is started again.
fn abort<P: Port, T>(port: &mut P, reason: String) -> Step<T, P::Daemon> {
    port.clear_journal();
    Err(Applied::Aborted {
        daemon: None,
        refusal: Refusal::transient(reason),
    })
}

/// The journal of the upgrade, from what runs now.
fn begin<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    daemon: Option<P::Daemon>,
) -> Step<(Journal, Option<P::Daemon>), P::Daemon> {
    let previous_link = match port.current() {
        Ok(link) => link,
        Err(e) => {
            return Err(Applied::Aborted {
                daemon,
                refusal: Refusal::transient(e.to_string()),
            });
        }
    };
    let journal = Journal {
        stage: Stage::Stopping,
        upgrade: up.info.clone(),
        previous: up.previous.clone(),
        previous_link,
        backup: None,
        started_at: model::now(),
    };
    tracing::info!(upgrade = %up.info.name, "upgrading {} {} → {}", up.daemon_name, up.previous.version, up.info.version);
    port.announce(&format!(
        "upgrading to {} {}",
        up.daemon_name, up.info.version
    ));
    Ok((journal, daemon))
}

/// The bulk of the backup, while the old daemon still serves. A stop signal stops the node as
/// it would without an upgrade; a failure leaves the backup to the step after the stop.
async fn precopy<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    daemon: Option<P::Daemon>,
) -> Step<(Option<P::Daemon>, Option<P::Copy>), P::Daemon> {
    if daemon.is_none() {
        return Ok((daemon, None));
    }
    match port.precopy(&up.info.name).await {
        None => Ok((daemon, None)),
        Some(Ok(Waited::Done(copy))) => Ok((daemon, Some(copy))),
        Some(Ok(Waited::Interrupted(sig))) => {
            // nothing is in place yet: the node stops as it would without an upgrade
            if let Some(d) = daemon {
                port.stop_for_exit(d, sig).await;
            }
            Err(Applied::Interrupted(sig))
        }
        Some(Err(e)) => {
            tracing::warn!(upgrade = %up.info.name, stage = "precopy", "the live copy of the daemon's data failed: {e}; the backup is taken after the stop instead");
            Ok((daemon, None))
        }
    }
}

/// The last word before the stop (the pre-copy may have taken minutes): still wanted, and the
/// intent recorded — or the old daemon runs on.
fn gate<P: Port>(
    port: &mut P,
    journal: &Journal,
    daemon: Option<P::Daemon>,
) -> Step<Option<P::Daemon>, P::Daemon> {
    match port.gate(journal) {
        Ok(()) => {
            port.failpoint("before-stop");
            Ok(daemon)
        }
        Err(Refused::Withdrawn(why)) => Err(Applied::Withdrawn { daemon, why }),
        // nothing irreversible has happened: the daemon keeps running
        Err(Refused::Unrecorded(e)) => Err(Applied::Aborted {
            daemon,
            refusal: Refusal::transient(format!("cannot record the upgrade's intent: {e}")),
        }),
    }
}

/// Stops the old daemon; the downtime starts here. A stop signal meanwhile: nothing is
/// started, the upgrade waits.
async fn stop<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    daemon: Option<P::Daemon>,
) -> Step<Instant, P::Daemon> {
    let downtime = Instant::now();
    if let Some(d) = daemon {
        let t = Instant::now();
        let Halted { exit, signal } = port.stop(d).await;
        tracing::info!(upgrade = %up.info.name, stage = "stop", elapsed_ms = ms(t), "stopped the old daemon ({exit})");
        if let Some(sig) = signal {
            port.clear_journal();
            tracing::warn!(upgrade = %up.info.name, "{sig} received while the old daemon was stopping: upgrade abandoned before the swap, nymvisor exits");
            return Err(Applied::Interrupted(sig));
        }
    }
    port.failpoint("after-stop");
    Ok(downtime)
}

/// Backs up the daemon's data (completing the pre-copy, if any). A failure abandons the
/// upgrade; a stop signal abandons it and nymvisor exits.
async fn backup<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    journal: &mut Journal,
    copy: Option<P::Copy>,
) -> Step<(), P::Daemon> {
    if !port.backups_on() {
        tracing::info!(upgrade = %up.info.name, stage = "backup", "backups are disabled; skipping");
        return Ok(());
    }
    journal.stage = Stage::BackingUp;
    if let Err(e) = port.journal(journal) {
        return abort(port, format!("cannot record the upgrade's progress: {e}"));
    }
    match port.backup(&up.info.name, copy).await {
        Ok(Waited::Done(path)) => journal.backup = Some(path),
        Ok(Waited::Interrupted(sig)) => {
            port.clear_journal();
            return Err(Applied::Interrupted(sig));
        }
        Err(e) => return abort(port, format!("backup failed: {e}")),
    }
    // the backup is named in the journal before the swap: an upgrade finished by the recovery
    // must still be able to roll back with its data
    journal.stage = Stage::Swapping;
    if let Err(e) = port.journal(journal) {
        return abort(port, format!("cannot record the upgrade's progress: {e}"));
    }
    port.failpoint("after-backup");
    Ok(())
}

/// The commit point: `current` swapped to the new binary. A stop asked for until now abandons
/// the upgrade.
async fn commit<P: Port>(port: &mut P, up: Upgrade<'_>) -> Step<(), P::Daemon> {
    if let Some(sig) = port.stop_requested().await {
        port.clear_journal();
        tracing::warn!(upgrade = %up.info.name, "{sig} received before the swap: upgrade abandoned, nymvisor exits");
        return Err(Applied::Interrupted(sig));
    }
    // no journal write here, inside the downtime: the swap records itself — recovery tells
    // an upgrade past its commit point by where `current` points (`super::super::recover`),
    // and the journal written at the gate (and after the backup, with its path) already names
    // the upgrade
    port.failpoint("before-swap");
    let t = Instant::now();
    match port.swap(&up.info.name) {
        Ok(target) => {
            tracing::info!(upgrade = %up.info.name, stage = "swap", elapsed_ms = ms(t), elapsed_us = us(t), "current -> {}", target.display())
        }
        Err(e) => return abort(port, e.to_string()),
    }
    port.failpoint("after-swap");
    Ok(())
}

/// Starts the new version (unless it is not wanted, or a stop signal came after the swap: the
/// next `run` watches its start as the confirmation). A start failure counts as a startup
/// failure of the new binary (and may roll back).
async fn restart<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    downtime: Instant,
) -> (
    Option<P::Daemon>,
    Option<nix::sys::signal::Signal>,
    Option<Duration>,
) {
    let stop_now = port.stop_requested().await;
    if let Some(sig) = stop_now {
        tracing::warn!(upgrade = %up.info.name, "{sig} received after the swap: the upgrade is recorded but the new daemon is not started; nymvisor exits");
    }
    if !up.restart_wanted() || stop_now.is_some() {
        return (None, stop_now, None);
    }
    let t = Instant::now();
    match port.start() {
        Ok(d) => {
            let down_for = downtime.elapsed();
            tracing::info!(upgrade = %up.info.name, stage = "restart", elapsed_ms = ms(t), elapsed_us = us(t), downtime_ms = ms(downtime), "started {} {} (pid {})", up.daemon_name, up.info.version, P::pid(&d));
            (Some(d), None, Some(down_for))
        }
        Err(e) => {
            tracing::error!(upgrade = %up.info.name, stage = "restart", "{e}");
            port.report_error(e.to_string());
            (None, None, None)
        }
    }
}

/// Records the upgrade in place. It is in place whatever happens here: a failure is reported
/// and handed back to be retried (it is never applied again), not fatal.
fn record<P: Port>(port: &mut P, up: Upgrade<'_>, journal: &Journal) -> Option<Box<Journal>> {
    let t = Instant::now();
    let name = &up.info.name;
    match port.record(journal) {
        Ok(()) => {
            tracing::info!(upgrade = %name, stage = "record", elapsed_ms = ms(t), "recorded the upgrade in the plan, history and current-version-info.json");
            None
        }
        Err(e) => {
            port.report_error(format!("upgrade `{name}` is in place but could not be fully recorded: {e}; nymvisor retries the record (it does not apply the upgrade again)"));
            tracing::error!(upgrade = %name, stage = "record", "the upgrade is in place but could not be fully recorded: {e}; nymvisor retries the record (it does not apply the upgrade again)");
            Some(Box::new(journal.clone()))
        }
    }
}

/// After the record: old backups retired, readiness, and the journal left for the
/// confirmation (or removed when nothing is to be confirmed).
#[allow(clippy::too_many_arguments)]
async fn settle<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    mut journal: Journal,
    daemon: Option<P::Daemon>,
    stop_now: Option<nix::sys::signal::Signal>,
    down_for: Option<Duration>,
    unrecorded: Option<Box<Journal>>,
    total: Instant,
) -> Applied<P::Daemon> {
    let name = &up.info.name;
    port.failpoint("after-record");
    // retention once the new daemon runs: removing old backups takes time that is not downtime
    if let Some(made) = journal.backup.clone() {
        port.retire(made).await;
    }
    if let Some(d) = &daemon {
        port.ready(&format!(
            "running {} {} (pid {})",
            up.daemon_name,
            up.info.version,
            P::pid(d)
        ));
    }
    journal.stage = Stage::Confirming;
    if let Some(sig) = stop_now {
        if let Err(e) = port.journal(&journal) {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        return Applied::Interrupted(sig);
    }
    let restart_wanted = up.restart_wanted();
    let confirming = if restart_wanted {
        if let Err(e) = port.journal(&journal) {
            tracing::warn!(upgrade = %name, "could not update the upgrade journal: {e}");
        }
        Some(Box::new(journal))
    } else {
        if up.info.manual {
            tracing::info!(upgrade = %name, "manual upgrade: the binary is swapped; start the daemon yourself (e.g. restart nymvisor)");
        } else {
            tracing::info!(upgrade = %name, "restart_after_upgrade is off: nymvisor stops here");
        }
        port.clear_journal();
        None
    };
    tracing::info!(upgrade = %name, elapsed_ms = ms(total), "upgrade applied");
    Applied::Done {
        daemon,
        restart_wanted,
        confirming,
        downtime: down_for,
        unrecorded,
    }
}
