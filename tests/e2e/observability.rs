//! Observability and deployment: the metrics endpoint (checked with `promtool`), the hardened
//! systemd template (checked with `systemd-analyze`), readiness before start-time work, journald
//! priorities, `run --help` without an instance, 0.1.41's current-version file kept in step.

use std::io::{Read, Write};

use nix::sys::signal::Signal;
use nymvisor_tests::*;

/// `GET path` on 127.0.0.1:`port`: (status line, body).
pub(crate) fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub(crate) fn metrics_port(nv: &RunHandle) -> u16 {
    nv.wait_stderr("serving metrics at http://");
    let log = nv.stderr();
    let needle = "serving metrics at http://127.0.0.1:";
    let at = log.find(needle).unwrap() + needle.len();
    log[at..].split('/').next().unwrap().parse().unwrap()
}

/// `promtool check metrics` on a scrape, when promtool is installed (CI installs it).
fn promtool_accepts(body: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        prerequisite(false, "promtool is not installed");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape:\n{}{}\n{body}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn metrics_follow_upgrades_and_crashes_and_pass_promtool() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &[
            ("NYMVISOR_METRICS_ADDRESS", "127.0.0.1:0"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "1s"),
            ("DAEMON_FAILURE_RESTART_DELAY", "100ms"),
        ],
        &[],
    );
    let first = nv.wait_start(1);
    let port = metrics_port(&nv);
    // the daemon's own start line can come before nymvisor has noted it in the metrics
    let info = r#"nymvisor_daemon_info{daemon="nym-node",version="1.1.0",upgrade="genesis"} 1"#;
    let (mut status, mut before) = (String::new(), String::new());
    assert!(
        wait_for(PATIENCE, || {
            (status, before) = http_get(port, "/metrics");
            sample(&before, "nymvisor_daemon_up") == Some(1.0) && before.contains(info)
        }),
        "{before}"
    );
    assert!(status.contains("200"), "{status}");
    promtool_accepts(&before);
    assert_eq!(sample(&before, "nymvisor_daemon_up"), Some(1.0), "{before}");
    assert_eq!(
        sample(&before, r#"nymvisor_upgrades_total{outcome="confirmed"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&before, "nymvisor_daemon_restarts_total"), Some(0.0));
    // never polled (no source): no "last success" sample a "time since" alert would misread
    assert_eq!(
        sample(&before, "nymvisor_upstream_last_success_timestamp_seconds"),
        None,
        "{before}"
    );
    assert_eq!(sample(&before, "nymvisor_hold"), Some(0.0), "{before}");
    assert_eq!(
        sample(&before, "nymvisor_upgrade_refusals_active"),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "nymvisor_log_lines_dropped_total"),
        Some(0.0)
    );
    assert!(
        before.contains(
            r#"nymvisor_daemon_info{daemon="nym-node",version="1.1.0",upgrade="genesis"} 1"#
        ),
        "{before}"
    );
    assert!(
        before.contains(&format!("nymvisor_build_info{{version=\"{}\"}} 1", "0.2.0")),
        "{before}"
    );

    // an upgrade, confirmed after its startup period
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    let second = nv.wait_start(2);
    nv.wait_stderr("upgrade confirmed");
    let (_, after) = http_get(port, "/metrics");
    promtool_accepts(&after);
    assert_eq!(
        sample(&after, r#"nymvisor_upgrades_total{outcome="confirmed"}"#),
        Some(1.0),
        "{after}"
    );
    assert!(
        after.contains(r#"version="1.2.0",upgrade="v1.2.0"} 1"#),
        "{after}"
    );
    assert!(sample(&after, "nymvisor_last_upgrade_downtime_seconds").is_some_and(|d| d > 0.0));
    assert!(sample(&after, "nymvisor_daemon_start_time_seconds").is_some_and(|t| t > 1.7e9));

    // a crash: restarted, counted
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second.pid), Signal::SIGKILL).unwrap();
    nv.wait_start(3);
    assert!(wait_for(PATIENCE, || {
        sample(
            &http_get(port, "/metrics").1,
            "nymvisor_daemon_restarts_total",
        ) == Some(1.0)
    }));
    let (status, _) = http_get(port, "/other");
    assert!(status.contains("404"), "{status}");
    // every metric the Grafana dashboard charts exists
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana/nymvisor.json"),
    )
    .unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).unwrap();
    let scraped = http_get(port, "/metrics").1;
    for name in dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("nymvisor_"))
    {
        let health_only = name.contains("health") || name == "nymvisor_daemon_healthy";
        // absent until it has a value (no source polled here, nothing awaiting confirmation)
        let absent_until_set = [
            "nymvisor_upstream_last_success_timestamp_seconds",
            "nymvisor_upgrade_confirmation_deadline_timestamp_seconds",
            "nymvisor_queued_upgrade_effective_timestamp_seconds",
            // by verifier and kind: a sample per refusal seen
            "nymvisor_upgrade_refusals_total",
        ]
        .contains(&name);
        assert!(
            health_only
                || absent_until_set
                || scraped.contains(&format!("{name}{{"))
                || scraped.contains(&format!("{name} ")),
            "the dashboard charts {name}, which is not exposed"
        );
    }
    assert!(!alive(first.pid));
    nv.stop();
}

