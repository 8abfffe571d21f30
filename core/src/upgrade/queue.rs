//! What is due, what to prepare, and when to wake up: a pure function of a snapshot of the
//! plan, the refusals and the supervisor's progress, with the clock passed in.
//!
//! The queue's rules (docs/ARCHITECTURE.md):
//! - an upstream upgrade's effective time is its `upgradeTime` plus this instance's share of the
//!   spread, moved into the next maintenance window ([`crate::timing`]); an upgrade the operator
//!   queued follows its own time, and `add-upgrade --now` goes at once;
//! - queued upgrades are taken oldest `upgradeTime` first, one at a time;
//! - while a hold is in force nothing is applied automatically (only `--now` goes through);
//! - a refused entry waits for its next attempt (backoff), or for good until it changes;
//! - binaries are prepared ahead of time, one upgrade at a time, in queue order;
//! - a due upgrade is applied once prepared, and waits while the previous upgrade awaits
//!   confirmation (its rollback must stay possible) and while the plan file is broken (it could
//!   not be recorded);
//! - an upgrade from upstream waits while the signed feed is stale (a frozen mirror must not
//!   keep offering what it once signed);
//! - every waiting upgrade says what it waits for and until when.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::model::refusals::Origin;
use crate::model::{Hold, Refusals, UpgradeInfo, UpgradePlan};
pub use crate::model::{QueueEntry as Entry, QueueState as State, WaitingFor};
use crate::refusal::NextAttempt;
use crate::timing::{Placed, Timing};

/// What the queue looks at.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub now: OffsetDateTime,
    pub plan: &'a UpgradePlan,
    pub refusals: &'a Refusals,
    /// Upgrades whose binary is in place and verified, as they were when verified.
    pub ready: &'a BTreeMap<String, UpgradeInfo>,
    /// The upgrade being prepared, if any.
    pub preparing: Option<&'a str>,
    /// The upgrade whose pre-upgrade hook runs, if any.
    pub hook_running: Option<&'a str>,
    /// The upgrade that waits for the fleet, why, and when the fleet is asked again (`None`:
    /// an answer is awaited).
    pub fleet: Option<FleetWait<'a>>,
    /// The upgrade awaiting confirmation and when its startup period ends, if any.
    pub confirming: Option<(&'a str, OffsetDateTime)>,
    /// The plan file does not parse (nothing can be recorded in it).
    pub plan_broken: bool,
    /// The history or the refusals cannot be read: the rules cannot be applied (a rolled-back
    /// release could be taken again), so nothing is applied until they can.
    pub records_broken: bool,
    /// Spread and windows.
    pub timing: &'a Timing,
    /// A hold on automatic upgrades, if one is in force.
    pub hold: Option<&'a Hold>,
    /// The signed feed is stale (expired, or its mark unreadable): upgrades from upstream wait
    /// for a fresh one.
    pub feed_stale: bool,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Start preparing this upgrade (ahead of its time).
    pub prepare: Option<UpgradeInfo>,
    /// Apply this upgrade now: it is due and prepared.
    pub apply: Option<UpgradeInfo>,
    /// This upgrade is due but not prepared yet.
    pub due_unprepared: Option<UpgradeInfo>,
    /// The next time the decision may change by itself.
    pub wake_at: Option<OffsetDateTime>,
    pub entries: Vec<Entry>,
}

/// How often unreadable state files are looked at again while an upgrade waits for them.
pub const RECORDS_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

fn earliest(a: Option<OffsetDateTime>, b: OffsetDateTime) -> Option<OffsetDateTime> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// An upgrade waiting for its fleet group (`run/fleet/`).
#[derive(Debug, Clone, Copy)]
pub struct FleetWait<'a> {
    pub upgrade: &'a str,
    pub why: &'a str,
    /// When the fleet is asked again; `None`: an answer is awaited.
    pub ask_at: Option<OffsetDateTime>,
}

