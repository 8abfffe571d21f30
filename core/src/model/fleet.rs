//! The fleet's records as they live in etcd (one JSON value per key, layout in
//! docs/REFERENCE.md "Fleet keys in etcd"), and the view of a group read at one revision.
//!
//! Every record carries its member's name in its value: member names may hold `/`
//! (`<hostname>/<instance id>`), so a key is never parsed back into a name.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a member holding a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SlotState {
    /// Taken before the stop; the upgrade runs.
    Upgrading,
    /// The new version runs and awaits its confirmation.
    Confirming,
    /// The upgrade failed or was rolled back: the slot stays taken until an operator releases
    /// it (`nymvisor fleet release <member>`).
    Failed,
}

impl SlotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Upgrading => "upgrading",
            SlotState::Confirming => "confirming",
            SlotState::Failed => "failed",
        }
    }
}

/// One upgrade slot of a group, held by one member from the stop of an upgrade to its
/// confirmation (or kept, failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub member: String,
    /// The version being installed.
    pub version: String,
    /// The upgrade's name (its directory under `upgrades/`).
    pub upgrade: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub state: SlotState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub canary: bool,
    /// The host of the nymvisor that took it (empty: not recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The store's revision of the record when it was read (0: not read from a store): a
    /// release is guarded by it, so a slot that changed meanwhile is never removed blindly.
    #[serde(skip)]
    pub revision: i64,
}

/// What this member's history says of a version, for settling a slot found at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryMark {
    pub version: String,
    /// Confirmed (else rolled back).
    pub confirmed: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A version that failed on a member: no other member applies it until `fleet retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedVersion {
    pub version: String,
    pub member: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A member confirmed a version (recorded when it releases its slot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    pub version: String,
    pub member: String,
    pub canary: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The group-wide hold (`nymvisor fleet hold`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetHold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who placed it (a member name, or `user@host` for a command run elsewhere).
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A member as it last said itself (at each start of `run`, and with each slot change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSeen {
    pub member: String,
    /// The version it runs.
    pub version: String,
    pub canary: bool,
    /// The host of the nymvisor that said it (empty: not recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(with = "time::serde::rfc3339")]
    pub seen: OffsetDateTime,
}

/// A group as read from etcd at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    pub group: String,
    /// The store's revision of the read: a slot is taken only if no slot changed after it.
    pub revision: i64,
    pub slots: Vec<Slot>,
    pub failed: Vec<FailedVersion>,
    pub confirmations: Vec<Confirmation>,
    pub hold: Option<FleetHold>,
    pub members: Vec<MemberSeen>,
    /// Values under the group's prefix that did not parse (key: what is wrong).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Keys under `slots/` whose value did not parse (a newer nymvisor's record, a hand-made
    /// one): each counts as a taken slot — fail closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_slots: Vec<String>,
}

impl FleetView {
    /// The slot `member` holds, if any.
    pub fn slot_of(&self, member: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.member == member)
    }

    /// Whether `version` failed somewhere in the group (and was not retried).
    pub fn failed_version(&self, version: &str) -> Option<&FailedVersion> {
        self.failed.iter().find(|f| f.version == version)
    }

    /// Whether a canary member confirmed `version`.
    pub fn canary_confirmed(&self, version: &str) -> bool {
        self.confirmations
            .iter()
            .any(|c| c.canary && c.version == version)
    }

    /// Whether any member of the group says it is a canary.
    pub fn has_canaries(&self) -> bool {
        self.members.iter().any(|m| m.canary) || self.slots.iter().any(|s| s.canary)
    }
}

impl FleetView {
    /// For `nymvisor fleet status`; `me`: the member asking, `slots`: its group's slots.
    pub fn to_text(&self, me: &str, slots: u32) -> String {
        use std::fmt::Write;
        let t = crate::model::rfc3339;
        let mut s = String::new();
        let failed = self
            .slots
            .iter()
            .filter(|x| x.state == SlotState::Failed)
            .count();
        let _ = writeln!(
            s,
            "group:     {} ({} of {slots} slot(s) held{}; asked as {me})",
            self.group,
            self.slots.len(),
            if failed as u64 >= u64::from(slots) {
                ", the circuit breaker is open: failed slots fill the group"
            } else {
                ""
            }
        );
        match &self.hold {
            Some(h) => {
                let _ = writeln!(
                    s,
                    "hold:      since {} by {}{}",
                    t(h.since),
                    h.by,
                    h.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
            None => s.push_str("hold:      none\n"),
        }
        if self.slots.is_empty() {
            s.push_str("slots:     all free\n");
        } else {
            s.push_str("slots:\n");
            for x in &self.slots {
                let _ = writeln!(
                    s,
                    "  {}  {} {} since {}{}",
                    x.member,
                    x.state.as_str(),
                    x.version,
                    t(x.since),
                    x.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
            }
        }
        for f in &self.failed {
            let _ = writeln!(
                s,
                "failed:    {} on {} at {}: {} (`nymvisor fleet retry {}`)",
                f.version,
                f.member,
                t(f.at),
                f.reason,
                f.version
            );
        }
        let mut versions: Vec<&str> = self
            .confirmations
            .iter()
            .map(|c| c.version.as_str())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        for v in versions {
            let by: Vec<String> = self
                .confirmations
                .iter()
                .filter(|c| c.version == v)
                .map(|c| {
                    if c.canary {
                        format!("{} (canary)", c.member)
                    } else {
                        c.member.clone()
                    }
                })
                .collect();
            let _ = writeln!(s, "confirmed: {v} by {}", by.join(", "));
        }
        if self.members.is_empty() {
            s.push_str("members:   none seen yet\n");
        } else {
            s.push_str("members:\n");
            for m in &self.members {
                let _ = writeln!(
                    s,
                    "  {}  runs {}{} (seen {})",
                    m.member,
                    m.version,
                    if m.canary { ", canary" } else { "" },
                    t(m.seen)
                );
            }
        }
        for u in &self.unreadable {
            let _ = writeln!(s, "unreadable: {u}");
        }
        s
    }
}
