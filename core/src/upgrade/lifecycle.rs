//! The daemon's life between upgrades, as a pure state machine (no clock, no I/O), built the
//! way [`super::queue`] is: the event loop (`run/failure.rs`, `run/health.rs`) feeds it what
//! happened — the daemon failed after some uptime, its health probe answered, a new version's
//! startup period ended — and performs the [`Action`] it answers.
//!
//! The rules, all here:
//! - a failure within `startup_period_duration` of a start is a startup failure; one after it
//!   starts the count over;
//! - an unconfirmed upgrade that fails `max_startup_failures` times within its startup period
//!   (once, without `restart_on_failure`) is rolled back, when `rollback_on_failure` is on;
//! - otherwise the daemon is restarted after `failure_restart_delay`, until
//!   `max_startup_failures` startup failures in a row make nymvisor give up; without
//!   `restart_on_failure` nymvisor gives up at once — unless an upgrade is due, which gets its
//!   chance first;
//! - a new version awaiting confirmation is confirmed by its first healthy answer (with a
//!   health URL) or by running through its startup period (without one); a version that gave no
//!   healthy answer by the end of the period is rolled back, or kept with an error when
//!   `rollback_on_failure` is off;
//! - liveness: outside a confirmation and after the startup period, `health_failure_threshold`
//!   failed probes in a row restart the daemon; these restarts back off (doubling from the
//!   restart delay, at most [`MAX_BACKOFF`]) and, without a healthy answer in between, give up
//!   after `max_startup_failures` of them; failed probes before the first healthy answer within
//!   the startup period are the node coming up, not a failure to report.

use std::time::Duration;

use crate::config::DaemonConfig;

/// Longest wait before a restart that backs off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// The settings the rules read (from `[daemon]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub startup_period: Duration,
    /// At least 1.
    pub max_startup_failures: u32,
    pub restart_on_failure: bool,
    pub rollback_on_failure: bool,
    pub restart_delay: Duration,
    pub health_failure_threshold: u32,
    /// A health URL is probed (confirmation waits for a healthy answer).
    pub health_probed: bool,
}

impl Rules {
    pub fn of(d: &DaemonConfig) -> Rules {
        Rules {
            startup_period: d.startup_period_duration,
            max_startup_failures: d.max_startup_failures.max(1),
            restart_on_failure: d.restart_on_failure,
            rollback_on_failure: d.rollback_on_failure,
            restart_delay: d.failure_restart_delay,
            health_failure_threshold: d.health_failure_threshold,
            health_probed: d.health_url.is_some(),
        }
    }
}

/// What the loop is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the daemon runs on.
    Keep,
    /// The upgrade awaiting confirmation (if any) is confirmed.
    Confirm(ConfirmedBy),
    /// The daemon (stopped) is started again after `after`: restart `attempt` of `limit`.
    Restart {
        after: Duration,
        attempt: u32,
        limit: u32,
    },
    /// The unconfirmed upgrade goes back to the previous version; `stop_first`: its daemon still
    /// runs and is stopped first.
    RollBack {
        cause: RollbackCause,
        stop_first: bool,
    },
    /// The daemon is left stopped: a due upgrade goes first (`restart_on_failure` is off).
    ApplyDueUpgrade,
    /// The daemon failed its health probes: stop it, then ask [`Lifecycle::stopped_unhealthy`].
    StopUnhealthy,
    /// nymvisor gives up (exits with an error).
    GiveUp(GiveUp),
}

/// What confirmed an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmedBy {
    /// It ran through its startup period (no health URL, or not awaiting a healthy answer).
    StartupPeriod,
    /// Its first healthy answer.
    HealthyAnswer,
    /// No healthy answer by the end of the period, kept: `rollback_on_failure` is off.
    KeptUnhealthy,
}

/// Why an unconfirmed upgrade is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackCause {
    /// It failed this many times within its startup period.
    StartupFailures(u32),
    /// It gave no healthy answer within its startup period.
    NoHealthyAnswer,
}

/// Why nymvisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The daemon failed and `restart_on_failure` is off.
    RestartOff,
    /// It failed this many times within its startup period.
    StartupFailures(u32),
    /// This many liveness restarts without a healthy answer.
    Liveness(u32),
}

/// How a health answer reads, for the log: what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthNote {
    /// No answer yet within the startup period: the node is coming up (not a warning).
    ComingUp,
    /// It failed (after answering healthy, or from the start past the startup period).
    Failed,
    /// Its first healthy answer since its start.
    FirstAnswer,
    /// Healthy again after failing.
    Recovered,
    /// As before.
    Same,
}