/// A metrics address another process holds: the node is supervised anyway, the error is in the
/// log and `status`, and once the address is free the metrics are served.
#[test]
fn a_busy_metrics_address_does_not_keep_the_node_down() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let port = taken.local_addr().unwrap().port();
    let mut nv = home.spawn_run(&[("NYMVISOR_METRICS_ADDRESS", addr.as_str())], &[]);
    nv.wait_start(1);
    nv.wait_stderr("NYMVISOR_METRICS_ADDRESS");
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("cannot listen for metrics"), "{s}");
    drop(taken);
    nv.wait_stderr("the address is free now");
    let (status, body) = http_get(port, "/metrics");
    assert!(
        status.contains("200") && body.contains("nymvisor_daemon_up 1"),
        "{status}\n{body}"
    );
    nv.stop();
    let out = home
        .nymvisor()
        .env("NYMVISOR_METRICS_ADDRESS", "localhost")
        .arg("config")
        .output()
        .unwrap();
    assert_failure(&out, "NYMVISOR_METRICS_ADDRESS");
}

/// Idle connections that never send a request (16 and more) cannot lock a scraper out.
#[test]
fn idle_connections_do_not_lock_scrapers_out() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&[("NYMVISOR_METRICS_ADDRESS", "127.0.0.1:0")], &[]);
    nv.wait_start(1);
    let port = metrics_port(&nv);
    let idle: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let t = std::time::Instant::now();
    let (status, body) = http_get(port, "/metrics");
    assert!(
        status.contains("200") && body.contains("nymvisor_daemon_up"),
        "{status}"
    );
    // the header timeout is 5 s: a scrape that waited for a slot would take that long
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "the scrape took {:?}",
        t.elapsed()
    );
    drop(idle);
    nv.stop();
}

/// `systemd-analyze security` of a unit file, with `/usr/bin/nymvisor` replaced by the binary
/// that exists here: its overall exposure level (lower is safer).
fn exposure(unit: &std::path::Path, dir: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(unit).unwrap();
    let copy = dir.join(unit.file_name().unwrap());
    std::fs::write(
        &copy,
        text.replace("/usr/bin/nymvisor", nymvisor_bin().to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&copy)
        .output()
        .unwrap();
    let report = format!("{}{}", stdout(&out), stderr(&out));
    report
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{report}"))
}

/// `systemd-analyze verify` of units (copies in `dir`, with the binary that exists here): no
/// complaint at all.
fn verify_units(units: &[&std::path::Path]) {
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .unwrap();
    assert!(
        out.status.success() && stderr(&out).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_systemd_units_are_hardened_and_valid() {
    if !prerequisite(
        std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is not installed",
    ) {
        return;
    }
    // every unit shipped is checked here, so an unhardened example (the old nymvisor.service
    // rated 9.2 "UNSAFE") cannot come back unseen
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "nymvisor-mirror.service",
            "nymvisor-mirror.timer",
            "nymvisor@.service"
        ],
        "units in contrib/systemd"
    );
    let text = std::fs::read_to_string(dir.join("nymvisor@.service")).unwrap();
    for needle in [
        "Type=notify",
        "Restart=on-failure",
        "KillMode=mixed",
        "WatchdogSec=",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    // TimeoutStopSec above the default grace period (10s) plus nymvisor's own leftovers delay
    let stop: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop > 11);
    let tmp = tempfile::tempdir().unwrap();
    // an instance of the template
    let instance = tmp.path().join("nymvisor@node1.service");
    std::fs::write(
        &instance,
        text.replace("/usr/bin/nymvisor", nymvisor_bin().to_str().unwrap()),
    )
    .unwrap();
    let e = exposure(&instance, tmp.path());
    assert!(e <= 4.9, "nymvisor@.service: exposure {e}");
    verify_units(&[&instance]);

    // the mirror's service runs the command the guide documents, and its timer starts it
    let mirror = dir.join("nymvisor-mirror.service");
    let mirror_text = std::fs::read_to_string(&mirror).unwrap();
    assert!(
        mirror_text.contains("ExecStart=/usr/bin/nymvisor mirror sync --out"),
        "{mirror_text}"
    );
    let e = exposure(&mirror, tmp.path());
    assert!(e <= 2.0, "nymvisor-mirror.service: exposure {e}");
    std::fs::copy(
        dir.join("nymvisor-mirror.timer"),
        tmp.path().join("nymvisor-mirror.timer"),
    )
    .unwrap();
    verify_units(&[
        &tmp.path().join("nymvisor-mirror.service"),
        &tmp.path().join("nymvisor-mirror.timer"),
    ]);
}

#[test]
fn the_watchdog_is_fed_and_readiness_comes_before_a_due_upgrade() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // an upgrade due before nymvisor starts: it is applied before the daemon runs
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "0s"]);
    let socket_path = home.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let recv = || {
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut nv = home.spawn_run(
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // 200 ms: a keep-alive every 100 ms
            ("WATCHDOG_USEC", "200000"),
        ],
        &[],
    );
    let first = recv();
    assert!(
        first.starts_with("READY=1\nSTATUS=applying the due upgrade v1.2.0"),
        "readiness first: {first}"
    );
    let mut seen = vec![first];
    while seen.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() < 3 {
        seen.push(recv());
    }
    assert_eq!(
        nv.wait_start(1).version,
        "1.2.0",
        "the old version was not started first"
    );
    nv.stop();
}

