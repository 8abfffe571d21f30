//! Backups around upgrades: listing, restoring (refused while running), free-space refusal,
//! strategies selected by configuration.

use nymvisor_tests::*;

fn upgrade_once(home: &TestHome, extra_env: &[(&str, &str)]) -> RunHandle {
    let mut env = FAST.to_vec();
    env.extend_from_slice(extra_env);
    let nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv
}

#[test]
fn backups_are_listed_and_restored_only_when_stopped() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    std::fs::write(home.daemon_home().join("state.db"), "before the upgrade").unwrap();
    let mut nv = upgrade_once(&home, &[]);
    nv.wait_start(2);
    // confirmed first: the confirmation changes the files the snapshot below compares
    nv.wait_stderr("upgrade confirmed");
    std::fs::write(home.daemon_home().join("state.db"), "written by 1.2.0").unwrap();

    let out = home.run(&["backups", "list", "-o", "json"]);
    assert_success(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["upgrade"], "v1.2.0");

    let before = home.snapshot();
    let out = home.run(&["backups", "restore", "v1.2.0"]);
    assert_failure(&out, "--stop");
    assert_eq!(
        home.snapshot(),
        before,
        "nothing restored while the daemon runs"
    );

    let out = home.run(&["backups", "restore", "v1.2.0", "--stop"]);
    assert_success(&out);
    assert!(nv.wait_exit().success(), "nymvisor was asked to stop");
    assert_eq!(
        std::fs::read_to_string(home.daemon_home().join("state.db")).unwrap(),
        "before the upgrade"
    );
    assert!(
        home.daemon_home().join("nymvisor/backups/v1.2.0").is_dir(),
        "the backups themselves are kept"
    );
    assert_failure(&home.run(&["backups", "restore", "v9"]), "no backup");
}

#[test]
fn short_free_space_postpones_the_upgrade_and_keeps_the_daemon_running() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = upgrade_once(&home, &[("DAEMON_BACKUP_MIN_FREE", "18446744073709551615")]);
    nv.wait_stderr("not enough free space for a backup");
    assert_eq!(nv.starts().len(), 1, "the daemon was not stopped");
    assert!(alive(nv.starts()[0].pid));
    assert!(!home.daemon_home().join("nymvisor/backups/v1.2.0").exists());
    nv.stop();
}

#[test]
fn hardlink_strategy_and_exclusions_apply_to_upgrades() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    std::fs::write(home.daemon_home().join("big.log"), "log").unwrap();
    let mut nv = upgrade_once(
        &home,
        &[
            ("DAEMON_BACKUP_STRATEGY", "hardlink"),
            ("DAEMON_BACKUP_EXCLUDE", "*.log"),
        ],
    );
    nv.wait_stderr("upgrade applied");
    let backups = home.daemon_home().join("nymvisor/backups/v1.2.0");
    let made = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(made.join("data/version.txt").is_file());
    assert!(!made.join("big.log").exists());
    nv.stop();
}

#[test]
fn archive_backups_are_restored_by_a_rollback() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut env = FAST.to_vec();
    env.extend_from_slice(&[
        ("DAEMON_BACKUP_STRATEGY", "archive"),
        ("DAEMON_MAX_STARTUP_FAILURES", "1"),
        // the crash must count as a startup failure even on a loaded machine
        ("DAEMON_STARTUP_PERIOD_DURATION", "60s"),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let bad = home.daemon_bin("bad", "nym-node", "1.2.0", &["mode=crash"]);
    home.add_upgrade(&bad, "bad", &["--now"]);
    nv.wait_stderr("rolled back to genesis");
    let backups = home.daemon_home().join("nymvisor/backups/bad");
    let made = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(made.join("backup.tar").is_file());
    assert!(
        !home.daemon_home().join("data/touched-1.2.0").exists(),
        "restored from the archive"
    );
    assert!(home.daemon_home().join("data/touched-1.1.0").exists());
    nv.stop();
}
