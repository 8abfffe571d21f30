//! The fleet's rules (pure): whether this member may take an upgrade slot of its group now, and
//! what a slot found at start means. The records come from [`crate::fleet::FleetStore`]; the
//! helper does what is decided here (`crate::helper`), and the event loop asks (`run/fleet/`).
//!
//! In order, a member waits for:
//! 0. its member name to be its own (another host recorded a slot or itself under it);
//! 1. its own failed slot to be released by an operator (its last upgrade failed);
//! 2. the fleet hold to be lifted (an upgrade queued with `--now` goes through it);
//! 3. `fleet retry` of a version that failed on a member of the group;
//! 4. the circuit breaker: failed slots fill the group's slots — nothing upgrades;
//! 5. a canary's confirmation of the version (members that are not canaries, in a group where
//!    a member said it is one);
//! 6. a free slot.

use std::fmt;

use crate::fleet::TakeGuard;
use crate::model::fleet::{FleetView, HistoryMark, Slot, SlotState};

/// This member, as the group knows it.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    pub member: &'a str,
    /// This host's name (slots and member records carry it).
    pub host: &'a str,
    pub canary: bool,
    /// The group's slots (`NYMVISOR_FLEET_SLOTS`).
    pub slots: u32,
}

/// Why a member may not take a slot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Another host uses this member's name: its slot is never taken as this one's.
    NameTaken {
        member: String,
        host: String,
    },
    /// This member's own last upgrade failed; its slot is kept until released.
    OwnFailed {
        member: String,
        version: String,
        reason: String,
    },
    Hold {
        by: String,
        reason: Option<String>,
    },
    Failed {
        version: String,
        member: String,
        reason: String,
    },
    /// Failed slots fill the group's slots.
    Breaker {
        members: Vec<String>,
    },
    Canary {
        version: String,
    },
    Full {
        holders: Vec<String>,
    },
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::NameTaken { member, host } => write!(
                f,
                "the member name {member} is also used by host {host}: give each member its own NYMVISOR_FLEET_MEMBER (nothing is applied meanwhile)"
            ),
            Wait::OwnFailed {
                member,
                version,
                reason,
            } => write!(
                f,
                "this member's upgrade to {version} failed ({reason}); its fleet slot is kept until `nymvisor fleet release {member}`"
            ),
            Wait::Hold { by, reason } => write!(
                f,
                "the fleet is on hold (placed by {by}{}; `nymvisor fleet unhold` lifts it)",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Wait::Failed {
                version,
                member,
                reason,
            } => write!(
                f,
                "{version} failed on fleet member {member} ({reason}); `nymvisor fleet retry {version}` lets the group try it again"
            ),
            Wait::Breaker { members } => write!(
                f,
                "the fleet stopped upgrading: failed slots of {} fill its slots (`nymvisor fleet release <member>` clears one)",
                members.join(", ")
            ),
            Wait::Canary { version } => {
                write!(f, "waiting for a canary member to confirm {version}")
            }
            Wait::Full { holders } => {
                write!(
                    f,
                    "waiting for a fleet slot (held by {})",
                    holders.join(", ")
                )
            }
        }
    }
}

impl Wait {
    /// The version itself is refused by the group (it failed on a member): the member moves
    /// on to later upgrades instead of waiting behind it.
    pub fn refuses_version(&self) -> bool {
        matches!(self, Wait::Failed { .. })
    }
}

/// The answer to "may I take a slot for `version`?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Yes, if the store still agrees: the write is guarded by this.
    Take(TakeGuard),
    /// This member already holds the slot for this version (a retried take).
    Held,
    Wait(Wait),
}

