//! The event loop's side of the fleet against an in-memory store (no etcd, no helper): what is
//! asked, what is recorded after each outcome, what is given back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use super::*;
use crate::fleet::{FleetError, FleetStore, TakeGuard};
use crate::helper::fleet::Membership;
use crate::model::fleet::{
    Confirmation, FailedVersion, FleetHold, FleetView, MemberSeen, Slot, SlotState,
};

/// A group in memory; `down` makes every call fail as an unreachable etcd would.
#[derive(Debug, Default)]
struct Memory {
    view: Mutex<FleetView>,
    down: Mutex<bool>,
}

impl Memory {
    fn check(&self) -> Result<(), FleetError> {
        if *self.down.lock().unwrap() {
            return Err(FleetError::new("etcd did not answer"));
        }
        Ok(())
    }

    fn slots(&self) -> Vec<Slot> {
        self.view.lock().unwrap().slots.clone()
    }
}

#[async_trait::async_trait]
impl FleetStore for Memory {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn view(&self) -> Result<FleetView, FleetError> {
        self.check()?;
        Ok(self.view.lock().unwrap().clone())
    }
    async fn take(&self, slot: &Slot, guard: &TakeGuard) -> Result<bool, FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        if v.revision != guard.revision {
            return Ok(false);
        }
        v.revision += 1;
        let mut slot = slot.clone();
        slot.revision = v.revision;
        v.slots.retain(|s| s.member != slot.member);
        v.slots.push(slot);
        Ok(true)
    }
    async fn update_slot(&self, slot: &Slot) -> Result<bool, FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        v.revision += 1;
        let revision = v.revision;
        let Some(s) = v.slots.iter_mut().find(|s| s.member == slot.member) else {
            return Ok(false);
        };
        *s = Slot {
            revision,
            ..slot.clone()
        };
        Ok(true)
    }
    async fn fail(&self, slot: &Slot, failed: &FailedVersion) -> Result<(), FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        v.revision += 1;
        let slot = Slot {
            revision: v.revision,
            ..slot.clone()
        };
        v.slots.retain(|s| s.member != slot.member);
        v.slots.push(slot);
        v.failed.push(failed.clone());
        Ok(())
    }
    async fn release(
        &self,
        member: &str,
        revision: i64,
        c: Option<&Confirmation>,
    ) -> Result<bool, FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        if !v
            .slots
            .iter()
            .any(|s| s.member == member && s.revision == revision)
        {
            return Ok(false);
        }
        v.slots.retain(|s| s.member != member);
        v.confirmations.extend(c.cloned());
        v.revision += 1;
        Ok(true)
    }
    async fn record_confirmation(&self, c: &Confirmation) -> Result<(), FleetError> {
        self.check()?;
        self.view.lock().unwrap().confirmations.push(c.clone());
        Ok(())
    }
    async fn forget_member(&self, member: &str) -> Result<bool, FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        let had = v.members.iter().any(|m| m.member == member);
        v.members.retain(|m| m.member != member);
        Ok(had)
    }
    async fn set_hold(&self, hold: Option<&FleetHold>) -> Result<(), FleetError> {
        self.check()?;
        self.view.lock().unwrap().hold = hold.cloned();
        Ok(())
    }
    async fn clear_failed(&self, version: &str) -> Result<bool, FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        let had = v.failed.iter().any(|f| f.version == version);
        v.failed.retain(|f| f.version != version);
        Ok(had)
    }
    async fn seen(&self, m: &MemberSeen) -> Result<(), FleetError> {
        self.check()?;
        let mut v = self.view.lock().unwrap();
        v.members.retain(|x| x.member != m.member);
        v.members.push(m.clone());
        Ok(())
    }
    async fn forget(&self, cs: &[Confirmation]) -> Result<(), FleetError> {
        self.check()?;
        self.view
            .lock()
            .unwrap()
            .confirmations
            .retain(|c| !cs.contains(c));
        Ok(())
    }
}

fn info(name: &str, version: &str) -> UpgradeInfo {
    serde_json::from_value(serde_json::json!({
        "name": name, "version": version, "upgradeTime": "2026-12-06T00:00:00Z"
    }))
    .unwrap()
}

