//! The transaction's branches against a fake port that records every call and fails where
//! told: no process, no file.

use std::collections::VecDeque;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::port::{Halted, Port, Refused, Waited};
use super::{Applied, Upgrade, apply};
use crate::error::{Error, Result};
use crate::model::{Journal, Stage, UpgradeInfo};

/// What the fake does when asked.
#[derive(Debug, Default)]
struct Script {
    /// The pre-copy: `None` no pre-copy; `Some(Ok(None))` interrupted; `Some(Err)` failed.
    precopy: Option<std::result::Result<Option<()>, String>>,
    gate: Option<Refused>,
    /// A stop signal that arrives while the old daemon stops.
    signal_during_stop: Option<Signal>,
    backups_off: bool,
    /// The backup: `Ok(None)` interrupted, `Err` failed (a delta that failed, a full disk).
    backup: Option<std::result::Result<Option<()>, String>>,
    /// Answers of `stop_requested`, in order (before the swap, after it).
    stop_requested: VecDeque<Option<Signal>>,
    /// The journal cannot be written at this stage.
    journal_fails_at: Option<Stage>,
    swap_fails: bool,
    start_fails: bool,
    record_fails: bool,
}

#[derive(Debug, Default)]
struct Fake {
    script: Script,
    calls: Vec<String>,
}

/// The fake's daemon: a pid.
#[derive(Debug, PartialEq, Eq)]
struct FakeDaemon(u32);

impl Fake {
    fn with(script: Script) -> Fake {
        Fake {
            script,
            calls: Vec::new(),
        }
    }

    fn call(&mut self, c: impl Into<String>) {
        self.calls.push(c.into());
    }

    fn called(&self, c: &str) -> bool {
        self.calls.iter().any(|x| x == c)
    }
}

fn failed(what: &str) -> Error {
    Error::Setup(what.to_owned())
}

impl Port for Fake {
    type Daemon = FakeDaemon;
    type Copy = ();

    fn announce(&mut self, _text: &str) {
        self.call("announce");
    }

    fn ready(&mut self, _text: &str) {
        self.call("ready");
    }

    fn report_error(&mut self, _message: String) {
        self.call("report-error");
    }

    fn failpoint(&self, _name: &str) {}

    fn pid(daemon: &FakeDaemon) -> u32 {
        daemon.0
    }

    async fn stop(&mut self, daemon: FakeDaemon) -> Halted {
        self.call(format!("stop {}", daemon.0));
        Halted {
            exit: "exit code 0".into(),
            signal: self.script.signal_during_stop,
        }
    }

    async fn stop_for_exit(&mut self, daemon: FakeDaemon, _sig: Signal) {
        self.call(format!("stop-for-exit {}", daemon.0));
    }

    fn start(&mut self) -> Result<FakeDaemon> {
        self.call("start");
        if self.script.start_fails {
            return Err(failed("cannot start"));
        }
        Ok(FakeDaemon(2))
    }

    async fn stop_requested(&mut self) -> Option<Signal> {
        self.script.stop_requested.pop_front().flatten()
    }

    fn backups_on(&self) -> bool {
        !self.script.backups_off
    }

    async fn precopy(&mut self, _name: &str) -> Option<Result<Waited<()>>> {
        let answer = self.script.precopy.clone()?;
        self.call("precopy");
        Some(match answer {
            Ok(Some(())) => Ok(Waited::Done(())),
            Ok(None) => Ok(Waited::Interrupted(Signal::SIGTERM)),
            Err(e) => Err(failed(&e)),
        })
    }

    async fn backup(&mut self, _name: &str, copy: Option<()>) -> Result<Waited<PathBuf>> {
        self.call(if copy.is_some() {
            "backup (delta)"
        } else {
            "backup"
        });
        match self.script.backup.clone().unwrap_or(Ok(Some(()))) {
            Ok(Some(())) => Ok(Waited::Done(PathBuf::from("/backups/v2/t"))),
            Ok(None) => Ok(Waited::Interrupted(Signal::SIGTERM)),
            Err(e) => Err(failed(&e)),
        }
    }

    async fn retire(&mut self, _made: PathBuf) {
        self.call("retire");
    }

    fn current(&self) -> Result<PathBuf> {
        Ok(PathBuf::from("genesis"))
    }

    fn gate(&mut self, journal: &Journal) -> std::result::Result<(), Refused> {
        self.call("gate");
        if let Some(r) = self.script.gate.clone() {
            return Err(r);
        }
        assert_eq!(journal.stage, Stage::Stopping);
        Ok(())
    }

    fn journal(&mut self, journal: &Journal) -> Result<()> {
        self.call(format!("journal {:?}", journal.stage));
        // what the recovery needs to roll a finished upgrade back with its data
        if journal.stage == Stage::Swapping {
            assert!(journal.backup.is_some());
        }
        if self.script.journal_fails_at == Some(journal.stage) {
            return Err(failed("disk full"));
        }
        Ok(())
    }

