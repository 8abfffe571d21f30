//! `nymvisor add-upgrade`: what it writes and everything it refuses.

use nymvisor_tests::*;

fn add(home: &TestHome, bin: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["add-upgrade", bin.to_str().unwrap(), "--upgrade-name", name];
    args.extend_from_slice(extra);
    home.run(&args)
}

#[test]
fn queues_binary_info_and_plan() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    let out = add(&home, &bin, "v1.2.0", &["--now"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("queued upgrade `v1.2.0`"),
        "{}",
        stdout(&out)
    );

    let data = home.data_dir("nym-node");
    assert_eq!(
        std::fs::read(data.join("upgrades/v1.2.0/bin/nym-node")).unwrap(),
        std::fs::read(&bin).unwrap()
    );
    let info = read_json(&data.join("upgrades/v1.2.0/upgrade-info.json"));
    assert_eq!(info["manual"], false);
    assert_eq!(info["version"], "1.2.0");
    assert_eq!(info["platforms"], serde_json::json!({}));
    assert_eq!(info["notes"], "manually added via 'add-upgrade' command");
    assert_eq!(info["binaryDetails"]["build_version"], "1.2.0");
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["queuedUp"].as_array().unwrap().len(), 1);
    assert_eq!(plan["queuedUp"][0], info);
    assert_eq!(plan["current"]["name"], "genesis");
}

#[test]
fn queue_is_sorted_by_upgrade_time() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let late = home.daemon_bin("late", "nym-node", "1.3.0", &[]);
    let soon = home.daemon_bin("soon", "nym-node", "1.2.0", &[]);
    let mid = home.daemon_bin("mid", "nym-node", "1.2.5", &[]);
    assert_success(&add(
        &home,
        &late,
        "late",
        &[
            "--upgrade-time",
            "2999-01-01T00:00:00Z",
            "--publish-date",
            "2998-12-01T00:00:00+01:00",
        ],
    ));
    assert_success(&add(&home, &soon, "soon", &["--upgrade-delay", "1h"]));
    assert_success(&add(&home, &mid, "mid", &[]));
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    let names: Vec<_> = plan["queuedUp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["mid", "soon", "late"],
        "default delay is 15 minutes"
    );
    assert_eq!(plan["queuedUp"][2]["upgradeTime"], "2999-01-01T00:00:00Z");
    assert_eq!(
        plan["queuedUp"][2]["publishDate"],
        "2998-12-01T00:00:00+01:00"
    );
}

#[test]
fn refusals_change_nothing() {
    let home = TestHome::new();
    home.init_default("1.2.0");
    let good = home.daemon_bin("good", "nym-node", "1.3.0", &[]);
    assert_success(&add(&home, &good, "v1.3.0", &["--upgrade-delay", "1h"]));

    let wrong = home.daemon_bin("wrong", "nym-client", "1.4.0", &[]);
    let older = home.daemon_bin("older", "nym-node", "1.1.0", &[]);
    let same = home.daemon_bin("same", "nym-node", "1.2.0", &[]);
    let dup = home.daemon_bin("dup", "nym-node", "1.3.0", &[]);
    let newer = home.daemon_bin("newer", "nym-node", "1.4.0", &[]);
    let noexec = home.path().join("bins/noexec");
    std::fs::copy(&newer, &noexec).unwrap();
    std::fs::set_permissions(&noexec, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let dir = home.path().join("bins");

    let cases: Vec<(&std::path::Path, &str, Vec<&str>, &str)> = vec![
        (&wrong, "w", vec!["--now"], "nym-client"),
        (&older, "old", vec!["--now"], "not newer"),
        (&same, "same", vec!["--now"], "not newer"),
        (
            &dup,
            "dup",
            vec!["--now"],
            "already queued as upgrade `v1.3.0`",
        ),
        (&newer, "v1.3.0", vec!["--now"], "--force"),
        (&newer, "../../etc", vec!["--now"], "invalid upgrade name"),
        (&newer, "a/b", vec!["--now"], "invalid upgrade name"),
        (&newer, "genesis", vec!["--now"], "genesis"),
        (&noexec, "noexec", vec!["--now"], "not executable"),
        (&dir, "dir", vec!["--now"], "not a regular file"),
        (
            std::path::Path::new("/nonexistent/bin"),
            "missing",
            vec!["--now"],
            "/nonexistent/bin",
        ),
        (
            &newer,
            "x",
            vec!["--now", "--upgrade-delay", "1h"],
            "cannot be used with",
        ),
        (&newer, "x", vec!["--upgrade-time", "tomorrow"], "RFC 3339"),
        (&newer, "x", vec!["--upgrade-delay", "soonish"], "duration"),
        (
            &newer,
            "missing",
            vec!["--add-binary"],
            "no upgrade `missing`",
        ),
        (&newer, "v1.3.0", vec!["--add-binary"], "expects 1.3.0"),
    ];
    for (bin, name, extra, needle) in cases {
        let before = home.snapshot();
        let out = add(&home, bin, name, &extra);
        assert_failure(&out, needle);
        assert_eq!(
            home.snapshot(),
            before,
            "case {name} {extra:?} changed files"
        );
    }
}

#[test]
fn downgrade_needs_an_explicit_override() {
    let home = TestHome::new();
    home.init_default("1.2.0");
    let older = home.daemon_bin("older", "nym-node", "1.1.0", &[]);
    assert_success(&add(&home, &older, "back", &["--allow-downgrade", "--now"]));
    let older2 = home.daemon_bin("older2", "nym-node", "1.0.0", &[]);
    let out = home
        .nymvisor()
        .args([
            "add-upgrade",
            older2.to_str().unwrap(),
            "--upgrade-name",
            "back2",
            "--now",
        ])
        .env("DAEMON_ALLOW_DOWNGRADE", "true")
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn force_replaces_and_add_binary_fills_in() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let first = home.daemon_bin("first", "nym-node", "1.2.0", &[]);
    assert_success(&add(&home, &first, "next", &["--upgrade-delay", "2h"]));
    let second = home.daemon_bin("second", "nym-node", "1.2.1", &[]);
    assert_success(&add(&home, &second, "next", &["--force", "--now"]));
    let data = home.data_dir("nym-node");
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(
        plan["queuedUp"].as_array().unwrap().len(),
        1,
        "replaced, not added twice"
    );
    assert_eq!(plan["queuedUp"][0]["version"], "1.2.1");
    assert_eq!(
        std::fs::read(data.join("upgrades/next/bin/nym-node")).unwrap(),
        std::fs::read(&second).unwrap()
    );

    // the binary goes missing; --add-binary puts a matching one back without touching the plan
    std::fs::remove_file(data.join("upgrades/next/bin/nym-node")).unwrap();
    let plan_before = std::fs::read(data.join("upgrade-plan.json")).unwrap();
    let out = add(&home, &second, "next", &["--add-binary"]);
    assert_success(&out);
    assert!(data.join("upgrades/next/bin/nym-node").is_file());
    assert_eq!(
        std::fs::read(data.join("upgrade-plan.json")).unwrap(),
        plan_before
    );
    // a second --add-binary without --force refuses to replace it
    assert_failure(&add(&home, &second, "next", &["--add-binary"]), "--force");
}

#[test]
fn json_output_is_the_upgrade_info() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    let out = add(&home, &bin, "v1.2.0", &["--now", "-o", "json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "v1.2.0");
    assert_eq!(
        v,
        read_json(
            &home
                .data_dir("nym-node")
                .join("upgrades/v1.2.0/upgrade-info.json")
        )
    );
}
