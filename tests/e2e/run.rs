//! `nymvisor run`: supervision, signals, restart policy, single instance, plan watching,
//! upgrades, rollback and manual upgrades, driven through the real binary.

use std::time::Duration;

use nix::sys::signal::Signal;
use nymvisor_tests::*;

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<_> = FAST.to_vec();
    v.extend_from_slice(extra);
    v
}

fn data(home: &TestHome) -> std::path::PathBuf {
    home.data_dir("nym-node")
}

fn current_target(home: &TestHome) -> String {
    std::fs::read_link(data(home).join("current"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn runs_the_daemon_with_its_arguments_verbatim() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        FAST,
        &["run", "--id", "my-node", "-x", "--help", "-c", "node.env"],
    );
    let start = nv.wait_start(1);
    assert_eq!(start.version, "1.1.0");
    assert_eq!(
        start.args,
        r#"["run","--id","my-node","-x","--help","-c","node.env"]"#
    );
    assert_eq!(
        start.pid, start.pgid,
        "the daemon leads its own process group"
    );
    assert_ne!(start.pgid, nix::unistd::getpgrp().as_raw());
    nv.stop();
}

#[test]
fn upgrade_now_while_running() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // a startup period long enough that the history is read before the confirmation, however
    // slow this machine is today
    let mut env = FAST.to_vec();
    env.push(("DAEMON_STARTUP_PERIOD_DURATION", "60s"));
    let mut nv = home.spawn_run(&env, &["run", "--id", "n1"]);
    let old = nv.wait_start(1);
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    let new = nv.wait_start(2);
    assert_eq!(new.version, "1.2.0");
    assert_eq!(new.args, old.args, "restarted with the same arguments");
    // the records are written right after the new daemon started (it is not kept waiting)
    nv.wait_stderr("upgrade applied");
    let events = nv.events();
    let stop = events
        .iter()
        .position(|l| l == &format!("signal pid={} SIGINT", old.pid));
    assert!(
        stop.is_some(),
        "the old daemon was stopped with SIGINT: {events:?}"
    );
    assert!(!alive(old.pid));

    assert_eq!(current_target(&home), "upgrades/v1.2.0");
    let cvi = read_json(
        &home
            .daemon_home()
            .join("nymvisor/current-version-info.json"),
    );
    assert_eq!(cvi["name"], "v1.2.0");
    let plan = read_json(&data(&home).join("upgrade-plan.json"));
    assert_eq!(plan["current"]["name"], "v1.2.0");
    assert_eq!(plan["queuedUp"], serde_json::json!([]));
    let history = read_json(&data(&home).join("upgrade-history.json"));
    let entries = history["history"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["info"]["name"], "v1.2.0");
    // applied, its start watched: pending until confirmed
    assert_eq!(entries[0]["outcome"], "pending");
    assert_eq!(entries[0]["previousVersion"], "1.1.0");
    // a backup of the daemon home was made, without nymvisor's own directory
    let backups = home.daemon_home().join("nymvisor/backups/v1.2.0");
    let backup = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(backup.join("data/version.txt")).unwrap(),
        "1.1.0"
    );
    assert!(!backup.join("nymvisor").exists());
    // one log line per stage, with its duration
    for stage in ["prepare", "stop", "backup", "swap", "restart", "record"] {
        assert!(
            nv.stderr().contains(&format!("stage=\"{stage}\"")),
            "no {stage} line:\n{}",
            nv.stderr()
        );
    }
    nv.signal(Signal::SIGINT);
    assert!(nv.wait_exit().success());
    assert!(!alive(new.pid));
}

#[test]
fn upgrade_waits_for_its_time() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    home.add_upgrade(&new_bin, "later", &["--upgrade-time", &at_text]);
    nv.wait_start(2);
    assert!(
        time::OffsetDateTime::now_utc() >= at,
        "upgraded before its time"
    );
    assert_eq!(current_target(&home), "upgrades/later");
    nv.stop();
}