/// The machine's verdict on a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Within the startup period (a startup failure).
    pub during_startup: bool,
    /// Startup failures in a row, this one included.
    pub failures: u32,
    pub limit: u32,
    pub action: Action,
}

/// The machine's verdict on a health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthVerdict {
    pub note: HealthNote,
    /// Failed probes in a row.
    pub failures: u32,
    pub action: Action,
}

/// See the module docs. One per supervisor; counters survive restarts of the daemon, not of
/// nymvisor.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    rules: Rules,
    startup_failures: u32,
    liveness_restarts: u32,
    health_failures: u32,
    seen_healthy: bool,
    last_healthy: Option<bool>,
}

/// The wait before the `attempt`th restart in a row: `base`, doubling each time, at most
/// [`MAX_BACKOFF`] (and never less than `base`).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF.max(base))
}

impl Lifecycle {
    pub fn new(rules: Rules) -> Lifecycle {
        Lifecycle {
            rules,
            startup_failures: 0,
            liveness_restarts: 0,
            health_failures: 0,
            seen_healthy: false,
            last_healthy: None,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Startup failures in a row (for `status` and the metrics).
    pub fn startup_failures(&self) -> u32 {
        self.startup_failures
    }

    /// Whether the running daemon answered healthy since its start.
    pub fn seen_healthy(&self) -> bool {
        self.seen_healthy
    }

    /// A daemon was started: its health is not known yet.
    pub fn started(&mut self) {
        self.health_failures = 0;
        self.seen_healthy = false;
    }

    /// An upgrade was applied, confirmed or rolled back: startup failures count from zero.
    pub fn settled(&mut self) {
        self.startup_failures = 0;
    }

    /// The daemon failed (exited non-zero, daemonised, or could not be started) after `uptime`.
    /// `confirming`: a new version awaits confirmation; `due_upgrade`: an upgrade could be
    /// applied right now.
    pub fn failed(
        &mut self,
        uptime: Duration,
        confirming: bool,
        due_upgrade: bool,
    ) -> FailureVerdict {
        let r = &self.rules;
        let during_startup = uptime < r.startup_period;
        self.startup_failures = if during_startup {
            self.startup_failures.saturating_add(1)
        } else {
            0
        };
        let (n, limit) = (self.startup_failures, r.max_startup_failures);
        let action = if during_startup
            && confirming
            && r.rollback_on_failure
            && (n >= limit || !r.restart_on_failure)
        {
            Action::RollBack {
                cause: RollbackCause::StartupFailures(n),
                stop_first: false,
            }
        } else if !r.restart_on_failure {
            if due_upgrade {
                Action::ApplyDueUpgrade
            } else {
                Action::GiveUp(GiveUp::RestartOff)
            }
        } else if n >= limit {
            Action::GiveUp(GiveUp::StartupFailures(n))
        } else {
            Action::Restart {
                after: r.restart_delay,
                attempt: n,
                limit,
            }
        };
        FailureVerdict {
            during_startup,
            failures: n,
            limit,
            action,
        }
    }

    /// The health probe answered (`healthy` or not) while the daemon had run for `uptime`.
    pub fn health(&mut self, healthy: bool, uptime: Duration, confirming: bool) -> HealthVerdict {
        let r = &self.rules;
        let coming_up = !self.seen_healthy && uptime < r.startup_period;
        let note = match (self.last_healthy, healthy) {
            (_, false) if coming_up => HealthNote::ComingUp,
            (Some(true) | None, false) => HealthNote::Failed,
            (_, true) if !self.seen_healthy => HealthNote::FirstAnswer,
            (Some(false), true) => HealthNote::Recovered,
            _ => HealthNote::Same,
        };
        self.last_healthy = Some(healthy);
        if healthy {
            self.health_failures = 0;
            self.seen_healthy = true;
            self.liveness_restarts = 0;
        } else {
            self.health_failures = self.health_failures.saturating_add(1);
        }
        let action = if confirming {
            if healthy {
                Action::Confirm(ConfirmedBy::HealthyAnswer)
            } else {
                Action::Keep
            }
        } else if healthy
            || self.health_failures < r.health_failure_threshold
            || uptime < r.startup_period
        {
            Action::Keep
        } else {
            Action::StopUnhealthy
        };
        HealthVerdict {
            note,
            failures: self.health_failures,
            action,
        }
    }

    /// The daemon was stopped for failing its health probes: a liveness restart (backing off),
    /// or giving up.
    pub fn stopped_unhealthy(&mut self) -> Action {
        let r = &self.rules;
        self.liveness_restarts = self.liveness_restarts.saturating_add(1);
        let limit = r.max_startup_failures;
        if !r.restart_on_failure {
            return Action::GiveUp(GiveUp::RestartOff);
        }
        if self.liveness_restarts > limit {
            return Action::GiveUp(GiveUp::Liveness(limit));
        }
        Action::Restart {
            after: backoff(r.restart_delay, self.liveness_restarts),
            attempt: self.liveness_restarts,
            limit,
        }
    }

    /// The startup period of the running daemon ended (`confirming`: a new version awaits
    /// confirmation).
    pub fn startup_over(&self, confirming: bool) -> Action {
        let waits_for_health = self.rules.health_probed && !self.seen_healthy;
        if !(confirming && waits_for_health) {
            Action::Confirm(ConfirmedBy::StartupPeriod)
        } else if !self.rules.rollback_on_failure {
            Action::Confirm(ConfirmedBy::KeptUnhealthy)
        } else {
            Action::RollBack {
                cause: RollbackCause::NoHealthyAnswer,
                stop_first: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(60);
    const DELAY: Duration = Duration::from_secs(10);
    const EARLY: Duration = Duration::from_secs(5);
    const LATE: Duration = Duration::from_secs(120);

    fn rules() -> Rules {
        Rules {
            startup_period: PERIOD,
            max_startup_failures: 3,
            restart_on_failure: true,
            rollback_on_failure: true,
            restart_delay: DELAY,
            health_failure_threshold: 3,
            health_probed: true,
        }
    }

    fn restart(attempt: u32) -> Action {
        Action::Restart {
            after: DELAY,
            attempt,
            limit: 3,
        }
    }

    #[test]
    fn the_third_failure_inside_the_period_rolls_an_unconfirmed_upgrade_back() {
        let mut l = Lifecycle::new(rules());
        assert_eq!(l.failed(EARLY, true, false).action, restart(1));
        assert_eq!(l.failed(EARLY, true, false).action, restart(2));
        let v = l.failed(EARLY, true, false);
        assert_eq!((v.during_startup, v.failures, v.limit), (true, 3, 3));
        assert_eq!(
            v.action,
            Action::RollBack {
                cause: RollbackCause::StartupFailures(3),
                stop_first: false
            }
        );
        l.settled();
        assert_eq!(l.startup_failures(), 0);
    }

    #[test]
    fn without_an_upgrade_to_roll_back_the_third_startup_failure_gives_up() {
        let mut l = Lifecycle::new(rules());
        l.failed(EARLY, false, false);
        l.failed(EARLY, false, false);
        assert_eq!(
            l.failed(EARLY, false, false).action,
            Action::GiveUp(GiveUp::StartupFailures(3))
        );
    }

    #[test]
    fn a_failure_after_the_period_starts_the_count_over() {
        let mut l = Lifecycle::new(rules());
        l.failed(EARLY, false, false);
        l.failed(EARLY, false, false);
        let v = l.failed(LATE, false, false);
        assert!(!v.during_startup);
        assert_eq!(v.failures, 0);
        assert_eq!(v.action, restart(0));
        assert_eq!(l.failed(EARLY, false, false).action, restart(1));
    }

    #[test]
    fn rollback_off_keeps_restarting_a_failing_new_version_until_giving_up() {
        let mut l = Lifecycle::new(Rules {
            rollback_on_failure: false,
            ..rules()
        });
        l.failed(EARLY, true, false);
        l.failed(EARLY, true, false);
        assert_eq!(
            l.failed(EARLY, true, false).action,
            Action::GiveUp(GiveUp::StartupFailures(3))
        );
    }

    #[test]
    fn restart_off_rolls_back_at_once_gives_up_or_lets_a_due_upgrade_go_first() {
        let off = Rules {
            restart_on_failure: false,
            ..rules()
        };
        let mut l = Lifecycle::new(off.clone());
        assert!(matches!(
            l.failed(EARLY, true, false).action,
            Action::RollBack { .. }
        ));
        let mut l = Lifecycle::new(off.clone());
        assert_eq!(
            l.failed(LATE, false, false).action,
            Action::GiveUp(GiveUp::RestartOff)
        );
        assert_eq!(l.failed(LATE, false, true).action, Action::ApplyDueUpgrade);
        // an unconfirmed upgrade that fails after its period is no startup failure
        assert_eq!(
            l.failed(LATE, true, false).action,
            Action::GiveUp(GiveUp::RestartOff)
        );
    }

    #[test]
    fn a_healthy_answer_confirms_and_unhealthy_ones_while_confirming_do_nothing() {
        let mut l = Lifecycle::new(rules());
        l.started();
        for _ in 0..5 {
            let v = l.health(false, EARLY, true);
            assert_eq!((v.note, v.action), (HealthNote::ComingUp, Action::Keep));
        }
        let v = l.health(true, EARLY, true);
        assert_eq!(v.note, HealthNote::FirstAnswer);
        assert_eq!(v.action, Action::Confirm(ConfirmedBy::HealthyAnswer));
        assert_eq!(v.failures, 0);
    }

    #[test]
    fn health_failures_before_the_period_ends_do_not_restart() {
        let mut l = Lifecycle::new(rules());
        l.started();
        l.health(true, EARLY, false);
        for n in 1..=10 {
            let v = l.health(false, EARLY, false);
            assert_eq!(v.failures, n);
            assert_eq!(v.action, Action::Keep);
        }
        // past the period, the threshold is long reached
        assert_eq!(l.health(false, LATE, false).action, Action::StopUnhealthy);
    }

    #[test]
    fn liveness_needs_the_threshold_in_a_row() {
        let mut l = Lifecycle::new(rules());
        l.started();
        assert_eq!(l.health(true, LATE, false).note, HealthNote::FirstAnswer);
        assert_eq!(l.health(false, LATE, false).note, HealthNote::Failed);
        assert_eq!(l.health(false, LATE, false).action, Action::Keep);
        assert_eq!(l.health(true, LATE, false).note, HealthNote::Recovered);
        l.health(false, LATE, false);
        l.health(false, LATE, false);
        let v = l.health(false, LATE, false);
        assert_eq!((v.note, v.failures), (HealthNote::Same, 3));
        assert_eq!(v.action, Action::StopUnhealthy);
    }

    #[test]
    fn liveness_restarts_back_off_and_give_up_without_a_healthy_answer() {
        let mut l = Lifecycle::new(rules());
        let waits: Vec<Action> = (0..4).map(|_| l.stopped_unhealthy()).collect();
        assert_eq!(
            waits,
            [
                Action::Restart {
                    after: DELAY,
                    attempt: 1,
                    limit: 3
                },
                Action::Restart {
                    after: DELAY * 2,
                    attempt: 2,
                    limit: 3
                },
                Action::Restart {
                    after: DELAY * 4,
                    attempt: 3,
                    limit: 3
                },
                Action::GiveUp(GiveUp::Liveness(3)),
            ]
        );
        // a healthy answer in between starts them over
        let mut l = Lifecycle::new(rules());
        l.stopped_unhealthy();
        l.stopped_unhealthy();
        l.started();
        l.health(true, LATE, false);
        assert!(matches!(
            l.stopped_unhealthy(),
            Action::Restart { attempt: 1, .. }
        ));
        let mut off = Lifecycle::new(Rules {
            restart_on_failure: false,
            ..rules()
        });
        assert_eq!(off.stopped_unhealthy(), Action::GiveUp(GiveUp::RestartOff));
    }

    #[test]
    fn the_end_of_the_period_confirms_rolls_back_or_keeps() {
        let mut l = Lifecycle::new(rules());
        l.started();
        // no healthy answer: rolled back (the daemon still runs)
        assert_eq!(
            l.startup_over(true),
            Action::RollBack {
                cause: RollbackCause::NoHealthyAnswer,
                stop_first: true
            }
        );
        // unhealthy at the end of the period with rollback off: kept, said so
        let kept = Lifecycle::new(Rules {
            rollback_on_failure: false,
            ..rules()
        });
        assert_eq!(
            kept.startup_over(true),
            Action::Confirm(ConfirmedBy::KeptUnhealthy)
        );
        // answered healthy, or no health URL, or nothing to confirm: the period confirms
        l.health(true, EARLY, false);
        assert_eq!(
            l.startup_over(true),
            Action::Confirm(ConfirmedBy::StartupPeriod)
        );
        let unprobed = Lifecycle::new(Rules {
            health_probed: false,
            ..rules()
        });
        assert_eq!(
            unprobed.startup_over(true),
            Action::Confirm(ConfirmedBy::StartupPeriod)
        );
        assert_eq!(
            Lifecycle::new(rules()).startup_over(false),
            Action::Confirm(ConfirmedBy::StartupPeriod)
        );
    }

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
