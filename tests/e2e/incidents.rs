//! The commands an operator reaches for during an incident: `cancel`, `rollback` (by the
//! running nymvisor and without one, with and without data), `retry` of a rolled-back or
//! cancelled upgrade, `backups restore` with its safety copy (0.1.41's archives too), and a
//! `status` that says why nymvisor stopped, when the daemon restarts and what confirms an upgrade.

use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;

/// Whether `s` has a time with a fraction of a second (`…:14.123456789Z`).
fn has_subseconds(s: &str) -> bool {
    s.as_bytes()
        .windows(4)
        .any(|w| w[0] == b'.' && w[1..].iter().all(u8::is_ascii_digit))
}

fn status_text(home: &TestHome) -> String {
    stdout(&home.run(&["status"]))
}

fn current_link(home: &TestHome) -> String {
    std::fs::read_link(home.data_dir("nym-node").join("current"))
        .unwrap()
        .display()
        .to_string()
}

fn version_txt(home: &TestHome) -> String {
    std::fs::read_to_string(home.daemon_home().join("data/version.txt")).unwrap()
}

fn last_history(home: &TestHome) -> serde_json::Value {
    let h = read_json(&home.data_dir("nym-node").join("upgrade-history.json"));
    h["history"].as_array().unwrap().last().unwrap().clone()
}

#[test]
fn rollback_and_retry_with_run_running() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.wait_stderr("upgrade confirmed");
    // nothing rolled back yet: retry has nothing to take
    assert_failure(
        &home.run(&["retry", "v1.2.0"]),
        "no refused, cancelled or rolled-back",
    );

    let out = home.run(&["rollback", "--with-data"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("rolled back nym-node 1.2.0 → 1.1.0"),
        "{}",
        stdout(&out)
    );
    let back = nv.wait_start(3);
    assert_eq!(back.version, "1.1.0");
    assert_eq!(current_link(&home), "genesis");
    let h = last_history(&home);
    assert_eq!(h["outcome"], "rolled-back", "{h}");
    assert!(
        h["error"].as_str().unwrap().contains("by the operator"),
        "{h}"
    );
    // the data the restore replaced is kept, and listed with its version
    let list = stdout(&home.run(&["backups", "list"]));
    assert!(
        list.contains("before-rollback-of-v1.2.0/") && list.contains("holds nym-node 1.2.0"),
        "{list}"
    );
    assert!(
        list.contains("v1.2.0/") && list.contains("holds nym-node 1.1.0"),
        "{list}"
    );
    let s = status_text(&home);
    assert!(s.contains("rolled back"), "{s}");
    assert!(
        !s.contains("last error"),
        "an operator's rollback is no error: {s}"
    );

    // the rolled-back release is retried deliberately, from its kept binary
    let out = home.run(&["retry", "v1.2.0", "--now"]);
    assert_success(&out);
    assert!(stdout(&out).contains("queued again"), "{}", stdout(&out));
    assert_eq!(nv.wait_start(4).version, "1.2.0", "{}", nv.stderr());
    nv.wait_stderr("upgrade confirmed: nym-node 1.2.0");
    nv.stop();
}

#[test]
fn rollback_without_run_is_done_by_the_command() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    home.run_one_upgrade(FAST);
    assert_eq!(version_txt(&home), "1.2.0");
    let out = home.run(&["rollback", "--with-data"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("rolled back nym-node 1.2.0 (`v1.2.0`) → 1.1.0 (`genesis`)")
            && text.contains("start nymvisor to run it"),
        "{text}"
    );
    assert_eq!(current_link(&home), "genesis");
    assert_eq!(version_txt(&home), "1.1.0", "the data was not restored");
    // the safety copy holds what was replaced
    let kept = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("the data it replaced is kept in "))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(kept).join("data/version.txt")).unwrap(),
        "1.2.0"
    );
    let cv = read_json(
        &home
            .daemon_home()
            .join("nymvisor/current-version-info.json"),
    );
    assert_eq!(cv["version"], "1.1.0");
    // nothing before genesis
    assert_failure(&home.run(&["rollback"]), "nothing before it");
    // the next run runs 1.1.0, and does not take 1.2.0 again by itself
    let mut nv = home.spawn_run(FAST, &[]);
    assert_eq!(nv.wait_start(1).version, "1.1.0");
    nv.stop();
}

