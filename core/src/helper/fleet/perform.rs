//! Doing a fleet job: what the rules (`crate::upgrade::fleet`) say, with the store.

use super::{FleetOp, FleetReply, Membership};
use crate::fleet::{FleetError, FleetStore};
use crate::model::fleet::{Confirmation, FailedVersion, FleetView, MemberSeen, Slot, SlotState};
use crate::upgrade::fleet::{self as rules, Settle, Verdict};

/// How often a take is tried again when another member took a slot between the read and the
/// write, before the answer is "wait".
const TAKE_ROUNDS: usize = 3;

/// Does `op` with `store` for `me`.
pub async fn perform(
    store: &dyn FleetStore,
    me: &Membership,
    op: FleetOp,
) -> Result<FleetReply, FleetError> {
    let now = crate::model::now();
    let done = |note: String| Ok(FleetReply::Done { note });
    match op {
        FleetOp::Acquire {
            upgrade,
            version,
            immediate,
        } => {
            for _ in 0..TAKE_ROUNDS {
                let view = store.view().await?;
                let guard = match rules::decide(&view, me.me(), &version, immediate) {
                    Verdict::Held => {
                        return Ok(FleetReply::Acquired {
                            through_hold: immediate && view.hold.is_some(),
                        });
                    }
                    Verdict::Wait(w) => {
                        return Ok(FleetReply::Waiting {
                            why: w.to_string(),
                            refused: w.refuses_version(),
                            on_hold: matches!(w, rules::Wait::Hold { .. }),
                        });
                    }
                    Verdict::Take(guard) => guard,
                };
                let slot = Slot {
                    member: me.member.clone(),
                    version: version.clone(),
                    upgrade: upgrade.clone(),
                    since: now,
                    state: SlotState::Upgrading,
                    reason: None,
                    canary: me.canary,
                    host: me.host.clone(),
                    revision: 0,
                };
                if store.take(&slot, &guard).await? {
                    return Ok(FleetReply::Acquired {
                        through_hold: immediate && view.hold.is_some(),
                    });
                }
            }
            Ok(FleetReply::Waiting {
                why:
                    "other members took or released fleet slots while this one asked; asking again"
                        .into(),
                refused: false,
                on_hold: false,
            })
        }
        FleetOp::Confirming { upgrade, version } => {
            let view = store.view().await?;
            let Some(mine) =
                mine(&view, me).filter(|s| s.version == version && s.state != SlotState::Failed)
            else {
                return done(format!(
                    "this member's fleet slot for {version} was released by an operator while it upgraded; it is not taken back"
                ));
            };
            let slot = Slot {
                state: SlotState::Confirming,
                upgrade,
                ..mine.clone()
            };
            if store.update_slot(&slot).await? {
                done(format!("the fleet slot says {version} is confirming"))
            } else {
                done(format!(
                    "this member's fleet slot for {version} was released by an operator while it upgraded; it is not taken back"
                ))
            }
        }
        FleetOp::Release { version } => {
            let c = confirmation(me, &version, now);
            let view = store.view().await?;
            let note = match mine(&view, me) {
                // kept failed meanwhile (a failure recorded after all): no good news to write
                Some(s) if s.version == version && s.state == SlotState::Failed => {
                    return done(format!(
                        "the fleet slot for {version} is kept failed; no confirmation is recorded"
                    ));
                }
                Some(s) if s.version == version => {
                    release_own(store, me, s.revision, Some(&c), "released").await?;
                    "released the fleet slot"
                }
                // an operator released it meanwhile: the confirmation is still true
                _ => {
                    store.record_confirmation(&c).await?;
                    "its fleet slot was released by an operator"
                }
            };
            forget_older(store, me, &version).await?;
            seen(store, me, &version).await?;
            done(format!(
                "{note}; recorded {version} as confirmed{}",
                if me.canary { " by a canary" } else { "" }
            ))
        }
        FleetOp::Fail {
            upgrade,
            version,
            reason,
        } => {
            fail(store, me, upgrade, &version, &reason, now).await?;
            done(format!(
                "the fleet slot is kept as failed and {version} is marked failed for the group (`nymvisor fleet release {}` and `nymvisor fleet retry {version}` clear them)",
                me.member
            ))
        }
        FleetOp::Abandon { version } => {
            let view = store.view().await?;
            match mine(&view, me) {
                Some(s) if s.version == version && s.state != SlotState::Failed => {
                    release_own(store, me, s.revision, None, "given back").await?;
                    done(format!("gave the fleet slot for {version} back"))
                }
                _ => done("held no fleet slot to give back".into()),
            }
        }
        FleetOp::Settle {
            current,
            confirming,
            history,
        } => {
            let view = store.view().await?;
            let slot = view.slot_of(&me.member);
            let settled = rules::settle(
                slot,
                &me.host,
                &current,
                confirming.as_deref(),
                history.as_deref(),
            );
            let (keeps, note) = match settled {
                Settle::Nothing => (None, String::new()),
                Settle::Foreign(host) => {
                    // neither its slot nor its record is this member's to touch
                    return Ok(FleetReply::Settled {
                        keeps: None,
                        note: format!(
                            "the member name {} is also used by host {host}, which holds a slot under it: it is left alone, and nothing is applied here until each member has its own NYMVISOR_FLEET_MEMBER",
                            me.member
                        ),
                    });
                }
                Settle::Keep => (
                    confirming.clone(),
                    format!(
                        "keeps its fleet slot until {} is confirmed",
                        confirming.as_deref().unwrap_or_default()
                    ),
                ),
                Settle::Release => {
                    let c = confirmation(me, &current, now);
                    let revision = slot.map_or(0, |s| s.revision);
                    release_own(store, me, revision, Some(&c), "settled").await?;
                    (
                        None,
                        format!("released its fleet slot: {current} runs and is confirmed"),
                    )
                }
                Settle::Fail => {
                    let version = slot.map(|s| s.version.clone()).unwrap_or_default();
                    let reason = format!(
                        "{version} was rolled back (the rollback was finished when nymvisor started again)"
                    );
                    fail(
                        store,
                        me,
                        slot.map(|s| s.upgrade.clone()).unwrap_or_default(),
                        &version,
                        &reason,
                        now,
                    )
                    .await?;
                    (None, format!("kept its fleet slot as failed: {reason}"))
                }
                Settle::Abandon => {
                    let revision = slot.map_or(0, |s| s.revision);
                    release_own(store, me, revision, None, "settled").await?;
                    (
                        None,
                        "gave back a fleet slot of an upgrade abandoned before its swap".into(),
                    )
                }
            };
            seen(store, me, &current).await?;
            Ok(FleetReply::Settled { keeps, note })
        }
        FleetOp::Status => Ok(FleetReply::Status {
            view: Box::new(store.view().await?),
            member: me.member.clone(),
        }),
        FleetOp::Hold { hold } => {
            let placed = hold.is_some();
            store.set_hold(hold.as_ref()).await?;
            done(if placed {
                format!(
                    "the fleet group is on hold: no member applies an upgrade automatically until `nymvisor fleet unhold` ({})",
                    store.describe()
                )
            } else {
                format!(
                    "the fleet hold is lifted: members apply upgrades again ({})",
                    store.describe()
                )
            })
        }
        FleetOp::ReleaseMember { member, force } => {
            let view = store.view().await?;
            if let Some(s) = view
                .slot_of(&member)
                .filter(|s| s.state != SlotState::Failed && !force)
            {
                return Err(FleetError::new(format!(
                    "{member} holds its slot for {} and is {} now: released, another member may stop while {member} may still be down; `nymvisor fleet release --force {member}` releases it anyway",
                    s.version,
                    s.state.as_str()
                )));
            }
            let Some(s) = view.slot_of(&member) else {
                return done(format!("{member} held no fleet slot"));
            };
            if store.release(&member, s.revision, None).await? {
                done(format!("released the fleet slot of {member}"))
            } else {
                Err(FleetError::new(format!(
                    "the fleet slot of {member} changed meanwhile; look again with `nymvisor fleet status`"
                )))
            }
        }
        FleetOp::ForgetMember { member } => {
            if store.forget_member(&member).await? {
                done(format!(
                    "{member} is forgotten by the group (it said it runs and whether it is a canary; a member that runs again says so again)"
                ))
            } else {
                done(format!("the group has no record of {member}"))
            }
        }
        FleetOp::Retry { version } => {
            if store.clear_failed(&version).await? {
                done(format!(
                    "{version} is no longer marked failed: members may apply it again"
                ))
            } else {
                done(format!("{version} was not marked failed"))
            }
        }
    }
}