/// Member `me`'s slot for 1.2.0 (`v2`), as taken from `host`.
fn upgrading_v2(host: &str) -> Slot {
    Slot {
        member: "me".into(),
        version: "1.2.0".into(),
        upgrade: "v2".into(),
        since: model::now(),
        state: SlotState::Upgrading,
        reason: None,
        canary: false,
        host: host.into(),
        revision: 1,
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Memory>,
    fleet: Fleet,
}

/// Member `me` of group `g` (one slot), running 1.1.0, nothing awaiting confirmation.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config::Config::default();
    config.daemon.name = "nym-node".into();
    config.nymvisor.id = "nym-node-default".into();
    config.fleet.etcd_endpoints = vec!["http://127.0.0.1:1".into()];
    config.fleet.group = "g".into();
    config.fleet.member = Some("me".into());
    let inst = crate::instance::Instance::new(
        config,
        dir.path().join("config.toml"),
        crate::paths::NymvisorHome::at_root(dir.path().join("nymvisors")),
    );
    std::fs::create_dir_all(inst.data.root()).unwrap();
    let store = Arc::new(Memory::default());
    let me = Membership::of(&inst);
    let link = FleetLink::InProcess(store.clone(), me);
    let fleet = Fleet::new(link, &inst, "1.1.0", None, Some(Vec::new()));
    World {
        _dir: dir,
        store,
        fleet,
    }
}

impl World {
    /// The host name the fleet records for this member.
    fn fleet_host(&self) -> String {
        crate::config::fleet_host_name()
    }

    /// Runs the fleet's jobs until none is in flight or pending (as the event loop would).
    async fn settle(&mut self) -> Option<(UpgradeInfo, String)> {
        let mut refused = None;
        for _ in 0..10 {
            self.fleet.retry_at = None;
            self.fleet.kick();
            if self.fleet.job.is_none() {
                break;
            }
            let r = self.fleet.finished().await;
            refused = self.fleet.on_finished(r).or(refused);
        }
        refused
    }

    async fn take(&mut self, info: &UpgradeInfo) {
        self.settle().await;
        self.fleet.ask(info);
        let r = self.fleet.finished().await;
        self.fleet.on_finished(r);
        assert!(self.fleet.holds(&info.name), "{:?}", self.store.slots());
    }
}

#[tokio::test]
async fn each_outcome_leaves_the_record_it_should() {
    let v2 = info("v2", "1.2.0");
    // confirmed: released, with a confirmation
    let mut w = world();
    w.take(&v2).await;
    w.fleet.upgrade_ended(&v2, "confirming", "");
    w.settle().await;
    assert_eq!(w.store.slots()[0].state, SlotState::Confirming);
    w.fleet.upgrade_ended(&v2, "confirmed", "");
    w.settle().await;
    assert!(w.store.slots().is_empty());
    assert_eq!(w.store.view.lock().unwrap().confirmations.len(), 1);
    // rolled back and kept unhealthy: kept failed, the version failed for the group
    for outcome in ["rolled-back", "unhealthy"] {
        let mut w = world();
        w.take(&v2).await;
        w.fleet.upgrade_ended(&v2, outcome, "no healthy answer");
        w.settle().await;
        let slots = w.store.slots();
        assert_eq!(slots[0].state, SlotState::Failed, "{outcome}");
        assert_eq!(w.store.view.lock().unwrap().failed[0].version, "1.2.0");
        assert!(!w.fleet.holds("v2"));
    }
    // nothing ran or nothing is watched: given back, no confirmation
    for outcome in ["applied", "failed", "withdrawn"] {
        let mut w = world();
        w.take(&v2).await;
        w.fleet.upgrade_ended(&v2, outcome, "");
        w.settle().await;
        assert!(w.store.slots().is_empty(), "{outcome}");
        assert!(w.store.view.lock().unwrap().confirmations.is_empty());
    }
}

#[tokio::test]
async fn a_slot_not_used_after_all_is_given_back() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    w.take(&v2).await;
    // still the upgrade to apply: kept
    w.fleet.tidy(&[], Some("v2"), false);
    w.settle().await;
    assert_eq!(w.store.slots().len(), 1);
    // a hold came first: given back
    w.fleet.tidy(&[], None, false);
    w.settle().await;
    assert!(w.store.slots().is_empty());
    assert!(!w.fleet.holds("v2"));
}