#[test]
fn cancel_takes_an_upgrade_out_until_retry() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "1h"]);
    let out = home.run(&["cancel", "v1.2.0"]);
    assert_success(&out);
    nv.wait_stderr("0 upgrade(s) queued");
    // the running nymvisor's view follows at its next turn
    assert!(wait_for(PATIENCE, || status_text(&home)
        .contains("queued:        nothing")));
    let s = status_text(&home);
    assert!(
        s.contains("cancelled:     v1.2.0 1.2.0 by the operator"),
        "{s}"
    );
    assert_failure(
        &home.run(&["cancel", "v1.2.0"]),
        "no queued upgrade `v1.2.0`",
    );
    let out = home.run(&["retry", "v1.2.0", "--now"]);
    assert_success(&out);
    assert!(stdout(&out).contains("queued again"), "{}", stdout(&out));
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.wait_stderr("upgrade confirmed");
    // past its stop, an upgrade cannot be cancelled any more
    let newer = home.daemon_bin("newer", "nym-node", "1.3.0", &[]);
    let mut slow: Vec<(&str, &str)> = FAST.to_vec();
    slow.retain(|(k, _)| *k != "DAEMON_STARTUP_PERIOD_DURATION");
    slow.push(("DAEMON_STARTUP_PERIOD_DURATION", "1h"));
    nv.stop();
    let mut nv = home.spawn_run(&slow, &[]);
    nv.wait_start(1);
    home.add_upgrade(&newer, "v1.3.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.3.0");
    assert_failure(
        &home.run(&["cancel", "v1.3.0"]),
        "cannot be cancelled any more",
    );
    // the running nymvisor's view follows at its next turn
    assert!(wait_for(PATIENCE, || status_text(&home)
        .contains("confirming:    `v1.3.0` until")));
    let s = status_text(&home);
    assert!(
        s.contains("confirming:    `v1.3.0` until")
            && s.contains("running through its startup period"),
        "{s}"
    );
    nv.stop();
}

/// An upstream release the operator cancelled is not queued again while upstream offers the
/// very same release; another checksum or URL is a new release.
#[test]
fn a_cancelled_upstream_release_stays_out_until_upstream_changes_it() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    assert_success(&home.run(&["hold"]));
    let server = FeedServer::start();
    let bin = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    let sum = sha256_file(&bin);
    server.route(
        "/bin/nym-node-1.2.0",
        Reply::Body(std::fs::read(&bin).unwrap()),
    );
    let feed = |url: &str| {
        let info = upgrade_info("v1.2.0", "1.2.0", url, &sum, "sha256");
        server.route(
            "/nym-node/upgrade-info.json",
            Reply::Body(serde_json::to_vec(&info).unwrap()),
        );
    };
    feed(&format!("{}/bin/nym-node-1.2.0", server.base()));
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    nv.wait_start(1);
    nv.wait_stderr("new release upstream");
    assert_success(&home.run(&["cancel", "v1.2.0"]));
    let polls = |s: &FeedServer| {
        s.hits()
            .iter()
            .filter(|h| h.ends_with("upgrade-info.json"))
            .count()
    };
    let seen = polls(&server);
    assert!(wait_for(PATIENCE, || polls(&server) >= seen + 3));
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(plan["queuedUp"].as_array().unwrap().len(), 0, "{plan}");
    // upstream moves the release: a new candidate
    server.route(
        "/mirror/nym-node-1.2.0",
        Reply::Body(std::fs::read(&bin).unwrap()),
    );
    feed(&format!("{}/mirror/nym-node-1.2.0", server.base()));
    assert!(wait_for(PATIENCE, || {
        let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
        plan["queuedUp"].as_array().is_some_and(|q| q.len() == 1)
    }));
    nv.stop();
}

