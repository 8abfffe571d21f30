//! `upgrade-refusals.json` in the upgrade data directory: the upgrades nymvisor refused, with the
//! reason, the attempts so far and when (if ever) it tries again. Kept on disk so a restart
//! neither downloads a refused release again nor forgets why it was refused. An entry counts as
//! refused while it is unchanged: a changed plan entry or a new offer under the same name is a
//! new candidate. `nymvisor retry <name>` (or `add-upgrade --force`) clears a record.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{UpgradeInfo, UpgradePlan};
use crate::error::Result;
use crate::fsutil;
use crate::refusal::{NextAttempt, Refusal, next_attempt};

/// Most refused upstream offers remembered (the oldest is forgotten first).
pub const MAX_UPSTREAM: usize = 16;

/// Where a refused upgrade came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A queued entry of the plan that could not be prepared or applied.
    Plan,
    /// An offer of the upstream source that was not queued.
    Upstream,
    /// A queued entry the pre-upgrade hook said not now to.
    Hook,
    /// An upgrade the operator cancelled (`nymvisor cancel`): not queued again until upstream
    /// changes it (version, checksum or URL) or `nymvisor retry`.
    Cancelled,
}

/// One refused upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalRecord {
    pub name: String,
    pub version: String,
    pub origin: Origin,
    pub reason: String,
    pub next_attempt: NextAttempt,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub first_refused_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_refused_at: OffsetDateTime,
    /// The entry as it was refused.
    pub upgrade: UpgradeInfo,
}

impl RefusalRecord {
    /// Whether `offer` is the release this record is about: same version, and the same
    /// checksums and URLs on every platform (notes and times may differ).
    pub fn same_release(&self, offer: &UpgradeInfo) -> bool {
        let key = |i: &UpgradeInfo| {
            i.platforms
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        p.checksum.trim().to_ascii_lowercase(),
                        p.url.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        self.upgrade.version == offer.version && key(&self.upgrade) == key(offer)
    }

    /// Whether it may be tried again at `now`.
    pub fn due(&self, now: OffsetDateTime) -> bool {
        match self.next_attempt {
            NextAttempt::Never => false,
            NextAttempt::At(t) => t <= now,
        }
    }
}

/// The document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    #[serde(default)]
    pub refusals: Vec<RefusalRecord>,
}

impl Refusals {
    /// Loads the document; a missing file is no refusals.
    pub fn load(path: &Path) -> Result<Refusals> {
        Ok(fsutil::read_json_opt(path)?.unwrap_or_default())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }

    /// The record of `name`, whatever its entry.
    pub fn get(&self, name: &str) -> Option<&RefusalRecord> {
        self.refusals.iter().find(|r| r.name == name)
    }

    /// The operator's cancellation of this release, if it stands.
    pub fn cancelled(&self, offer: &UpgradeInfo) -> Option<&RefusalRecord> {
        self.get(&offer.name)
            .filter(|r| r.origin == Origin::Cancelled && r.same_release(offer))
    }

    /// The record that still applies to `info` (same name, unchanged entry).
    pub fn for_entry(&self, info: &UpgradeInfo) -> Option<&RefusalRecord> {
        self.get(&info.name).filter(|r| r.upgrade == *info)
    }

    /// Records a refusal of `info` at `now`; a repeated refusal of the same entry counts as one
    /// more attempt (its backoff grows). Returns the record and whether the reason is new.
    pub fn record(
        &mut self,
        info: &UpgradeInfo,
        refusal: &Refusal,
        origin: Origin,
        now: OffsetDateTime,
    ) -> (&RefusalRecord, bool) {
        // the operator's cancellation stands over anything found about the entry since (a
        // preparation that ends after the cancel)
        if origin != Origin::Cancelled
            && let Some(at) = self.refusals.iter().position(|r| {
                r.name == info.name && r.origin == Origin::Cancelled && r.same_release(info)
            })
        {
            return (&self.refusals[at], false);
        }
        let previous = self
            .for_entry(info)
            .map(|r| (r.attempts, r.first_refused_at, r.reason.clone()));
        let attempts = previous.as_ref().map_or(0, |p| p.0) + 1;
        let new_reason = previous.as_ref().is_none_or(|p| p.2 != refusal.reason);
        let record = RefusalRecord {
            name: info.name.clone(),
            version: info.version.clone(),
            origin,
            reason: refusal.reason.clone(),
            next_attempt: match next_attempt(refusal.retry, attempts, now) {
                None => NextAttempt::Never,
                Some(t) => NextAttempt::At(t),
            },
            attempts,
            first_refused_at: previous.map_or(now, |p| p.1),
            last_refused_at: now,
            upgrade: info.clone(),
        };
        self.refusals.retain(|r| r.name != info.name);
        self.refusals.push(record);
        // a feed that offers a new name at every poll must not grow the file without end
        let upstream = self
            .refusals
            .iter()
            .filter(|r| r.origin == Origin::Upstream)
            .count();
        if upstream > MAX_UPSTREAM
            && let Some(oldest) = self
                .refusals
                .iter()
                .position(|r| r.origin == Origin::Upstream)
        {
            self.refusals.remove(oldest);
        }
        let last = self.refusals.len() - 1;
        (&self.refusals[last], new_reason)
    }