#[tokio::test]
async fn a_take_whose_answer_was_lost_is_given_back_when_the_wait_ends() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    w.settle().await;
    // the take lands, but its answer is lost (as after a timeout)
    let view = w.store.view().await.unwrap();
    let guard = TakeGuard {
        revision: view.revision,
        no_hold: true,
        canary_confirmed: false,
    };
    let slot = upgrading_v2(&w.fleet_host());
    w.store.take(&slot, &guard).await.unwrap();
    w.fleet.ask(&v2);
    let _ = w.fleet.finished().await;
    w.fleet.on_finished(Err("no answer in time".into()));
    assert!(
        w.fleet
            .state
            .waiting
            .as_deref()
            .unwrap()
            .contains("no answer in time")
    );
    // the upgrade no longer waits for the fleet (cancelled): the maybe-taken slot goes back
    w.fleet.tidy(&[], None, false);
    w.settle().await;
    assert!(w.store.slots().is_empty(), "{:?}", w.store.slots());
    assert_eq!(w.fleet.state.waiting, None);
}

#[tokio::test]
async fn records_wait_for_etcd_and_upgrades_wait_for_the_records() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    *w.store.down.lock().unwrap() = true;
    // the start's settle cannot be written: an upgrade waits behind it, and says why
    w.fleet.kick();
    let r = w.fleet.finished().await;
    w.fleet.on_finished(r);
    w.fleet.ask(&v2);
    let why = w.fleet.state.waiting.clone().unwrap();
    assert!(why.contains("fleet records are written"), "{why}");
    assert!(why.contains("etcd did not answer"), "{why}");
    assert!(
        w.fleet.job.is_none(),
        "asked for a slot before the records were written"
    );
    // the first retry comes after 2 s, the next after 4 s
    let first = w.fleet.wake_at().unwrap() - Instant::now();
    assert!(first <= ASK_EVERY && first > ASK_EVERY / 2, "{first:?}");
    // etcd back: the records, then the slot
    *w.store.down.lock().unwrap() = false;
    w.settle().await;
    w.fleet.ask(&v2);
    let r = w.fleet.finished().await;
    w.fleet.on_finished(r);
    assert!(w.fleet.holds("v2"));
}

#[tokio::test]
async fn a_version_failed_in_the_group_is_handed_back_as_refused() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    w.settle().await;
    w.store.view.lock().unwrap().failed.push(FailedVersion {
        version: "1.2.0".into(),
        member: "other".into(),
        reason: "rolled back".into(),
        at: model::now(),
    });
    w.fleet.ask(&v2);
    let r = w.fleet.finished().await;
    let (refused, why) = w.fleet.on_finished(r).expect("not refused");
    assert_eq!(refused.name, "v2");
    assert!(why.contains("failed on fleet member other"), "{why}");
    assert_eq!(w.fleet.state.waiting, None, "a refusal is not a wait");
}

#[tokio::test]
async fn a_stale_release_never_removes_a_failed_slot_nor_confirms() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    w.take(&v2).await;
    w.fleet.upgrade_ended(&v2, "unhealthy", "no healthy answer");
    // a release queued behind the failure (killed between the two, restarted)
    w.fleet.record(FleetOp::Release {
        version: "1.2.0".into(),
    });
    w.settle().await;
    let slots = w.store.slots();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].state, SlotState::Failed);
    assert!(w.store.view.lock().unwrap().confirmations.is_empty());
}

#[tokio::test]
async fn a_slot_another_host_took_under_our_name_is_left_alone() {
    let v2 = info("v2", "1.2.0");
    let mut w = world();
    // another host, configured with the same member name, holds a slot under it
    w.store
        .view
        .lock()
        .unwrap()
        .slots
        .push(upgrading_v2("somewhere-else"));
    // the start's settle leaves it alone (never gives it back as if it were ours)
    w.settle().await;
    assert_eq!(w.store.slots().len(), 1);
    // and asking for a slot says why nothing is applied
    w.fleet.ask(&v2);
    let r = w.fleet.finished().await;
    w.fleet.on_finished(r);
    assert!(!w.fleet.holds("v2"));
    let why = w.fleet.state.waiting.clone().unwrap();
    assert!(why.contains("also used by host somewhere-else"), "{why}");
    assert_eq!(w.store.slots()[0].host, "somewhere-else");
}