/// Whether `me` may take a slot of `view`'s group for `version`. `immediate`: an upgrade the
/// operator queued with `add-upgrade --now` (it goes through the fleet hold, nothing else).
pub fn decide(view: &FleetView, me: Me<'_>, version: &str, immediate: bool) -> Verdict {
    if let Some(host) = other_host(view, me) {
        return Verdict::Wait(Wait::NameTaken {
            member: me.member.to_owned(),
            host,
        });
    }
    let mine = view.slot_of(me.member);
    if let Some(s) = mine {
        if s.state == SlotState::Failed {
            return Verdict::Wait(Wait::OwnFailed {
                member: s.member.clone(),
                version: s.version.clone(),
                reason: s.reason.clone().unwrap_or_default(),
            });
        }
        if s.version == version {
            return Verdict::Held;
        }
    }
    if let Some(h) = &view.hold
        && !immediate
    {
        return Verdict::Wait(Wait::Hold {
            by: h.by.clone(),
            reason: h.reason.clone(),
        });
    }
    if let Some(f) = view.failed_version(version) {
        return Verdict::Wait(Wait::Failed {
            version: f.version.clone(),
            member: f.member.clone(),
            reason: f.reason.clone(),
        });
    }
    let failed: Vec<String> = failed_members(view);
    if failed.len() as u64 >= u64::from(me.slots) {
        return Verdict::Wait(Wait::Breaker { members: failed });
    }
    let canary_needed = !me.canary && view.has_canaries();
    if canary_needed && !view.canary_confirmed(version) {
        return Verdict::Wait(Wait::Canary {
            version: version.to_owned(),
        });
    }
    // a stale slot of this member's (another version, abandoned) is replaced, not counted;
    // a slot record that cannot be read is someone's slot
    let holders: Vec<String> = view
        .slots
        .iter()
        .filter(|s| s.member != me.member)
        .map(describe_holder)
        .chain(
            view.unreadable_slots
                .iter()
                .map(|k| format!("{k} (a record this nymvisor cannot read)")),
        )
        .collect();
    if holders.len() as u64 >= u64::from(me.slots) {
        return Verdict::Wait(Wait::Full { holders });
    }
    Verdict::Take(TakeGuard {
        revision: view.revision,
        no_hold: !immediate,
        canary_confirmed: canary_needed,
    })
}

/// Another host that recorded a slot or itself under this member's name, if any.
pub fn other_host(view: &FleetView, me: Me<'_>) -> Option<String> {
    let slot = view.slot_of(me.member).map(|s| s.host.as_str());
    let seen = view
        .members
        .iter()
        .find(|m| m.member == me.member)
        .map(|m| m.host.as_str());
    [slot, seen]
        .into_iter()
        .flatten()
        .find(|h| !h.is_empty() && *h != me.host)
        .map(str::to_owned)
}

fn failed_members(view: &FleetView) -> Vec<String> {
    view.slots
        .iter()
        .filter(|s| s.state == SlotState::Failed)
        .map(|s| s.member.clone())
        .collect()
}

/// `member (version, state)`, for the waiting line.
fn describe_holder(s: &Slot) -> String {
    format!("{} ({} {})", s.member, s.state.as_str(), s.version)
}

/// What to do with this member's slot found when `run` starts (it may have been killed while
/// holding it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// No slot, or a failed one (kept for an operator), or nothing is known to settle it by
    /// (the history cannot be read): kept as it is — fail closed.
    Nothing,
    /// The upgrade it was taken for awaits its confirmation: released when it comes.
    Keep,
    /// The version runs and the history says it was confirmed: released, the confirmation
    /// recorded.
    Release,
    /// The upgrade was rolled back after the slot was taken (a rollback finished at start,
    /// after nymvisor was killed in it): kept as failed and the version marked failed, as if
    /// it had not been killed.
    Fail,
    /// The upgrade never got to a confirmation (abandoned before its swap, or its record was
    /// lost): the slot is given back, without a confirmation.
    Abandon,
    /// The slot under this member's name was taken by another host: left alone.
    Foreign(String),
}

