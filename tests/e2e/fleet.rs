//! Fleet-safe rollouts: the spread, maintenance windows, the hold, the health probe (gated
//! confirmation and liveness) and the upgrade hooks, through the real binary.

use std::time::Duration;

use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;

fn data(home: &TestHome) -> std::path::PathBuf {
    home.data_dir("nym-node")
}

fn status_json(home: &TestHome) -> serde_json::Value {
    serde_json::from_slice(&home.run(&["status", "-o", "json"]).stdout).unwrap()
}

fn parse_time(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// A feed offering `v1.2.0`, due `ago`.
fn feed_with_release(home: &TestHome, ago: time::Duration) -> FeedServer {
    let server = FeedServer::start();
    let release = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    server.route(
        "/bin/nym-node",
        Reply::Body(std::fs::read(&release).unwrap()),
    );
    let mut info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node", server.base()),
        &sha256_file(&release),
        "sha256",
    );
    let due = time::OffsetDateTime::now_utc() - ago;
    info["upgradeTime"] = due
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    server
}

/// Waits until `status` shows the queued upgrade waiting for `what`; returns that entry.
#[track_caller]
fn wait_waiting_for(home: &TestHome, what: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let ok = wait_for(PATIENCE, || {
        last = status_json(home);
        last["queued"][0]["waitingFor"] == what
    });
    assert!(ok, "not waiting for {what}: {last}");
    last["queued"][0].clone()
}

#[test]
fn instances_with_the_same_spread_take_their_own_turns() {
    // due a few seconds ago, spread over a day: an offset under a minute (1 in 1,440) would let
    // it through before the test looks
    let spread = Duration::from_secs(24 * 3600);
    let mut times = Vec::new();
    for _ in 0..2 {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = feed_with_release(&home, time::Duration::seconds(5));
        let mut nv = home.spawn_run_on_feed(&server, &[("DAEMON_UPGRADE_SPREAD", "24h")]);
        let entry = wait_waiting_for(&home, "spread");
        let due = parse_time(&entry["upgradeTime"]);
        let effective = parse_time(&entry["effectiveUpgradeTime"]);
        assert!(effective >= due && effective < due + spread, "{entry}");
        assert_eq!(entry["until"], entry["effectiveUpgradeTime"]);
        nv.wait_stderr("waits for this node's turn in the fleet's spread until");
        assert_eq!(nv.starts().len(), 1, "not applied before its turn");
        // the seed is the instance's own, and stays
        let seed = std::fs::read_to_string(
            home.nymvisors()
                .join("instances/nym-node-default/data/fleet-seed"),
        )
        .unwrap();
        nv.stop();
        let mut again = home.spawn_run_on_feed(&server, &[("DAEMON_UPGRADE_SPREAD", "24h")]);
        // the status files are the first run's until this one has decided: wait for its own
        // word (stopping it before it has set up its signal handling would kill it outright)
        again.wait_stderr("waits for this node's turn in the fleet's spread until");
        let entry2 = wait_waiting_for(&home, "spread");
        assert_eq!(
            entry2["effectiveUpgradeTime"],
            entry["effectiveUpgradeTime"]
        );
        assert_eq!(
            std::fs::read_to_string(
                home.nymvisors()
                    .join("instances/nym-node-default/data/fleet-seed")
            )
            .unwrap(),
            seed
        );
        again.stop();
        times.push(effective - due);
    }
    assert_ne!(times[0], times[1], "two instances in lockstep");
}

#[test]
fn now_ignores_spread_windows_and_the_hold() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    assert_success(&home.run(&["hold", "--reason", "conference"]));
    // a window that does not include now: one hour, two days ahead
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).weekday();
    let window = format!("{later} 00:00-01:00");
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_UPGRADE_SPREAD", "24h"),
            ("DAEMON_UPGRADE_WINDOWS", window.as_str()),
            ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
        ],
        &[],
    );
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.wait_stderr("the hold is overridden");
    nv.stop();
}

#[test]
fn a_window_that_excludes_now_delays_one_that_includes_it_does_not() {
    // a weekday two days ahead excludes now even if the test runs across midnight
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).weekday();
    for (window, applied) in [
        (format!("{later} 00:00-01:00"), false),
        ("daily 00:00-24:00".to_owned(), true),
    ] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = feed_with_release(&home, time::Duration::hours(1));
        let mut nv =
            home.spawn_run_on_feed(&server, &[("DAEMON_UPGRADE_WINDOWS", window.as_str())]);
        if applied {
            assert_eq!(nv.wait_start(2).version, "1.2.0", "{window}");
        } else {
            let entry = wait_waiting_for(&home, "window");
            let at = parse_time(&entry["effectiveUpgradeTime"]);
            assert_eq!(at.weekday(), later, "{entry}");
            assert_eq!((at.hour(), at.minute()), (0, 0), "{entry}");
            nv.wait_stderr("waits for the next maintenance window until");
            assert_eq!(nv.starts().len(), 1);
        }
        nv.stop();
    }
}

