//! When the daemon ends: a clean exit, a daemon that forked into the background, a failure —
//! and the restart policy (`restart_on_failure`, `failure_restart_delay`,
//! `max_startup_failures` within `startup_period_duration`, rollback of an unconfirmed upgrade).

use std::time::Duration;

use tokio::time::Instant;

use super::{RunOutcome, Supervisor};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::upgrade::transaction;

/// Longest wait before a restart that backs off.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// The wait before the `attempt`th restart in a row: `base`, doubling each time, at most
/// [`MAX_BACKOFF`] (and never less than `base`).
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF.max(base))
}

impl Supervisor {
    /// The daemon's leader exited. Returns an outcome when nymvisor must stop.
    pub(super) async fn on_exit(&mut self, running: Daemon) -> Result<Option<RunOutcome>> {
        let uptime = running.uptime();
        // a daemon that exits 0 while what it started keeps running has forked into the
        // background: nymvisor cannot supervise that, and must not call it done
        let left: Vec<i32> = running.leftovers().iter().map(|p| p.pid).collect();
        let exit = running
            .finish(self.process.grace, &mut self.process.children)
            .await;
        self.process.mark_stopped();
        if let Some(h) = self.health.as_mut() {
            h.daemon_stopped();
        }
        let pids = left
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let what = if exit.success() && !left.is_empty() {
            tracing::error!(
                pids = ?left,
                "the daemon daemonised itself: it exited 0 while processes it started (pids {pids}) kept running; they were stopped. nymvisor can only supervise a daemon that stays in the foreground"
            );
            format!("daemonised itself (exited 0, leaving pids {pids} running)")
        } else if exit.success() {
            tracing::info!("the daemon exited cleanly; nymvisor exits too");
            return Ok(Some(RunOutcome::DaemonExited));
        } else {
            format!("failed ({exit})")
        };
        self.on_failure(what, uptime).await
    }

    /// The daemon failed (or could not be started). Returns an outcome when nymvisor must stop;
    /// otherwise waits out the restart delay (or rolls back) and returns `None`.
    pub(super) async fn on_failure(
        &mut self,
        what: String,
        uptime: Duration,
    ) -> Result<Option<RunOutcome>> {
        let cfg = self.inst.config.daemon.clone();
        let during_startup = uptime < cfg.startup_period_duration;
        if during_startup {
            self.startup_failures += 1;
        } else {
            self.startup_failures = 0;
        }
        let limit = cfg.max_startup_failures.max(1);
        tracing::warn!(
            "the daemon {what} after {}{}",
            humantime::format_duration(Duration::from_secs(uptime.as_secs())),
            if during_startup {
                format!(" (startup failure {} of {limit})", self.startup_failures)
            } else {
                String::new()
            }
        );
        self.process.record_error(format!("daemon {what}"));
        self.process.state.startup_failures = self.startup_failures;
        let n = self.startup_failures;
        self.process.metrics(|m| m.startup_failures(n));

        if during_startup
            && cfg.rollback_on_failure
            && (self.startup_failures >= limit || !cfg.restart_on_failure)
            && let Some(journal) = self.book.confirming.take()
        {
            let reason = format!(
                "{} {} {what} {} time(s) within its startup period",
                cfg.name, journal.upgrade.version, self.startup_failures
            );
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
            self.startup_failures = 0;
            return Ok(None);
        }
        if !cfg.restart_on_failure {
            // a due upgrade (the old version may fail for want of it) has its chance first
            let d = self.book.decide(&self.inst, None);
            if d.apply.is_some()
                || d.due_unprepared
                    .as_ref()
                    .is_some_and(|i| self.preparer.binary_present(i))
            {
                tracing::info!(
                    "the daemon {what}; the due upgrade is applied before nymvisor gives up"
                );
                return Ok(None);
            }
            return Err(Error::DaemonFailed(format!(
                "the daemon {what} and restart_on_failure is off"
            )));
        }
        if self.startup_failures >= limit {
            return Err(Error::DaemonFailed(format!(
                "the daemon failed {} times within {} of starting; giving up",
                self.startup_failures,
                humantime::format_duration(cfg.startup_period_duration)
            )));
        }
        tracing::info!(
            "restarting the daemon in {}",
            humantime::format_duration(cfg.failure_restart_delay)
        );
        self.restart_after(cfg.failure_restart_delay, self.startup_failures, limit)
            .await
    }

    /// Waits `delay` before the daemon is started again (restart `attempt` of `limit`, shown by
    /// `status`), honouring stop signals, the watchdog and a due upgrade.
    pub(super) async fn restart_after(
        &mut self,
        delay: Duration,
        attempt: u32,
        limit: u32,
    ) -> Result<Option<RunOutcome>> {
        let until = Instant::now() + delay;
        self.process.state.restart = Some(crate::model::run_state::RestartWait {
            at: crate::model::now() + delay,
            startup_failures: attempt,
            max_startup_failures: limit,
        });
        self.process.save_state();
        let outcome = self.wait_to_restart(until).await;
        self.process.state.restart = None;
        self.process.save_state();
        outcome
    }

    /// Waits out the restart delay, honouring stop signals, the watchdog and a due upgrade.
    async fn wait_to_restart(&mut self, until: Instant) -> Result<Option<RunOutcome>> {
        loop {
            let watchdog = self.process.watchdog_due();
            tokio::select! {
                () = crate::upgrade::sleep_until_opt(watchdog) => self.process.watchdog_ping(),
                () = tokio::time::sleep_until(until) => {
                    self.process.metrics(|m| m.daemon_restarted());
                    return Ok(None);
                }
                sig = self.process.signals.recv_stop() => {
                    tracing::info!("{sig} received while waiting to restart the daemon: exiting");
                    return Ok(Some(RunOutcome::Stopped(sig)));
                }
                () = self.watch.tick() => {
                    self.reload_files();
                    // the operator's rollback does not wait for the restart delay
                    if self.rollback_wanted {
                        return Ok(None);
                    }
                    // a due upgrade does not wait for the restart delay
                    let d = self.book.decide(&self.inst, None);
                    if d.apply.is_some() || d.due_unprepared.is_some() {
                        return Ok(None);
                    }
                }
                () = self.process.children.next() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_to_a_cap() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff(base, 1000), MAX_BACKOFF);
        // a restart delay above the cap is kept as it is
        let long = Duration::from_secs(3600);
        assert_eq!(backoff(long, 3), long);
        assert_eq!(backoff(Duration::ZERO, 5), Duration::ZERO);
    }
}