/// `slot`: this member's, if any; `host`: this host's name; `current`: the version `current`
/// runs; `confirming`: the version awaiting confirmation, if any; `history`: what this member's
/// history says of its versions (`None`: it cannot be read).
pub fn settle(
    slot: Option<&Slot>,
    host: &str,
    current: &str,
    confirming: Option<&str>,
    history: Option<&[HistoryMark]>,
) -> Settle {
    let Some(s) = slot else {
        return Settle::Nothing;
    };
    if !s.host.is_empty() && s.host != host {
        return Settle::Foreign(s.host.clone());
    }
    if s.state == SlotState::Failed {
        return Settle::Nothing;
    }
    if confirming == Some(s.version.as_str()) {
        return Settle::Keep;
    }
    let Some(history) = history else {
        return Settle::Nothing;
    };
    // only what happened since the slot was taken: an old rollback of the same version (then
    // retried) says nothing of this attempt
    let since = |confirmed: bool| {
        history
            .iter()
            .any(|m| m.version == s.version && m.confirmed == confirmed && m.at >= s.since)
    };
    if s.version == current && since(true) {
        Settle::Release
    } else if since(false) {
        Settle::Fail
    } else {
        Settle::Abandon
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::{Confirmation, FailedVersion, FleetHold, MemberSeen};
    use time::macros::datetime;

    const T: time::OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

    fn slot(member: &str, version: &str, state: SlotState) -> Slot {
        Slot {
            member: member.into(),
            version: version.into(),
            upgrade: format!("v{version}"),
            since: T,
            state,
            reason: (state == SlotState::Failed).then(|| "rolled back".into()),
            canary: false,
            host: "h".into(),
            revision: 0,
        }
    }

    fn view(slots: Vec<Slot>) -> FleetView {
        FleetView {
            group: "g".into(),
            revision: 7,
            slots,
            ..FleetView::default()
        }
    }

    fn me(member: &str, slots: u32) -> Me<'_> {
        Me {
            member,
            host: "h",
            canary: false,
            slots,
        }
    }

    #[test]
    fn a_free_slot_is_taken_guarded_by_the_views_revision() {
        let v = view(vec![slot("a", "1.2.0", SlotState::Upgrading)]);
        assert_eq!(
            decide(&v, me("b", 2), "1.2.0", false),
            Verdict::Take(TakeGuard {
                revision: 7,
                no_hold: true,
                canary_confirmed: false
            })
        );
    }

    #[test]
    fn full_slots_wait_and_name_their_holders() {
        let v = view(vec![slot("a", "1.2.0", SlotState::Confirming)]);
        let Verdict::Wait(w) = decide(&v, me("b", 1), "1.2.0", false) else {
            panic!("took a slot of a full group");
        };
        assert_eq!(
            w.to_string(),
            "waiting for a fleet slot (held by a (confirming 1.2.0))"
        );
    }

    #[test]
    fn a_member_name_used_by_another_host_is_never_taken_as_ours() {
        // its slot, under our name, from another host: not ours to take over or reuse
        let mut s = slot("b", "1.2.0", SlotState::Upgrading);
        s.host = "other".into();
        let v = view(vec![s]);
        let Verdict::Wait(w) = decide(&v, me("b", 2), "1.2.0", false) else {
            panic!("took another host's slot as its own");
        };
        assert!(w.to_string().contains("also used by host other"), "{w}");
        // …nor its member record
        let mut v = view(vec![]);
        v.members.push(MemberSeen {
            member: "b".into(),
            version: "1.1.0".into(),
            canary: false,
            host: "other".into(),
            seen: T,
        });
        assert!(matches!(
            decide(&v, me("b", 1), "1.2.0", false),
            Verdict::Wait(Wait::NameTaken { .. })
        ));
        // records without a host (older nymvisors) are taken as ours
        v.members[0].host.clear();
        assert!(matches!(
            decide(&v, me("b", 1), "1.2.0", false),
            Verdict::Take(_)
        ));
    }

    #[test]
    fn a_slot_record_that_cannot_be_read_counts_as_taken() {
        let mut v = view(vec![]);
        v.unreadable_slots.push("slots/x".into());
        let Verdict::Wait(w) = decide(&v, me("b", 1), "1.2.0", false) else {
            panic!("took a slot while an unreadable one fills the group");
        };
        assert!(w.to_string().contains("slots/x"), "{w}");
        assert!(matches!(
            decide(&v, me("b", 2), "1.2.0", false),
            Verdict::Take(_)
        ));
    }

    #[test]
    fn a_members_own_slot_is_held_or_replaced() {
        let v = view(vec![slot("b", "1.2.0", SlotState::Upgrading)]);
        assert_eq!(decide(&v, me("b", 1), "1.2.0", false), Verdict::Held);
        // a stale slot of its own (another version) does not count against it
        assert!(matches!(
            decide(&v, me("b", 1), "1.3.0", false),
            Verdict::Take(_)
        ));
    }

    #[test]
    fn failures_stop_the_version_then_the_group() {
        let mut v = view(vec![slot("a", "1.2.0", SlotState::Failed)]);
        v.failed.push(FailedVersion {
            version: "1.2.0".into(),
            member: "a".into(),
            reason: "rolled back".into(),
            at: T,
        });
        assert!(matches!(
            decide(&v, me("b", 2), "1.2.0", false),
            Verdict::Wait(Wait::Failed { .. })
        ));
        // another version still goes while failed slots leave room
        assert!(matches!(
            decide(&v, me("b", 2), "1.2.1", false),
            Verdict::Take(_)
        ));
        // the breaker: failed slots fill the group's slots
        assert_eq!(
            decide(&v, me("b", 1), "1.2.1", false),
            Verdict::Wait(Wait::Breaker {
                members: vec!["a".into()]
            })
        );
        // even `--now` does not pass a failed version
        assert!(matches!(
            decide(&v, me("b", 2), "1.2.0", true),
            Verdict::Wait(Wait::Failed { .. })
        ));
        // the failed member itself waits for an operator
        assert!(matches!(
            decide(&v, me("a", 2), "1.2.1", false),
            Verdict::Wait(Wait::OwnFailed { .. })
        ));
    }

    #[test]
    fn the_fleet_hold_holds_all_but_now() {
        let mut v = view(vec![]);
        v.hold = Some(FleetHold {
            reason: Some("incident 42".into()),
            by: "ops@bastion".into(),
            since: T,
        });
        let Verdict::Wait(w) = decide(&v, me("b", 1), "1.2.0", false) else {
            panic!("a held fleet upgraded");
        };
        assert!(w.to_string().contains("incident 42"), "{w}");
        assert_eq!(
            decide(&v, me("b", 1), "1.2.0", true),
            Verdict::Take(TakeGuard {
                revision: 7,
                no_hold: false,
                canary_confirmed: false
            })
        );
    }

    #[test]
    fn members_wait_for_a_canary_only_where_there_are_canaries() {
        let mut v = view(vec![]);
        assert!(matches!(
            decide(&v, me("b", 1), "1.2.0", false),
            Verdict::Take(_)
        ));
        v.members.push(MemberSeen {
            member: "c".into(),
            version: "1.1.0".into(),
            canary: true,
            host: "h".into(),
            seen: T,
        });
        assert_eq!(
            decide(&v, me("b", 1), "1.2.0", false),
            Verdict::Wait(Wait::Canary {
                version: "1.2.0".into()
            })
        );
        // the canary itself goes first
        let canary = Me {
            member: "c",
            host: "h",
            canary: true,
            slots: 1,
        };
        assert!(matches!(
            decide(&v, canary, "1.2.0", false),
            Verdict::Take(TakeGuard {
                canary_confirmed: false,
                ..
            })
        ));
        v.confirmations.push(Confirmation {
            version: "1.2.0".into(),
            member: "c".into(),
            canary: true,
            at: T,
        });
        assert!(matches!(
            decide(&v, me("b", 1), "1.2.0", false),
            Verdict::Take(TakeGuard {
                canary_confirmed: true,
                ..
            })
        ));
    }

    #[test]
    fn a_slot_found_at_start_is_settled_by_what_runs() {
        let s = slot("b", "1.2.0", SlotState::Upgrading);
        let mark = |confirmed: bool, at| HistoryMark {
            version: "1.2.0".into(),
            confirmed,
            at,
        };
        let none: &[HistoryMark] = &[];
        assert_eq!(
            settle(None, "h", "1.2.0", None, Some(none)),
            Settle::Nothing
        );
        assert_eq!(
            settle(Some(&s), "h", "1.1.0", Some("1.2.0"), Some(none)),
            Settle::Keep
        );
        // runs and confirmed since the slot was taken: released with its confirmation
        let confirmed = [mark(true, T + time::Duration::seconds(5))];
        assert_eq!(
            settle(Some(&s), "h", "1.2.0", None, Some(&confirmed)),
            Settle::Release
        );
        // runs, but no confirmation on record (its journal was lost): given back, no
        // confirmation the canaries' gate would read
        assert_eq!(
            settle(Some(&s), "h", "1.2.0", None, Some(none)),
            Settle::Abandon
        );
        assert_eq!(
            settle(Some(&s), "h", "1.1.0", None, Some(none)),
            Settle::Abandon
        );
        // killed in the rollback, which the start finished: failed, never given back
        let rolled = [mark(false, T + time::Duration::seconds(9))];
        assert_eq!(
            settle(Some(&s), "h", "1.1.0", None, Some(&rolled)),
            Settle::Fail
        );
        // an old rollback of the same version (retried since) is not this attempt's
        let old = [mark(false, T - time::Duration::days(3))];
        assert_eq!(
            settle(Some(&s), "h", "1.1.0", None, Some(&old)),
            Settle::Abandon
        );
        // the history cannot be read: kept as it is
        assert_eq!(settle(Some(&s), "h", "1.1.0", None, None), Settle::Nothing);
        let f = slot("b", "1.2.0", SlotState::Failed);
        assert_eq!(
            settle(Some(&f), "h", "1.1.0", None, Some(none)),
            Settle::Nothing
        );
        // another host's slot under this name: left alone, whatever runs here
        assert_eq!(
            settle(Some(&s), "elsewhere", "1.1.0", None, Some(none)),
            Settle::Foreign("h".into())
        );
    }
}
