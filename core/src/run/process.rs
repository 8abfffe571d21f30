//! The process side of `run`: starting and stopping the daemon, the signals, the service
//! manager's notifications and the run state that `status` reads. It is what the upgrade
//! transaction gets as its [`Control`].

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::daemon::signals::Signals;
use crate::daemon::{ChildEvents, Daemon, DaemonSpec, Stopped};
use crate::error::Result;
use crate::failpoint;
use crate::model::{self, RunState};
use crate::sd_notify::Notifier;
use crate::upgrade::transaction::Control;

/// See the module docs.
#[derive(Debug)]
pub struct Process {
    pub spec: DaemonSpec,
    pub children: ChildEvents,
    pub signals: Signals,
    pub notifier: Notifier,
    pub grace: Duration,
    pub state: RunState,
    /// Where `run-state.json` goes (the instance's data directory).
    pub state_dir: PathBuf,
    pub failpoint: Option<String>,
}

impl Process {
    /// Best effort: failing to record the state must never stop supervision.
    pub fn save_state(&mut self) {
        self.state.save(&self.state_dir);
    }

    /// Starts the daemon and records it (no readiness notification: the caller knows the
    /// version to announce).
    pub fn start(&mut self) -> Result<Daemon> {
        let d = Daemon::spawn(&self.spec)?;
        self.state.daemon_pid = Some(d.pid());
        self.state.daemon_start_ticks = d.start_ticks();
        self.state.daemon_started_at = Some(model::now());
        // recorded before the log line: whoever reads the line finds the pid in the state
        self.save_state();
        tracing::info!("started {} (pid {})", self.spec.binary.display(), d.pid());
        Ok(d)
    }

    /// Stops the daemon because nymvisor was asked to stop (a second stop signal escalates).
    pub async fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) -> Stopped {
        daemon
            .stop(sig, self.grace, &mut self.children, &mut self.signals, true)
            .await
    }

    pub fn record_error(&mut self, message: String) {
        self.state.last_error = Some(message);
        self.state.last_error_at = Some(model::now());
        self.save_state();
    }

    pub fn mark_stopped(&mut self) {
        if self.state.daemon_pid.take().is_some() {
            self.state.daemon_start_ticks = None;
            self.state.daemon_started_at = None;
            self.save_state();
        }
    }
}

impl Control for Process {
    async fn stop_daemon(&mut self, daemon: Daemon) -> Stopped {
        daemon
            .stop(
                Signal::SIGINT,
                self.grace,
                &mut self.children,
                &mut self.signals,
                false,
            )
            .await
    }

    fn start_daemon(&mut self) -> Result<Daemon> {
        self.start()
    }

    fn daemon_stopped(&mut self) {
        self.mark_stopped();
    }

    async fn stop_requested(&mut self) -> Option<Signal> {
        self.signals.try_recv_stop().await
    }

    async fn next_stop(&mut self) -> Signal {
        self.signals.recv_stop().await
    }

    fn record_error(&mut self, message: String) {
        Process::record_error(self, message);
    }

    fn notify_status(&self, text: &str) {
        self.notifier.status(text);
    }

    fn notify_ready(&self, text: &str) {
        self.notifier.ready(text);
    }

    fn failpoint(&self, name: &str) {
        failpoint::hit(name, self.failpoint.as_deref());
    }
}