#[test]
fn hold_and_unhold_with_and_without_run() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // without a running nymvisor
    let out = home.run(&["hold", "--reason", "exams week"]);
    assert_success(&out);
    assert!(stdout(&out).contains("on hold"), "{}", stdout(&out));
    let s = status_json(&home);
    assert_eq!(s["hold"]["reason"], "exams week");
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "0s"]);
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    wait_waiting_for(&home, "hold");
    nv.wait_stderr("waits for the hold to be lifted");
    let text = stdout(&home.run(&["status"]));
    assert!(
        text.contains("hold:") && text.contains("exams week"),
        "{text}"
    );
    // lifted while it runs: applied at once
    assert_success(&home.run(&["unhold"]));
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.wait_stderr("the hold is lifted");
    // put on hold while it runs: the next one waits
    assert_success(&home.run(&["hold"]));
    nv.wait_stderr("upgrades are on hold");
    let newer = home.daemon_bin("newer", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&newer, "v1.3.0", &["--upgrade-delay", "0s"]);
    wait_waiting_for(&home, "hold");
    assert_eq!(nv.starts().len(), 2);
    nv.stop();
    assert!(status_json(&home)["hold"]["since"].is_string());
    assert_success(&home.run(&["unhold"]));
    assert!(status_json(&home)["hold"].is_null());
}

/// A health endpoint whose answer the test sets.
fn health_server(status: u16) -> FeedServer {
    let server = FeedServer::start();
    set_health(&server, status);
    server
}

fn set_health(server: &FeedServer, status: u16) {
    let body = if status == 200 {
        br#"{"status":"up"}"#.to_vec()
    } else {
        br#"{"status":"down"}"#.to_vec()
    };
    server.route(
        "/api/v1/health",
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        },
    );
}

#[test]
fn an_unhealthy_new_version_is_rolled_back_at_the_end_of_its_startup_period() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let health = health_server(503);
    let url = format!("{}/api/v1/health", health.base());
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_HEALTH_URL", url.as_str()),
            ("DAEMON_HEALTH_INTERVAL", "500ms"),
            ("DAEMON_HEALTH_FAILURE_THRESHOLD", "1000"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "3s"),
            ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
        ],
        &[],
    );
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_events("the rollback", |_| nv.starts().len() >= 3);
    let versions: Vec<_> = nv.starts().iter().map(|s| s.version.clone()).collect();
    assert_eq!(versions, ["1.1.0", "1.2.0", "1.1.0"]);
    nv.wait_stderr("rolled back to genesis");
    let history = read_json(&data(&home).join("upgrade-history.json"));
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["outcome"], "rolled-back");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("no healthy answer"),
        "{last}"
    );
    let s = status_json(&home);
    assert_eq!(s["health"]["healthy"], false, "{s}");
    assert!(
        s["health"]["lastAnswer"].as_str().unwrap().contains("503"),
        "{s}"
    );
    nv.stop();
}

/// With a build-information URL, `up` is not enough: the new version is confirmed only once the
/// endpoint reports the new build; while it reports the old one (an old process still serving)
/// it is rolled back at the end of its startup period.
#[test]
fn the_build_information_url_proves_the_new_build_serves() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let health = health_server(200);
    let build = |v: &str| {
        health.route(
            "/api/v1/build-information",
            Reply::Body(
                format!(r#"{{"binary_name":"nym-node","build_version":"{v}"}}"#).into_bytes(),
            ),
        )
    };
    build("1.1.0");
    let url = format!("{}/api/v1/health", health.base());
    let build_url = format!("{}/api/v1/build-information", health.base());
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_HEALTH_URL", url.as_str()),
            ("DAEMON_HEALTH_BUILD_INFO_URL", build_url.as_str()),
            ("DAEMON_HEALTH_INTERVAL", "200ms"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "3s"),
        ],
        &[],
    );
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    // the old build answers: no confirmation, a rollback
    nv.wait_stderr("rolled back to genesis");
    assert!(
        nv.stderr().contains("reports version 1.1.0, not 1.2.0"),
        "{}",
        nv.stderr()
    );
    assert_eq!(nv.wait_start(3).version, "1.1.0");
    // a release that serves its own build is confirmed by its first such answer
    let newer = home.daemon_bin("newer", "nym-node", "1.3.0", &[]);
    build("1.3.0");
    home.add_upgrade(&newer, "v1.3.0", &["--now"]);
    nv.wait_start(4);
    nv.wait_stderr("upgrade confirmed: nym-node 1.3.0 answered healthy");
    nv.stop();
}

#[test]
fn a_healthy_new_version_is_confirmed_early() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let health = health_server(200);
    let url = format!("{}/api/v1/health", health.base());
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_HEALTH_URL", url.as_str()),
            ("DAEMON_HEALTH_INTERVAL", "500ms"),
            // far longer than the test waits: only a healthy answer can confirm in time
            ("DAEMON_STARTUP_PERIOD_DURATION", "10m"),
        ],
        &[],
    );
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    nv.wait_stderr("answered healthy");
    nv.wait_stderr("upgrade confirmed");
    assert!(!data(&home).join("upgrade-journal.json").exists());
    assert!(status_json(&home)["awaitingConfirmation"].is_null());
    nv.stop();
}

