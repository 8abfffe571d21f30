//! The rules about whether an upgrade may be queued and applied — the only copy of them.
//!
//! Who asks:
//! - [`admit_offer`]: the upstream source offers a release (is it queued?);
//! - [`admit_manual`]: `nymvisor add-upgrade` (may the operator queue this?);
//! - [`may_apply`]: right before an upgrade is prepared and again right before it is applied,
//!   against what runs at that moment.
//!
//! The rules, numbered as in docs/ARCHITECTURE.md:
//! 1. **Safe name**: `[A-Za-z0-9._-]`, 1–128 characters, not `.`/`..` (names become paths).
//! 2. **Reserved name**: `genesis` is the initial binary's.
//! 3. **No reuse of the running name** for another version.
//! 4. **Nothing touches the upgrade in flight** (being applied or awaiting confirmation).
//! 5. **A queued entry changes only on purpose**: an upstream change of a queued entry is
//!    ignored, unless the queued entry came from upstream and was refused (a release fixed
//!    upstream replaces the broken one); `add-upgrade` needs `--force`. A release the
//!    operator cancelled is not queued again until upstream changes it (or `retry`).
//! 6. **One name per version** in the queue.
//! 7. **No replay**: the running version offered again with another checksum is refused.
//! 8. **No replay of history**: a name applied or rolled back before is not taken again (a
//!    rolled-back one only by `add-upgrade --force`); a name used for another version never.
//! 9. **Newer than what runs** (semver precedence), unless downgrades are allowed. An offered
//!    version that is not semver is refused; when the running version is not semver (a legacy
//!    install), a semver offer counts as newer.
//!
//! Every refusal here is [`Retry::Never`] for the entry as it is, except rule 4 (transient).

use std::cmp::Ordering;

use crate::model::{Journal, Outcome, Refusals, UpgradeHistory, UpgradeInfo};
use crate::names::{parse_version, validate_name};
use crate::paths::GENESIS;
use crate::refusal::Refusal;

/// What the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// What runs now (the plan's `current`).
    pub current: &'a UpgradeInfo,
    /// The plan's queue.
    pub queued: &'a [UpgradeInfo],
    pub history: &'a UpgradeHistory,
    /// The upgrade being applied or awaiting confirmation, if any.
    pub in_flight: Option<&'a Journal>,
    pub allow_downgrade: bool,
    /// Refused and cancelled upgrades.
    pub refusals: &'a Refusals,
}

/// What the rules say about an offer of the upstream source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Queue it.
    Queue,
    /// Nothing to do: it runs already, is queued as it is, or is being applied.
    Known,
    /// Not queued, for this reason (until the offer changes).
    Refused(Refusal),
}

/// Rules 1 and 2.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    validate_name(name).map_err(|reason| {
        Refusal::never(format!(
            "invalid upgrade name {name:?}: it {reason}; names become directory names, so an unsafe name is refused"
        ))
    })?;
    if name == GENESIS {
        return Err(Refusal::never(
            "`genesis` is the name of the initial binary and cannot name an upgrade",
        ));
    }
    Ok(())
}

/// Rule 9: `version` may replace `current`.
pub fn check_newer(version: &str, current: &str, allow_downgrade: bool) -> Result<(), Refusal> {
    let offered = parse_version(version, "the upgrade").map_err(|e| {
        Refusal::never(format!(
            "{e}; nymvisor orders versions by semver and cannot place this one"
        ))
    })?;
    if allow_downgrade {
        return Ok(());
    }
    let Ok(running) = parse_version(current, "the running version") else {
        // a legacy install whose version is not semver: any semver release is a step forward
        return Ok(());
    };
    match offered.cmp_precedence(&running) {
        Ordering::Greater => Ok(()),
        _ => Err(Refusal::never(format!(
            "version {version} is not newer than the running {current}; set DAEMON_ALLOW_DOWNGRADE=true (or pass --allow-downgrade to add-upgrade) to allow it"
        ))),
    }
}