#[test]
fn status_says_why_nymvisor_stopped_and_when_the_daemon_restarts() {
    let home = TestHome::new();
    let bin = home.daemon_bin("crashy", "nym-node", "1.1.0", &["mode=crash"]);
    home.init_with(&bin);
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_FAILURE_RESTART_DELAY", "1h"),
            ("DAEMON_MAX_STARTUP_FAILURES", "3"),
        ],
        &[],
    );
    nv.wait_start(1);
    nv.wait_stderr("restarting the daemon in");
    let s = status_text(&home);
    assert!(
        s.contains("daemon:        not running — restart 1 of 3 at"),
        "{s}"
    );
    assert!(s.contains("(in 59 min)") || s.contains("(in 1h 0m)"), "{s}");
    assert!(!has_subseconds(&s), "sub-second digits in {s}");
    nv.stop();
    let s = status_text(&home);
    assert!(
        s.contains("nymvisor:      not running — stopped at") && s.contains("stopped by SIGTERM"),
        "{s}"
    );

    let mut nv = home.spawn_run(
        &[
            ("DAEMON_FAILURE_RESTART_DELAY", "10ms"),
            ("DAEMON_MAX_STARTUP_FAILURES", "2"),
        ],
        &[],
    );
    assert!(!nv.wait_exit().success());
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    let s = stdout(&out);
    assert!(
        s.contains("nymvisor:      not running — gave up at")
            && s.contains("the daemon failed 2 times"),
        "{s}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&home.run(&["status", "-o", "json"]).stdout).unwrap();
    assert_eq!(j["stopped"]["error"], true, "{j}");
}

#[test]
fn restore_keeps_a_safety_copy_and_reads_0_1_41_archives() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    home.run_one_upgrade(FAST);
    assert_eq!(version_txt(&home), "1.2.0");
    // 0.1.41's backup of an earlier upgrade: a gzip'd tar of the home's entries
    let legacy_src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(legacy_src.path().join("data")).unwrap();
    std::fs::write(legacy_src.path().join("data/version.txt"), "1.0.9").unwrap();
    let legacy_dir = home.daemon_home().join("nymvisor/backups/v1.1.0");
    std::fs::create_dir_all(&legacy_dir).unwrap();
    let archive = legacy_dir.join("backup-2024-03-05-101112345-preupgrade.tar.gz");
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(legacy_src.path())
        .arg("data")
        .status()
        .unwrap();
    assert!(ok.success());
    let list = stdout(&home.run(&["backups", "list"]));
    assert!(
        list.contains("v1.1.0/backup-2024-03-05-101112345-preupgrade.tar.gz"),
        "{list}"
    );
    // oldest first: the 2024 archive before this run's backup
    let first = list.lines().next().unwrap();
    assert!(first.starts_with("v1.1.0/"), "{list}");

    let out = home.run(&["backups", "restore", "v1.1.0"]);
    assert_success(&out);
    assert_eq!(version_txt(&home), "1.0.9");
    let text = stdout(&out);
    let kept = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("the data it replaced is kept in "))
        .and_then(|l| l.split(" (").next())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(kept).join("data/version.txt")).unwrap(),
        "1.2.0"
    );
    let list = stdout(&home.run(&["backups", "list"]));
    assert!(
        list.contains("before-restore-of-v1.2.0/") && list.contains("holds nym-node 1.2.0"),
        "{list}"
    );
    // undone the same way
    let label = std::path::Path::new(kept);
    let selector = format!(
        "before-restore-of-v1.2.0/{}",
        label.file_name().unwrap().to_str().unwrap()
    );
    assert_success(&home.run(&["backups", "restore", &selector]));
    assert_eq!(version_txt(&home), "1.2.0");
}

/// `cancel` while the upgrade's backup is being pre-copied (the node still runs): the upgrade
/// is not applied, the node is not stopped.
#[test]
fn cancel_during_the_precopy_withdraws_the_upgrade() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    std::fs::create_dir_all(home.daemon_home().join("data")).unwrap();
    let resume = home.path().join("resume");
    let fp = format!("during-precopy@{}", resume.display());
    let mut env = FAST.to_vec();
    env.push(("NYMVISOR_FAILPOINT", fp.as_str()));
    let mut nv = home.spawn_run(&env, &[]);
    let first = nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("fail point `during-precopy` reached");
    assert_success(&home.run(&["cancel", "v1.2.0"]));
    std::fs::write(&resume, b"").unwrap();
    nv.wait_stderr("was not applied: upgrade `v1.2.0` is no longer queued");
    assert_eq!(nv.starts().len(), 1);
    assert!(alive(first.pid));
    assert_eq!(current_link(&home), "genesis");
    nv.stop();
}
