//! The daemon's health endpoint, probed while it runs (with `daemon.health_url`):
//! - **gated confirmation**: a new version is confirmed by its first healthy answer within the
//!   startup period; none by the end of it is a failed start, rolled back (when enabled) as a
//!   crash would be;
//! - **liveness**: outside a confirmation and after the daemon's startup period,
//!   `health_failure_threshold` failed probes in a row restart the daemon (a hung node is
//!   restarted like a crashed one, and counts for the restart policy).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{RunOutcome, Step, Supervisor};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::health::{Health, HealthProbe};
use crate::model::{self, run_state::HealthState};
use crate::upgrade::transaction::{self, Control};

/// First probe after a start: soon, so a healthy new version is confirmed early.
const FIRST_PROBE: Duration = Duration::from_secs(1);

/// The probe's schedule and what it said.
#[derive(Debug)]
pub struct Monitor {
    probe: Arc<dyn HealthProbe>,
    interval: Duration,
    next: Option<Instant>,
    task: Option<JoinHandle<Health>>,
    /// Failed probes in a row.
    pub failures: u32,
    /// A healthy answer came since the daemon's start.
    pub seen_healthy: bool,
    pub last: Option<Health>,
    /// While a new version awaits confirmation: the build it must report.
    pub expect: Option<crate::health::Expected>,
}

impl Monitor {
    pub fn new(probe: Arc<dyn HealthProbe>, interval: Duration) -> Monitor {
        Monitor {
            probe,
            interval,
            next: None,
            task: None,
            failures: 0,
            seen_healthy: false,
            last: None,
            expect: None,
        }
    }

    /// A daemon was started: probing starts over.
    /// The probed endpoint, in words.
    pub fn describe(&self) -> String {
        self.probe.describe()
    }

    pub fn daemon_started(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.failures = 0;
        self.seen_healthy = false;
        self.next = Some(Instant::now() + FIRST_PROBE.min(self.interval));
    }

    /// The daemon is gone: nothing to probe.
    pub fn daemon_stopped(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.next = None;
    }

    /// When the next probe is due (`None`: one is in flight, or no daemon).
    pub fn due_at(&self) -> Option<Instant> {
        self.task.is_none().then_some(self.next).flatten()
    }

    pub fn start(&mut self) {
        let (probe, expect) = (self.probe.clone(), self.expect.clone());
        self.task = Some(tokio::spawn(
            async move { probe.probe(expect.as_ref()).await },
        ));
        self.next = Some(Instant::now() + self.interval);
    }

    /// The probe in flight, once it answered; never resolves without one. Cancel-safe.
    pub async fn finished(&mut self) -> Health {
        let result = match self.task.as_mut() {
            Some(t) => t.await,
            None => std::future::pending().await,
        };
        self.task = None;
        result.unwrap_or_else(|e| Health {
            healthy: false,
            answer: format!("the probe task failed: {e}"),
        })
    }

    fn record(&mut self, h: &Health) {
        if h.healthy {
            self.failures = 0;
            self.seen_healthy = true;
        } else {
            self.failures += 1;
        }
        self.last = Some(h.clone());
    }
}

