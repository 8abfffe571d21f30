//! The upgrade transaction — pre-copy → gate → stop → backup → commit (the swap) → restart →
//! record → settle — and the rollback transaction.
//!
//! The single commit point is the rename of the `current` symlink. The intent is recorded in
//! the journal (`upgrade-journal.json`) before each irreversible step: before the commit point an
//! interrupted upgrade is abandoned (and applied again later); after it, it is finished
//! (`super::recover`).
//!
//! [`apply`] calls the named steps in order (`steps.rs`); each may end the transaction early
//! with its [`Applied`]. Every effect goes through the [`Port`] (`port.rs`): [`LivePort`]
//! (`live.rs`) is the real one over the instance's files and the process side ([`Control`]);
//! the unit tests (`tests.rs`) use a fake that records its calls.

mod backups;
mod live;
mod port;
mod records;
mod rollback;
mod steps;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use nix::sys::signal::Signal;

pub use live::LivePort;
pub use port::{Halted, Port, Refused, Waited};
pub use records::{record_upgrade, update_plan};
pub use rollback::rollback;

use crate::backup::BackupStrategy;
use crate::daemon::{Daemon, Stopped};
use crate::error::Result;
use crate::model::{Journal, UpgradeInfo};
use crate::progress::ProgressSink;
use crate::refusal::Refusal;

/// What a rollback needs of the process side: reporting and the crash-test fail points. The
/// `rollback` command, run without a supervisor, provides just this.
pub trait Report {
    /// Records the last error (for `status`).
    fn record_error(&mut self, message: String);
    /// A crash-test fail point (kills nymvisor when it is the active one).
    fn failpoint(&self, name: &str);
}

/// The process side of `run`, as the live port and the long waits use it.
pub trait Control: Report {
    /// Stops the running daemon for an upgrade (SIGINT, the grace period, then SIGKILL), noting
    /// a stop signal that arrives meanwhile.
    fn stop_daemon(&mut self, daemon: Daemon) -> impl Future<Output = Stopped>;
    /// Stops the running daemon because nymvisor exits on `sig` (as when no upgrade runs).
    fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) -> impl Future<Output = Stopped>;
    /// Starts the daemon from `current`.
    fn start_daemon(&mut self) -> Result<Daemon>;
    /// The daemon is not running any more (for the run state).
    fn daemon_stopped(&mut self);
    /// [`Control::daemon_stopped`] inside an upgrade's downtime: the run state is written with
    /// the new daemon's start, not now (it only informs `status`).
    fn daemon_stopped_unsaved(&mut self) {
        self.daemon_stopped();
    }
    /// A stop signal that has already arrived, if any (never waits).
    fn stop_requested(&mut self) -> impl Future<Output = Option<Signal>>;
    /// Resolves at the next stop signal. Cancel-safe.
    fn next_stop(&mut self) -> impl Future<Output = Signal>;
    /// A status line for the service manager.
    fn notify_status(&self, text: &str);
    /// The daemon runs: readiness for the service manager.
    fn notify_ready(&self, text: &str);
    /// The active crash-test fail point, for those inside blocking work.
    fn active_failpoint(&self) -> Option<&str>;
    /// When the service manager's watchdog wants the next keep-alive, if it watches.
    fn watchdog_due(&self) -> Option<tokio::time::Instant>;
    /// Sends the watchdog keep-alive (long steps wait for it alongside their work).
    fn watchdog_ping(&mut self);
}

/// Milliseconds since `since`, for the steps' log lines.
fn ms(since: std::time::Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Microseconds since `since`: the steps inside the downtime take well under a millisecond.
fn us(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// Awaits `work` while the service manager's watchdog is fed; a stop signal abandons it
/// (`Err`, the signal: the caller decides what stopping means where it stands). The one way
/// nymvisor waits for long work (a prepare, a recheck, a backup) outside its event loop.
pub async fn watched<C: Control, T>(
    control: &mut C,
    work: impl Future<Output = T>,
) -> std::result::Result<T, Signal> {
    tokio::pin!(work);
    loop {
        let watchdog = control.watchdog_due();
        tokio::select! {
            r = &mut work => return Ok(r),
            sig = control.next_stop() => return Err(sig),
            () = sleep_until_opt(watchdog) => control.watchdog_ping(),
        }
    }
}

/// Sleeps until `at`; never resolves for `None`.
pub async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How the daemon's data is backed up during an upgrade (and restored by a rollback).
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The backup strategy; `None`: backups are off.
    pub backup: Option<Arc<dyn BackupStrategy>>,
    /// Free space that must remain after a backup, in bytes.
    pub backup_min_free: u64,
    /// Copy the data while the old daemon runs, and only what changed after the stop
    /// (strategies that support it).
    pub precopy: bool,
    pub progress: Option<Arc<dyn ProgressSink>>,
}

/// What an apply is about.
#[derive(Debug, Clone, Copy)]
pub struct Upgrade<'a> {
    pub info: &'a UpgradeInfo,
    /// What runs now (the plan's `current`).
    pub previous: &'a UpgradeInfo,
    pub daemon_name: &'a str,
    /// `restart_after_upgrade`: the new version is started (unless the upgrade is `manual`).
    pub restart_after_upgrade: bool,
}

impl Upgrade<'_> {
    /// Whether the new daemon is started after the swap.
    pub fn restart_wanted(&self) -> bool {
        !self.info.manual && self.restart_after_upgrade
    }
}

/// How an apply ended. `D` is the port's daemon.
#[derive(Debug)]
pub enum Applied<D = Daemon> {
    /// The upgrade is in place. The new daemon runs (`None` if no restart is wanted, or it
    /// could not be started), and `confirming` holds what a rollback needs until it is
    /// confirmed.
    Done {
        daemon: Option<D>,
        restart_wanted: bool,
        confirming: Option<Box<Journal>>,
        /// From the old daemon's stop to the new one's start.
        downtime: Option<std::time::Duration>,
        /// The upgrade could not be fully recorded (plan, history): what to record again.
        unrecorded: Option<Box<Journal>>,
    },
    /// A stop signal arrived: nothing new was started; nymvisor must exit.
    Interrupted(Signal),
    /// The operator withdrew it during the pre-copy (cancelled it, put upgrades on hold) or its
    /// maintenance window closed: nothing was stopped; the old daemon runs on.
    Withdrawn { daemon: Option<D>, why: String },
    /// It failed before the swap: the old binary is still `current` and the old daemon must be
    /// started again if `daemon` is `None`.
    Aborted { daemon: Option<D>, refusal: Refusal },
}

/// Applies the prepared upgrade in place of what runs. `daemon` is the running old daemon, if
/// any.
pub async fn apply<P: Port>(
    port: &mut P,
    up: Upgrade<'_>,
    daemon: Option<P::Daemon>,
) -> Applied<P::Daemon> {
    match steps::run(port, up, daemon).await {
        Ok(applied) | Err(applied) => applied,
    }
}
