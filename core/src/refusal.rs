//! The one shape of "not now": why an upgrade (or an offer of one) is not applied, and whether
//! and when it may be tried again. It travels unchanged from a verifier, the prepare stage, a
//! hook or the policy into the queue, the log, `upgrade-refusals.json` and `status`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// When a refused upgrade may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not until the upgrade's entry changes (or the operator says `nymvisor retry <name>`).
    Never,
    /// After at least this long; the queue's backoff (10 s doubling to 10 min per attempt)
    /// applies when it is longer. `After(Duration::ZERO)`: the backoff alone.
    After(Duration),
    /// Not before this time.
    At(OffsetDateTime),
}

/// Why an upgrade is not applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One line for the operator: what is wrong, with the file, URL or value, and what to do.
    pub reason: String,
    pub retry: Retry,
    /// The verifier that said it, when one did (for the metrics).
    pub verifier: Option<String>,
}

impl Refusal {
    /// The upgrade itself is wrong: retrying cannot help until its entry changes.
    pub fn never(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            retry: Retry::Never,
            verifier: None,
        }
    }

    /// Something around it failed (the network, the disk, a hook): try again with the backoff.
    pub fn transient(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            retry: Retry::After(Duration::ZERO),
            verifier: None,
        }
    }

    /// Try again not before `at`.
    pub fn until(reason: impl Into<String>, at: OffsetDateTime) -> Self {
        Refusal {
            reason: reason.into(),
            retry: Retry::At(at),
            verifier: None,
        }
    }

    /// Whether it may ever be tried again without a change.
    pub fn retryable(&self) -> bool {
        self.retry != Retry::Never
    }

    /// The same refusal, said by the verifier `name`.
    pub fn by(mut self, name: &str) -> Self {
        self.verifier = Some(name.to_owned());
        self
    }

    /// `never` (refused until the entry changes) or `not-now` (tried again), for the metrics.
    pub fn kind(&self) -> &'static str {
        if self.retryable() { "not-now" } else { "never" }
    }

    /// The same refusal with `prefix: ` before its reason (who refused).
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.reason = format!("{prefix}: {}", self.reason);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// When a refused upgrade is next tried: `None` for never.
///
/// `attempts` counts refusals of the same entry, this one included; the backoff is
/// 10 s · 2^(attempts−1), at most 10 min.
pub fn next_attempt(retry: Retry, attempts: u32, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let backoff = FIRST_BACKOFF
        .saturating_mul(1 << attempts.clamp(1, 17).saturating_sub(1))
        .min(MAX_BACKOFF);
    match retry {
        Retry::Never => None,
        Retry::After(at_least) => Some(now + backoff.max(at_least)),
        Retry::At(t) => Some(t.max(now)),
    }
}

/// First retry delay of a transient refusal.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(10);
/// Longest retry delay of a transient refusal.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// `"never"`, or the time of the next attempt, as stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NextAttempt {
    Never,
    #[serde(with = "time::serde::rfc3339")]
    At(OffsetDateTime),
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let t = |n| next_attempt(Retry::After(Duration::ZERO), n, now).unwrap() - now;
        assert_eq!(t(1), time::Duration::seconds(10));
        assert_eq!(t(2), time::Duration::seconds(20));
        assert_eq!(t(4), time::Duration::seconds(80));
        assert_eq!(t(7), time::Duration::seconds(600));
        assert_eq!(t(1000), time::Duration::seconds(600));
        assert_eq!(next_attempt(Retry::Never, 1, now), None);
        // a lower bound longer than the backoff wins
        let long = next_attempt(Retry::After(Duration::from_secs(3600)), 1, now).unwrap();
        assert_eq!(long - now, time::Duration::hours(1));
        // a fixed time in the past means now
        let past = datetime!(2026-11-28 11:00 UTC);
        assert_eq!(next_attempt(Retry::At(past), 3, now), Some(now));
    }
}
