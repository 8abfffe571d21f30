//! The daemon's health endpoint, probed while it runs (with `daemon.health_url`): the probe's
//! schedule ([`Monitor`]) and the event loop's side of its answers. What an answer means —
//! a healthy answer confirms a new version; none by the end of the startup period is a failed
//! start; `health_failure_threshold` failed probes in a row restart the daemon, backing off and
//! giving up — is [`crate::upgrade::lifecycle`]'s.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{RunOutcome, Step, Supervisor};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::health::{Health, HealthProbe};
use crate::model::{self, run_state::HealthState};
use crate::upgrade::lifecycle::{Action, ConfirmedBy, HealthNote};
use crate::upgrade::transaction::Control;

/// First probe after a start: soon, so a healthy new version is confirmed early.
const FIRST_PROBE: Duration = Duration::from_secs(1);

/// The probe's schedule and its last answer.
#[derive(Debug)]
pub struct Monitor {
    probe: Arc<dyn HealthProbe>,
    interval: Duration,
    next: Option<Instant>,
    task: Option<JoinHandle<Health>>,
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
            last: None,
            expect: None,
        }
    }

    /// The probed endpoint, in words.
    pub fn describe(&self) -> String {
        self.probe.describe()
    }

    /// A daemon was started: probing starts over.
    pub fn daemon_started(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
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
}

impl Supervisor {
    /// An answer of the health probe.
    pub(super) async fn on_health(&mut self, h: Health, running: Daemon) -> Result<Step> {
        let Some(monitor) = self.health.as_mut() else {
            return Ok(Step::Continue(Some(running)));
        };
        let uptime = running.uptime();
        let v = self
            .life
            .health(h.healthy, uptime, self.book.confirming.is_some());
        monitor.last = Some(h.clone());
        let url = monitor.describe();
        match v.note {
            // a node takes a while to open its port: no warning before its first answer
            // within its startup period, and one line when it first answers
            HealthNote::ComingUp => tracing::debug!(
                "the daemon does not answer its health probe {url} yet: {}",
                h.answer
            ),
            HealthNote::Failed => {
                tracing::warn!("the daemon's health probe {url} failed: {}", h.answer)
            }
            HealthNote::FirstAnswer => tracing::info!(
                "the daemon answers its health probe {url} ({}, {} s after its start)",
                h.answer,
                uptime.as_secs()
            ),
            HealthNote::Recovered => {
                tracing::info!("the daemon is healthy again ({})", h.answer)
            }
            HealthNote::Same => {}
        }
        let failures = v.failures;
        self.host.metrics(|m| m.health(h.healthy, failures));
        self.host.state.health = Some(HealthState {
            healthy: h.healthy,
            last_answer: h.answer.clone(),
            last_probe_at: model::now(),
            consecutive_failures: failures,
        });
        self.host.save_state();
        match v.action {
            Action::Confirm(_) => {
                self.confirm(&format!(
                    "answered healthy after {} s ({})",
                    uptime.as_secs(),
                    h.answer
                ))?;
                Ok(Step::Continue(Some(running)))
            }
            Action::StopUnhealthy => self.restart_unhealthy(running, &h, failures).await,
            _ => Ok(Step::Continue(Some(running))),
        }
    }

    /// A liveness restart: the daemon failed `failures` health probes in a row.
    async fn restart_unhealthy(
        &mut self,
        running: Daemon,
        last: &Health,
        failures: u32,
    ) -> Result<Step> {
        tracing::warn!(
            "the daemon failed {failures} health probes in a row (last: {}); restarting it",
            last.answer
        );
        let stopped = self.host.stop_daemon(running).await;
        self.host.mark_stopped();
        if let Some(h) = self.health.as_mut() {
            h.daemon_stopped();
        }
        if let Some(sig) = stopped.stop_signal {
            return Ok(Step::Exit(RunOutcome::Stopped(sig)));
        }
        let what = format!(
            "did not answer its health probe {failures} times in a row (last: {})",
            last.answer
        );
        self.host.record_error(format!("daemon {what}"));
        match self.life.stopped_unhealthy() {
            Action::GiveUp(why) => Err(self.give_up(why, &what)),
            Action::Restart {
                after,
                attempt,
                limit,
            } => {
                let why = format!(" (liveness restart {attempt} of {limit})");
                Ok(
                    match self.restart_after(after, attempt, limit, &why).await? {
                        Some(outcome) => Step::Exit(outcome),
                        None => Step::Continue(None),
                    },
                )
            }
            _ => Ok(Step::Continue(None)),
        }
    }

    /// The startup period of a new version ended. With a health URL it is confirmed only if it
    /// answered healthy; otherwise it failed to start, and is rolled back when enabled.
    pub(super) async fn end_of_startup(&mut self, running: Daemon) -> Result<Step> {
        let action = self.life.startup_over(self.book.confirming.is_some());
        let cfg = &self.inst.config.daemon;
        let (name, url) = (cfg.name.clone(), cfg.health_url.clone().unwrap_or_default());
        let last = self
            .health
            .as_ref()
            .and_then(|m| m.last.as_ref())
            .map_or_else(|| "no answer yet".to_owned(), |h| h.answer.clone());
        let version = self
            .book
            .confirming
            .as_ref()
            .map(|j| j.upgrade.version.clone())
            .unwrap_or_default();
        let reason = format!(
            "{name} {version} gave no healthy answer at {url} within its startup period (last: {last})"
        );
        match action {
            Action::Confirm(ConfirmedBy::KeptUnhealthy) => {
                tracing::error!("{reason}; it is kept, since rollback_on_failure is off");
                // no good news for the fleet: its slot is kept failed, the version refused
                if let Some(info) = self.book.confirming.as_ref().map(|j| j.upgrade.clone()) {
                    self.fleet_outcome(&info, "unhealthy", &reason);
                }
                self.host.record_error(reason);
                self.confirm("was kept without a healthy answer (rollback_on_failure is off)")?;
                Ok(Step::Continue(Some(running)))
            }
            Action::RollBack { .. } => {
                let Some(journal) = self.book.confirming.take() else {
                    return Ok(Step::Continue(Some(running)));
                };
                let stopped = self.host.stop_daemon(running).await;
                self.host.mark_stopped();
                if let Some(h) = self.health.as_mut() {
                    h.daemon_stopped();
                }
                self.roll_back_unconfirmed(journal, &reason).await?;
                if let Some(sig) = stopped.stop_signal {
                    return Ok(Step::Exit(RunOutcome::Stopped(sig)));
                }
                Ok(Step::Continue(None))
            }
            _ => {
                self.confirm("ran for its startup period")?;
                Ok(Step::Continue(Some(running)))
            }
        }
    }
}
