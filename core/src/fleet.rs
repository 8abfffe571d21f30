//! Coordination of a fleet: the [`FleetStore`] trait, what a group's records are kept in. The
//! implementation (etcd, over its v3 JSON gateway) lives in the `nymvisor-sources` crate, so
//! that this crate never pulls in an HTTP stack; it runs in the network helper.
//!
//! What is decided with the records — whether this member may take a slot now — is
//! [`crate::upgrade::fleet`] (pure); doing a fleet job is [`crate::helper`]'s.

use std::fmt::Debug;

use crate::model::fleet::{Confirmation, FailedVersion, FleetHold, FleetView, MemberSeen, Slot};

/// A store call failed: unreachable, no quorum, refused credentials or TLS, or a record that
/// cannot be written. The message names the endpoint and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FleetError {
    pub message: String,
}

impl FleetError {
    pub fn new(message: impl Into<String>) -> FleetError {
        FleetError {
            message: message.into(),
        }
    }
}

/// What must still hold when a slot is taken, checked by the store in the same transaction as
/// the write: the decision was made on a view, and another member may have moved since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeGuard {
    /// No slot of the group changed after this revision (the view's).
    pub revision: i64,
    /// The fleet hold is absent (not asked for an upgrade queued with `--now`).
    pub no_hold: bool,
    /// A canary confirmed the version (asked of members that are not canaries, in a group
    /// that has canaries).
    pub canary_confirmed: bool,
}

/// A group's records. Every write is one transaction; none is bound to a lease (a slot
/// outlives the nymvisor that took it, by design).
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync + Debug {
    /// Where the records are, for messages (endpoints and the group's prefix).
    fn describe(&self) -> String;
    /// The group's records at one revision.
    async fn view(&self) -> Result<FleetView, FleetError>;
    /// Writes `slot` if `guard` still holds and `slot.version` has not failed in the group.
    /// `Ok(false)`: something changed since the view; read again.
    async fn take(&self, slot: &Slot, guard: &TakeGuard) -> Result<bool, FleetError>;
    /// Writes the member's slot as it is now (its state moved on), only if the member still
    /// holds one: `Ok(false)`, an operator released it meanwhile (it is not taken back).
    async fn update_slot(&self, slot: &Slot) -> Result<bool, FleetError>;
    /// Keeps `slot` as failed and marks its version failed for the group, in one transaction.
    async fn fail(&self, slot: &Slot, failed: &FailedVersion) -> Result<(), FleetError>;
    /// Removes `member`'s slot as it was read (`revision`: [`Slot::revision`]), recording
    /// `confirmation` in the same transaction when given. `Ok(false)`: the slot changed (or
    /// went) since it was read — nothing is written.
    async fn release(
        &self,
        member: &str,
        revision: i64,
        confirmation: Option<&Confirmation>,
    ) -> Result<bool, FleetError>;
    /// Records a confirmation alone (the member's slot went meanwhile: an operator released it).
    async fn record_confirmation(&self, confirmation: &Confirmation) -> Result<(), FleetError>;
    /// Removes a member's record (`nymvisor fleet forget`: a host gone for good, a canary that
    /// would otherwise keep gating the group).
    async fn forget_member(&self, member: &str) -> Result<bool, FleetError>;
    /// Places (`Some`) or lifts (`None`) the fleet hold.
    async fn set_hold(&self, hold: Option<&FleetHold>) -> Result<(), FleetError>;
    /// Forgets that `version` failed (`nymvisor fleet retry`); `Ok(false)`: it had not.
    async fn clear_failed(&self, version: &str) -> Result<bool, FleetError>;
    /// Records what a member runs (for `fleet status`, and whether the group has canaries).
    async fn seen(&self, member: &MemberSeen) -> Result<(), FleetError>;
    /// Removes `confirmations` (a member's older ones: the group's records stay small).
    async fn forget(&self, confirmations: &[Confirmation]) -> Result<(), FleetError>;
    /// What the next job should start from (a login token, the endpoint that answered), as
    /// opaque JSON: each helper job is a process of its own, and a login per ask would double
    /// the requests of a waiting member.
    fn save_session(&self) -> Option<serde_json::Value> {
        None
    }
    /// Starts from what [`FleetStore::save_session`] gave.
    fn load_session(&self, _session: serde_json::Value) {}
}