/// The non-empty checksums of an upgrade, by platform, in lower case.
fn checksums(info: &UpgradeInfo) -> Vec<(String, String)> {
    info.platforms
        .iter()
        .filter(|(_, p)| !p.checksum.trim().is_empty())
        .map(|(k, p)| (k.clone(), p.checksum.trim().to_ascii_lowercase()))
        .collect()
}

/// The download URLs of an upgrade, by platform.
fn urls(info: &UpgradeInfo) -> Vec<(String, String)> {
    info.platforms
        .iter()
        .map(|(k, p)| (k.clone(), p.url.clone()))
        .collect()
}

/// Rule 8 for `name`: the last history entry of that name, if it stands in the way.
fn history_conflict(ctx: &Context<'_>, name: &str, version: &str, force: bool) -> Option<Refusal> {
    let h = ctx
        .history
        .history
        .iter()
        .rev()
        .find(|h| h.info.name == name)?;
    if h.info.version != version {
        return Some(Refusal::never(format!(
            "the name `{name}` was used before for version {}; names are not reused, choose another",
            h.info.version
        )));
    }
    match h.outcome {
        Some(Outcome::RolledBack) if force => None,
        Some(Outcome::RolledBack) => Some(Refusal::never(format!(
            "`{name}` ({version}) was rolled back on {}; it is not tried again (add-upgrade --force retries it deliberately)",
            crate::model::rfc3339(h.performed_at)
        ))),
        _ => Some(Refusal::never(format!(
            "`{name}` ({version}) was applied before, on {}; choose another name",
            crate::model::rfc3339(h.performed_at)
        ))),
    }
}

/// Whether `name` is the upgrade in flight (or what it replaces).
fn in_flight(ctx: &Context<'_>, name: &str) -> bool {
    ctx.in_flight
        .is_some_and(|j| j.upgrade.name == name || j.previous.name == name)
}

/// The rules for an offer of the upstream source.
pub fn admit_offer(ctx: &Context<'_>, offer: &UpgradeInfo) -> Admission {
    let name = offer.name.as_str();
    if let Err(r) = check_name(name) {
        return Admission::Refused(r);
    }
    // rule 3
    if ctx.current.name == name {
        if ctx.current.version == offer.version {
            return Admission::Known;
        }
        return Admission::Refused(Refusal::never(format!(
            "version {} is offered under the name `{name}` of the running {}; names are not reused",
            offer.version, ctx.current.version
        )));
    }
    // rule 4
    if ctx.in_flight.is_some_and(|j| j.upgrade.name == name) {
        return Admission::Known;
    }
    // rule 5
    if let Some(queued) = ctx.queued.iter().find(|q| q.name == name) {
        if queued == offer {
            return Admission::Known;
        }
        let from_upstream = !queued.platforms.is_empty();
        let changed = queued.version != offer.version
            || checksums(queued) != checksums(offer)
            || urls(queued) != urls(offer);
        if from_upstream && changed && ctx.refusals.for_entry(queued).is_some() {
            // the release that was refused is not the one upstream offers now
            return check_newer(&offer.version, &ctx.current.version, ctx.allow_downgrade)
                .map_or_else(Admission::Refused, |()| Admission::Queue);
        }
        if queued.version != offer.version || checksums(queued) != checksums(offer) {
            return Admission::Refused(Refusal::never(format!(
                "upstream changed `{name}` after it was queued (version {} → {}, or its checksums); the queued entry is kept",
                queued.version, offer.version
            )));
        }
        // the same release with other details (notes, time): the queued entry is kept too
        return Admission::Known;
    }
    // the operator cancelled this very release
    if ctx.refusals.cancelled(offer).is_some() {
        return Admission::Known;
    }
    // rule 6
    if let Some(other) = ctx.queued.iter().find(|q| q.version == offer.version) {
        return Admission::Refused(Refusal::never(format!(
            "version {} is already queued as `{}`",
            offer.version, other.name
        )));
    }
    // rule 7, and the running release offered under another name
    if ctx.current.version == offer.version {
        let (running, offered) = (checksums(ctx.current), checksums(offer));
        if !running.is_empty() && !offered.is_empty() && running != offered {
            return Admission::Refused(Refusal::never(format!(
                "the running version {} is offered again with another checksum (a replay?)",
                offer.version
            )));
        }
        if !ctx.allow_downgrade {
            return Admission::Known;
        }
    }
    // rule 8
    if let Some(r) = history_conflict(ctx, name, &offer.version, false) {
        return Admission::Refused(r);
    }
    // rule 9
    match check_newer(&offer.version, &ctx.current.version, ctx.allow_downgrade) {
        Ok(()) => Admission::Queue,
        Err(r) => Admission::Refused(r),
    }
}

