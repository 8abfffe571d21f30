//! Fleet jobs: what the supervisor and the `fleet` commands ask of the group's records, done
//! with the [`FleetStore`] where the network work runs (a helper job, or in process without the
//! helper). The rules are [`crate::upgrade::fleet`]'s; this does what they say.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod perform;

pub use perform::perform;

use super::Helper;
use crate::fleet::FleetStore;
use crate::instance::Instance;
use crate::model::fleet::{FleetHold, FleetView};
use crate::upgrade::fleet::Me;

/// One thing to do with the group's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum FleetOp {
    /// Take a slot for this upgrade, if the rules allow it now.
    #[serde(rename_all = "camelCase")]
    Acquire {
        upgrade: String,
        version: String,
        /// Queued with `add-upgrade --now`: goes through the fleet hold.
        immediate: bool,
    },
    /// The new version runs and awaits its confirmation.
    Confirming { upgrade: String, version: String },
    /// The version is confirmed: the slot is released, the confirmation recorded.
    Release { version: String },
    /// The upgrade failed or was rolled back: the slot is kept as failed and the version
    /// marked failed for the group.
    Fail {
        upgrade: String,
        version: String,
        reason: String,
    },
    /// The upgrade was abandoned before its swap: the slot is given back.
    Abandon { version: String },
    /// At start: this member's slot, if any, settled by what runs; what it runs recorded.
    /// `history`: what this member's history says of its versions (`None`: unreadable).
    Settle {
        current: String,
        confirming: Option<String>,
        #[serde(default)]
        history: Option<Vec<crate::model::fleet::HistoryMark>>,
    },
    /// `fleet status`.
    Status,
    /// `fleet hold` / `fleet unhold` (`None`).
    Hold { hold: Option<FleetHold> },
    /// `fleet release <member> [--force]` (without `force`, only a failed slot).
    ReleaseMember {
        member: String,
        #[serde(default)]
        force: bool,
    },
    /// `fleet retry <version>`.
    Retry { version: String },
    /// `fleet forget <member>`.
    ForgetMember { member: String },
}

/// How a fleet job went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum FleetReply {
    /// This member holds a slot for the upgrade; `through_hold`: the fleet is on hold, and an
    /// upgrade queued with `--now` went through it.
    Acquired {
        #[serde(default)]
        through_hold: bool,
    },
    /// Not now: why, in words (for `status` and the log). `refused`: the version failed in
    /// the group (the member moves on to later upgrades until `fleet retry`).
    Waiting {
        why: String,
        #[serde(default)]
        refused: bool,
        /// It waits for the fleet hold.
        #[serde(default)]
        on_hold: bool,
    },
    /// Done; what was done, in words.
    Done { note: String },
    /// At start: the version whose slot this member keeps until its confirmation, if any.
    Settled { keeps: Option<String>, note: String },
    Status {
        view: Box<FleetView>,
        member: String,
    },
}

/// This member as the configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub member: String,
    /// This host's name (slots and member records carry it).
    pub host: String,
    pub canary: bool,
    pub slots: u32,
}

impl Membership {
    pub fn of(inst: &Instance) -> Membership {
        let f = &inst.config.fleet;
        Membership {
            member: inst.fleet_member.clone(),
            host: inst.fleet_host.clone(),
            canary: f.canary,
            slots: f.slots,
        }
    }

    fn me(&self) -> Me<'_> {
        Me {
            member: &self.member,
            host: &self.host,
            canary: self.canary,
            slots: self.slots,
        }
    }
}

/// Where fleet jobs run: chosen once, with the rest of the network work (`cli/src/network.rs`).
#[derive(Debug, Clone)]
pub enum FleetLink {
    /// In a sandboxed helper child per job.
    Helper(Arc<Helper>),
    /// In this process (`network_helper = false`).
    InProcess(Arc<dyn FleetStore>, Membership),
}

impl FleetLink {
    /// Does `op`; the error names what failed (etcd unreachable, refused credentials, …).
    pub async fn call(&self, op: FleetOp) -> Result<FleetReply, String> {
        match self {
            FleetLink::Helper(h) => h.fleet(op).await,
            FleetLink::InProcess(store, me) => {
                perform(store.as_ref(), me, op).await.map_err(|e| e.message)
            }
        }
    }
}
