//! The daemon's host: where `run` starts and stops the daemon, receives signals, tells the
//! service manager and keeps the run state that `status` reads. It is the [`Control`] the
//! upgrade transaction's live port acts through.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::daemon::signals::Signals;
use crate::daemon::{ChildEvents, Daemon, DaemonSpec, Stopped};
use crate::error::Result;
use crate::failpoint;
use crate::model::{self, RunState};
use crate::sd_notify::Notifier;
use crate::upgrade::transaction::{Control, Report};

/// See the module docs.
#[derive(Debug)]
pub struct DaemonHost {
    pub spec: DaemonSpec,
    pub children: ChildEvents,
    pub signals: Signals,
    pub notifier: Notifier,
    pub grace: Duration,
    pub state: RunState,
    /// Where `run-state.json` goes (the instance's data directory).
    pub state_dir: PathBuf,
    pub failpoint: Option<String>,
    /// What Prometheus scrapes, if anything.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// How often systemd's watchdog wants `WATCHDOG=1` and when the next is due, if it watches.
    pub watchdog: Option<(Duration, tokio::time::Instant)>,
}

impl DaemonHost {
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

    /// Stops the daemon because nymvisor was asked to stop (a second stop signal escalates):
    /// the service manager is told (`STOPPING=1`), and the log says whether it stopped or had
    /// to be killed. The one way nymvisor stops the node for good, wherever the signal found it.
    pub async fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) -> Stopped {
        tracing::info!("{sig} received: stopping the daemon");
        self.notifier.stopping();
        let stopped = daemon
            .stop(sig, self.grace, &mut self.children, &mut self.signals, true)
            .await;
        self.mark_stopped();
        if stopped.forced {
            tracing::warn!("daemon killed ({}); nymvisor exits", stopped.exit);
        } else {
            tracing::info!("daemon stopped ({}); nymvisor exits", stopped.exit);
        }
        stopped
    }

    pub fn record_error(&mut self, message: String) {
        self.state.last_error = Some(message);
        self.state.last_error_at = Some(model::now());
        self.save_state();
    }

    /// Updates the metrics, when they are served.
    pub fn metrics(&self, f: impl FnOnce(&crate::metrics::Metrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }

    pub fn mark_stopped(&mut self) {
        if self.forget_daemon() {
            self.save_state();
        }
    }

    /// The daemon is gone, in memory and the metrics; whether the run state changed.
    fn forget_daemon(&mut self) -> bool {
        self.metrics(|m| m.daemon_stopped());
        let had = self.state.daemon_pid.take().is_some();
        self.state.daemon_start_ticks = None;
        self.state.daemon_started_at = None;
        had
    }
}

impl DaemonHost {
    /// When the next `WATCHDOG=1` is due, if systemd's watchdog watches. Only a loop that is
    /// alive gets to send it: a stuck supervisor sends nothing, and systemd restarts it.
    pub fn watchdog_due(&self) -> Option<tokio::time::Instant> {
        self.watchdog.map(|(_, at)| at)
    }

    /// Awaits `work` while the watchdog is fed; a stop signal abandons it (`Err`, the signal:
    /// the caller decides what stopping means where it stands).
    pub async fn watched<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> std::result::Result<T, Signal> {
        crate::upgrade::transaction::watched(self, work).await
    }

    /// Sends `WATCHDOG=1` and schedules the next.
    pub fn watchdog_ping(&mut self) {
        if let Some((every, at)) = self.watchdog.as_mut() {
            self.notifier.watchdog();
            *at = tokio::time::Instant::now() + *every;
        }
    }
}

impl Report for DaemonHost {
    fn record_error(&mut self, message: String) {
        DaemonHost::record_error(self, message);
    }

    fn failpoint(&self, name: &str) {
        failpoint::hit(name, self.failpoint.as_deref());
    }
}

impl Control for DaemonHost {
    fn watchdog_due(&self) -> Option<tokio::time::Instant> {
        DaemonHost::watchdog_due(self)
    }

    fn watchdog_ping(&mut self) {
        DaemonHost::watchdog_ping(self);
    }

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

    fn daemon_stopped_unsaved(&mut self) {
        self.forget_daemon();
    }

    async fn stop_requested(&mut self) -> Option<Signal> {
        self.signals.try_recv_stop().await
    }

    async fn next_stop(&mut self) -> Signal {
        self.signals.recv_stop().await
    }

    fn notify_status(&self, text: &str) {
        self.notifier.status(text);
    }

    fn notify_ready(&self, text: &str) {
        self.notifier.ready(text);
    }

    fn active_failpoint(&self) -> Option<&str> {
        self.failpoint.as_deref()
    }

    async fn stop_for_exit(&mut self, daemon: Daemon, sig: Signal) -> Stopped {
        DaemonHost::stop_for_exit(self, daemon, sig).await
    }
}
