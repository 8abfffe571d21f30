//! Field hardening II: time arithmetic that cannot panic, windows judged at the moment of
//! applying, typos in windows, an unusable fleet seed, the hold as the last word before the
//! stop (and an unreadable one holding), unreadable records failing closed, and a staged binary
//! hashed again before it is applied.

use std::time::Duration;

use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;

fn status_json(home: &TestHome) -> serde_json::Value {
    serde_json::from_slice(&home.run(&["status", "-o", "json"]).stdout).unwrap()
}

/// A feed serving 1.2.0 due at `upgrade_time`; returns the server and the environment of a
/// nymvisor polling it every second.
fn feed(home: &TestHome, upgrade_time: &str) -> (FeedServer, Vec<(String, String)>) {
    let server = FeedServer::start();
    let bin = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    server.route(
        "/bin/nym-node-1.2.0",
        Reply::Body(std::fs::read(&bin).unwrap()),
    );
    let mut info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node-1.2.0", server.base()),
        &sha256_file(&bin),
        "sha256",
    );
    info["upgradeTime"] = upgrade_time.into();
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    let mut env: Vec<(String, String)> = FAST
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend([
        ("NYMVISOR_UPSTREAM_SOURCE".into(), "http".into()),
        (
            "NYMVISOR_UPSTREAM_BASE_UPGRADE_URL".into(),
            format!("{}/", server.base()),
        ),
        ("NYMVISOR_UPSTREAM_POLLING_RATE".into(), "1s".into()),
    ]);
    (server, env)
}

fn spawn(home: &TestHome, env: &[(String, String)]) -> RunHandle {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    home.spawn_run(&pairs, &[])
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn a_far_future_upgrade_time_panics_nothing() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (_server, mut env) = feed(&home, "9999-12-31T23:59:59Z");
    env.push(("DAEMON_UPGRADE_SPREAD".into(), "1h".into()));
    env.push((
        "DAEMON_UPGRADE_WINDOWS".into(),
        "Mon-Fri 02:00-05:00".into(),
    ));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("new release upstream");
    // the queue is published at the loop's next turn
    let mut s = serde_json::Value::Null;
    assert!(
        wait_for(PATIENCE, || {
            let out = home.run(&["status", "-o", "json"]);
            assert!(out.status.success(), "status failed: {}", stderr(&out));
            s = serde_json::from_slice(&out.stdout).unwrap();
            s["queued"][0]["name"] == "v1.2.0"
        }),
        "{s}"
    );
    assert!(!nv.stderr().contains("panicked"), "{}", nv.stderr());
    assert!(nv.running());
    nv.stop();
}

/// A release whose `upgradeTime` lies in yesterday's window, found today outside every window:
/// it waits for today's window (0.2.0-era: applied at once, outside every window).
#[test]
fn a_release_found_late_waits_for_the_next_window() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let now = time::OffsetDateTime::now_utc();
    // a daily window that opens in two hours, for an hour
    let open = now + time::Duration::hours(2);
    let close = open + time::Duration::hours(1);
    let window = format!(
        "daily {:02}:{:02}-{:02}:{:02}",
        open.hour(),
        open.minute(),
        close.hour(),
        close.minute()
    );
    // released yesterday inside that day's window
    let released = open - time::Duration::days(1) + time::Duration::minutes(10);
    let (server, mut env) = feed(&home, &rfc3339(released));
    env.push(("DAEMON_UPGRADE_WINDOWS".into(), window.clone()));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("waits for the next maintenance window");
    let polls = server.hits().len();
    assert!(wait_for(PATIENCE, || server.hits().len() >= polls + 2));
    assert_eq!(
        nv.starts().len(),
        1,
        "applied outside the window: {}",
        nv.stderr()
    );
    let s = status_json(&home);
    let q = &s["queued"][0];
    assert_eq!(q["waitingFor"], "window", "{s}");
    let at = time::OffsetDateTime::parse(
        q["effectiveUpgradeTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(at > now + time::Duration::minutes(110), "{s}");
    nv.stop();
}

#[test]
fn typos_in_windows_are_errors_naming_the_variable() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    for bad in ["Mié-Vie 02:00-05:00", "Mon +2:+0-03:00"] {
        let out = home
            .nymvisor()
            .env("DAEMON_UPGRADE_WINDOWS", bad)
            .arg("config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("DAEMON_UPGRADE_WINDOWS") && !err.contains("panicked"),
            "{bad}: {err}"
        );
        let out = home
            .nymvisor()
            .env("DAEMON_UPGRADE_WINDOWS", bad)
            .arg("run")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

/// A fleet seed that is a directory: the node runs, nothing is applied automatically, `status`
/// names the file.
#[test]
fn an_unusable_fleet_seed_blocks_upgrades_not_the_node() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let seed = home
        .nymvisors()
        .join("instances/nym-node-default/data/fleet-seed");
    std::fs::create_dir_all(&seed).unwrap();
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    nv.wait_stderr("fleet seed");
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "1s"]);
    nv.wait_stderr("waits for its state files");
    assert_eq!(nv.starts().len(), 1);
    let s = stdout(&home.run(&["status"]));
    assert!(
        s.contains("fleet-seed") && s.contains("no new seed is drawn"),
        "{s}"
    );
    nv.stop();
}