#[test]
fn stop_signals_are_forwarded_and_end_nymvisor() {
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let mut nv = home.spawn_run(FAST, &[]);
        let start = nv.wait_start(1);
        nv.signal(sig);
        let status = nv.wait_exit();
        assert!(status.success(), "{sig}: {status}");
        assert!(
            nv.events()
                .contains(&format!("signal pid={} {sig}", start.pid)),
            "{:?}",
            nv.events()
        );
        assert!(!alive(start.pid));
    }
}

#[test]
fn hup_and_usr_signals_are_forwarded_without_stopping() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    let start = nv.wait_start(1);
    for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        nv.signal(sig);
        let line = format!("signal pid={} {sig}", start.pid);
        nv.wait_events(&line.clone(), |ev| ev.contains(&line));
    }
    assert!(nv.running() && alive(start.pid));
    assert_eq!(nv.starts().len(), 1);
    nv.stop();
}

#[test]
fn daemon_ignoring_stop_is_killed_with_its_group_after_grace() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "1s"),
            ("FAKE_DAEMON_IGNORE", "TERM,INT"),
            ("FAKE_DAEMON_GRANDCHILD", "1"),
        ]),
        &[],
    );
    let start = nv.wait_start(1);
    nv.wait_events("the grandchild", |ev| {
        ev.iter().any(|l| l.starts_with("grandchild pid="))
    });
    let grandchild: i32 = nv
        .events()
        .iter()
        .find_map(|l| l.strip_prefix("grandchild pid=")?.parse().ok())
        .unwrap();
    assert!(alive(grandchild));
    let t = std::time::Instant::now();
    nv.signal(Signal::SIGTERM);
    let status = nv.wait_exit();
    assert!(status.success());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "killed before the grace period"
    );
    assert!(
        nv.events()
            .contains(&format!("signal pid={} SIGTERM ignored", start.pid))
    );
    assert!(!alive(start.pid), "daemon survived");
    assert!(!alive(grandchild), "grandchild survived");
}

#[test]
fn started_with_sigint_ignored_still_gives_the_daemon_default_signals() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let daemon_log = home.path().join("daemon.log");
    // a background job from a script starts with SIGINT and SIGQUIT ignored; TSTP and TTOU are
    // signals nymvisor installs no handler for, so only an explicit reset clears them

    let mut child = ChildGuard(
        std::process::Command::new("sh")
            .args(["-c", "trap '' INT QUIT TSTP TTOU; exec \"$0\" run"])
            .arg(nymvisor_bin())
            .env_clear()
            .envs(
                TOOLING_ENV
                    .iter()
                    .filter_map(|v| Some((v, std::env::var_os(v)?))),
            )
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NYM_HOME_DIR", home.nym_home())
            .env("FAKE_DAEMON_LOG", &daemon_log)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_for(PATIENCE, || std::fs::read_to_string(&daemon_log)
        .is_ok_and(|t| t.contains("start "))));
    let text = std::fs::read_to_string(&daemon_log).unwrap();
    let pid: i32 = text
        .split(' ')
        .find_map(|kv| kv.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ign = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    let ign = u64::from_str_radix(ign, 16).unwrap();
    // bit n-1 stands for signal n; the fake daemon itself (a Rust program) ignores SIGPIPE
    let inherited = [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTOU,
    ]
    .iter()
    .fold(0u64, |m, s| m | 1 << (*s as i32 - 1));
    assert_eq!(
        ign & inherited,
        0,
        "the daemon inherited ignored signals: {ign:x}"
    );
    // and nymvisor itself still honours SIGINT
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        Signal::SIGINT,
    )
    .unwrap();
    assert!(wait_for(PATIENCE, || child.0.try_wait().unwrap().is_some()));
    assert!(child.0.wait().unwrap().success());
    assert!(wait_for(PATIENCE, || !alive(pid)));
}

#[test]
fn crashes_are_restarted_until_the_startup_limit() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_EXIT_AFTER_MS", "20"),
            ("FAKE_DAEMON_EXIT_CODE", "3"),
            ("DAEMON_MAX_STARTUP_FAILURES", "3"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "30s"),
        ]),
        &[],
    );
    let status = nv.wait_exit();
    assert!(!status.success(), "giving up must exit non-zero");
    assert_eq!(nv.starts().len(), 3, "{:?}", nv.events());
    assert!(nv.stderr().contains("giving up"), "{}", nv.stderr());
}

