//! A fleet on etcd: upgrade slots, the circuit breaker, canaries, the fleet hold and etcd's
//! quorum, with several nymvisors (each its own home and fake daemon) on one feed and a real
//! etcd cluster started by the test on loopback ports.

use std::time::Duration;

use nymvisor_tests::etcd::Etcd;
use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One member: its home, its nymvisor, its name in the group.
struct Member {
    home: TestHome,
    name: String,
    nv: Option<RunHandle>,
}

impl Member {
    fn new(name: &str) -> Member {
        let home = TestHome::new();
        home.init_default("1.1.0");
        Member {
            home,
            name: name.to_owned(),
            nv: None,
        }
    }

    fn timelog(&self) -> std::path::PathBuf {
        self.home.path().join("timelog")
    }

    /// `run` on `server`'s feed in the group on `etcd`, with `extra` settings last.
    fn start(&mut self, server: &FeedServer, etcd: &Etcd, extra: &[(&str, &str)]) {
        let endpoints = etcd.endpoints();
        let timelog = self.timelog();
        let mut envs = vec![
            ("NYMVISOR_FLEET_ETCD_ENDPOINTS", endpoints.as_str()),
            ("NYMVISOR_FLEET_MEMBER", self.name.as_str()),
            ("FAKE_DAEMON_TIMELOG", timelog.to_str().unwrap()),
        ];
        envs.extend_from_slice(extra);
        self.nv = Some(self.home.spawn_run_on_feed(server, &envs));
    }

    fn nv(&self) -> &RunHandle {
        self.nv.as_ref().unwrap()
    }

    /// The `fleet` command on this member, with the group's settings; its stdout.
    fn fleet(&self, etcd: &Etcd, args: &[&str]) -> String {
        let out = self
            .home
            .nymvisor()
            .env("NYMVISOR_FLEET_ETCD_ENDPOINTS", etcd.endpoints())
            .env("NYMVISOR_FLEET_MEMBER", &self.name)
            .arg("fleet")
            .args(args)
            .output()
            .unwrap();
        assert_success(&out);
        stdout(&out)
    }

    fn fleet_json(&self, etcd: &Etcd) -> serde_json::Value {
        serde_json::from_str(&self.fleet(etcd, &["status", "-o", "json"])).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.home.run(&["status", "-o", "json"]).stdout).unwrap()
    }

    /// The versions the daemon was started at, in order.
    fn versions(&self) -> Vec<String> {
        self.nv().starts().into_iter().map(|s| s.version).collect()
    }

    /// From the stop of the old daemon for the upgrade (its own log) to the confirmation of
    /// the new one (nymvisor's log).
    fn upgrade_interval(&self) -> (OffsetDateTime, OffsetDateTime) {
        let first = self.nv().starts()[0].pid;
        let log = std::fs::read_to_string(self.timelog()).unwrap();
        let stop_ns: i128 = log
            .lines()
            .find(|l| l.contains(&format!("exit pid={first} ")))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{}: the old daemon's exit is not logged:\n{log}", self.name))
            .parse()
            .unwrap();
        let stop = OffsetDateTime::from_unix_timestamp_nanos(stop_ns).unwrap();
        let stderr = self.nv().stderr();
        let line = stderr
            .lines()
            .find(|l| l.contains("upgrade confirmed"))
            .unwrap_or_else(|| panic!("{}: no confirmation:\n{stderr}", self.name));
        let confirmed =
            OffsetDateTime::parse(line.split_whitespace().next().unwrap(), &Rfc3339).unwrap();
        (stop, confirmed)
    }
}

/// Members named `names`, each in a home of its own with 1.1.0 installed.
fn group(names: &[&str]) -> Vec<Member> {
    names.iter().map(|n| Member::new(n)).collect()
}

/// Whether every member released its slot (after a confirmation).
fn all_released(members: &[Member]) -> bool {
    members
        .iter()
        .all(|m| m.nv().stderr().contains("released the fleet slot"))
}

