//! Drop-in migration: an install written by nymvisor 0.1.41 is read unchanged.

use nymvisor_tests::*;

/// Lays the 0.1.41 fixtures out as that version would have: config, plan, history, the old
/// `current-version.json` name, and binaries for `current`.
pub fn legacy_install(home: &TestHome) {
    let fx = fixtures_dir();
    let config = home.config_path("nym-node-default");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::copy(fx.join("config.toml"), &config).unwrap();
    let data = home.data_dir("nym-node");
    std::fs::create_dir_all(data.join("genesis/bin")).unwrap();
    std::fs::create_dir_all(data.join("upgrades/v1.2.0-rollback/bin")).unwrap();
    std::fs::copy(
        fx.join("genesis-upgrade-info.json"),
        data.join("genesis/upgrade-info.json"),
    )
    .unwrap();
    stamp_fake_daemon(&data.join("genesis/bin/nym-node"), "nym-node", "1.1.0", &[]);
    stamp_fake_daemon(
        &data.join("upgrades/v1.2.0-rollback/bin/nym-node"),
        "nym-node",
        "1.2.0",
        &[],
    );
    std::os::unix::fs::symlink("upgrades/v1.2.0-rollback", data.join("current")).unwrap();
    std::fs::copy(fx.join("upgrade-plan.json"), data.join("upgrade-plan.json")).unwrap();
    std::fs::copy(
        fx.join("upgrade-history.json"),
        data.join("upgrade-history.json"),
    )
    .unwrap();
    let nv = home.daemon_home().join("nymvisor");
    std::fs::create_dir_all(&nv).unwrap();
    std::fs::copy(
        fx.join("current-version.json"),
        nv.join("current-version.json"),
    )
    .unwrap();
}

#[test]
fn legacy_config_loads_unchanged_with_its_values() {
    let home = TestHome::new();
    legacy_install(&home);
    let before = std::fs::read(home.config_path("nym-node-default")).unwrap();
    let out = home.run(&["config", "-o", "json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["daemon"]["home"],
        "/home/nym/.nym/nym-nodes/default-nym-node"
    );
    // 0.1.41 wrote false: what the file says is what counts
    assert_eq!(v["daemon"]["restart_on_failure"], false);
    assert!(v["nymvisor"]["upgrade_data_directory"].is_null());
    // new keys take their defaults
    assert_eq!(v["daemon"]["backup_strategy"], "copy");
    assert_eq!(v["daemon"]["rollback_on_failure"], true);
    assert_eq!(
        std::fs::read(home.config_path("nym-node-default")).unwrap(),
        before
    );
}

#[test]
fn legacy_plan_is_used_and_its_downgrade_rules_apply() {
    let home = TestHome::new();
    legacy_install(&home);
    let dh = home.daemon_home();
    let out = home
        .nymvisor()
        .args(["daemon-build-info", "-o", "json"])
        .env("DAEMON_HOME", &dh)
        .output()
        .unwrap();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["build_version"], "1.2.0");

    // The plan's current is 1.2.0 (v1.2.0-rollback): 1.1.5 is refused, 1.4.0 is queued after the
    // legacy entries, which are kept as they were.
    let older = home.daemon_bin("older", "nym-node", "1.1.5", &[]);
    let out = home
        .nymvisor()
        .args([
            "add-upgrade",
            older.to_str().unwrap(),
            "--upgrade-name",
            "o",
            "--now",
        ])
        .env("DAEMON_HOME", &dh)
        .output()
        .unwrap();
    assert_failure(&out, "not newer than the running 1.2.0");
    let newer = home.daemon_bin("newer", "nym-node", "1.4.0", &[]);
    let out = home
        .nymvisor()
        .args([
            "add-upgrade",
            newer.to_str().unwrap(),
            "--upgrade-name",
            "v1.4.0",
            "--upgrade-time",
            "2027-06-01T00:00:00Z",
        ])
        .env("DAEMON_HOME", &dh)
        .output()
        .unwrap();
    assert_success(&out);
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    let names: Vec<_> = plan["queuedUp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["older", "v1.3.1-bad", "wrong-binary", "v1.4.0"]);
    // the history file is untouched
    assert_eq!(
        std::fs::read(home.data_dir("nym-node").join("upgrade-history.json")).unwrap(),
        std::fs::read(fixtures_dir().join("upgrade-history.json")).unwrap()
    );
}