#[test]
fn under_journald_log_lines_carry_priorities_and_no_timestamp() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // JOURNAL_STREAM names the file stderr is: its device and inode
    let log = home.path().join("journal.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!(
        "{}:{}",
        std::os::unix::fs::MetadataExt::dev(&meta),
        std::os::unix::fs::MetadataExt::ino(&meta)
    );
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        cmd.env("JOURNAL_STREAM", &stream).stderr(file);
    });
    nv.wait_start(1);
    assert!(wait_for(PATIENCE, || std::fs::read_to_string(&log)
        .is_ok_and(|t| t.contains("started "))));
    nv.signal(Signal::SIGTERM);
    assert!(nv.wait_exit().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let started = text.lines().find(|l| l.contains("started ")).unwrap();
    assert!(started.starts_with("<6>"), "{started}");
    assert!(
        !started.contains("INFO") && !started.contains("Z "),
        "no level word, no timestamp: {started}"
    );
}

#[test]
fn run_help_needs_no_instance() {
    let home = TestHome::new();
    for flag in ["--help", "-h"] {
        let out = home.run(&["run", flag]);
        assert_success(&out);
        assert!(stdout(&out).contains("DAEMON_ARGS"), "{}", stdout(&out));
    }
    let out = home.run(&["--help"]);
    assert_success(&out);
}

#[test]
fn the_legacy_current_version_file_follows_upgrades() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let legacy = home.daemon_home().join("nymvisor/current-version.json");
    std::fs::copy(
        home.daemon_home()
            .join("nymvisor/current-version-info.json"),
        &legacy,
    )
    .unwrap();
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    nv.wait_stderr("upgrade applied");
    assert_eq!(read_json(&legacy)["version"], "1.2.0");
    nv.stop();
}

#[test]
fn the_man_page_carries_the_version() {
    let home = TestHome::new();
    let out = home.run(&["man"]);
    assert_success(&out);
    let page = stdout(&out);
    let header = page.lines().find(|l| l.starts_with(".TH")).unwrap();
    assert!(header.contains(env!("CARGO_PKG_VERSION")), "{header}");
}

#[test]
fn rust_log_debug_shows_debug_lines_of_the_supervisor_and_its_helper() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut env = FAST.to_vec();
    env.push(("RUST_LOG", "debug"));
    let log = home.run_one_upgrade(&env);
    // the supervisor's own debug line, and the helper's (a process of its own, same filter)
    assert!(log.contains("DEBUG") && log.contains("preparing"), "{log}");
    assert!(
        log.contains("network helper finished") && log.contains("peak_rss_kib="),
        "{log}"
    );
}

/// The dashboard tells the truth at a glance: every stat panel has thresholds, state panels map
/// their values to words (a down node is red "down", not a green 0), tables are instant queries,
/// and counters are charted with `increase`, never `rate` (polls may be hourly).
#[test]
fn the_grafana_dashboard_has_thresholds_mappings_and_instant_tables() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/grafana/nymvisor.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = d["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "duplicate id at {title}"
        );
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            assert!(!expr.contains("rate("), "{title}: rate() in {expr}");
            assert!(expr.contains(r#"instance=~"$instance""#), "{title}: {expr}");
        }
        match p["type"].as_str() {
            Some("stat") => {
                let steps = &p["fieldConfig"]["defaults"]["thresholds"]["steps"];
                assert!(
                    steps.as_array().is_some_and(|s| !s.is_empty()),
                    "{title}: a stat panel without thresholds"
                );
            }
            Some("table") => {
                for t in p["targets"].as_array().into_iter().flatten() {
                    assert_eq!(t["instant"], true, "{title}: not an instant query");
                }
            }
            _ => {}
        }
    }
    let mapping_of = |title: &str, value: &str| -> String {
        let p = panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title}"));
        p["fieldConfig"]["defaults"]["mappings"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|m| m["options"][value]["text"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{title}: no mapping of {value}"))
    };
    assert_eq!(mapping_of("Node up", "0"), "down");
    assert_eq!(mapping_of("Node up", "1"), "up");
    assert_eq!(mapping_of("Healthy", "0"), "unhealthy");
    assert_eq!(mapping_of("Hold", "1"), "on hold");
    for title in [
        "Hold",
        "Next upgrade",
        "Awaiting confirmation",
        "Refusals in force",
    ] {
        assert!(
            panels.iter().any(|p| p["title"] == title),
            "no panel {title}"
        );
    }
}
