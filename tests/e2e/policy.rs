//! The upgrade policy as an operator meets it: refusals that survive a restart (no second
//! download), `nymvisor retry`, waiting that is said and shown, refused offers in `status`, and
//! the tuning keys validated by `config`.

use nymvisor_tests::feed::{FeedServer, Reply, upgrade_info};
use nymvisor_tests::*;

fn status_json(home: &TestHome) -> serde_json::Value {
    let out = home.run(&["status", "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn binary_downloads(server: &FeedServer) -> usize {
    server
        .hits()
        .iter()
        .filter(|h| h.starts_with("/bin/"))
        .count()
}

fn feed_polls(server: &FeedServer) -> usize {
    server
        .hits()
        .iter()
        .filter(|h| h.ends_with("upgrade-info.json"))
        .count()
}

#[test]
fn a_refusal_survives_a_restart_without_a_second_download() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let release = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    server.route(
        "/bin/nym-node",
        Reply::Body(std::fs::read(&release).unwrap()),
    );
    // the feed's checksum does not match what it serves
    let info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node", server.base()),
        &"ab".repeat(32),
        "sha256",
    );
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    nv.wait_stderr("checksum verification failed");
    assert_eq!(binary_downloads(&server), 1);
    nv.stop();
    let refusals = read_json(&home.data_dir("nym-node").join("upgrade-refusals.json"));
    assert_eq!(refusals["refusals"][0]["name"], "v1.2.0");
    assert_eq!(refusals["refusals"][0]["nextAttempt"], "never");

    // a new nymvisor remembers: polls go on, the binary is not fetched again
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    let polls = feed_polls(&server);
    assert!(wait_for(PATIENCE, || feed_polls(&server) >= polls + 3));
    assert_eq!(
        binary_downloads(&server),
        1,
        "downloaded again after a restart"
    );
    let s = status_json(&home);
    assert_eq!(s["queued"][0]["state"], "refused", "{s}");
    assert!(
        s["queued"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("checksum verification failed"),
        "{s}"
    );
    let text = stdout(&home.run(&["status"]));
    assert!(
        text.contains("v1.2.0 1.2.0") && text.contains("refused: checksum"),
        "{text}"
    );

    // the operator says try again: it is fetched (and refused) once more
    let out = home.run(&["retry", "v1.2.0"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("considered again"),
        "{}",
        stdout(&out)
    );
    assert!(wait_for(PATIENCE, || binary_downloads(&server) == 2));
    assert_failure(
        &home.run(&["retry", "nothing-like-it"]),
        "no refused, cancelled or rolled-back upgrade",
    );
    assert!(nv.running());
    nv.stop();
}

#[test]
fn an_upgrade_waiting_for_confirmation_says_so() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_STARTUP_PERIOD_DURATION", "1h"),
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "5s"),
        ],
        &[],
    );
    nv.wait_start(1);
    let v12 = home.daemon_bin("v12", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&v12, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    let v13 = home.daemon_bin("v13", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&v13, "v1.3.0", &["--now"]);
    nv.wait_stderr("waits for the previous upgrade's confirmation until");
    let s = status_json(&home);
    let q = &s["queued"][0];
    assert_eq!(q["name"], "v1.3.0");
    assert_eq!(q["waitingFor"], "confirmation", "{s}");
    assert!(q["until"].is_string(), "{s}");
    assert_eq!(s["awaitingConfirmation"], "v1.2.0");
    let text = stdout(&home.run(&["status"]));
    assert!(text.contains("waiting for confirmation until"), "{text}");
    assert_eq!(nv.starts().len(), 2, "nothing applied while unconfirmed");
    nv.stop();
}

#[test]
fn a_refused_offer_is_shown_by_status() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let info = upgrade_info("v1.0.0", "1.0.0", "/bin/x", &"ab".repeat(32), "sha256");
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    assert!(wait_for(PATIENCE, || {
        status_json(&home)["refusedOffers"][0]["name"] == "v1.0.0"
    }));
    let s = status_json(&home);
    assert!(
        s["refusedOffers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not newer than the running 1.1.0"),
        "{s}"
    );
    // logged once, however often the feed repeats it
    let polls = feed_polls(&server);
    assert!(wait_for(PATIENCE, || feed_polls(&server) >= polls + 2));
    assert_eq!(
        nv.stderr().matches("not newer than the running").count(),
        1,
        "{}",
        nv.stderr()
    );
    assert_eq!(s["queued"], serde_json::json!([]));
    nv.stop();
}

#[test]
fn config_validates_and_prints_the_tuning_keys() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    for (var, value) in [
        ("NYMVISOR_HTTP_CONNECT_TIMEOUT", "abc"),
        ("NYMVISOR_MAX_BINARY_SIZE", "lots"),
        ("DAEMON_BACKUP_MIN_FREE", "12 parsecs"),
        ("DAEMON_BACKUP_COMPRESSION", "rar"),
        ("NYMVISOR_VERIFIER_TIMEOUT", "0s"),
    ] {
        let out = home
            .nymvisor()
            .env(var, value)
            .arg("config")
            .output()
            .unwrap();
        assert_failure(&out, var);
        // and `run` refuses the same way, before anything starts
        let out = home.nymvisor().env(var, value).arg("run").output().unwrap();
        assert_failure(&out, var);
    }
    let out = home
        .nymvisor()
        .env("NYMVISOR_MAX_BINARY_SIZE", "1GiB")
        .env("NYMVISOR_HTTP_IDLE_TIMEOUT", "90s")
        .args(["config", "-o", "json"])
        .output()
        .unwrap();
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tuning"]["max_binary_size"], 1u64 << 30);
    assert_eq!(v["tuning"]["http_idle_timeout"], "1m 30s");
    assert_eq!(v["tuning"]["backup_min_free"], 64u64 << 20);
    let text = stdout(&home.run(&["config"]));
    assert!(text.contains("[tuning]"), "{text}");
}
