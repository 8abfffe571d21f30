//! `nymvisor status` in each state: nothing running, running, with queued upgrades (waiting,
//! present, refused), after an upgrade, after a rollback.

use nymvisor_tests::*;

fn status_json(home: &TestHome) -> serde_json::Value {
    let out = home.run(&["status", "-o", "json"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn status_when_nothing_runs() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let s = status_json(&home);
    assert_eq!(s["nymvisor"]["running"], false);
    assert!(s["daemonProcess"].is_null());
    assert_eq!(s["current"]["version"], "1.1.0");
    assert_eq!(s["current"]["name"], "genesis");
    assert_eq!(s["queued"], serde_json::json!([]));
    assert!(s["lastUpgrade"].is_null());
    let text = stdout(&home.run(&["status"]));
    assert!(
        text.contains("nymvisor:      not running") && text.contains("queued:        nothing"),
        "{text}"
    );
}

#[test]
fn status_while_running_with_queue_and_after_an_upgrade() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&[("DAEMON_STARTUP_PERIOD_DURATION", "1s")], &[]);
    let start = nv.wait_start(1);
    let later = home.daemon_bin("later", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&later, "later", &["--upgrade-time", "2099-01-01T00:00:00Z"]);
    let s = status_json(&home);
    assert_eq!(s["nymvisor"]["running"], true);
    assert_eq!(s["nymvisor"]["pid"], nv.pid());
    assert_eq!(s["daemonProcess"]["pid"], start.pid);
    assert!(s["daemonProcess"]["uptimeSeconds"].as_i64().unwrap() >= 0);
    assert_eq!(s["queued"][0]["name"], "later");
    assert_eq!(s["queued"][0]["state"], "binary-present");

    let now = home.daemon_bin("now", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&now, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    nv.wait_stderr("upgrade applied");
    let s = status_json(&home);
    assert_eq!(s["current"]["version"], "1.2.0");
    assert_eq!(s["lastUpgrade"]["name"], "v1.2.0");
    assert_eq!(s["lastUpgrade"]["outcome"], "success");
    nv.stop();
    let s = status_json(&home);
    assert_eq!(s["nymvisor"]["running"], false);
    assert!(s["daemonProcess"].is_null());
}

#[test]
fn status_shows_refusals_and_rollbacks() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_MAX_STARTUP_FAILURES", "1"),
            ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
        ],
        &[],
    );
    nv.wait_start(1);
    let bad = home.daemon_bin("bad", "nym-node", "1.2.0", &["mode=crash"]);
    home.add_upgrade(&bad, "bad", &["--now"]);
    nv.wait_stderr("rolled back to genesis");
    let s = status_json(&home);
    assert_eq!(s["lastUpgrade"]["name"], "bad");
    assert_eq!(s["lastUpgrade"]["outcome"], "rolled-back");
    assert!(
        s["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{s}"
    );
    let text = stdout(&home.run(&["status"]));
    assert!(text.contains("(rolled back)"), "{text}");
    nv.stop();
}
