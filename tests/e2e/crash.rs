//! Crash safety: nymvisor killed with SIGKILL at each step of an upgrade (fail points compiled
//! into the workspace's test build), then started again, ends in a consistent state.

use std::os::unix::process::ExitStatusExt;

use nymvisor_tests::*;

fn with_failpoint(fp: &str) -> Vec<(&str, &str)> {
    let mut env = FAST.to_vec();
    env.push(("NYMVISOR_FAILPOINT", fp));
    env
}

fn no_temp_files(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "leftover temporary {}",
            entry.path().display()
        );
    }
}

fn killed_at(fp: &str) {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let data = home.data_dir("nym-node");
    let mut first = home.spawn_run(&with_failpoint(fp), &["run"]);
    first.wait_start(1);
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    let status = first.wait_exit();
    assert_eq!(
        status.signal(),
        Some(9),
        "{fp}: nymvisor was not killed at the fail point:\n{}",
        first.stderr()
    );
    // the daemon it left behind is told to stop (parent-death signal) and does
    let orphans = logged_pids(&first.events());
    assert!(
        wait_for(PATIENCE, || orphans.iter().all(|p| !alive(*p))),
        "{fp}: a daemon outlived nymvisor"
    );

    let mut second = home.spawn_run(FAST, &["run"]);
    let start = second.wait_start(1);
    assert_eq!(
        start.version,
        "1.2.0",
        "{fp}: the upgrade was not finished:\n{}",
        second.stderr()
    );
    assert!(
        wait_for(PATIENCE, || !data.join("upgrade-journal.json").exists()),
        "{fp}: not confirmed:\n{}",
        second.stderr()
    );

    assert_eq!(
        std::fs::read_link(data.join("current"))
            .unwrap()
            .display()
            .to_string(),
        "upgrades/v1.2.0"
    );
    assert_eq!(
        std::fs::read(data.join("current/bin/nym-node")).unwrap(),
        std::fs::read(&new_bin).unwrap()
    );
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["current"]["name"], "v1.2.0", "{fp}");
    assert_eq!(plan["queuedUp"], serde_json::json!([]), "{fp}");
    let cvi = read_json(
        &home
            .daemon_home()
            .join("nymvisor/current-version-info.json"),
    );
    assert_eq!(cvi["name"], "v1.2.0", "{fp}");
    let history = read_json(&data.join("upgrade-history.json"));
    let entries: Vec<_> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["info"]["name"] == "v1.2.0")
        .collect();
    assert_eq!(entries.len(), 1, "{fp}: {history}");
    assert_eq!(entries[0]["outcome"], "confirmed", "{fp}: {history}");
    let backups = home.daemon_home().join("nymvisor/backups/v1.2.0");
    assert_eq!(
        std::fs::read_dir(&backups).unwrap().count(),
        1,
        "{fp}: one backup per upgrade"
    );
    no_temp_files(&backups);
    no_temp_files(&data);
    // exactly one daemon runs: the new one
    let mut pids = logged_pids(&first.events());
    pids.extend(logged_pids(&second.events()));
    let live: Vec<_> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert_eq!(live, vec![start.pid], "{fp}");
    second.stop();
}

#[test]
fn killed_before_stop() {
    killed_at("before-stop");
}

#[test]
fn killed_after_stop() {
    killed_at("after-stop");
}

#[test]
fn killed_after_backup() {
    killed_at("after-backup");
}

#[test]
fn killed_before_swap() {
    killed_at("before-swap");
}

#[test]
fn killed_after_swap() {
    killed_at("after-swap");
}

#[test]
fn killed_after_record() {
    killed_at("after-record");
}

#[test]
fn killed_during_rollback() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let data = home.data_dir("nym-node");
    let mut env = with_failpoint("rollback-after-swap");
    env.push(("DAEMON_MAX_STARTUP_FAILURES", "1"));
    // the crash must count as a startup failure even on a loaded machine
    env.push(("DAEMON_STARTUP_PERIOD_DURATION", "60s"));
    let mut first = home.spawn_run(&env, &[]);
    first.wait_start(1);
    let bad = home.daemon_bin("bad", "nym-node", "1.2.0", &["mode=crash"]);
    home.add_upgrade(&bad, "bad", &["--now"]);
    assert_eq!(first.wait_exit().signal(), Some(9), "{}", first.stderr());

    let mut second = home.spawn_run(FAST, &[]);
    assert_eq!(second.wait_start(1).version, "1.1.0", "{}", second.stderr());
    assert_eq!(
        std::fs::read_link(data.join("current"))
            .unwrap()
            .display()
            .to_string(),
        "genesis"
    );
    assert!(!data.join("upgrade-journal.json").exists());
    assert!(
        !home.daemon_home().join("data/touched-1.2.0").exists(),
        "backup restored"
    );
    let history = read_json(&data.join("upgrade-history.json"));
    assert_eq!(
        history["history"].as_array().unwrap().last().unwrap()["outcome"],
        "rolled-back"
    );
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["current"]["name"], "genesis");
    assert_eq!(plan["queuedUp"], serde_json::json!([]));
    second.stop();
}