/// A hold placed while the pre-upgrade hook runs holds (the hook is a task of the event loop,
/// which sees the hold at once, and the hold file is read again right before the stop); a hold
/// file that becomes unreadable while `run` runs holds too (and `status` says so).
#[test]
fn the_hold_is_checked_right_before_the_stop_and_fails_closed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let started = home.path().join("hook-started");
    let go = home.path().join("go");
    let hook = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
        started.display(),
        go.display()
    );
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("DAEMON_PRE_UPGRADE_COMMAND", hook.as_str()));
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "1s"]);
    assert!(wait_for(PATIENCE, || started.exists()));
    assert_success(&home.run(&["hold", "--reason", "incident"]));
    std::fs::write(&go, b"").unwrap();
    nv.wait_stderr("the pre-upgrade hook agreed");
    // the queue, as the running nymvisor decided after the hook: held
    assert!(wait_for(
        PATIENCE,
        || status_json(&home)["queued"][0]["waitingFor"] == "hold"
    ));
    assert_eq!(nv.starts().len(), 1, "{}", nv.stderr());

    // unreadable hold file while running: still held
    let hold = home.data_dir("nym-node").join("upgrade-hold.json");
    std::fs::write(&hold, b"{ not json").unwrap();
    nv.wait_stderr("taken as a hold");
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("hold:") && s.contains("cannot be read"), "{s}");
    assert_eq!(nv.starts().len(), 1);
    // lifted: applied
    assert_success(&home.run(&["unhold"]));
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
}

/// An unreadable history: nothing is applied automatically (a rolled-back release could come
/// back), the node runs, `status` names the file; readable again, the upgrade goes through.
#[test]
fn an_unreadable_history_fails_closed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "1s"]);
    let history = home.data_dir("nym-node").join("upgrade-history.json");
    std::fs::write(&history, b"{ garbage").unwrap();
    let mut nv = home.spawn_run(FAST, &[]);
    assert_eq!(nv.wait_start(1).version, "1.1.0");
    nv.wait_stderr("upgrade-history.json");
    nv.wait_stderr("waits for its state files");
    let s = stdout(&home.run(&["status"]));
    assert!(
        s.contains("records:") && s.contains("upgrade-history.json"),
        "{s}"
    );
    assert_eq!(nv.starts().len(), 1);
    std::fs::remove_file(&history).unwrap();
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
}

/// A binary prepared ahead of its time and changed on disk before it is applied: hashed again
/// right before the stop, refused and moved aside, then fetched and verified again.
#[test]
fn a_staged_binary_is_hashed_again_before_it_is_applied() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let due = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let (_server, env) = feed(&home, &rfc3339(due));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("is in place and verified");
    let bin = home
        .data_dir("nym-node")
        .join("upgrades/v1.2.0/bin/nym-node");
    // same version, other bytes
    let other = home.daemon_bin("other", "nym-node", "1.2.0", &["tampered=1"]);
    std::fs::copy(&other, &bin).unwrap();
    nv.wait_stderr("changed on disk since it was verified");
    let started = nv.wait_start(2);
    assert_eq!(started.version, "1.2.0");
    let served = home.path().join("bins/release");
    assert_eq!(
        sha256_file(&bin),
        sha256_file(&served),
        "the binary applied is not the announced one"
    );
    let aside: Vec<_> = std::fs::read_dir(bin.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".stale-"))
        .collect();
    assert_eq!(aside.len(), 1);
    nv.stop();
}

/// A pre-upgrade hook that leaves a background job holding its output open is finished when it
/// exits: the job is killed and the upgrade goes on (0.2.0-era: it waited for the job's end,
/// then called the hook hung).
#[test]
fn a_hook_is_finished_when_it_exits_and_its_leftovers_are_killed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let pidfile = home.path().join("job.pid");
    let hook = format!(
        "sleep 300 & echo $! > {}; echo 'draining' >&2; exit 0",
        pidfile.display()
    );
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("DAEMON_PRE_UPGRADE_COMMAND", hook.as_str()));
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.wait_stderr("the pre-upgrade hook agreed");
    let job: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_for(PATIENCE, || !alive(job)),
        "the hook's job lives on"
    );
    nv.stop();
}

