//! Version flags, nymvisor's own build information, the fake daemon's protocol and the probe.

use nymvisor_tests::*;

#[test]
fn short_and_long_version() {
    let home = TestHome::new();
    let out = home.run(&["-V"]);
    assert_success(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("nymvisor {}", env!("CARGO_PKG_VERSION"))
    );

    let out = home.run(&["--version"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("Binary Name:") && text.contains("nymvisor"),
        "{text}"
    );
    assert!(text.contains("Build Version:"), "{text}");
}

#[test]
fn build_info_json_has_the_daemon_shape() {
    let home = TestHome::new();
    let out = home.run(&["build-info", "-o", "json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "binary_name",
        "build_timestamp",
        "build_version",
        "commit_sha",
        "commit_timestamp",
        "commit_branch",
        "rustc_version",
        "rustc_channel",
        "cargo_profile",
        "cargo_triple",
    ] {
        assert!(v[key].is_string(), "missing {key}: {v}");
    }
    assert_eq!(v["binary_name"], "nymvisor");
    let text = stdout(&home.run(&["build-info"]));
    assert!(text.contains("Build Version:"), "{text}");
}

#[test]
fn daemon_build_info_reads_the_current_binary() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let out = home.run(&["daemon-build-info", "--output", "json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["binary_name"], "nym-node");
    assert_eq!(v["build_version"], "1.1.0");
    let text = stdout(&home.run(&["daemon-build-info"]));
    assert!(
        text.contains("Build Version:") && text.contains("1.1.0"),
        "{text}"
    );
}

#[test]
fn probe_falls_back_when_no_banner_is_rejected() {
    let home = TestHome::new();
    let old = home.daemon_bin("old", "nym-node", "1.0.5", &["nobanner=reject"]);
    let out = home.run(&[
        "init",
        old.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]);
    assert_success(&out);
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(plan["current"]["version"], "1.0.5");
}

#[test]
fn hanging_probe_is_killed_and_reported() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let hang = home.daemon_bin("hang", "nym-node", "1.2.0", &["buildinfo=hang"]);
    let before = home.snapshot();
    let started = std::time::Instant::now();
    let out = home.run(&[
        "add-upgrade",
        hang.to_str().unwrap(),
        "--upgrade-name",
        "v1.2.0",
        "--now",
    ]);
    assert_failure(&out, "did not answer in time");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(home.snapshot(), before, "nothing may change on disk");
    // the probe's process group was killed: no process runs the hanging binary any more
    let still_running = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == hang));
    assert!(!still_running, "the hanging probe survived");
}

#[test]
fn no_command_prints_help_and_fails() {
    let home = TestHome::new();
    let out = home.run(&[]);
    assert!(!out.status.success());
}