/// The rules for `nymvisor add-upgrade NAME` of a binary at `version`. `exists`: an upgrade of
/// that name is queued or has files; `force`: the operator wants to replace it.
pub fn admit_manual(
    ctx: &Context<'_>,
    name: &str,
    version: &str,
    exists: bool,
    force: bool,
) -> Result<(), Refusal> {
    check_name(name)?;
    if ctx.current.name == name {
        return Err(Refusal::never(format!(
            "`{name}` is the upgrade the daemon runs now; choose another --upgrade-name"
        )));
    }
    if in_flight(ctx, name) {
        return Err(Refusal::transient(format!(
            "upgrade `{name}` is being applied or awaits confirmation by the running nymvisor; try again once it is confirmed"
        )));
    }
    if exists && !force {
        return Err(Refusal::never(format!(
            "upgrade `{name}` already exists; pass --force to overwrite it, or --add-binary to only add its binary"
        )));
    }
    if let Some(r) = history_conflict(ctx, name, version, force) {
        return Err(r);
    }
    check_newer(version, &ctx.current.version, ctx.allow_downgrade)?;
    if let Some(other) = ctx
        .queued
        .iter()
        .find(|q| q.name != name && q.version == version)
    {
        return Err(Refusal::never(format!(
            "version {version} is already queued as upgrade `{}`",
            other.name
        )));
    }
    Ok(())
}

/// The rules for `nymvisor add-upgrade NAME --add-binary`: only the binary of an upgrade that
/// is already queued is added, so only rules 1 to 4 apply.
pub fn admit_binary(ctx: &Context<'_>, name: &str) -> Result<(), Refusal> {
    check_name(name)?;
    if ctx.current.name == name {
        return Err(Refusal::never(format!(
            "`{name}` is the upgrade the daemon runs now; its binary is in use"
        )));
    }
    if in_flight(ctx, name) {
        return Err(Refusal::transient(format!(
            "upgrade `{name}` is being applied or awaits confirmation by the running nymvisor; try again once it is confirmed"
        )));
    }
    Ok(())
}

