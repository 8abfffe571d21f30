//! The operator's rollback, done by the running nymvisor (it owns the daemon): the request that
//! `nymvisor rollback` leaves (`upgrade-rollback.json`) is acted on at once, or, without
//! `--now`, once no hold is in force and a maintenance window is open.

use std::time::Duration;

use tokio::time::Instant;

use super::{RunOutcome, Step, Supervisor};
use crate::daemon::Daemon;
use crate::error::Result;
use crate::model::{self, RollbackRequest};
use crate::upgrade::rollback;
use crate::upgrade::transaction::Control;

impl Supervisor {
    /// Acts on a rollback request if there is one and it may happen now.
    pub(super) async fn step_rollback(&mut self, daemon: Option<Daemon>) -> Result<Step> {
        self.rollback_wanted = false;
        self.rollback_at = None;
        let path = self.inst.data.rollback_request();
        let request = match RollbackRequest::load(&path) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Step::Continue(daemon)),
            Err(e) => {
                tracing::error!(
                    "the rollback request cannot be read: {e}; it is removed and nothing is rolled back"
                );
                self.host.record_error(format!("rollback request: {e}"));
                let _ = RollbackRequest::clear(&path);
                return Ok(Step::Continue(daemon));
            }
        };
        let current = self.book.plan.current.clone();
        if request.from != current.name {
            tracing::info!(
                "the rollback request from `{}` is outdated (`{}` runs now): nothing is rolled back",
                request.from,
                current.name
            );
            let _ = RollbackRequest::clear(&path);
            return Ok(Step::Continue(daemon));
        }
        if !request.now {
            if self.book.hold.is_some() {
                tracing::info!(
                    "the operator's rollback waits for the hold to be lifted (`nymvisor unhold`, or `nymvisor rollback --now`)"
                );
                return Ok(Step::Continue(daemon));
            }
            if let Some(w) = &self.book.timing.windows {
                let now = model::now();
                if !w.contains(now) {
                    let at = w.place(now, Duration::ZERO);
                    tracing::info!(
                        "the operator's rollback waits for the next maintenance window, at {}",
                        model::rfc3339(at)
                    );
                    let wait = (at - now).whole_milliseconds().max(0) as u64;
                    self.rollback_at = Some(Instant::now() + Duration::from_millis(wait));
                    return Ok(Step::Continue(daemon));
                }
            }
        }
        let journal = match rollback::plan_for(
            &self.inst,
            &self.book.plan,
            self.book.confirming.as_ref(),
            request.with_data,
        ) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("cannot roll back: {e}");
                self.host.record_error(format!("rollback: {e}"));
                let _ = RollbackRequest::clear(&path);
                return Ok(Step::Continue(daemon));
            }
        };
        let name = &self.inst.config.daemon.name;
        tracing::info!(upgrade = %current.name, "rolling back {name} {} → {} as the operator asked{}", current.version, journal.previous.version, if request.with_data { ", with the data backed up before it was installed" } else { "" });
        if let Some(d) = daemon {
            let t = std::time::Instant::now();
            let stopped = self.host.stop_daemon(d).await;
            self.host.mark_stopped();
            if let Some(h) = self.health.as_mut() {
                h.daemon_stopped();
            }
            tracing::info!(upgrade = %current.name, stage = "stop", elapsed_ms = t.elapsed().as_millis() as u64, "stopped the daemon ({})", stopped.exit);
            if let Some(sig) = stopped.stop_signal {
                tracing::warn!(
                    "{sig} received while the daemon was stopping: nothing was rolled back (the request stays for the next start), nymvisor exits"
                );
                return Ok(Step::Exit(RunOutcome::Stopped(sig)));
            }
        }
        let previous = journal.previous.clone();
        // the safety copy first: if it cannot be taken (no room for it), nothing has changed
        // and the current version starts again
        let safety = match rollback::safety_copy(&self.inst, &journal).await {
            Ok(s) => s,
            Err(e) => {
                let note = format!(
                    "the rollback was not done: the safety copy of the daemon's data failed: {e}; the current version starts again"
                );
                self.host.record_error(note.clone());
                tracing::error!("{note}");
                let _ = RollbackRequest::clear(&path);
                return Ok(Step::Continue(None));
            }
        };
        self.book.confirming = None;
        self.confirm_at = None;
        self.book.ready.clear();
        self.unrecorded = None;
        // a failure past this point leaves the journal at its rollback stage: nymvisor exits
        // with the error, and the next start finishes the rollback (as after a crash)
        crate::upgrade::transaction::rollback(
            &self.inst,
            &self.backups,
            &mut self.host,
            &mut self.book.plan,
            journal,
            rollback::BY_THE_OPERATOR,
        )
        .await?;
        if let Err(e) = RollbackRequest::clear(&path) {
            tracing::warn!("{e}");
        }
        if let Some(s) = safety {
            tracing::info!(
                "the data the rollback replaced is kept in {} (`nymvisor backups list`)",
                s.display()
            );
        }
        self.upgrade_outcome(
            &current,
            &previous.version,
            "rolled-back",
            rollback::BY_THE_OPERATOR,
        );
        self.life.settled();
        self.quiet_later();
        Ok(Step::Continue(None))
    }
}