#[test]
fn a_daemon_that_stops_answering_healthy_is_restarted() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let health = health_server(200);
    let url = format!("{}/api/v1/health", health.base());
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_HEALTH_URL", url.as_str()),
            ("DAEMON_HEALTH_INTERVAL", "300ms"),
            ("DAEMON_HEALTH_FAILURE_THRESHOLD", "3"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
            ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
        ],
        &[],
    );
    let first = nv.wait_start(1);
    // healthy past its startup period, then it hangs
    assert!(wait_for(PATIENCE, || {
        let s = status_json(&home);
        s["health"]["healthy"] == true && s["daemonProcess"]["uptimeSeconds"].as_i64() >= Some(2)
    }));
    set_health(&health, 503);
    let second = nv.wait_start(2);
    assert_eq!(second.version, "1.1.0");
    assert!(!alive(first.pid));
    nv.wait_stderr("failed 3 health probes in a row");
    assert!(nv.running());
    nv.stop();
}

#[test]
fn a_failing_pre_upgrade_hook_keeps_the_old_daemon_and_is_retried() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let flag = home.path().join("drained");
    let hook = format!(
        "test -e {} || {{ echo 'gateway still draining' >&2; exit 1; }}",
        flag.display()
    );
    let record = home.path().join("post.log");
    let post = format!(
        "echo \"$NYMVISOR_UPGRADE_OUTCOME $NYMVISOR_UPGRADE_NAME $NYMVISOR_UPGRADE_VERSION $NYMVISOR_CURRENT_VERSION $DAEMON_NAME\" >> {}",
        record.display()
    );
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_PRE_UPGRADE_COMMAND", hook.as_str()),
            ("DAEMON_POST_UPGRADE_COMMAND", post.as_str()),
            ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
        ],
        &[],
    );
    let start = nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("the pre-upgrade hook said not now: gateway still draining");
    let entry = wait_waiting_for(&home, "hook");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("gateway still draining"),
        "{entry}"
    );
    assert!(alive(start.pid) && nv.starts().len() == 1);
    // drained: the retry (after the 10 s backoff) goes through
    std::fs::write(&flag, b"").unwrap();
    assert!(
        wait_for(Duration::from_secs(40), || nv.starts().len() >= 2),
        "not retried: {}",
        nv.stderr()
    );
    assert_eq!(nv.starts()[1].version, "1.2.0");
    // the post hook sees the outcome once the new version is confirmed
    assert!(wait_for(PATIENCE, || std::fs::read_to_string(&record)
        .is_ok_and(|t| t.contains("confirmed"))));
    assert_eq!(
        std::fs::read_to_string(&record).unwrap().trim(),
        "confirmed v1.2.0 1.2.0 1.1.0 nym-node"
    );
    nv.stop();
}

#[test]
fn the_post_upgrade_hook_hears_of_a_rollback() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let record = home.path().join("post.log");
    let post = format!(
        "echo \"$NYMVISOR_UPGRADE_OUTCOME $NYMVISOR_UPGRADE_NAME\" >> {}",
        record.display()
    );
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_POST_UPGRADE_COMMAND", post.as_str()),
            ("DAEMON_MAX_STARTUP_FAILURES", "1"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "30s"),
            ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
        ],
        &[],
    );
    nv.wait_start(1);
    let bad = home.daemon_bin("bad", "nym-node", "1.2.0", &["mode=crash"]);
    home.add_upgrade(&bad, "bad", &["--now"]);
    assert!(wait_for(PATIENCE, || std::fs::read_to_string(&record)
        .is_ok_and(|t| t.contains("rolled-back bad"))));
    nv.stop();
}

#[test]
fn fleet_keys_are_in_the_config_and_have_init_flags() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node-1.1.0", "nym-node", "1.1.0", &[]);
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--upgrade-spread",
        "6h",
        "--upgrade-windows",
        "Mon-Fri 02:00-05:00, Sun 00:00-06:00",
        "--health-url",
        "http://127.0.0.1:8080/api/v1/health",
        "--health-failure-threshold",
        "5",
    ]);
    assert_success(&out);
    let out = home.run(&["config", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["upgrade_spread"], "6h");
    assert_eq!(
        v["daemon"]["upgrade_windows"],
        "Mon-Fri 02:00-05:00, Sun 00:00-06:00"
    );
    assert_eq!(
        v["daemon"]["health_url"],
        "http://127.0.0.1:8080/api/v1/health"
    );
    assert_eq!(v["daemon"]["health_interval"], "30s");
    assert_eq!(v["daemon"]["health_failure_threshold"], 5);
    assert_eq!(v["daemon"]["hook_timeout"], "5m");
    let out = home
        .nymvisor()
        .env("DAEMON_UPGRADE_WINDOWS", "Funday 01:00-02:00")
        .arg("config")
        .output()
        .unwrap();
    assert_failure(&out, "DAEMON_UPGRADE_WINDOWS");
    let out = home
        .nymvisor()
        .env("DAEMON_HEALTH_URL", "ftp://x")
        .arg("config")
        .output()
        .unwrap();
    assert_failure(&out, "DAEMON_HEALTH_URL");
}