/// This member's confirmation of `version`.
fn confirmation(me: &Membership, version: &str, now: time::OffsetDateTime) -> Confirmation {
    Confirmation {
        version: version.to_owned(),
        member: me.member.clone(),
        canary: me.canary,
        at: now,
    }
}

/// Releases this member's slot as it was read (`revision`), recording `confirmation` with it;
/// a slot that changed meanwhile is an error, so the record is tried again from a fresh read.
/// `what` says what was being done, for that error.
async fn release_own(
    store: &dyn FleetStore,
    me: &Membership,
    revision: i64,
    confirmation: Option<&Confirmation>,
    what: &str,
) -> Result<(), FleetError> {
    if store.release(&me.member, revision, confirmation).await? {
        Ok(())
    } else {
        Err(FleetError::new(format!(
            "this member's fleet slot changed while it was being {what}; tried again"
        )))
    }
}

/// This member's slot: under its name and taken from this host (a slot another host took
/// under the same name is never this member's to move on, release or give back).
fn mine<'a>(view: &'a FleetView, me: &Membership) -> Option<&'a Slot> {
    view.slot_of(&me.member)
        .filter(|s| s.host.is_empty() || s.host == me.host)
}

/// Keeps this member's slot as failed and marks `version` failed for the group.
async fn fail(
    store: &dyn FleetStore,
    me: &Membership,
    upgrade: String,
    version: &str,
    reason: &str,
    now: time::OffsetDateTime,
) -> Result<(), FleetError> {
    let slot = Slot {
        member: me.member.clone(),
        version: version.to_owned(),
        upgrade,
        since: now,
        state: SlotState::Failed,
        reason: Some(reason.to_owned()),
        canary: me.canary,
        host: me.host.clone(),
        revision: 0,
    };
    let failed = FailedVersion {
        version: version.to_owned(),
        member: me.member.clone(),
        reason: reason.to_owned(),
        at: now,
    };
    store.fail(&slot, &failed).await
}

/// Removes this member's confirmations of versions before `version` when it is not a canary
/// (the rules read only canaries' confirmations), so the group's records stay small.
async fn forget_older(
    store: &dyn FleetStore,
    me: &Membership,
    version: &str,
) -> Result<(), FleetError> {
    let view = store.view().await?;
    let older: Vec<Confirmation> = view
        .confirmations
        .into_iter()
        // a canary's confirmations stay: a member still on an older version needs them
        .filter(|c| c.member == me.member && c.version != version && !c.canary)
        .collect();
    store.forget(&older).await
}

async fn seen(store: &dyn FleetStore, me: &Membership, version: &str) -> Result<(), FleetError> {
    store
        .seen(&MemberSeen {
            member: me.member.clone(),
            version: version.to_owned(),
            canary: me.canary,
            host: me.host.clone(),
            seen: crate::model::now(),
        })
        .await
}