/// While a pre-upgrade hook runs, the node stays supervised: a crash is restarted at once, a
/// SIGHUP is forwarded, and a stop signal stops the hook's whole group and the node.
#[test]
fn the_node_is_supervised_while_a_hook_runs() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let started = home.path().join("hook.pid");
    let go = home.path().join("go");
    let hook = format!(
        "echo $$ > {}; while [ ! -e {} ]; do sleep 0.05; done",
        started.display(),
        go.display()
    );
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("DAEMON_PRE_UPGRADE_COMMAND", hook.as_str()));
    let mut nv = home.spawn_run(&env, &[]);
    let first = nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    assert!(wait_for(PATIENCE, || started.exists()
        && !std::fs::read_to_string(&started)
            .unwrap()
            .trim()
            .is_empty()));
    let hook_pid: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // a crash during the hook: restarted after the 100 ms restart delay, not after the hook
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let second = nv.wait_start(2);
    assert_eq!(second.version, "1.1.0");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "restarted only after {:?}",
        t.elapsed()
    );
    nv.signal(nix::sys::signal::Signal::SIGHUP);
    nv.wait_events("the forwarded SIGHUP", |ev| {
        ev.contains(&format!("signal pid={} SIGHUP", second.pid))
    });
    let s = status_json(&home);
    assert_eq!(s["queued"][0]["waitingFor"], "hook", "{s}");
    nv.stop();
    assert!(wait_for(PATIENCE, || !alive(hook_pid)), "the hook lives on");
    assert!(!alive(second.pid));
}

/// A node that never answers its health probe is restarted with a growing delay and, without a
/// healthy answer, nymvisor gives up (0.2.0-era: restarted every few seconds, forever).
#[test]
fn liveness_restarts_back_off_and_give_up() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", closed.local_addr().unwrap());
    drop(closed);
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_HEALTH_URL", url.as_str()),
            ("DAEMON_HEALTH_INTERVAL", "100ms"),
            ("DAEMON_HEALTH_TIMEOUT", "100ms"),
            ("DAEMON_HEALTH_FAILURE_THRESHOLD", "1"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "200ms"),
            ("DAEMON_FAILURE_RESTART_DELAY", "200ms"),
            ("DAEMON_MAX_STARTUP_FAILURES", "3"),
        ],
        &[],
    );
    let status = nv.wait_exit();
    assert!(!status.success());
    let log = nv.stderr();
    assert!(log.contains("liveness restart 3 of 3"), "{log}");
    assert!(log.contains("restarting the daemon in 800ms"), "{log}");
    assert!(log.contains("giving up"), "{log}");
    // counted by nymvisor's own lines: a daemon stopped very early may not have logged its start
    let started = log
        .lines()
        .filter(|l| l.contains("started ") && l.contains("(pid "))
        .count();
    assert_eq!(started, 4, "{log}");
    let s = stdout(&home.run(&["status"]));
    assert!(
        s.contains("gave up at") && s.contains("health probe"),
        "{s}"
    );
}

/// nymvisor's stderr on a pipe nobody reads: supervision goes on (restarts, a stop signal), the
/// lines that did not fit are dropped and counted, and said once writing works again.
#[test]
fn a_stalled_log_reader_never_freezes_the_supervisor() {
    use std::io::Read;
    let home = TestHome::new();
    let bin = home.daemon_bin("crashy", "nym-node", "1.1.0", &["mode=crash"]);
    home.init_with(&bin);
    let mut nv = home.spawn_run_cmd(
        &[
            ("DAEMON_FAILURE_RESTART_DELAY", "10ms"),
            ("DAEMON_MAX_STARTUP_FAILURES", "1000000"),
        ],
        &[],
        &[],
        |cmd| {
            cmd.stderr(std::process::Stdio::piped());
        },
    );
    let mut pipe = nv.take_stderr().unwrap();
    // each restart logs a few hundred bytes: a default pipe (64 KiB) overflows after ~600 of
    // them, a small one after a few dozen — so how fast this machine restarts today does not
    // matter (a size below what is already in the pipe is refused: the next is tried)
    let small = [4096, 8192, 16384]
        .into_iter()
        .any(|size| nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)).is_ok());
    let needed = if small { 150 } else { 600 };
    assert!(
        wait_for(Duration::from_secs(60), || nv.starts().len() >= needed),
        "supervision stopped after {} starts",
        nv.starts().len()
    );
    // reading again: the loss is said
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::time::Instant::now() < deadline {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&text).contains("log line(s) dropped") {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let text = reader.join().unwrap();
    assert!(
        text.contains("log line(s) dropped"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    nv.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(nv.wait_exit().success());
}

/// The GitHub token is the network helper's: the daemon's and the hooks' environment lack it.
#[test]
fn the_github_token_reaches_no_other_child() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let dump = home.path().join("hook.env");
    let hook = format!("env > {}", dump.display());
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.extend([
        ("DAEMON_PRE_UPGRADE_COMMAND", hook.as_str()),
        ("GITHUB_TOKEN", "ghp_secret"),
        ("SOME_SETTING", "kept"),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_start(2);
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("SOME_SETTING=kept"), "{text}");
    assert!(!text.contains("ghp_secret"), "{text}");
    nv.stop();
}

/// As PID 1 of a container, a stop signal sent in nymvisor's first milliseconds (before its
/// handlers exist) is not lost: nymvisor stops (0.2.0-era: dropped by the kernel, ran on).
#[test]
fn as_pid_1_a_stop_signal_at_start_is_not_lost() {
    if !prerequisite(
        std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "`unshare --pid --fork --mount-proc` is not permitted here",
    ) {
        return;
    }
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        let wrapper =
            ["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"].map(std::ffi::OsStr::new);
        let stderr = std::fs::File::create(home.path().join("pid1.log")).unwrap();
        let wrapped = wrapped_nymvisor(cmd, "unshare", &wrapper, stderr);
        *cmd = wrapped;
    });
    let unshare = nv.pid();
    let mut inner = Vec::new();
    assert!(wait_for(PATIENCE, || {
        inner = children_named(unshare, "nymvisor");
        !inner.is_empty()
    }));
    // the signal is sent once nymvisor's `main` runs (SIGTERM blocked, or already handled):
    // before `main`, no program can keep it (the kernel drops it for a PID 1 without handler)
    let term_bit = 1u64 << (libc_sigterm() - 1);
    let mask = |field: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", inner[0]))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0)
    };
    assert!(wait_for(PATIENCE, || (mask("SigBlk:") | mask("SigCgt:"))
        & term_bit
        != 0));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(inner[0]),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = nv.wait_exit();
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(home.path().join("pid1.log")).unwrap_or_default()
    );
}

