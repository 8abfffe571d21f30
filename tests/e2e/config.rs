//! Which config a command loads, env overrides, dotenv files and strict parsing.

use nymvisor_tests::*;

fn config_json(home: &TestHome, envs: &[(&str, &str)], extra: &[&str]) -> std::process::Output {
    let mut cmd = home.nymvisor();
    cmd.args(extra).args(["config", "-o", "json"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn json_has_the_file_shape_with_humantime_and_nulls() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let out = config_json(&home, &[], &[]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nymvisor"]["id"], "nym-node-default");
    assert_eq!(v["nymvisor"]["upstream_polling_rate"], "1h");
    assert_eq!(v["daemon"]["failure_restart_delay"], "10s");
    assert_eq!(v["daemon"]["startup_period_duration"], "2m");
    assert!(v["nymvisor"]["upgrade_data_directory"].is_null());
    assert!(v["daemon"]["absolute_upstream_upgrade_url"].is_null());
    assert_eq!(v["daemon"]["backup_keep"], 3);
    let text = stdout(&home.run(&["config"]));
    assert!(
        text.contains("[daemon]") && text.contains("upstream_polling_rate = \"1h\""),
        "{text}"
    );
}

#[test]
fn env_overrides_the_file() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let out = config_json(
        &home,
        &[
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "1h 30m"),
            ("DAEMON_RESTART_ON_FAILURE", "0"),
            ("NYMVISOR_DATA_UPGRADE_DIRECTORY", "/srv/nym"),
            (
                "DAEMON_MINISIGN_PUBLIC_KEYS",
                "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3, RWTAPRW2qy9FjsBiMZS3gLHQv7rU9gsPhJ3pwTDhHYW7o3y1gw5pcC2G",
            ),
        ],
        &[],
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["shutdown_grace_period"], "1h 30m");
    assert_eq!(v["daemon"]["restart_on_failure"], false);
    assert_eq!(v["nymvisor"]["upgrade_data_directory"], "/srv/nym");
    assert_eq!(
        v["daemon"]["minisign_public_keys"],
        serde_json::json!([
            "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
            "RWTAPRW2qy9FjsBiMZS3gLHQv7rU9gsPhJ3pwTDhHYW7o3y1gw5pcC2G"
        ])
    );
}

#[test]
fn malformed_env_is_an_error_naming_the_variable() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    for (var, value) in [
        ("DAEMON_FAILURE_RESTART_DELAY", "soon"),
        ("DAEMON_ENFORCE_DOWNLOAD_CHECKSUM", "maybe"),
        ("DAEMON_MAX_STARTUP_FAILURES", "-3"),
        ("NYMVISOR_UPSTREAM_SOURCE", "ftp"),
        ("NYMVISOR_ID", "../x"),
    ] {
        let out = config_json(&home, &[(var, value)], &[]);
        assert_failure(&out, var);
    }
}

#[test]
fn dotenv_file_overrides_the_process_environment() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let env_file = home.path().join("nymvisor.env");
    std::fs::write(
        &env_file,
        "# comment\nDAEMON_MAX_STARTUP_FAILURES=7\nNYMVISOR_UPSTREAM_POLLING_RATE=\"15m\"\n",
    )
    .unwrap();
    let out = config_json(
        &home,
        &[("DAEMON_MAX_STARTUP_FAILURES", "2")],
        &["-c", env_file.to_str().unwrap()],
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["max_startup_failures"], 7);
    assert_eq!(v["nymvisor"]["upstream_polling_rate"], "15m");

    let out = home.run(&["-c", "/nonexistent.env", "config"]);
    assert_failure(&out, "/nonexistent.env");
}

#[test]
fn config_discovery_order() {
    let home = TestHome::new();
    let out = home.run(&["config"]);
    assert_failure(&out, "nymvisor init");

    home.init_default("1.1.0");
    // NYMVISOR_CONFIG_PATH wins
    let custom = home.path().join("custom.toml");
    std::fs::write(&custom, "[daemon]\nname = 'nym-api'\nhome = '/srv/api'\n").unwrap();
    let out = config_json(
        &home,
        &[("NYMVISOR_CONFIG_PATH", custom.to_str().unwrap())],
        &[],
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["name"], "nym-api");
    assert_eq!(v["nymvisor"]["id"], "nym-api-default");

    // NYMVISOR_ID of a missing instance lists the existing ones
    let out = config_json(&home, &[("NYMVISOR_ID", "ghost")], &[]);
    assert_failure(&out, "nym-node-default");
}

#[test]
fn unknown_or_corrupt_config_is_reported_with_the_file() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let path = home.config_path("nym-node-default");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replace("[daemon]", "[daemon]\nfrobnicate = 1"),
    )
    .unwrap();
    let out = home.run(&["config"]);
    assert_failure(&out, "frobnicate");
    assert!(stderr(&out).contains("config.toml"));

    std::fs::write(&path, "[daemon\nname=").unwrap();
    let out = home.run(&["config"]);
    assert_failure(&out, "config.toml");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[daemon\nname=",
        "left untouched"
    );
}
