//! When the daemon ends: a clean exit, a daemon that forked into the background, a failure —
//! the decision is [`Lifecycle::failed`](crate::upgrade::lifecycle::Lifecycle::failed)'s (the
//! restart policy, rollback of an unconfirmed upgrade, giving up); this performs it.

use std::time::Duration;

use tokio::time::Instant;

use super::{RunOutcome, Supervisor};
use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::model::Journal;
use crate::upgrade::lifecycle::{Action, GiveUp, RollbackCause};
use crate::upgrade::transaction;

impl Supervisor {
    /// The daemon's leader exited. Returns an outcome when nymvisor must stop.
    pub(super) async fn on_exit(&mut self, running: Daemon) -> Result<Option<RunOutcome>> {
        let uptime = running.uptime();
        // a daemon that exits 0 while what it started keeps running has forked into the
        // background: nymvisor cannot supervise that, and must not call it done
        let left: Vec<i32> = running.leftovers().iter().map(|p| p.pid).collect();
        let exit = running
            .finish(self.host.grace, &mut self.host.children)
            .await;
        self.host.mark_stopped();
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
        // only asked when it matters: without restarts, a due upgrade has its chance first
        let due_upgrade = !self.life.rules().restart_on_failure && {
            let d = self.book.decide(&self.inst, None, self.fleet_wait());
            d.apply.is_some()
                || d.due_unprepared
                    .as_ref()
                    .is_some_and(|i| self.preparer.binary_present(i))
        };
        let v = self
            .life
            .failed(uptime, self.book.confirming.is_some(), due_upgrade);
        tracing::warn!(
            "the daemon {what} after {}{}",
            humantime::format_duration(Duration::from_secs(uptime.as_secs())),
            if v.during_startup {
                format!(" (startup failure {} of {})", v.failures, v.limit)
            } else {
                String::new()
            }
        );
        self.host.record_error(format!("daemon {what}"));
        self.host.state.startup_failures = v.failures;
        self.host.metrics(|m| m.startup_failures(v.failures));
        match v.action {
            Action::RollBack {
                cause: RollbackCause::StartupFailures(n),
                ..
            } => {
                if let Some(journal) = self.book.confirming.take() {
                    let reason = format!(
                        "{} {} {what} {n} time(s) within its startup period",
                        self.inst.config.daemon.name, journal.upgrade.version
                    );
                    self.roll_back_unconfirmed(journal, &reason).await?;
                }
                Ok(None)
            }
            Action::ApplyDueUpgrade => {
                tracing::info!(
                    "the daemon {what}; the due upgrade is applied before nymvisor gives up"
                );
                Ok(None)
            }
            Action::GiveUp(why) => Err(self.give_up(why, &what)),
            Action::Restart {
                after,
                attempt,
                limit,
            } => self.restart_after(after, attempt, limit, "").await,
            // not an answer to a failure
            _ => Ok(None),
        }
    }

    /// Swaps an unconfirmed upgrade back to the version before it (the daemon is stopped).
    pub(super) async fn roll_back_unconfirmed(
        &mut self,
        journal: Journal,
        reason: &str,
    ) -> Result<()> {
        // a record still pending for it must not undo the rollback
        self.unrecorded = None;
        let (upgrade, previous) = (journal.upgrade.clone(), journal.previous.version.clone());
        transaction::rollback(
            &self.inst,
            &self.backups,
            &mut self.host,
            &mut self.book.plan,
            journal,
            reason,
        )
        .await?;
        self.upgrade_outcome(&upgrade, &previous, "rolled-back", reason);
        self.life.settled();
        Ok(())
    }

    /// The error nymvisor gives up with; `what` says what the daemon did last.
    pub(super) fn give_up(&self, why: GiveUp, what: &str) -> Error {
        Error::DaemonFailed(match why {
            GiveUp::RestartOff => format!("the daemon {what} and restart_on_failure is off"),
            GiveUp::StartupFailures(n) => format!(
                "the daemon failed {n} times within {} of starting; giving up",
                humantime::format_duration(self.inst.config.daemon.startup_period_duration)
            ),
            GiveUp::Liveness(limit) => format!(
                "the daemon {what}, after {limit} restarts without a healthy answer; giving up"
            ),
        })
    }

    /// Waits `delay` before the daemon is started again (restart `attempt` of `limit`, shown by
    /// `status`; `why` is added to the log line), honouring stop signals, the watchdog and a
    /// due upgrade.
    pub(super) async fn restart_after(
        &mut self,
        delay: Duration,
        attempt: u32,
        limit: u32,
        why: &str,
    ) -> Result<Option<RunOutcome>> {
        let until = Instant::now() + delay;
        self.host.state.restart = Some(crate::model::run_state::RestartWait {
            at: crate::model::now() + delay,
            startup_failures: attempt,
            max_startup_failures: limit,
        });
        self.host.save_state();
        // said once `status` can show it
        tracing::info!(
            "restarting the daemon in {}{why}",
            humantime::format_duration(delay)
        );
        let outcome = self.wait_to_restart(until).await;
        self.host.state.restart = None;
        self.host.save_state();
        outcome
    }

    /// Waits out the restart delay, honouring stop signals, the watchdog and a due upgrade.
    async fn wait_to_restart(&mut self, until: Instant) -> Result<Option<RunOutcome>> {
        loop {
            let watchdog = self.host.watchdog_due();
            tokio::select! {
                () = crate::upgrade::sleep_until_opt(watchdog) => self.host.watchdog_ping(),
                () = tokio::time::sleep_until(until) => {
                    self.host.metrics(|m| m.daemon_restarted());
                    return Ok(None);
                }
                sig = self.host.signals.recv_stop() => {
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
                    let d = self.book.decide(&self.inst, None, self.fleet_wait());
                    if d.apply.is_some() || d.due_unprepared.is_some() {
                        return Ok(None);
                    }
                }
                () = self.host.children.next() => {}
            }
        }
    }
}