// ---- what the operator sees is true ----

/// The prepare line gives the effective time and what the upgrade waits for, not the feed's.
#[test]
fn the_prepare_line_says_when_the_upgrade_really_happens() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let (_server, mut env) = feed(&home, "2026-01-01T00:00:00Z");
    env.push(("DAEMON_UPGRADE_SPREAD".into(), "100d".into()));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("is in place and verified");
    let log = nv.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("is in place and verified"))
        .unwrap();
    assert!(
        line.contains("waits for this node's turn in the fleet's spread (until"),
        "{line}"
    );
    assert!(!line.contains("2026-01-01"), "{line}");
    nv.stop();
}

#[test]
fn settings_that_are_probably_typos_are_said() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_UPGRADE_SPRED", "1h"),
            ("DAEMON_RESTART_ON_FAILURE", "false"),
        ],
        &[],
    );
    nv.wait_start(1);
    nv.wait_stderr("DAEMON_UPGRADE_SPRED is set but is no setting of nymvisor (did you mean `DAEMON_UPGRADE_SPREAD`?)");
    nv.wait_stderr("restart_on_failure is off");
    nv.stop();
    // a key typo in the file says what was meant
    let config = home.config_path("nym-node-default");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("upgrade_spread =", "upgrade_spred =")).unwrap();
    let out = home.run(&["config"]);
    assert_failure(&out, "unknown key `upgrade_spred`");
    assert!(
        stderr(&out).contains("did you mean `upgrade_spread`?")
            && !stderr(&out).contains("expected one of"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&config, text).unwrap();
    // another node's env file
    let out = home
        .nymvisor()
        .env("DAEMON_NAME", "nym-api")
        .arg("status")
        .output()
        .unwrap();
    assert_failure(&out, "manages nym-node");
    // a daemon home that is gone
    std::fs::rename(home.daemon_home(), home.path().join("moved")).unwrap();
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_stderr("does not exist (any more)");
    nv.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = nv.wait_exit();
}

#[test]
fn a_fatal_error_is_said_once_and_daemon_help_reaches_the_daemon() {
    let home = TestHome::new();
    let bin = home.daemon_bin("crashy", "nym-node", "1.1.0", &["mode=crash"]);
    home.init_with(&bin);
    let mut nv = home.spawn_run(
        &[
            ("DAEMON_FAILURE_RESTART_DELAY", "10ms"),
            ("DAEMON_MAX_STARTUP_FAILURES", "2"),
        ],
        &["--", "--help"],
    );
    assert!(!nv.wait_exit().success());
    let log = nv.stderr();
    assert_eq!(log.matches("giving up").count(), 1, "{log}");
    // `run -- --help`: the daemon was started with `--help`
    assert!(
        nv.starts().iter().all(|s| s.args.contains("--help")),
        "{:?}",
        nv.starts()
    );
}

fn libc_sigterm() -> u32 {
    nix::sys::signal::Signal::SIGTERM as u32
}