/// Whether every member's daemon was last started at `version`.
fn all_on(members: &[Member], version: &str) -> bool {
    members
        .iter()
        .all(|m| m.versions().last().map(String::as_str) == Some(version))
}

/// Stops every member's nymvisor (cleanly).
fn stop_all(members: &mut [Member]) {
    for m in members {
        m.nv.as_mut().unwrap().stop();
    }
}

/// A feed offering `version` (a fake daemon stamped with `extra`), due a minute ago.
fn feed(server: &FeedServer, dir: &std::path::Path, version: &str, extra: &[&str]) {
    let bin = stamp_fake_daemon(
        &dir.join(format!("release-{version}")),
        "nym-node",
        version,
        extra,
    );
    server.route(
        &format!("/bin/{version}/nym-node"),
        Reply::Body(std::fs::read(&bin).unwrap()),
    );
    let mut info = upgrade_info(
        &format!("v{version}"),
        version,
        &format!("{}/bin/{version}/nym-node", server.base()),
        &sha256_file(&bin),
        "sha256",
    );
    info["upgradeTime"] = (OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .format(&Rfc3339)
        .unwrap()
        .into();
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
}

/// The most members between their stop and their confirmation at any one moment.
fn most_at_once(intervals: &[(OffsetDateTime, OffsetDateTime)]) -> usize {
    intervals
        .iter()
        .map(|(at, _)| {
            intervals
                .iter()
                .filter(|(from, to)| from <= at && at < to)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Waits for `cond` up to 2 minutes (a member's backoff reaches a minute while etcd is away;
/// members upgrade one after the other), with every member's log if it never holds.
#[track_caller]
fn wait_long(what: &str, m: &[&Member], mut cond: impl FnMut() -> bool) {
    if !wait_for(Duration::from_secs(120), &mut cond) {
        let logs: Vec<String> = m
            .iter()
            .map(|m| format!("== {}\n{}", m.name, m.nv().stderr()))
            .collect();
        panic!("timed out waiting for {what}\n{}", logs.join("\n"));
    }
}

fn rolls_out(slots: &str) {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    feed(&server, dir.path(), "1.2.0", &[]);
    let mut members = group(&["a", "b", "c"]);
    for m in &mut members {
        m.start(&server, &etcd, &[("NYMVISOR_FLEET_SLOTS", slots)]);
    }
    let refs: Vec<&Member> = members.iter().collect();
    wait_long("every member confirmed 1.2.0", &refs, || {
        all_released(&members)
    });
    for m in &members {
        assert_eq!(m.versions(), ["1.1.0", "1.2.0"], "{}", m.nv().stderr());
    }
    let intervals: Vec<_> = members.iter().map(Member::upgrade_interval).collect();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{intervals:?}\n{}", members[1].nv().stderr());
    }
    let allowed: usize = slots.parse().unwrap();
    assert!(
        most_at_once(&intervals) <= allowed,
        "more than {allowed} member(s) between stop and confirmation: {intervals:?}"
    );
    let v = members[0].fleet_json(&etcd);
    assert_eq!(v["slots"], serde_json::json!([]), "{v}");
    assert_eq!(v["confirmations"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 3, "{v}");
    stop_all(&mut members);
}

#[test]
fn one_slot_upgrades_one_member_at_a_time() {
    rolls_out("1");
}

#[test]
fn two_slots_upgrade_at_most_two_at_a_time() {
    rolls_out("2");
}

/// Why the member's queued upgrades wait, as `status` shows it (the fleet's reasons among
/// them).
fn fleet_reason(m: &Member) -> String {
    let s = m.status();
    s["queued"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn a_failed_release_stops_the_group_until_released_and_retried() {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    feed(&server, dir.path(), "1.2.0", &["mode=crash"]);
    let mut members = group(&["a", "b", "c"]);
    let settings = [
        ("NYMVISOR_FLEET_SLOTS", "1"),
        ("DAEMON_MAX_STARTUP_FAILURES", "1"),
    ];
    for m in &mut members {
        m.start(&server, &etcd, &settings);
    }
    let refs: Vec<&Member> = members.iter().collect();
    // one member takes the slot, its 1.2.0 crashes, it rolls back
    wait_long("a rollback", &refs, || {
        members
            .iter()
            .any(|m| m.nv().stderr().contains("is marked failed for the group"))
    });
    let v = members[0].fleet_json(&etcd);
    let failed = v["slots"][0]["member"].as_str().unwrap().to_owned();
    assert_eq!(v["slots"][0]["state"], "failed", "{v}");
    assert_eq!(v["failed"][0]["version"], "1.2.0", "{v}");
    let (bad, others): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.name == failed);
    bad[0].nv().wait_events("the rolled-back 1.1.0", |_| {
        bad[0].versions() == ["1.1.0", "1.2.0", "1.1.0"]
    });
    // the others are told why they wait, and keep running 1.1.0
    for m in &others {
        wait_long("the failed version's reason in status", &refs, || {
            fleet_reason(m).contains(&format!("1.2.0 failed on fleet member {failed}"))
        });
    }
    // a good release: the circuit breaker holds the group (its failed slot fills it)
    feed(&server, dir.path(), "1.2.1", &[]);
    for m in &others {
        wait_long("the breaker's reason in status", &refs, || {
            fleet_reason(m).contains("the fleet stopped upgrading")
        });
    }
    let text = members[0].fleet(&etcd, &["status"]);
    assert!(text.contains("circuit breaker is open"), "{text}");
    assert!(text.contains(&format!("{failed}  failed 1.2.0")), "{text}");
    // the incident is over: the operator clears the slot and the version
    let said = members[1].fleet(&etcd, &["release", &failed]);
    assert!(
        said.contains(&format!("released the fleet slot of {failed}")),
        "{said}"
    );
    let said = members[2].fleet(&etcd, &["retry", "1.2.0"]);
    assert!(said.contains("no longer marked failed"), "{said}");
    wait_long("every member on 1.2.1", &refs, || all_on(&members, "1.2.1"));
    for m in &others {
        assert_eq!(m.versions(), ["1.1.0", "1.2.1"], "{} started 1.2.0", m.name);
    }
    stop_all(&mut members);
}

#[test]
fn members_wait_for_the_canary_to_confirm() {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut members = group(&["canary", "b", "c"]);
    // the canary's startup period is long enough to see the others wait for it
    members[0].start(
        &server,
        &etcd,
        &[
            ("NYMVISOR_FLEET_CANARY", "true"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "4s"),
        ],
    );
    wait_long("the canary in the group", &[&members[0]], || {
        members[0]
            .fleet(&etcd, &["status"])
            .contains("canary  runs 1.1.0, canary")
    });
    for m in &mut members[1..] {
        m.start(&server, &etcd, &[]);
    }
    feed(&server, dir.path(), "1.2.0", &[]);
    let refs: Vec<&Member> = members.iter().collect();
    for m in &members[1..] {
        wait_long("waiting for the canary", &refs, || {
            m.nv()
                .stderr()
                .contains("waits: waiting for a canary member to confirm 1.2.0")
        });
    }
    wait_long("every member on 1.2.0", &refs, || all_released(&members));
    let (_, canary_confirmed) = members[0].upgrade_interval();
    let mut intervals = vec![members[0].upgrade_interval()];
    for m in &members[1..] {
        let (stop, _) = m.upgrade_interval();
        assert!(
            stop > canary_confirmed,
            "{} stopped for 1.2.0 at {stop} before the canary confirmed it at {canary_confirmed}",
            m.name
        );
        intervals.push(m.upgrade_interval());
    }
    assert_eq!(most_at_once(&intervals), 1, "{intervals:?}");
    let v = members[1].fleet_json(&etcd);
    let canaries: Vec<_> = v["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["canary"] == true)
        .collect();
    assert_eq!(canaries.len(), 1, "{v}");
    // the canary's host is gone for good: the group forgets it
    let said = members[1].fleet(&etcd, &["forget", "canary"]);
    assert!(said.contains("canary is forgotten"), "{said}");
    let text = members[1].fleet(&etcd, &["status"]);
    assert!(!text.contains("canary  runs"), "{text}");
    stop_all(&mut members);
}

#[test]
fn the_fleet_hold_holds_every_member_but_now() {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut members = group(&["a", "b", "c"]);
    let said = members[0].fleet(&etcd, &["hold", "--reason", "incident 42"]);
    assert!(said.contains("on hold"), "{said}");
    for m in &mut members {
        m.start(
            &server,
            &etcd,
            &[("NYMVISOR_METRICS_ADDRESS", "127.0.0.1:0")],
        );
    }
    // `--now` goes through the fleet hold (and still takes a slot), with a warning
    let now = stamp_fake_daemon(&dir.path().join("now"), "nym-node", "1.2.0", &[]);
    members[2].home.add_upgrade(&now, "urgent", &["--now"]);
    members[2].nv().wait_events("the urgent upgrade", |_| {
        members[2].versions() == ["1.1.0", "1.2.0"]
    });
    members[2]
        .nv()
        .wait_stderr("the fleet hold is overridden for it");
    members[2].nv().wait_stderr("released the fleet slot");
    // the others hold
    feed(&server, dir.path(), "1.2.0", &[]);
    let refs: Vec<&Member> = members.iter().collect();
    for m in &members[..2] {
        wait_long("the fleet hold in status", &refs, || {
            fleet_reason(m).contains("the fleet is on hold (placed by a: incident 42")
        });
    }
    let text = stdout(&members[1].home.run(&["status"]));
    assert!(
        text.contains("fleet:         member b of group default"),
        "{text}"
    );
    assert!(text.contains("waiting:     the fleet is on hold"), "{text}");
    let port = crate::observability::metrics_port(members[1].nv());
    let (_, body) = crate::observability::http_get(port, "/metrics");
    assert!(body.contains("nymvisor_fleet_hold 1"), "{body}");
    assert!(body.contains("nymvisor_fleet_waiting 1"), "{body}");
    assert_eq!(members[0].versions(), ["1.1.0"]);
    assert_eq!(members[1].versions(), ["1.1.0"]);
    let said = members[1].fleet(&etcd, &["unhold"]);
    assert!(said.contains("lifted"), "{said}");
    wait_long("every member on 1.2.0", &refs, || all_on(&members, "1.2.0"));
    stop_all(&mut members);
}

#[test]
fn without_etcd_quorum_nothing_is_applied_and_the_nodes_run_on() {
    let Some(mut etcd) = Etcd::start(3) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut members = group(&["a", "b"]);
    for m in &mut members {
        m.start(&server, &etcd, &[]);
    }
    let refs: Vec<&Member> = members.iter().collect();
    // one etcd member of three down: the majority decides, upgrades go on
    etcd.stop_member(0);
    feed(&server, dir.path(), "1.2.0", &[]);
    wait_long("every member on 1.2.0", &refs, || all_released(&members));
    // all down: nothing is applied, the nodes run on, status says why
    etcd.stop_member(1);
    etcd.stop_member(2);
    feed(&server, dir.path(), "1.3.0", &[]);
    for m in &members {
        wait_long("etcd's absence in status", &refs, || {
            fleet_reason(m).contains("the fleet cannot be asked for a slot")
                || fleet_reason(m).contains("fleet records are written")
        });
        let s = m.status();
        let running = m.nv().starts().last().unwrap().clone();
        assert_eq!(running.version, "1.2.0");
        assert!(alive(running.pid));
        assert_eq!(s["daemonProcess"]["pid"], running.pid, "{s}");
        let text = stdout(&m.home.run(&["status"]));
        assert!(text.contains("etcd did not answer"), "{text}");
    }
    // back: the group proceeds
    for i in 0..3 {
        etcd.start_member(i);
    }
    etcd.wait_ready();
    // (the members' backoff may have reached its minute while etcd was away)
    wait_long("every member on 1.3.0", &refs, || all_on(&members, "1.3.0"));
    stop_all(&mut members);
}

#[test]
fn a_slot_held_by_a_killed_nymvisor_is_released_after_its_restart() {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Member::new("a");
    // a startup period long enough to be killed while confirming
    a.start(&server, &etcd, &[("DAEMON_STARTUP_PERIOD_DURATION", "60s")]);
    feed(&server, dir.path(), "1.2.0", &[]);
    a.nv()
        .wait_stderr("the fleet slot says 1.2.0 is confirming");
    let v = a.fleet_json(&etcd);
    assert_eq!(v["slots"][0]["member"], "a", "{v}");
    assert_eq!(v["slots"][0]["state"], "confirming", "{v}");
    a.nv().signal(nix::sys::signal::Signal::SIGKILL);
    a.nv.as_mut().unwrap().wait_exit();
    // the slot outlives the nymvisor that took it: the group stays blocked meanwhile, and an
    // operator cannot free it by mistake
    let v = a.fleet_json(&etcd);
    assert_eq!(v["slots"][0]["state"], "confirming", "{v}");
    let out = a
        .home
        .nymvisor()
        .env("NYMVISOR_FLEET_ETCD_ENDPOINTS", etcd.endpoints())
        .args(["fleet", "release", "a"])
        .output()
        .unwrap();
    assert_failure(&out, "is confirming now");
    a.start(&server, &etcd, &[]);
    a.nv().wait_stderr("upgrade confirmed");
    a.nv().wait_stderr("released the fleet slot");
    let v = a.fleet_json(&etcd);
    assert_eq!(v["slots"], serde_json::json!([]), "{v}");
    assert_eq!(v["confirmations"][0]["member"], "a", "{v}");
    a.nv.as_mut().unwrap().stop();
}

#[test]
fn the_fleet_is_reached_over_tls_as_an_etcd_user() {
    let tools = ["openssl", "etcdctl"].iter().all(|t| {
        std::process::Command::new(t)
            .arg("version")
            .output()
            .is_ok()
    });
    if !prerequisite(
        tools,
        "openssl and etcdctl (Debian packages openssl, etcd-client)",
    ) {
        return;
    }
    let Some(etcd) = Etcd::start_tls() else {
        return;
    };
    let tls = etcd.tls().unwrap().clone();
    // the operator's setup: root, a user for nymvisor with its group's prefix only, auth on
    for args in [
        &["user", "add", "root", "--new-user-password", "root-pw"][..],
        &["role", "add", "nymvisor-gateways"],
        &[
            "role",
            "grant-permission",
            "nymvisor-gateways",
            "--prefix=true",
            "readwrite",
            "/nymvisor/fleet/gateways/",
        ],
        &["user", "add", "nymvisor", "--new-user-password", "s3cret"],
        &["user", "grant-role", "nymvisor", "nymvisor-gateways"],
        &["auth", "enable"],
    ] {
        let out = etcd.etcdctl(args);
        assert!(out.status.success(), "etcdctl {args:?}: {}", stderr(&out));
    }
    let m = Member::new("gw-1");
    let fleet = |group: &str, password: &str, ca: bool, args: &[&str]| {
        let mut cmd = m.home.nymvisor();
        cmd.env("NYMVISOR_FLEET_ETCD_ENDPOINTS", etcd.endpoints())
            .env("NYMVISOR_FLEET_GROUP", group)
            .env("NYMVISOR_FLEET_MEMBER", &m.name)
            .env("NYMVISOR_FLEET_ETCD_CERT_FILE", &tls.client_cert)
            .env("NYMVISOR_FLEET_ETCD_KEY_FILE", &tls.client_key)
            .env("NYMVISOR_FLEET_ETCD_USER", "nymvisor")
            .env("NYMVISOR_FLEET_ETCD_PASSWORD", password);
        if ca {
            cmd.env("NYMVISOR_FLEET_ETCD_CA_FILE", &tls.ca);
        }
        cmd.arg("fleet").args(args).output().unwrap()
    };
    let out = fleet("gateways", "s3cret", true, &["hold", "--reason", "tls"]);
    assert_success(&out);
    let out = fleet("gateways", "s3cret", true, &["status"]);
    assert_success(&out);
    assert!(stdout(&out).contains("since"), "{}", stdout(&out));
    assert!(stdout(&out).contains("by gw-1: tls"), "{}", stdout(&out));
    // what goes wrong says what to check
    assert_failure(
        &fleet("gateways", "wrong", true, &["status"]),
        "etcd refused the login of user \"nymvisor\"",
    );
    assert_failure(
        &fleet("other-team", "s3cret", true, &["status"]),
        "permission",
    );
    // the system's CAs do not know the cluster's: refused, never trusted by accident
    assert_failure(
        &fleet("gateways", "s3cret", false, &["status"]),
        "certificate",
    );
    let out = m
        .home
        .nymvisor()
        .env("NYMVISOR_FLEET_ETCD_ENDPOINTS", etcd.endpoints())
        .env("NYMVISOR_FLEET_ETCD_USER", "nymvisor")
        .args(["fleet", "status"])
        .output()
        .unwrap();
    assert_failure(&out, "NYMVISOR_FLEET_ETCD_PASSWORD");
}

#[test]
fn a_release_etcd_cannot_take_is_kept_and_written_later() {
    let Some(mut etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Member::new("a");
    a.start(&server, &etcd, &[("DAEMON_STARTUP_PERIOD_DURATION", "3s")]);
    feed(&server, dir.path(), "1.2.0", &[]);
    a.nv()
        .wait_stderr("the fleet slot says 1.2.0 is confirming");
    // etcd goes away before the confirmation: the release waits on disk
    etcd.stop_member(0);
    a.nv().wait_stderr("upgrade confirmed");
    let pending = a.home.data_dir("nym-node").join("fleet-pending.json");
    wait_long("the release kept in fleet-pending.json", &[&a], || {
        std::fs::read_to_string(&pending).is_ok_and(|t| t.contains("\"release\""))
    });
    wait_long("the release's failure in status", &[&a], || {
        let text = stdout(&a.home.run(&["status"]));
        text.contains("to write:    the release of the slot (1.2.0 confirmed)")
            && text.contains("etcd did not answer")
    });
    // a restart of nymvisor keeps it
    a.nv.as_mut().unwrap().stop();
    assert!(pending.exists());
    a.start(&server, &etcd, &[]);
    a.nv().wait_start(1);
    etcd.start_member(0);
    etcd.wait_ready();
    a.nv()
        .wait_stderr("released the fleet slot; recorded 1.2.0 as confirmed");
    wait_long("fleet-pending.json gone", &[&a], || !pending.exists());
    let v = a.fleet_json(&etcd);
    assert_eq!(v["slots"], serde_json::json!([]), "{v}");
    assert_eq!(v["confirmations"][0]["version"], "1.2.0", "{v}");
    a.nv.as_mut().unwrap().stop();
}

#[test]
fn fleet_settings_are_checked_printed_and_have_init_flags() {
    let home = TestHome::new();
    let bin = home.daemon_bin("nym-node-1.1.0", "nym-node", "1.1.0", &[]);
    let out = home.run(&[
        "init",
        bin.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
        "--fleet-etcd-endpoints",
        "https://10.0.0.5:2379,https://10.0.0.6:2379",
        "--fleet-group",
        "gateways-eu",
        "--fleet-slots",
        "2",
        "--fleet-canary",
        "true",
    ]);
    assert_success(&out);
    let v: serde_json::Value =
        serde_json::from_slice(&home.run(&["config", "-o", "json"]).stdout).unwrap();
    let f = &v["fleet"];
    assert_eq!(
        f["etcd_endpoints"],
        serde_json::json!(["https://10.0.0.5:2379", "https://10.0.0.6:2379"])
    );
    assert_eq!(f["group"], "gateways-eu");
    assert_eq!(f["slots"], 2);
    assert_eq!(f["canary"], true);
    // the member's name as `run` resolves it: <hostname>/<instance id>
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(f["member"], format!("{}/nym-node-default", host.trim()));
    // …but the file keeps it unset, so a copied configuration names its own host
    let file = std::fs::read_to_string(home.config_path("nym-node-default")).unwrap();
    assert!(file.contains("member = \"\""), "{file}");
    for (var, value, needle) in [
        (
            "NYMVISOR_FLEET_ETCD_ENDPOINTS",
            "etcd-1:2379",
            "NYMVISOR_FLEET_ETCD_ENDPOINTS",
        ),
        ("NYMVISOR_FLEET_SLOTS", "0", "NYMVISOR_FLEET_SLOTS"),
        ("NYMVISOR_FLEET_GROUP", "eu/west", "NYMVISOR_FLEET_GROUP"),
        (
            "NYMVISOR_FLEET_ETCD_CERT_FILE",
            "/etc/x.crt",
            "NYMVISOR_FLEET_ETCD_KEY_FILE",
        ),
    ] {
        let out = home
            .nymvisor()
            .env(var, value)
            .arg("config")
            .output()
            .unwrap();
        assert_failure(&out, needle);
    }
    // the fleet commands need a fleet
    let out = home
        .nymvisor()
        .env("NYMVISOR_FLEET_ETCD_ENDPOINTS", "")
        .args(["fleet", "status"])
        .output()
        .unwrap();
    assert_failure(&out, "no fleet is configured");
}

/// The store's guarded transaction, against a real etcd: a slot is taken only on the view it
/// was decided on — not after another member took one, nor after a hold, a failure of the
/// version or (for a member that waits for canaries) without a canary's confirmation.
#[test]
fn a_slot_is_taken_only_on_the_view_it_was_decided_on() {
    use nymvisor_core::fleet::{FleetStore, TakeGuard};
    use nymvisor_core::model::fleet::{Confirmation, FailedVersion, FleetHold, Slot, SlotState};
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let config = nymvisor_core::config::FleetConfig {
        etcd_endpoints: vec![etcd.endpoints()],
        group: "guard".into(),
        ..Default::default()
    };
    let env = nymvisor_core::env::Env::from_pairs(std::iter::empty::<(String, String)>());
    let store = nymvisor_sources::etcd::from_config(&config, &env)
        .unwrap()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let slot = |member: &str, version: &str| Slot {
        member: member.into(),
        version: version.into(),
        upgrade: format!("v{version}"),
        since: now,
        state: SlotState::Upgrading,
        reason: None,
        canary: false,
        host: "h".into(),
        revision: 0,
    };
    let free = |revision| TakeGuard {
        revision,
        no_hold: true,
        canary_confirmed: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // a member's slot released as it is now (what a member and `fleet release` do)
    let release = |member: &'static str, c: Option<Confirmation>| {
        let store = &store;
        async move {
            let view = store.view().await.unwrap();
            let revision = view.slot_of(member).map_or(0, |s| s.revision);
            store.release(member, revision, c.as_ref()).await.unwrap()
        }
    };
    rt.block_on(async {
        // b decides on a view; a takes a slot meanwhile: b's take fails, a fresh view's works
        let seen_by_b = store.view().await.unwrap();
        assert!(
            store
                .take(&slot("a", "1.2.0"), &free(seen_by_b.revision))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take(&slot("b", "1.2.0"), &free(seen_by_b.revision))
                .await
                .unwrap()
        );
        assert!(release("a", None).await);
        // a hold placed after the view
        let view = store.view().await.unwrap();
        let hold = FleetHold {
            reason: None,
            by: "ops".into(),
            since: now,
        };
        store.set_hold(Some(&hold)).await.unwrap();
        assert!(
            !store
                .take(&slot("b", "1.2.0"), &free(view.revision))
                .await
                .unwrap()
        );
        // …which `--now` goes through
        let now_guard = TakeGuard {
            no_hold: false,
            ..free(view.revision)
        };
        assert!(store.take(&slot("b", "1.2.0"), &now_guard).await.unwrap());
        assert!(release("b", None).await);
        store.set_hold(None).await.unwrap();
        // the version failed on a member after the view
        let view = store.view().await.unwrap();
        let failed = FailedVersion {
            version: "1.2.0".into(),
            member: "c".into(),
            reason: "rolled back".into(),
            at: now,
        };
        let mut c = slot("c", "1.2.0");
        c.state = SlotState::Failed;
        store.fail(&c, &failed).await.unwrap();
        let view2 = store.view().await.unwrap();
        assert!(
            !store
                .take(&slot("b", "1.2.0"), &free(view2.revision))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take(&slot("b", "1.2.0"), &free(view.revision))
                .await
                .unwrap()
        );
        assert!(store.clear_failed("1.2.0").await.unwrap());
        assert!(release("c", None).await);
        // a member that waits for canaries: only once a canary confirmed the version
        let view = store.view().await.unwrap();
        let wants_canary = TakeGuard {
            canary_confirmed: true,
            ..free(view.revision)
        };
        assert!(
            !store
                .take(&slot("b", "1.3.0"), &wants_canary)
                .await
                .unwrap()
        );
        let member_confirmed = Confirmation {
            version: "1.3.0".into(),
            member: "d".into(),
            canary: false,
            at: now,
        };
        store.record_confirmation(&member_confirmed).await.unwrap();
        let view = store.view().await.unwrap();
        let wants_canary = TakeGuard {
            canary_confirmed: true,
            ..free(view.revision)
        };
        assert!(
            !store
                .take(&slot("b", "1.3.0"), &wants_canary)
                .await
                .unwrap(),
            "a member's confirmation is no canary's"
        );
        let canary_confirmed = Confirmation {
            canary: true,
            member: "e".into(),
            ..member_confirmed
        };
        store.record_confirmation(&canary_confirmed).await.unwrap();
        let view = store.view().await.unwrap();
        let wants_canary = TakeGuard {
            canary_confirmed: true,
            ..free(view.revision)
        };
        assert!(
            store
                .take(&slot("b", "1.3.0"), &wants_canary)
                .await
                .unwrap()
        );
        // a slot moves on only while its member holds it
        let mut b = store.view().await.unwrap().slot_of("b").unwrap().clone();
        b.state = SlotState::Confirming;
        assert!(store.update_slot(&b).await.unwrap());
        assert!(release("b", None).await);
        assert!(
            !store.update_slot(&b).await.unwrap(),
            "a released slot came back"
        );
        let view = store.view().await.unwrap();
        assert!(view.slots.is_empty(), "{view:?}");
        assert_eq!(view.confirmations.len(), 2, "{view:?}");
    });
}

#[test]
fn a_rollback_cut_short_by_a_kill_still_fails_the_version_for_the_group() {
    let Some(etcd) = Etcd::start(1) else {
        return;
    };
    let server = FeedServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Member::new("a");
    a.start(
        &server,
        &etcd,
        &[
            ("DAEMON_MAX_STARTUP_FAILURES", "1"),
            ("NYMVISOR_FAILPOINT", "rollback-after-swap"),
        ],
    );
    feed(&server, dir.path(), "1.2.0", &["mode=crash"]);
    let status = a.nv.as_mut().unwrap().wait_exit();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "not killed in the rollback:\n{}",
        a.nv().stderr()
    );
    // started again: the recovery finishes the rollback, and the slot is failed, not given back
    a.start(&server, &etcd, &[("DAEMON_MAX_STARTUP_FAILURES", "1")]);
    a.nv().wait_stderr("kept its fleet slot as failed");
    let v = a.fleet_json(&etcd);
    assert_eq!(v["slots"][0]["member"], "a", "{v}");
    assert_eq!(v["slots"][0]["state"], "failed", "{v}");
    assert_eq!(v["failed"][0]["version"], "1.2.0", "{v}");
    a.nv.as_mut().unwrap().stop();
}
