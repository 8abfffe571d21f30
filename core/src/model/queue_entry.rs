//! A queued upgrade as the queue sees it ([`crate::upgrade::queue`] decides; the running
//! nymvisor publishes it in `run-state.json` for `status` and the metrics).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a queued upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its time; its binary is not prepared yet.
    Scheduled,
    /// Its binary is being downloaded or verified.
    Preparing,
    /// Its binary is in place and verified.
    Ready,
    /// Its time has come and it is prepared: it is applied now.
    Due,
    /// It was refused for now and is tried again later.
    Retrying,
    /// It was refused until its entry changes (or `nymvisor retry`).
    Refused,
}

/// What a due upgrade waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitingFor {
    /// This instance's share of the fleet's spread.
    Spread,
    /// The next maintenance window.
    Window,
    /// The operator's hold (`nymvisor unhold`).
    Hold,
    /// The previous upgrade awaits confirmation.
    Confirmation,
    /// Its next attempt after a refusal.
    Backoff,
    /// Its next attempt after the pre-upgrade hook said not now.
    Hook,
    /// Its binary to be downloaded and verified.
    Download,
    /// An earlier due upgrade goes first.
    Earlier,
    /// The plan file to be fixed.
    Plan,
    /// `upgrade-history.json`, `upgrade-refusals.json` or the fleet seed to be readable again.
    Records,
    /// A fresh signed feed (the last one accepted expired).
    Feed,
    /// The fleet: a slot, a canary's confirmation, the fleet hold or `fleet retry` (the
    /// entry's reason says which).
    Fleet,
}

/// One queued upgrade as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub upgrade_time: OffsetDateTime,
    /// When it may be applied (its `upgradeTime`, after the timing rules).
    #[serde(with = "time::serde::rfc3339")]
    pub effective_upgrade_time: OffsetDateTime,
    pub state: State,
    pub waiting_for: Option<WaitingFor>,
    /// Until when it waits, when that is known.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub until: Option<OffsetDateTime>,
    /// Why it was refused.
    pub reason: Option<String>,
}
