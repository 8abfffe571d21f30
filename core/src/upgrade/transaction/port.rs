//! The port of the upgrade transaction: every effect its steps have on the world — the daemon,
//! the service manager, the daemon's data, the records — as one trait. `run` provides the live
//! one ([`super::LivePort`]); the unit tests a fake that records the calls and fails where told.
//!
//! The steps decide; the port acts and says what it did in the log (with the details only it
//! knows, such as a backup's size). Types of the world (a running daemon, a live copy of its
//! data) are the port's own, so a fake needs no process and no files.

use std::future::Future;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::error::Result;
use crate::model::Journal;

/// How a step that waits (a stop, a backup) ended when a stop signal may cut it short.
#[derive(Debug)]
pub enum Waited<T> {
    Done(T),
    /// A stop signal arrived: the work was abandoned (and cleaned up).
    Interrupted(Signal),
}

/// The old daemon was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halted {
    /// How it ended, in words (for the log).
    pub exit: String,
    /// A stop signal that arrived while it was being stopped: nothing is to be started.
    pub signal: Option<Signal>,
}

/// Why the last word before the stop was no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The operator withdrew the upgrade meanwhile (cancelled, held) or its window closed.
    Withdrawn(String),
    /// The intent could not be recorded (the journal): nothing irreversible may happen.
    Unrecorded(String),
}

/// See the module docs.
pub trait Port {
    /// A running daemon.
    type Daemon;
    /// A copy of the daemon's data taken while it runs, completed after the stop.
    type Copy: Send;

    /// The service manager's status line.
    fn announce(&mut self, text: &str);
    /// The new daemon runs: readiness for the service manager.
    fn ready(&mut self, text: &str);
    /// Records the last error (for `status`).
    fn report_error(&mut self, message: String);
    /// A crash-test fail point (kills nymvisor when it is the active one).
    fn failpoint(&self, name: &str);

    /// The pid of a running daemon (for the log).
    fn pid(daemon: &Self::Daemon) -> u32;
    /// Stops the old daemon for the upgrade, noting a stop signal that arrives meanwhile.
    fn stop(&mut self, daemon: Self::Daemon) -> impl Future<Output = Halted>;
    /// Stops the old daemon because nymvisor exits on `sig` (as when no upgrade runs).
    fn stop_for_exit(&mut self, daemon: Self::Daemon, sig: Signal) -> impl Future<Output = ()>;
    /// Starts the daemon from `current`.
    fn start(&mut self) -> Result<Self::Daemon>;
    /// A stop signal that has already arrived, if any (never waits).
    fn stop_requested(&mut self) -> impl Future<Output = Option<Signal>>;

    /// Whether a backup is taken (backups are on).
    fn backups_on(&self) -> bool;
    /// Copies the daemon's data for upgrade `name` while it runs; `None`: no pre-copy here
    /// (off, or the strategy cannot).
    fn precopy(&mut self, name: &str) -> impl Future<Output = Option<Result<Waited<Self::Copy>>>>;
    /// Takes the backup of upgrade `name` (the daemon is stopped), completing `copy` when
    /// there is one. Only asked when [`Port::backups_on`].
    fn backup(
        &mut self,
        name: &str,
        copy: Option<Self::Copy>,
    ) -> impl Future<Output = Result<Waited<PathBuf>>>;
    /// Retires old backups once the new daemon runs (not downtime).
    fn retire(&mut self, made: PathBuf) -> impl Future<Output = ()>;

    /// Where `current` points now.
    fn current(&self) -> Result<PathBuf>;
    /// The last word before the stop, under the plan lock: the upgrade is still wanted, and
    /// its intent is recorded (`journal`, at [`crate::model::Stage::Stopping`]).
    fn gate(&mut self, journal: &Journal) -> std::result::Result<(), Refused>;
    /// Records the journal at its stage.
    fn journal(&mut self, journal: &Journal) -> Result<()>;
    /// Removes the journal (an upgrade abandoned before its swap, or done).
    fn clear_journal(&mut self);
    /// Points `current` at upgrade `name`: the commit point. Returns the new target.
    fn swap(&mut self, name: &str) -> Result<PathBuf>;
    /// Records the upgrade in place: plan, history, current version.
    fn record(&mut self, journal: &Journal) -> Result<()>;
}