#[test]
fn clean_daemon_exit_ends_nymvisor_with_success() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_EXIT_AFTER_MS", "50"),
            ("FAKE_DAEMON_EXIT_CODE", "0"),
        ]),
        &[],
    );
    assert!(nv.wait_exit().success());
    assert_eq!(nv.starts().len(), 1);
}

#[test]
fn crash_without_restart_policy_exits_non_zero() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_EXIT_AFTER_MS", "50"),
            ("FAKE_DAEMON_EXIT_CODE", "7"),
            ("DAEMON_RESTART_ON_FAILURE", "false"),
        ]),
        &[],
    );
    assert!(!nv.wait_exit().success());
    assert_eq!(nv.starts().len(), 1);
    assert!(nv.stderr().contains("exit code 7"), "{}", nv.stderr());
}

#[test]
fn second_instance_is_refused_naming_the_holder() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // the GitHub source keeps a probe directory (no server: its polls fail, which is fine here)
    let env = env_with(&[
        ("NYMVISOR_UPSTREAM_SOURCE", "github"),
        ("NYMVISOR_GITHUB_API_URL", "http://127.0.0.1:1"),
    ]);
    let mut first = home.spawn_run(&env, &[]);
    first.wait_start(1);
    // what the first one's network helper may be working in right now
    let in_flight = [
        data(&home).join(".helper-tmp/job-inflight/part"),
        data(&home).join(".github-probe/nym-node.probe"),
    ];
    for f in &in_flight {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "in flight").unwrap();
    }
    let mut second = home.spawn_run(&env, &[]);
    let status = second.wait_exit();
    assert!(!status.success());
    assert!(
        second.stderr().contains(&format!("pid {}", first.pid())),
        "{}",
        second.stderr()
    );
    assert!(second.starts().is_empty());
    // the refused one cleared nothing: leftovers are only cleared once the lock is held
    for f in &in_flight {
        assert!(f.exists(), "{} was removed by the refused run", f.display());
    }
    first.stop();
}

/// Writes the plan the way an external tool would: a temporary file renamed over it.
fn replace_plan(home: &TestHome, plan: &serde_json::Value) {
    let path = data(home).join("upgrade-plan.json");
    let tmp = data(home).join("plan.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(plan).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

#[test]
fn plan_replaced_by_rename_is_noticed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(
        &new_bin,
        "v1.2.0",
        &["--upgrade-time", "2099-01-01T00:00:00Z"],
    );
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let mut plan = read_json(&data(&home).join("upgrade-plan.json"));
    plan["queuedUp"][0]["upgradeTime"] = "2020-01-01T00:00:00Z".into();
    replace_plan(&home, &plan);
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.stop();
}

#[test]
fn corrupt_plan_is_ignored_without_stopping_the_daemon() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    let start = nv.wait_start(1);
    let plan_path = data(&home).join("upgrade-plan.json");
    let good = std::fs::read(&plan_path).unwrap();
    std::fs::write(&plan_path, &good[..good.len() / 2]).unwrap();
    nv.wait_stderr("ignoring the changed upgrade plan until it is fixed");
    assert!(nv.stderr().contains("upgrade-plan.json"));
    assert!(nv.running() && alive(start.pid));
    assert_eq!(
        std::fs::read(&plan_path).unwrap(),
        &good[..good.len() / 2],
        "nymvisor must not overwrite it"
    );
    // fixed by the operator, with an upgrade in it: acted upon
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    std::fs::write(&plan_path, &good).unwrap();
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.stop();
}

