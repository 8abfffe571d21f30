//! `nymvisor status` in each state: nothing running, running, with queued upgrades (waiting,
//! present, refused), after an upgrade, after a rollback.

use nymvisor_tests::*;

fn status_json(home: &TestHome) -> serde_json::Value {
    let out = home.run(&["status", "-o", "json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // a probe's exit status: 0 when nymvisor and the daemon run, 3 otherwise
    let both = s["nymvisor"]["running"] == true && !s["daemonProcess"].is_null();
    assert_eq!(out.status.code(), Some(if both { 0 } else { 3 }), "{s}");
    s
}

#[test]
fn status_exit_codes_make_it_a_probe() {
    let home = TestHome::new();
    // no instance: the state cannot be read
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no nymvisor instance"),
        "{}",
        stderr(&out)
    );
    home.init_default("1.1.0");
    // nothing runs: 3, and the status is still printed
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("nymvisor:      not running"),
        "{}",
        stdout(&out)
    );
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    assert!(wait_for(PATIENCE, || home.run(&["status"]).status.code() == Some(0)));
    let out = home.run(&["status", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    nv.stop();
    // nymvisor runs but the daemon does not (waiting to restart it): 3
    let mut nv = home.spawn_run(
        &[
            ("FAKE_DAEMON_EXIT_AFTER_MS", "20"),
            ("FAKE_DAEMON_EXIT_CODE", "2"),
            ("DAEMON_FAILURE_RESTART_DELAY", "1h"),
        ],
        &[],
    );
    nv.wait_stderr("restarting the daemon in 1h");
    let out = home.run(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("daemon:        not running"),
        "{}",
        stdout(&out)
    );
    nv.stop();
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
    let mut nv = home.spawn_run(&[("DAEMON_STARTUP_PERIOD_DURATION", "4s")], &[]);
    let start = nv.wait_start(1);
    // nymvisor records the daemon's pid before it logs the start (the daemon's own log can come
    // first)
    nv.wait_stderr(&format!("(pid {})", start.pid));
    let later = home.daemon_bin("later", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&later, "later", &["--upgrade-time", "2099-01-01T00:00:00Z"]);
    // the running nymvisor publishes its queue once its file watch saw the plan change
    let mut s = serde_json::Value::Null;
    assert!(
        wait_for(PATIENCE, || {
            s = status_json(&home);
            s["queued"][0]["name"] == "later"
        }),
        "{s}"
    );
    assert_eq!(s["nymvisor"]["running"], true);
    assert_eq!(s["nymvisor"]["pid"], nv.pid());
    assert_eq!(s["daemonProcess"]["pid"], start.pid);
    assert!(s["daemonProcess"]["uptimeSeconds"].as_i64().unwrap() >= 0);
    assert_eq!(s["queued"][0]["name"], "later");
    assert_eq!(
        s["queued"][0]["effectiveUpgradeTime"],
        "2099-01-01T00:00:00Z"
    );
    // the running nymvisor verifies the binary ahead of its time
    assert!(
        wait_for(PATIENCE, || status_json(&home)["queued"][0]["state"]
            == "ready"),
        "{}",
        status_json(&home)
    );

    let now = home.daemon_bin("now", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&now, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    nv.wait_stderr("upgrade applied");
    let s = status_json(&home);
    assert_eq!(s["current"]["version"], "1.2.0");
    assert_eq!(s["lastUpgrade"]["name"], "v1.2.0");
    assert_eq!(s["lastUpgrade"]["outcome"], "pending");
    assert!(
        stdout(&home.run(&["status"])).contains("(pending: not confirmed yet)"),
        "an unconfirmed upgrade is no success"
    );
    nv.wait_stderr("upgrade confirmed: nym-node 1.2.0 ran for its startup period");
    assert_eq!(status_json(&home)["lastUpgrade"]["outcome"], "confirmed");
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

#[test]
fn systemd_is_notified_of_readiness_upgrades_and_stopping() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let socket_path = home.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let recv = || {
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut nv = home.spawn_run(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap())], &[]);
    let start = nv.wait_start(1);
    let ready = recv();
    assert!(
        ready.starts_with("READY=1\nSTATUS=running nym-node 1.1.0"),
        "{ready}"
    );
    assert!(ready.contains(&format!("pid {}", start.pid)));
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.contains("running nym-node 1.2.0"))
    {
        seen.push(recv());
    }
    assert!(
        seen[0].contains("STATUS=upgrading to nym-node 1.2.0"),
        "{seen:?}"
    );
    nv.signal(nix::sys::signal::Signal::SIGTERM);
    let mut last = recv();
    while last != "STOPPING=1" {
        last = recv();
    }
    assert!(nv.wait_exit().success());
}

#[test]
fn json_logs_parse_line_by_line() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let log = home.run_one_upgrade(&[
        ("NYMVISOR_LOG_FORMAT", "json"),
        ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
    ]);
    let mut stages = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if let Some(stage) = v["stage"].as_str() {
            stages.push(stage.to_owned());
            assert!(v["upgrade"] == "v1.2.0", "{line}");
        }
    }
    for stage in ["prepare", "stop", "backup", "swap", "restart", "record"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "no {stage} line in {stages:?}"
        );
    }
}

#[test]
fn disable_logs_silences_nymvisor() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&[("NYMVISOR_DISABLE_LOGS", "true")], &[]);
    nv.wait_start(1);
    nv.stop();
    assert_eq!(nv.stderr(), "", "nothing may be logged");
}
