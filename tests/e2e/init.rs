//! `nymvisor init`: the tree it creates, precedence of env over flags, idempotence, refusals.

use std::os::unix::fs::PermissionsExt;

use nymvisor_tests::*;

#[test]
fn init_creates_the_documented_tree() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node", "nym-node", "1.1.0", &[]);
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("initialised nymvisor instance `nym-node-default`"),
        "{text}"
    );

    let data = home.data_dir("nym-node");
    let genesis_bin = data.join("genesis/bin/nym-node");
    assert_eq!(
        std::fs::read(&genesis_bin).unwrap(),
        std::fs::read(&bin).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&genesis_bin)
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );
    assert_eq!(
        std::fs::read_link(data.join("current")).unwrap(),
        std::path::Path::new("genesis")
    );

    let genesis = read_json(&data.join("genesis/upgrade-info.json"));
    assert_eq!(genesis["name"], "genesis");
    assert_eq!(genesis["manual"], true);
    assert_eq!(genesis["version"], "1.1.0");
    assert_eq!(genesis["upgradeTime"], "1970-01-01T00:00:00Z");
    assert_eq!(genesis["binaryDetails"]["binary_name"], "nym-node");
    assert!(genesis["publishDate"].is_null());

    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["current"], genesis);
    assert_eq!(plan["queuedUp"], serde_json::json!([]));

    let cvi = read_json(
        &home
            .daemon_home()
            .join("nymvisor/current-version-info.json"),
    );
    assert_eq!(cvi["name"], "genesis");
    assert_eq!(cvi["version"], "1.1.0");

    let config = home.config_path("nym-node-default");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("name = \"nym-node\"") || text.contains("name = 'nym-node'"),
        "{text}"
    );
    assert!(text.contains("restart_on_failure = true"), "{text}");
}

#[test]
fn env_wins_over_flags_and_every_key_is_saved() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node", "nym-node", "1.1.0", &[]);
    let out = home
        .nymvisor()
        .args([
            "init",
            bin.to_str().unwrap(),
            "--daemon-home",
            home.daemon_home().to_str().unwrap(),
            "--upstream-polling-rate",
            "5m",
            "--max-daemon-startup-failures",
            "4",
            "--unsafe-skip-backup",
            "--backup-strategy",
            "archive",
            "--id",
            "flagged",
        ])
        .env("NYMVISOR_UPSTREAM_POLLING_RATE", "90s")
        .env("DAEMON_RESTART_AFTER_UPGRADE", "F")
        .output()
        .unwrap();
    assert_success(&out);
    let out = home
        .nymvisor()
        .args(["config", "-o", "json"])
        .env("NYMVISOR_ID", "flagged")
        .output()
        .unwrap();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["nymvisor"]["upstream_polling_rate"], "1m 30s",
        "env beats the flag"
    );
    assert_eq!(v["daemon"]["max_startup_failures"], 4);
    assert_eq!(v["daemon"]["restart_after_upgrade"], false);
    assert_eq!(v["daemon"]["unsafe_skip_backup"], true);
    assert_eq!(v["daemon"]["backup_strategy"], "archive");
    assert!(v["daemon"]["backup_data_directory"].is_null());
}

#[test]
fn values_with_special_characters_survive_a_round_trip() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node", "nym-node", "1.1.0", &[]);
    let tricky = "https://mirror.example/feed?a=1&b='x'\"y\"<z>";
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--daemon-absolute-upstream-upgrade-url",
        tricky,
    ]);
    assert_success(&out);
    let out = home.run(&["config", "-o", "json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["absolute_upstream_upgrade_url"], tricky);
}

#[test]
fn second_init_with_same_setup_changes_nothing() {
    let home = TestHome::new();
    let bin = home.init_default("1.1.0");
    let before = home.snapshot();
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("nothing was changed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(home.snapshot(), before);
}

#[test]
fn second_init_with_other_settings_or_binary_is_refused() {
    let home = TestHome::new();
    let bin = home.init_default("1.1.0");
    let other = home.daemon_bin("other", "nym-node", "1.2.0", &[]);
    let before = home.snapshot();
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--upstream-polling-rate",
        "5m",
    ]);
    assert_failure(&out, "nymvisor.upstream_polling_rate");
    let out = home.run(&[
        "init",
        other.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]);
    assert_failure(&out, "add-upgrade");
    assert_eq!(home.snapshot(), before);
}

#[test]
fn second_instance_must_not_share_the_upgrade_data_directory() {
    let home = TestHome::new();
    let bin = home.init_default("1.1.0");
    let before = home.snapshot();
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--id",
        "second",
    ]);
    assert_failure(&out, "--upgrade-data-directory");
    assert_eq!(home.snapshot(), before);

    let own = home.path().join("second-data");
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--id",
        "second",
        "--upgrade-data-directory",
        own.to_str().unwrap(),
    ]);
    assert_success(&out);
    // a custom directory is used as given (no `<daemon>` appended)
    assert!(own.join("genesis/bin/nym-node").is_file());
    // with two instances, commands must be told which one
    let out = home.run(&["config"]);
    assert_failure(&out, "NYMVISOR_ID");
    assert!(stderr(&out).contains("nym-node-default") && stderr(&out).contains("second"));
}

#[test]
fn init_refuses_bad_input_without_writing() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node", "nym-node", "1.1.0", &[]);
    let dh = home.daemon_home();
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["/nonexistent/nym-node".into()],
            vec![],
            "/nonexistent/nym-node",
        ),
        (
            vec![
                bin.display().to_string(),
                "--daemon-name".into(),
                "nym-api".into(),
            ],
            vec![("DAEMON_HOME", dh.to_str().unwrap())],
            "nym-api",
        ),
        (
            vec![
                bin.display().to_string(),
                "--daemon-home".into(),
                "/nonexistent/home".into(),
            ],
            vec![],
            "does not exist",
        ),
        (vec![bin.display().to_string()], vec![], "daemon.home"),
        (
            vec![
                bin.display().to_string(),
                "--max-daemon-startup-failures".into(),
                "many".into(),
            ],
            vec![],
            "--max-daemon-startup-failures",
        ),
        (
            vec![bin.display().to_string(), "--id".into(), "../escape".into()],
            vec![],
            "nymvisor.id",
        ),
        (
            vec![bin.display().to_string()],
            vec![
                ("DAEMON_HOME", dh.to_str().unwrap()),
                ("DAEMON_RESTART_ON_FAILURE", "yes"),
            ],
            "DAEMON_RESTART_ON_FAILURE",
        ),
        (
            vec![bin.display().to_string()],
            vec![
                ("DAEMON_HOME", dh.to_str().unwrap()),
                ("DAEMON_BACKUP_STRATEGY", "zip"),
            ],
            "DAEMON_BACKUP_STRATEGY",
        ),
    ];
    for (args, envs, needle) in cases {
        let before = home.snapshot();
        let mut cmd = home.nymvisor();
        cmd.arg("init").args(&args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_failure(&out, needle);
        assert_eq!(home.snapshot(), before, "case {args:?} changed files");
    }
}