/// The rules right before an upgrade is prepared, and again right before it is applied:
/// its name is safe and it is newer than what runs at that moment.
/// A downgrade is allowed by the configuration or by the entry itself (`add-upgrade
/// --allow-downgrade` records it there; upstream offers never carry it).
pub fn may_apply(ctx: &Context<'_>, info: &UpgradeInfo) -> Result<(), Refusal> {
    check_name(&info.name)?;
    check_newer(
        &info.version,
        &ctx.current.version,
        ctx.allow_downgrade || info.allow_downgrade,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistoryEntry;
    use crate::refusal::Retry;

    fn info(name: &str, version: &str) -> UpgradeInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": version, "upgradeTime": "2026-05-20T12:00:00Z",
            "platforms": {"linux-x86_64": {"checksum": "aa", "checksumAlgorithm": "sha256", "url": "https://x/n"}}
        }))
        .unwrap()
    }

    fn history(entries: &[(&str, &str, Outcome)]) -> UpgradeHistory {
        UpgradeHistory {
            history: entries
                .iter()
                .map(|(n, v, o)| HistoryEntry {
                    performed_at: time::macros::datetime!(2026-05-01 10:00 UTC),
                    info: info(n, v),
                    previous_version: None,
                    outcome: Some(*o),
                    backup_path: None,
                    error: None,
                })
                .collect(),
        }
    }

    struct World {
        current: UpgradeInfo,
        queued: Vec<UpgradeInfo>,
        history: UpgradeHistory,
        journal: Option<Journal>,
        allow_downgrade: bool,
        refusals: Refusals,
    }

    impl World {
        fn new() -> Self {
            World {
                current: info("genesis", "1.1.0"),
                queued: Vec::new(),
                history: UpgradeHistory::default(),
                journal: None,
                allow_downgrade: false,
                refusals: Refusals::default(),
            }
        }
        fn ctx(&self) -> Context<'_> {
            Context {
                current: &self.current,
                queued: &self.queued,
                history: &self.history,
                in_flight: self.journal.as_ref(),
                allow_downgrade: self.allow_downgrade,
                refusals: &self.refusals,
            }
        }
    }

    fn refused(a: Admission) -> String {
        match a {
            Admission::Refused(r) => {
                assert_eq!(r.retry, Retry::Never);
                r.reason
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_newer_release_is_queued() {
        let w = World::new();
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.2.0", "1.2.0")),
            Admission::Queue
        );
    }

    #[test]
    fn rule_1_unsafe_names() {
        let w = World::new();
        for bad in ["../etc", "a/b", "", ".", "..", "x y"] {
            assert!(refused(admit_offer(&w.ctx(), &info(bad, "1.2.0"))).contains("name"));
            assert!(admit_manual(&w.ctx(), bad, "1.2.0", false, false).is_err());
        }
    }

    #[test]
    fn rule_2_genesis_is_reserved() {
        let mut w = World::new();
        w.current = info("v1.0.0", "1.0.0");
        assert!(refused(admit_offer(&w.ctx(), &info("genesis", "1.2.0"))).contains("genesis"));
        assert!(admit_manual(&w.ctx(), "genesis", "1.2.0", false, true).is_err());
    }

    #[test]
    fn rule_3_the_running_name() {
        let mut w = World::new();
        w.current = info("v1.1.0", "1.1.0");
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.1.0", "1.1.0")),
            Admission::Known
        );
        assert!(refused(admit_offer(&w.ctx(), &info("v1.1.0", "1.2.0"))).contains("not reused"));
        assert!(
            admit_manual(&w.ctx(), "v1.1.0", "1.2.0", false, true)
                .unwrap_err()
                .reason
                .contains("runs now")
        );
    }

    #[test]
    fn rule_4_the_upgrade_in_flight() {
        let mut w = World::new();
        w.journal = Some(Journal {
            stage: crate::model::Stage::Confirming,
            upgrade: info("v1.2.0", "1.2.0"),
            previous: info("genesis", "1.1.0"),
            previous_link: "genesis".into(),
            backup: None,
            started_at: time::macros::datetime!(2026-05-01 10:00 UTC),
        });
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.2.0", "1.2.0")),
            Admission::Known
        );
        let r = admit_manual(&w.ctx(), "v1.2.0", "1.2.0", true, true).unwrap_err();
        assert_eq!(r.retry, Retry::After(std::time::Duration::ZERO));
    }

    #[test]
    fn rule_5_queued_entries_change_only_on_purpose() {
        let mut w = World::new();
        w.queued.push(info("v1.2.0", "1.2.0"));
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.2.0", "1.2.0")),
            Admission::Known
        );
        let mut changed = info("v1.2.0", "1.2.0");
        changed.platforms.get_mut("linux-x86_64").unwrap().checksum = "bb".into();
        assert!(refused(admit_offer(&w.ctx(), &changed)).contains("kept"));
        let mut later = info("v1.2.0", "1.2.0");
        later.notes = "new notes".into();
        assert_eq!(admit_offer(&w.ctx(), &later), Admission::Known);
        assert!(admit_manual(&w.ctx(), "v1.2.0", "1.2.0", true, false).is_err());
        assert!(admit_manual(&w.ctx(), "v1.2.0", "1.2.0", true, true).is_ok());
    }

    #[test]
    fn rule_6_one_name_per_version() {
        let mut w = World::new();
        w.queued.push(info("v1.2.0", "1.2.0"));
        assert!(refused(admit_offer(&w.ctx(), &info("other", "1.2.0"))).contains("already queued"));
        assert!(admit_manual(&w.ctx(), "other", "1.2.0", false, false).is_err());
    }

    #[test]
    fn rule_7_replays_of_the_running_version() {
        let mut w = World::new();
        let mut replay = info("again", "1.1.0");
        replay.platforms.get_mut("linux-x86_64").unwrap().checksum = "bb".into();
        assert!(refused(admit_offer(&w.ctx(), &replay)).contains("replay"));
        // the running release under its upstream name is simply what runs
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.1.0", "1.1.0")),
            Admission::Known
        );
        w.allow_downgrade = true;
        assert!(refused(admit_offer(&w.ctx(), &replay)).contains("replay"));
    }

    #[test]
    fn rule_8_history_is_not_replayed() {
        let mut w = World::new();
        w.history = history(&[
            ("bad", "1.2.0", Outcome::RolledBack),
            ("old", "1.0.5", Outcome::Success),
        ]);
        assert!(refused(admit_offer(&w.ctx(), &info("bad", "1.2.0"))).contains("rolled back"));
        assert!(refused(admit_offer(&w.ctx(), &info("bad", "1.3.0"))).contains("not reused"));
        assert!(refused(admit_offer(&w.ctx(), &info("old", "1.0.5"))).contains("applied before"));
        // the operator may retry a rolled-back upgrade deliberately, never reuse a name
        assert!(admit_manual(&w.ctx(), "bad", "1.2.0", false, false).is_err());
        assert!(admit_manual(&w.ctx(), "bad", "1.2.0", false, true).is_ok());
        assert!(admit_manual(&w.ctx(), "bad", "1.3.0", false, true).is_err());
        assert!(admit_manual(&w.ctx(), "old", "1.0.5", false, true).is_err());
    }

    #[test]
    fn rule_9_newer_only_with_one_answer_for_unparseable_versions() {
        let mut w = World::new();
        assert!(refused(admit_offer(&w.ctx(), &info("v1.0.0", "1.0.0"))).contains("not newer"));
        assert!(
            refused(admit_offer(&w.ctx(), &info("v1.1.0-rc", "1.1.0-rc.1"))).contains("not newer")
        );
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.10.0", "1.10.0")),
            Admission::Queue
        );
        // an offered version that is not semver is refused, even with downgrades allowed
        assert!(refused(admit_offer(&w.ctx(), &info("x", "1.2"))).contains("semver"));
        w.allow_downgrade = true;
        assert!(refused(admit_offer(&w.ctx(), &info("x", "latest"))).contains("semver"));
        assert_eq!(
            admit_offer(&w.ctx(), &info("v1.0.0", "1.0.0")),
            Admission::Queue
        );
        // a legacy current version that is not semver: a semver offer is newer
        let mut legacy = World::new();
        legacy.current = info("genesis", "unknown");
        assert_eq!(
            admit_offer(&legacy.ctx(), &info("v1.2.0", "1.2.0")),
            Admission::Queue
        );
        // the same answers before applying
        let w = World::new();
        assert!(may_apply(&w.ctx(), &info("v1.0.0", "1.0.0")).is_err());
        assert!(may_apply(&w.ctx(), &info("v1.2.0", "1.2")).is_err());
        assert!(may_apply(&w.ctx(), &info("v1.2.0", "1.2.0")).is_ok());
        assert!(may_apply(&w.ctx(), &info("../x", "1.2.0")).is_err());
    }

    #[test]
    fn leading_v_and_build_metadata() {
        let w = World::new();
        assert_eq!(
            admit_offer(&w.ctx(), &info("v2", "v1.2.0")),
            Admission::Queue
        );
        // build metadata does not make a version newer
        assert!(check_newer("1.1.0+build.7", "1.1.0", false).is_err());
    }
}