#[test]
fn crashing_new_binary_is_rolled_back() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("DAEMON_MAX_STARTUP_FAILURES", "2"),
            ("DAEMON_STARTUP_PERIOD_DURATION", "30s"),
        ]),
        &[],
    );
    nv.wait_start(1);
    let bad = home.daemon_bin("bad", "nym-node", "1.2.0", &["mode=crash"]);
    home.add_upgrade(&bad, "bad", &["--now"]);
    // two crashing starts of 1.2.0, then 1.1.0 again
    nv.wait_events("the rollback", |_| {
        let s = nv.starts();
        s.len() >= 4 && s[3].version == "1.1.0"
    });
    let versions: Vec<_> = nv.starts().iter().map(|s| s.version.clone()).collect();
    assert_eq!(versions, ["1.1.0", "1.2.0", "1.2.0", "1.1.0"]);
    assert_eq!(current_target(&home), "genesis");
    // the crashing version's change to the daemon home was undone by the restore
    assert!(!home.daemon_home().join("data/touched-1.2.0").exists());
    assert!(home.daemon_home().join("data/touched-1.1.0").exists());
    let plan = read_json(&data(&home).join("upgrade-plan.json"));
    assert_eq!(plan["current"]["name"], "genesis");
    assert_eq!(plan["queuedUp"], serde_json::json!([]), "not retried");
    let history = read_json(&data(&home).join("upgrade-history.json"));
    let last = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["outcome"], "rolled-back");
    assert!(
        last["error"].as_str().unwrap().contains("startup period"),
        "{last}"
    );
    assert_eq!(
        read_json(
            &home
                .daemon_home()
                .join("nymvisor/current-version-info.json")
        )["name"],
        "genesis"
    );
    assert!(!data(&home).join("upgrade-journal.json").exists());
    assert!(nv.running());
    nv.stop();
}

#[test]
fn manual_upgrade_swaps_and_stops() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(
        &new_bin,
        "manual",
        &["--upgrade-time", "2099-01-01T00:00:00Z"],
    );
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let mut plan = read_json(&data(&home).join("upgrade-plan.json"));
    plan["queuedUp"][0]["manual"] = true.into();
    plan["queuedUp"][0]["upgradeTime"] = "2020-01-01T00:00:00Z".into();
    replace_plan(&home, &plan);
    let status = nv.wait_exit();
    assert!(status.success(), "{}", nv.stderr());
    assert_eq!(
        nv.starts().len(),
        1,
        "a manual upgrade is not restarted by nymvisor"
    );
    assert_eq!(current_target(&home), "upgrades/manual");
    assert!(nv.stderr().contains("manual upgrade"), "{}", nv.stderr());
    // the next run starts the new version
    let mut again = home.spawn_run(FAST, &[]);
    assert_eq!(again.wait_start(1).version, "1.2.0");
    again.stop();
}

#[test]
fn no_restart_after_upgrade_when_configured() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&env_with(&[("DAEMON_RESTART_AFTER_UPGRADE", "false")]), &[]);
    nv.wait_start(1);
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    assert!(nv.wait_exit().success());
    assert_eq!(nv.starts().len(), 1);
    assert_eq!(current_target(&home), "upgrades/v1.2.0");
}

#[test]
fn refused_upgrade_keeps_the_daemon_running() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    let start = nv.wait_start(1);
    // an entry whose binary reports another version than the plan says
    let liar = home.daemon_bin("liar", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&liar, "liar", &["--upgrade-time", "2099-01-01T00:00:00Z"]);
    let mut plan = read_json(&data(&home).join("upgrade-plan.json"));
    plan["queuedUp"][0]["version"] = "1.2.0".into();
    plan["queuedUp"][0]["binaryDetails"] = serde_json::Value::Null;
    plan["queuedUp"][0]["upgradeTime"] = "2020-01-01T00:00:00Z".into();
    replace_plan(&home, &plan);
    nv.wait_stderr("cannot apply upgrade `liar`");
    assert!(
        nv.stderr().contains("reports version 1.3.0"),
        "{}",
        nv.stderr()
    );
    assert!(nv.running() && alive(start.pid));
    assert_eq!(nv.starts().len(), 1);
    assert_eq!(current_target(&home), "genesis");
    nv.stop();
}