/// The decision for `s`.
pub fn decide(s: &Snapshot<'_>) -> Decision {
    let mut d = Decision {
        prepare: None,
        apply: None,
        due_unprepared: None,
        wake_at: None,
        entries: Vec::new(),
    };
    let mut due_seen = false;
    for q in &s.plan.queued_up {
        let placed = if q.follows_fleet_timing() {
            s.timing
                .place(&q.name, q.upgrade_time, q.first_seen_at, s.now)
        } else {
            Placed {
                at: q.upgrade_time,
                by_window: false,
            }
        };
        let effective = placed.at;
        let mut entry = Entry {
            name: q.name.clone(),
            version: q.version.clone(),
            upgrade_time: q.upgrade_time,
            effective_upgrade_time: effective,
            state: State::Scheduled,
            waiting_for: None,
            until: None,
            reason: None,
        };
        if let Some(r) = s.refusals.for_entry(q) {
            entry.reason = Some(r.reason.clone());
            match r.next_attempt {
                NextAttempt::Never => {
                    entry.state = State::Refused;
                    d.entries.push(entry);
                    continue;
                }
                NextAttempt::At(t) if t > s.now => {
                    entry.state = State::Retrying;
                    entry.waiting_for = Some(if r.origin == Origin::Hook {
                        WaitingFor::Hook
                    } else {
                        WaitingFor::Backoff
                    });
                    entry.until = Some(t);
                    d.wake_at = earliest(d.wake_at, t);
                    d.entries.push(entry);
                    continue;
                }
                NextAttempt::At(_) => entry.state = State::Retrying,
            }
        }
        let ready = s.ready.get(&q.name) == Some(q);
        let preparing = s.preparing == Some(q.name.as_str());
        if preparing {
            entry.state = State::Preparing;
        } else if ready {
            entry.state = State::Ready;
        } else if s.preparing.is_none() && d.prepare.is_none() {
            d.prepare = Some(q.clone());
        }
        if effective > s.now {
            if q.upgrade_time <= s.now {
                // its time has come, but not its turn on this node
                entry.waiting_for = Some(if placed.by_window {
                    WaitingFor::Window
                } else {
                    WaitingFor::Spread
                });
                entry.until = Some(effective);
            }
            d.wake_at = earliest(d.wake_at, effective);
            d.entries.push(entry);
            continue;
        }
        // due
        if due_seen {
            entry.waiting_for = Some(WaitingFor::Earlier);
        } else if s.hold.is_some() && !q.immediate {
            entry.waiting_for = Some(WaitingFor::Hold);
        } else if s.plan_broken {
            entry.waiting_for = Some(WaitingFor::Plan);
        } else if s.feed_stale && q.follows_fleet_timing() {
            // not the due upgrade ahead of the others: the operator's `--now` ones still go
            entry.waiting_for = Some(WaitingFor::Feed);
            d.entries.push(entry);
            continue;
        } else if s.records_broken {
            entry.waiting_for = Some(WaitingFor::Records);
            // the files are looked at again then (a fix is not always a change the watch sees)
            d.wake_at = earliest(d.wake_at, s.now + RECORDS_RECHECK);
        } else if let Some((_, until)) = s.confirming {
            entry.waiting_for = Some(WaitingFor::Confirmation);
            entry.until = Some(until);
        } else if let Some(hooked) = s.hook_running {
            // one upgrade at a time: while a pre-upgrade hook runs, nothing else is applied
            entry.waiting_for = Some(if hooked == q.name {
                WaitingFor::Hook
            } else {
                WaitingFor::Earlier
            });
        } else if let Some(f) = s.fleet.filter(|f| f.ask_at.is_none_or(|t| t > s.now)) {
            // one upgrade at a time: while the fleet is asked, or says not yet, nothing else
            // is applied; no `until` in the entry (it moves with every ask, `status` would be
            // rewritten each time), the reason says what it waits for
            if f.upgrade == q.name {
                entry.waiting_for = Some(WaitingFor::Fleet);
                entry.reason = Some(f.why.to_owned());
            } else {
                entry.waiting_for = Some(WaitingFor::Earlier);
            }
            if let Some(t) = f.ask_at {
                d.wake_at = earliest(d.wake_at, t);
            }
        } else if !ready {
            entry.waiting_for = Some(WaitingFor::Download);
            d.due_unprepared = Some(q.clone());
        } else {
            entry.state = State::Due;
            d.apply = Some(q.clone());
        }
        due_seen = true;
        d.entries.push(entry);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::refusals::Origin;
    use crate::refusal::Refusal;
    use time::macros::datetime;

    fn fixture(name: &str) -> UpgradePlan {
        let text = match name {
            "three" => include_str!("testdata/plan-three-queued.json"),
            _ => include_str!("testdata/plan-nothing-queued.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    /// 2026-11-28T12:00Z: v1.2.0 (10:00) is due, v1.3.0 (14:00) and v1.4.0 (Dec 1) are not.
    const NOON: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    struct World {
        plan: UpgradePlan,
        refusals: Refusals,
        ready: BTreeMap<String, UpgradeInfo>,
        preparing: Option<String>,
        hook_running: Option<String>,
        fleet: Option<(String, Option<OffsetDateTime>)>,
        confirming: Option<(String, OffsetDateTime)>,
        plan_broken: bool,
        records_broken: bool,
        now: OffsetDateTime,
        timing: Timing,
        hold: Option<Hold>,
        feed_stale: bool,
    }

    impl World {
        fn new(plan: &str) -> World {
            World {
                plan: fixture(plan),
                refusals: Refusals::default(),
                ready: BTreeMap::new(),
                preparing: None,
                hook_running: None,
                fleet: None,
                confirming: None,
                plan_broken: false,
                records_broken: false,
                now: NOON,
                timing: Timing::default(),
                hold: None,
                feed_stale: false,
            }
        }
        fn ready(mut self, name: &str) -> World {
            let q = self.plan.queued(name).unwrap().clone();
            self.ready.insert(name.to_owned(), q);
            self
        }
        fn refuse(mut self, name: &str, r: Refusal) -> World {
            let q = self.plan.queued(name).unwrap().clone();
            self.refusals.record(&q, &r, Origin::Plan, self.now);
            self
        }
        fn decide(&self) -> Decision {
            decide(&Snapshot {
                now: self.now,
                plan: &self.plan,
                refusals: &self.refusals,
                ready: &self.ready,
                preparing: self.preparing.as_deref(),
                hook_running: self.hook_running.as_deref(),
                fleet: self.fleet.as_ref().map(|(n, t)| FleetWait {
                    upgrade: n,
                    why: "waiting for a fleet slot (held by a)",
                    ask_at: *t,
                }),
                confirming: self.confirming.as_ref().map(|(n, t)| (n.as_str(), *t)),
                plan_broken: self.plan_broken,
                records_broken: self.records_broken,
                timing: &self.timing,
                hold: self.hold.as_ref(),
                feed_stale: self.feed_stale,
            })
        }
    }

    fn name(i: &Option<UpgradeInfo>) -> Option<&str> {
        i.as_ref().map(|i| i.name.as_str())
    }

    fn states(d: &Decision) -> Vec<(&str, State, Option<WaitingFor>)> {
        d.entries
            .iter()
            .map(|e| (e.name.as_str(), e.state, e.waiting_for))
            .collect()
    }

    #[test]
    fn nothing_queued_nothing_to_do() {
        let d = World::new("nothing").decide();
        assert_eq!(
            d,
            Decision {
                prepare: None,
                apply: None,
                due_unprepared: None,
                wake_at: None,
                entries: vec![],
            }
        );
    }

    #[test]
    fn the_first_entry_is_prepared_ahead_of_its_time() {
        let mut w = World::new("three");
        w.now = datetime!(2026-11-28 09:00 UTC);
        let d = w.decide();
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
        assert_eq!(d.apply, None);
        assert_eq!(d.due_unprepared, None);
        assert_eq!(d.wake_at, Some(datetime!(2026-11-28 10:00 UTC)));
        assert!(
            d.entries
                .iter()
                .all(|e| e.state == State::Scheduled && e.waiting_for.is_none())
        );
    }

    #[test]
    fn a_due_entry_that_is_not_prepared_waits_for_its_download() {
        let d = World::new("three").decide();
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
        assert_eq!(name(&d.due_unprepared), Some("v1.2.0"));
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Download));
        assert_eq!(d.wake_at, Some(datetime!(2026-11-28 14:00 UTC)));
    }

    #[test]
    fn a_due_prepared_entry_is_applied() {
        let d = World::new("three").ready("v1.2.0").decide();
        assert_eq!(name(&d.apply), Some("v1.2.0"));
        assert_eq!(d.entries[0].state, State::Due);
        // the next one is prepared meanwhile
        assert_eq!(name(&d.prepare), Some("v1.3.0"));
    }

    #[test]
    fn one_preparation_at_a_time() {
        let mut w = World::new("three");
        w.preparing = Some("v1.3.0".into());
        let d = w.decide();
        assert_eq!(d.prepare, None);
        assert_eq!(
            states(&d),
            vec![
                ("v1.2.0", State::Scheduled, Some(WaitingFor::Download)),
                ("v1.3.0", State::Preparing, None),
                ("v1.4.0", State::Scheduled, None),
            ]
        );
    }

    #[test]
    fn a_ready_entry_that_changed_is_prepared_again() {
        let mut w = World::new("three").ready("v1.2.0");
        w.plan.queued_up[0]
            .platforms
            .get_mut("linux-x86_64")
            .unwrap()
            .checksum = "bb".repeat(32);
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
    }

    #[test]
    fn due_entries_go_oldest_first_one_at_a_time() {
        let mut w = World::new("three").ready("v1.2.0").ready("v1.3.0");
        w.now = datetime!(2026-11-28 15:00 UTC);
        let d = w.decide();
        assert_eq!(name(&d.apply), Some("v1.2.0"));
        assert_eq!(d.entries[1].waiting_for, Some(WaitingFor::Earlier));
    }

    #[test]
    fn the_previous_upgrade_must_be_confirmed_first() {
        let mut w = World::new("three").ready("v1.2.0");
        let until = datetime!(2026-11-28 12:02 UTC);
        w.confirming = Some(("v1.1.9".into(), until));
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Confirmation));
        assert_eq!(d.entries[0].until, Some(until));
        // preparing ahead goes on
        assert_eq!(name(&d.prepare), Some("v1.3.0"));
    }

    #[test]
    fn a_broken_plan_holds_every_due_upgrade() {
        let mut w = World::new("three").ready("v1.2.0");
        w.plan_broken = true;
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Plan));
    }

    #[test]
    fn a_running_pre_upgrade_hook_is_waited_for() {
        let mut w = World::new("three").ready("v1.2.0");
        w.hook_running = Some("v1.2.0".into());
        let d = w.decide();
        assert_eq!(d.apply, None, "applied while its hook runs");
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Hook));
        // nor anything else (the hook's entry was cancelled, another became due)
        w.hook_running = Some("gone".into());
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Earlier));
        w.hook_running = None;
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn an_upgrade_waits_for_the_fleet_until_it_is_asked_again() {
        let mut w = World::new("three").ready("v1.2.0");
        // the answer is awaited
        w.fleet = Some(("v1.2.0".into(), None));
        let d = w.decide();
        assert_eq!(d.apply, None, "applied while the fleet is asked");
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Fleet));
        assert_eq!(d.entries[0].until, None);
        assert_eq!(
            d.entries[0].reason.as_deref(),
            Some("waiting for a fleet slot (held by a)")
        );
        // not yet: asked again at the time it said, which wakes the loop
        let again = NOON + time::Duration::seconds(2);
        w.fleet = Some(("v1.2.0".into(), Some(again)));
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.wake_at, Some(again));
        // its time: due again (the event loop asks the fleet before the stop)
        w.now = again;
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn unreadable_records_hold_every_due_upgrade() {
        let mut w = World::new("three").ready("v1.2.0");
        w.records_broken = true;
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.due_unprepared, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Records));
        // preparing ahead is harmless and goes on
        assert!(d.prepare.is_some() || d.entries.iter().any(|e| e.state == State::Ready));
    }

    #[test]
    fn a_refused_entry_is_skipped_for_good_until_it_changes() {
        let w = World::new("three").refuse("v1.2.0", Refusal::never("bad checksum"));
        let d = w.decide();
        assert_eq!(d.entries[0].state, State::Refused);
        assert_eq!(d.entries[0].reason.as_deref(), Some("bad checksum"));
        assert_eq!(name(&d.prepare), Some("v1.3.0"), "the next one is prepared");
        assert_eq!(d.apply, None);
        assert_eq!(d.due_unprepared, None);
        // its entry changes: a new candidate
        let mut w = w;
        w.plan.queued_up[0].version = "1.2.1".into();
        let d = w.decide();
        assert_eq!(d.entries[0].state, State::Scheduled);
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
    }

    #[test]
    fn a_transient_refusal_waits_for_its_backoff() {
        let w = World::new("three").refuse("v1.2.0", Refusal::transient("mirror down"));
        let d = w.decide();
        let e = &d.entries[0];
        assert_eq!(
            (e.state, e.waiting_for),
            (State::Retrying, Some(WaitingFor::Backoff))
        );
        assert_eq!(e.until, Some(NOON + time::Duration::seconds(10)));
        assert_eq!(d.wake_at, Some(NOON + time::Duration::seconds(10)));
        assert_eq!(name(&d.prepare), Some("v1.3.0"));
        assert_eq!(d.due_unprepared, None);
    }

    #[test]
    fn after_the_backoff_it_is_tried_again() {
        let mut w = World::new("three").refuse("v1.2.0", Refusal::transient("mirror down"));
        w.now = NOON + time::Duration::seconds(11);
        let d = w.decide();
        assert_eq!(d.entries[0].state, State::Retrying);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Download));
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
        assert_eq!(name(&d.due_unprepared), Some("v1.2.0"));
    }

    #[test]
    fn a_retry_at_a_fixed_time() {
        let at = datetime!(2026-11-28 13:00 UTC);
        let w = World::new("three").refuse("v1.2.0", Refusal::until("hook said later", at));
        let d = w.decide();
        assert_eq!(d.entries[0].until, Some(at));
        assert_eq!(d.wake_at, Some(at));
    }

    #[test]
    fn the_wake_up_is_the_earliest_of_times_and_retries() {
        let mut w = World::new("three").refuse("v1.2.0", Refusal::transient("x"));
        w.now = datetime!(2026-11-28 13:59:55 UTC);
        // the backoff (14:00:05) comes after v1.3.0's time (14:00)
        assert_eq!(w.decide().wake_at, Some(datetime!(2026-11-28 14:00 UTC)));
    }

    #[test]
    fn everything_refused_means_no_wake_up() {
        let w = World::new("three")
            .refuse("v1.2.0", Refusal::never("a"))
            .refuse("v1.3.0", Refusal::never("b"))
            .refuse("v1.4.0", Refusal::never("c"));
        let d = w.decide();
        assert_eq!((d.prepare, d.apply, d.wake_at), (None, None, None));
        assert!(d.entries.iter().all(|e| e.state == State::Refused));
    }

    #[test]
    fn an_upstream_refusal_of_another_entry_does_not_block_the_queued_one() {
        let mut w = World::new("three");
        let mut offer = w.plan.queued_up[0].clone();
        offer.version = "1.2.9".into();
        w.refusals
            .record(&offer, &Refusal::never("changed"), Origin::Upstream, NOON);
        let d = w.decide();
        assert_eq!(d.entries[0].state, State::Scheduled);
        assert_eq!(name(&d.prepare), Some("v1.2.0"));
    }

    #[test]
    fn the_spread_moves_an_upstream_upgrade_by_this_instances_offset() {
        let mut w = World::new("three").ready("v1.2.0");
        w.timing = Timing {
            seed: 3,
            spread: std::time::Duration::from_secs(6 * 3600),
            windows: None,
        };
        let offset = crate::timing::offset(3, "v1.2.0", w.timing.spread);
        let at = datetime!(2026-11-28 10:00 UTC) + offset;
        w.now = at - time::Duration::seconds(1);
        let d = w.decide();
        let e = &d.entries[0];
        assert_eq!(e.effective_upgrade_time, at);
        assert_eq!(
            (e.waiting_for, e.until),
            (Some(WaitingFor::Spread), Some(at))
        );
        assert_eq!(d.apply, None);
        assert_eq!(d.wake_at, Some(at));
        w.now = at;
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn windows_move_an_upstream_upgrade_to_the_next_window() {
        let mut w = World::new("three").ready("v1.2.0");
        // noon on a Saturday; the window opens on Sunday
        w.timing.windows = Some(crate::timing::Windows::parse("Sun 00:00-06:00").unwrap());
        let d = w.decide();
        let e = &d.entries[0];
        assert_eq!(e.effective_upgrade_time, datetime!(2026-11-29 00:00 UTC));
        assert_eq!(e.waiting_for, Some(WaitingFor::Window));
        assert_eq!(d.apply, None);
        // a window that includes now does not delay
        w.timing.windows = Some(crate::timing::Windows::parse("Sat 11:00-13:00").unwrap());
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn the_operators_own_upgrades_ignore_spread_and_windows() {
        let mut w = World::new("three");
        w.plan.queued_up[0].platforms.clear();
        let mut w = w.ready("v1.2.0");
        w.timing.spread = std::time::Duration::from_secs(24 * 3600);
        w.timing.windows = Some(crate::timing::Windows::parse("Sun 00:00-06:00").unwrap());
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
        // and so does --now, even with download details
        let mut w = World::new("three").ready("v1.2.0");
        w.plan.queued_up[0].immediate = true;
        w.ready.insert("v1.2.0".into(), w.plan.queued_up[0].clone());
        w.timing.spread = std::time::Duration::from_secs(24 * 3600);
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn a_hold_stops_everything_but_now() {
        let mut w = World::new("three").ready("v1.2.0");
        w.hold = Some(Hold {
            reason: Some("exams".into()),
            since: NOON,
        });
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Hold));
        // preparing ahead goes on
        assert_eq!(name(&d.prepare), Some("v1.3.0"));
        w.plan.queued_up[0].immediate = true;
        w.ready.insert("v1.2.0".into(), w.plan.queued_up[0].clone());
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn a_stale_feed_holds_upstream_upgrades_but_not_the_operator_s() {
        let mut w = World::new("three").ready("v1.2.0");
        w.feed_stale = true;
        let d = w.decide();
        assert_eq!(d.apply, None);
        assert_eq!(d.entries[0].waiting_for, Some(WaitingFor::Feed));
        // preparing ahead goes on
        assert_eq!(name(&d.prepare), Some("v1.3.0"));
        // `add-upgrade --now` / `retry --now` are the operator's, not the feed's
        w.plan.queued_up[0].immediate = true;
        w.ready.insert("v1.2.0".into(), w.plan.queued_up[0].clone());
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
        // nor does it hold up a later `--now`
        let mut w = World::new("three").ready("v1.2.0");
        w.feed_stale = true;
        w.plan.queued_up[1].immediate = true;
        w.plan.queued_up[1].upgrade_time = w.now;
        w.ready.insert("v1.3.0".into(), w.plan.queued_up[1].clone());
        assert_eq!(name(&w.decide().apply), Some("v1.3.0"));
        // fresh again: applied
        let mut w = World::new("three").ready("v1.2.0");
        w.feed_stale = false;
        assert_eq!(name(&w.decide().apply), Some("v1.2.0"));
    }

    #[test]
    fn a_hook_that_said_not_now_is_waited_for() {
        let mut w = World::new("three").ready("v1.2.0");
        let q = w.plan.queued_up[0].clone();
        w.refusals
            .record(&q, &Refusal::transient("drain failed"), Origin::Hook, NOON);
        let e = &w.decide().entries[0];
        assert_eq!(e.waiting_for, Some(WaitingFor::Hook));
        assert_eq!(e.reason.as_deref(), Some("drain failed"));
    }

    #[test]
    fn entries_serialize_for_status() {
        let d = World::new("three").ready("v1.2.0").decide();
        let v = serde_json::to_value(&d.entries[0]).unwrap();
        assert_eq!(v["state"], "due");
        assert_eq!(v["effectiveUpgradeTime"], "2026-11-28T10:00:00Z");
        assert_eq!(v["waitingFor"], serde_json::Value::Null);
        let d = World::new("three").decide();
        assert_eq!(
            serde_json::to_value(&d.entries[0]).unwrap()["waitingFor"],
            "download"
        );
    }
}