impl Supervisor {
    /// An answer of the health probe.
    pub(super) async fn on_health(&mut self, h: Health, running: Daemon) -> Result<Step> {
        let Some(monitor) = self.health.as_mut() else {
            return Ok(Step::Continue(Some(running)));
        };
        let was = monitor.last.as_ref().map(|l| l.healthy);
        // a node takes a while to open its port: no warning before its first answer within
        // its startup period, and one line when it first answers
        let first_answer = !monitor.seen_healthy && h.healthy;
        let coming_up = !monitor.seen_healthy
            && running.uptime() < self.inst.config.daemon.startup_period_duration;
        monitor.record(&h);
        let failures = monitor.failures;
        let url = monitor.probe.describe();
        match (was, h.healthy) {
            (_, false) if coming_up => {
                tracing::debug!(
                    "the daemon does not answer its health probe {url} yet: {}",
                    h.answer
                )
            }
            (Some(true) | None, false) => {
                tracing::warn!("the daemon's health probe {url} failed: {}", h.answer)
            }
            (_, true) if first_answer => tracing::info!(
                "the daemon answers its health probe {url} ({}, {} s after its start)",
                h.answer,
                running.uptime().as_secs()
            ),
            (Some(false), true) => tracing::info!("the daemon is healthy again ({})", h.answer),
            _ => {}
        }
        self.process.metrics(|m| m.health(h.healthy, failures));
        self.process.state.health = Some(HealthState {
            healthy: h.healthy,
            last_answer: h.answer.clone(),
            last_probe_at: model::now(),
            consecutive_failures: failures,
        });
        self.process.save_state();
        if h.healthy {
            self.liveness_restarts = 0;
        }
        if self.book.confirming.is_some() {
            if h.healthy {
                let after = running.uptime().as_secs();
                self.confirm(&format!("answered healthy after {after} s ({})", h.answer))?;
            }
            return Ok(Step::Continue(Some(running)));
        }
        let cfg = &self.inst.config.daemon;
        if h.healthy
            || failures < cfg.health_failure_threshold
            || running.uptime() < cfg.startup_period_duration
        {
            return Ok(Step::Continue(Some(running)));
        }
        tracing::warn!(
            "the daemon failed {failures} health probes in a row (last: {}); restarting it",
            h.answer
        );
        let uptime = running.uptime();
        let stopped = self.process.stop_daemon(running).await;
        self.process.mark_stopped();
        if let Some(h) = self.health.as_mut() {
            h.daemon_stopped();
        }
        if let Some(sig) = stopped.stop_signal {
            return Ok(Step::Exit(RunOutcome::Stopped(sig)));
        }
        let what = format!(
            "did not answer its health probe {failures} times in a row (last: {})",
            h.answer
        );
        let _ = uptime;
        // liveness restarts back off (doubling from the restart delay) and, without a healthy
        // answer in between, give up after as many as the startup failures allowed
        self.liveness_restarts += 1;
        let limit = self.inst.config.daemon.max_startup_failures.max(1);
        self.process.record_error(format!("daemon {what}"));
        if !self.inst.config.daemon.restart_on_failure {
            return Err(crate::error::Error::DaemonFailed(format!(
                "the daemon {what} and restart_on_failure is off"
            )));
        }
        if self.liveness_restarts > limit {
            return Err(crate::error::Error::DaemonFailed(format!(
                "the daemon {what}, after {limit} restarts without a healthy answer; giving up"
            )));
        }
        let delay = super::failure::backoff(
            self.inst.config.daemon.failure_restart_delay,
            self.liveness_restarts,
        );
        tracing::info!(
            "restarting the daemon in {} (liveness restart {} of {limit})",
            humantime::format_duration(delay),
            self.liveness_restarts
        );
        Ok(
            match self
                .restart_after(delay, self.liveness_restarts, limit)
                .await?
            {
                Some(outcome) => Step::Exit(outcome),
                None => Step::Continue(None),
            },
        )
    }

    /// The startup period of a new version ended. With a health URL it is confirmed only if it
    /// answered healthy; otherwise it failed to start, and is rolled back when enabled.
    pub(super) async fn end_of_startup(&mut self, running: Daemon) -> Result<Step> {
        let unhealthy = self.health.as_ref().filter(|m| !m.seen_healthy).map(|m| {
            m.last
                .as_ref()
                .map(|h| h.answer.clone())
                .unwrap_or_else(|| "no answer yet".to_owned())
        });
        let Some(last) = unhealthy.filter(|_| self.book.confirming.is_some()) else {
            self.confirm("ran for its startup period")?;
            return Ok(Step::Continue(Some(running)));
        };
        let cfg = self.inst.config.daemon.clone();
        let Some(journal) = self.book.confirming.take() else {
            return Ok(Step::Continue(Some(running)));
        };
        let reason = format!(
            "{} {} gave no healthy answer at {} within its startup period (last: {last})",
            cfg.name,
            journal.upgrade.version,
            cfg.health_url.as_deref().unwrap_or_default()
        );
        if !cfg.rollback_on_failure {
            tracing::error!("{reason}; it is kept, since rollback_on_failure is off");
            self.process.record_error(reason);
            self.book.confirming = Some(journal);
            self.confirm("was kept without a healthy answer (rollback_on_failure is off)")?;
            return Ok(Step::Continue(Some(running)));
        }
        let stopped = self.process.stop_daemon(running).await;
        self.process.mark_stopped();
        if let Some(h) = self.health.as_mut() {
            h.daemon_stopped();
        }
        // a record still pending for it must not undo the rollback
        self.unrecorded = None;
        let (upgrade, previous) = (journal.upgrade.clone(), journal.previous.version.clone());
        transaction::rollback(
            &self.inst,
            &self.setup,
            &mut self.process,
            &mut self.book.plan,
            journal,
            &reason,
        )
        .await?;
        self.upgrade_outcome(&upgrade, &previous, "rolled-back");
        if let Some(sig) = stopped.stop_signal {
            return Ok(Step::Exit(RunOutcome::Stopped(sig)));
        }
        Ok(Step::Continue(None))
    }
}