#[test]
fn daemon_left_behind_by_a_killed_nymvisor_is_stopped_on_the_next_start() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // the daemon ignores SIGTERM, so the parent-death signal does not end it
    let mut first = home.spawn_run(&env_with(&[("FAKE_DAEMON_IGNORE", "TERM")]), &[]);
    let orphan = first.wait_start(1);
    // nymvisor records the daemon's pid before it logs the start: wait for that line, not only
    // for the daemon's own, or the kill can come before the record
    first.wait_stderr(&format!("(pid {})", orphan.pid));
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    first.wait_events("the parent-death signal", |ev| {
        ev.contains(&format!("signal pid={} SIGTERM ignored", orphan.pid))
    });
    assert!(
        alive(orphan.pid),
        "the orphan should still run before the next start"
    );
    let mut second = home.spawn_run(FAST, &[]);
    let start = second.wait_start(1);
    assert!(!alive(orphan.pid), "the leftover daemon was not stopped");
    assert!(
        first
            .events()
            .contains(&format!("signal pid={} SIGINT", orphan.pid))
    );
    assert_ne!(start.pid, orphan.pid);
    second.stop();
}

#[test]
fn stop_signal_during_the_restart_delay_is_honoured_at_once() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_EXIT_AFTER_MS", "20"),
            ("FAKE_DAEMON_EXIT_CODE", "2"),
            ("DAEMON_FAILURE_RESTART_DELAY", "1h"),
        ]),
        &[],
    );
    nv.wait_stderr("restarting the daemon in 1h");
    let t = std::time::Instant::now();
    nv.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(nv.starts().len(), 1);
}

#[test]
fn dotenv_values_reach_the_daemon() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let env_file = home.path().join("node.env");
    std::fs::write(&env_file, "NYM_TEST_MARKER=from-dotenv\n").unwrap();
    let mut nv = home.spawn_run_with_args(FAST, &["-c", env_file.to_str().unwrap()], &[]);
    let start = nv.wait_start(1);
    let environ = std::fs::read(format!("/proc/{}/environ", start.pid)).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|kv| kv == b"NYM_TEST_MARKER=from-dotenv"),
        "the daemon did not get the dotenv value"
    );
    nv.stop();
}

#[test]
fn legacy_plan_entries_are_refused_and_the_daemon_runs() {
    let home = TestHome::new();
    crate::migration::legacy_install(&home);
    let dh = home.daemon_home();
    let dh = dh.to_str().unwrap();
    let mut nv = home.spawn_run(&env_with(&[("DAEMON_HOME", dh)]), &[]);
    // `current` is v1.2.0-rollback
    assert_eq!(nv.wait_start(1).version, "1.2.0");
    // "older" (1.1.0) is a downgrade; "v1.3.1-bad" has no binary and no source to fetch it from
    nv.wait_stderr("cannot apply upgrade `older`");
    nv.wait_stderr("cannot apply upgrade `v1.3.1-bad`");
    assert!(
        nv.stderr().contains("not newer than the running 1.2.0"),
        "{}",
        nv.stderr()
    );
    assert!(
        !nv.stderr().contains("upgrading nym-node"),
        "{}",
        nv.stderr()
    );
    assert_eq!(nv.starts().len(), 1);
    assert_eq!(current_target(&home), "upgrades/v1.2.0-rollback");
    let plan = read_json(&data(&home).join("upgrade-plan.json"));
    assert_eq!(
        plan["queuedUp"].as_array().unwrap().len(),
        3,
        "the operator's plan is left as it is"
    );
    nv.stop();
}

#[test]
fn verifier_commands_accept_and_refuse() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    // an allow-list policy written in shell: only 1.3.0 may be installed
    let policy = home.path().join("allow-list.sh");
    write_executable(
        &policy,
        b"#!/bin/sh\nreq=$(cat)\ncase \"$req\" in *'\"version\":\"1.3.0\"'*) exit 0;; esac\necho \"not on the allow-list\" >&2\nexit 1\n",
    );
    let policy = policy.to_str().unwrap().to_owned();
    let mut nv = home.spawn_run(
        &env_with(&[("NYMVISOR_VERIFIER_COMMANDS", policy.as_str())]),
        &[],
    );
    let start = nv.wait_start(1);
    let refused = home.daemon_bin("v120", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&refused, "v1.2.0", &["--now"]);
    nv.wait_stderr("not on the allow-list");
    assert!(alive(start.pid) && nv.starts().len() == 1);
    let allowed = home.daemon_bin("v130", "nym-node", "1.3.0", &[]);
    home.add_upgrade(&allowed, "v1.3.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.3.0", "{}", nv.stderr());
    nv.stop();
}