    /// Forgets the record of `name`. Returns whether there was one.
    pub fn clear(&mut self, name: &str) -> bool {
        let before = self.refusals.len();
        self.refusals.retain(|r| r.name != name);
        before != self.refusals.len()
    }

    /// Forgets records of plan entries that changed or left the queue, and of upstream offers
    /// that were queued since. Returns whether anything was forgotten.
    pub fn prune(&mut self, plan: &UpgradePlan) -> bool {
        let before = self.refusals.len();
        self.refusals.retain(|r| match r.origin {
            Origin::Plan | Origin::Hook => plan.queued(&r.name) == Some(&r.upgrade),
            Origin::Upstream => plan.queued(&r.name).is_none() && plan.current.name != r.name,
            // the operator's word stands until `retry`, `add-upgrade` or a changed offer replaces
            // it — never pruned by a plan change (`cancel` records it before it rewrites the
            // plan, and a reload in between still sees the entry queued)
            Origin::Cancelled => true,
        });
        before != self.refusals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn info(name: &str, version: &str) -> UpgradeInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": version, "upgradeTime": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn attempts_count_per_unchanged_entry_and_survive_a_round_trip() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let mut r = Refusals::default();
        let a = info("a", "1.2.0");
        let (rec, new) = r.record(&a, &Refusal::transient("down"), Origin::Plan, now);
        assert!(new);
        assert_eq!(
            (rec.attempts, rec.next_attempt),
            (1, NextAttempt::At(now + time::Duration::seconds(10)))
        );
        let (rec, new) = r.record(&a, &Refusal::transient("down"), Origin::Plan, now);
        assert!(!new);
        assert_eq!(rec.attempts, 2);
        // a changed entry starts over
        let a2 = info("a", "1.2.1");
        let (rec, _) = r.record(&a2, &Refusal::never("bad"), Origin::Plan, now);
        assert_eq!((rec.attempts, rec.next_attempt), (1, NextAttempt::Never));
        assert!(r.for_entry(&a).is_none() && r.for_entry(&a2).is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade-refusals.json");
        r.save(&path).unwrap();
        assert_eq!(Refusals::load(&path).unwrap(), r);
        assert!(
            Refusals::load(&dir.path().join("none.json"))
                .unwrap()
                .refusals
                .is_empty()
        );
    }

    #[test]
    fn a_feed_cannot_grow_the_file_without_end() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let mut r = Refusals::default();
        r.record(
            &info("queued", "1.2.0"),
            &Refusal::never("x"),
            Origin::Plan,
            now,
        );
        for i in 0..100 {
            r.record(
                &info(&format!("n{i}"), "1.0.0"),
                &Refusal::never("old"),
                Origin::Upstream,
                now,
            );
        }
        assert_eq!(r.refusals.len(), MAX_UPSTREAM + 1);
        assert!(r.get("queued").is_some(), "plan records are never dropped");
        assert!(r.get("n99").is_some() && r.get("n0").is_none());
    }

    #[test]
    fn a_cancellation_stands_over_later_refusals() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let mut r = Refusals::default();
        let q = info("q", "1.2.0");
        r.record(&q, &Refusal::never("cancelled"), Origin::Cancelled, now);
        let (rec, new) = r.record(
            &q,
            &Refusal::transient("download failed"),
            Origin::Plan,
            now,
        );
        assert_eq!((rec.origin, new), (Origin::Cancelled, false));
        assert_eq!(r.refusals.len(), 1);
    }

    #[test]
    fn prune_follows_the_plan() {
        let now = datetime!(2026-11-28 12:00 UTC);
        let mut plan = UpgradePlan::new(info("genesis", "1.1.0"));
        plan.insert(info("q", "1.2.0"));
        let mut r = Refusals::default();
        r.record(&info("q", "1.2.0"), &Refusal::never("x"), Origin::Plan, now);
        r.record(
            &info("gone", "1.3.0"),
            &Refusal::never("x"),
            Origin::Plan,
            now,
        );
        r.record(
            &info("offer", "1.0.0"),
            &Refusal::never("old"),
            Origin::Upstream,
            now,
        );
        assert!(r.prune(&plan));
        let names: Vec<_> = r.refusals.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["q", "offer"]);
        plan.queued_up[0].version = "1.2.5".into();
        r.prune(&plan);
        assert!(r.get("q").is_none(), "a changed entry is a new candidate");
    }
}