    fn clear_journal(&mut self) {
        self.call("clear-journal");
    }

    fn swap(&mut self, name: &str) -> Result<PathBuf> {
        self.call("swap");
        if self.script.swap_fails {
            return Err(failed("rename failed"));
        }
        Ok(PathBuf::from(format!("upgrades/{name}")))
    }

    fn record(&mut self, journal: &Journal) -> Result<()> {
        self.call("record");
        assert_eq!(journal.backup.is_some(), !self.script.backups_off);
        if self.script.record_fails {
            return Err(failed("plan lock owned by root"));
        }
        Ok(())
    }
}

fn info(name: &str, version: &str) -> UpgradeInfo {
    serde_json::from_value(serde_json::json!({
        "name": name, "version": version, "upgradeTime": "2026-12-06T00:00:00Z"
    }))
    .unwrap()
}

/// Applies `v2` over `genesis` with the old daemon (pid 1) running, restarts wanted.
fn run(fake: &mut Fake) -> Applied<FakeDaemon> {
    run_with(fake, false)
}

fn run_with(fake: &mut Fake, manual: bool) -> Applied<FakeDaemon> {
    let mut new = info("v2", "1.2.0");
    new.manual = manual;
    let old = info("genesis", "1.1.0");
    let up = Upgrade {
        info: &new,
        previous: &old,
        daemon_name: "nym-node",
        restart_after_upgrade: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(apply(fake, up, Some(FakeDaemon(1))))
}

fn steps(fake: &Fake) -> Vec<&str> {
    fake.calls.iter().map(String::as_str).collect()
}

#[test]
fn every_step_in_order() {
    let mut fake = Fake::with(Script {
        precopy: Some(Ok(Some(()))),
        ..Script::default()
    });
    let Applied::Done {
        daemon,
        restart_wanted,
        confirming,
        downtime,
        unrecorded,
    } = run(&mut fake)
    else {
        panic!("{:?}", fake.calls)
    };
    assert_eq!(
        steps(&fake),
        [
            "announce",
            "precopy",
            "gate",
            "stop 1",
            "journal BackingUp",
            "backup (delta)",
            "journal Swapping",
            "swap",
            "start",
            "record",
            "retire",
            "ready",
            "journal Confirming",
        ]
    );
    assert_eq!(daemon, Some(FakeDaemon(2)));
    assert!(restart_wanted && downtime.is_some() && unrecorded.is_none());
    let journal = confirming.unwrap();
    assert_eq!(journal.stage, Stage::Confirming);
    assert_eq!(journal.previous_link, PathBuf::from("genesis"));
    assert_eq!(journal.backup, Some(PathBuf::from("/backups/v2/t")));
}

#[test]
fn a_stop_signal_during_the_precopy_stops_the_node_and_changes_nothing() {
    let mut fake = Fake::with(Script {
        precopy: Some(Ok(None)),
        ..Script::default()
    });
    assert!(matches!(
        run(&mut fake),
        Applied::Interrupted(Signal::SIGTERM)
    ));
    assert_eq!(steps(&fake), ["announce", "precopy", "stop-for-exit 1"]);
}

#[test]
fn a_failed_precopy_falls_back_to_a_backup_after_the_stop() {
    let mut fake = Fake::with(Script {
        precopy: Some(Err("no space".into())),
        ..Script::default()
    });
    assert!(matches!(run(&mut fake), Applied::Done { .. }));
    assert!(fake.called("backup") && !fake.called("backup (delta)"));
}

#[test]
fn withdrawn_or_unrecordable_at_the_gate_the_old_daemon_runs_on() {
    let mut fake = Fake::with(Script {
        gate: Some(Refused::Withdrawn("upgrades were put on hold".into())),
        ..Script::default()
    });
    let Applied::Withdrawn { daemon, why } = run(&mut fake) else {
        panic!()
    };
    assert_eq!(
        (daemon, why.as_str()),
        (Some(FakeDaemon(1)), "upgrades were put on hold")
    );
    assert_eq!(steps(&fake), ["announce", "gate"]);

    let mut fake = Fake::with(Script {
        gate: Some(Refused::Unrecorded("disk full".into())),
        ..Script::default()
    });
    let Applied::Aborted { daemon, refusal } = run(&mut fake) else {
        panic!()
    };
    assert_eq!(daemon, Some(FakeDaemon(1)));
    assert!(
        refusal
            .reason
            .contains("cannot record the upgrade's intent")
    );
    assert!(!fake.called("stop 1"));
}

#[test]
fn a_stop_signal_while_the_old_daemon_stops_abandons_before_the_backup() {
    let mut fake = Fake::with(Script {
        signal_during_stop: Some(Signal::SIGINT),
        ..Script::default()
    });
    assert!(matches!(
        run(&mut fake),
        Applied::Interrupted(Signal::SIGINT)
    ));
    assert_eq!(
        steps(&fake),
        ["announce", "gate", "stop 1", "clear-journal"]
    );
}

#[test]
fn a_stop_signal_during_the_backup_abandons_before_the_swap() {
    let mut fake = Fake::with(Script {
        backup: Some(Ok(None)),
        ..Script::default()
    });
    assert!(matches!(run(&mut fake), Applied::Interrupted(_)));
    assert!(fake.called("clear-journal"));
    assert!(!fake.called("swap") && !fake.called("start"));
}

#[test]
fn a_failed_backup_or_delta_aborts_and_the_old_binary_stays() {
    for precopy in [None, Some(Ok(Some(())))] {
        let mut fake = Fake::with(Script {
            precopy,
            backup: Some(Err("No space left on device".into())),
            ..Script::default()
        });
        let Applied::Aborted { daemon, refusal } = run(&mut fake) else {
            panic!("{:?}", fake.calls)
        };
        // the old daemon was stopped: the loop starts it again
        assert_eq!(daemon, None);
        assert!(
            refusal.reason.contains("backup failed: No space left"),
            "{refusal}"
        );
        assert!(fake.called("clear-journal"));
        assert!(!fake.called("swap"));
    }
}

#[test]
fn a_journal_that_cannot_be_written_before_the_swap_aborts() {
    for stage in [Stage::BackingUp, Stage::Swapping] {
        let mut fake = Fake::with(Script {
            journal_fails_at: Some(stage),
            ..Script::default()
        });
        let Applied::Aborted { refusal, .. } = run(&mut fake) else {
            panic!("{stage:?}")
        };
        assert!(
            refusal
                .reason
                .contains("cannot record the upgrade's progress")
        );
        assert!(!fake.called("swap"));
    }
}

#[test]
fn a_stop_signal_before_the_swap_abandons_and_after_it_finishes_without_a_start() {
    let mut fake = Fake::with(Script {
        stop_requested: [Some(Signal::SIGTERM)].into(),
        ..Script::default()
    });
    assert!(matches!(run(&mut fake), Applied::Interrupted(_)));
    assert!(fake.called("clear-journal") && !fake.called("swap"));

    let mut fake = Fake::with(Script {
        stop_requested: [None, Some(Signal::SIGTERM)].into(),
        ..Script::default()
    });
    assert!(matches!(run(&mut fake), Applied::Interrupted(_)));
    // in place and recorded; its start is watched by the next `run`
    assert!(fake.called("swap") && fake.called("record"));
    assert!(!fake.called("start") && !fake.called("clear-journal"));
    assert_eq!(
        fake.calls.last().map(String::as_str),
        Some("journal Confirming")
    );
}

#[test]
fn a_failed_swap_aborts() {
    let mut fake = Fake::with(Script {
        swap_fails: true,
        ..Script::default()
    });
    let Applied::Aborted { refusal, .. } = run(&mut fake) else {
        panic!()
    };
    assert!(refusal.reason.contains("rename failed"));
    assert!(fake.called("clear-journal") && !fake.called("start"));
}

#[test]
fn a_failed_record_leaves_the_upgrade_in_place_to_be_recorded_again() {
    let mut fake = Fake::with(Script {
        record_fails: true,
        ..Script::default()
    });
    let Applied::Done {
        daemon, unrecorded, ..
    } = run(&mut fake)
    else {
        panic!()
    };
    assert_eq!(daemon, Some(FakeDaemon(2)));
    assert_eq!(unrecorded.map(|j| j.upgrade.name), Some("v2".to_owned()));
    assert!(fake.called("report-error"));
}

#[test]
fn a_new_daemon_that_cannot_start_is_left_to_the_confirmation() {
    let mut fake = Fake::with(Script {
        start_fails: true,
        ..Script::default()
    });
    let Applied::Done {
        daemon,
        confirming,
        downtime,
        ..
    } = run(&mut fake)
    else {
        panic!()
    };
    assert_eq!(daemon, None);
    assert!(downtime.is_none());
    // the failed start counts against it (and may roll it back)
    assert!(confirming.is_some());
    assert!(fake.called("report-error") && !fake.called("ready"));
}

#[test]
fn a_manual_upgrade_without_backups_is_swapped_and_not_started() {
    let mut fake = Fake::with(Script {
        backups_off: true,
        ..Script::default()
    });
    let Applied::Done {
        daemon,
        restart_wanted,
        confirming,
        ..
    } = run_with(&mut fake, true)
    else {
        panic!()
    };
    assert!(daemon.is_none() && !restart_wanted && confirming.is_none());
    assert_eq!(
        steps(&fake),
        [
            "announce",
            "gate",
            "stop 1",
            "swap",
            "record",
            "clear-journal"
        ]
    );
}
