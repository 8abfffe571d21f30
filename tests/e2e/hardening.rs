//! Field hardening: what an operator's first hour (and a bad disk, a bad log shipper or a bad
//! feed) does to `nymvisor run` — idle cost, closed log pipes, hostile state files, orphans and
//! escaped processes, impatient stop signals, invalid feed metadata, stale binaries.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::sys::signal::Signal;
use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
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

/// Read system calls made so far by `pid` (`/proc/<pid>/io`).
fn read_syscalls(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn an_idle_supervisor_does_not_read_its_plan_in_a_loop() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    let start = nv.wait_start(1);
    nv.wait_stderr(&format!("(pid {})", start.pid));
    let before = read_syscalls(nv.pid());
    // an idle-cost measurement needs an interval; a busy loop makes thousands of reads in it
    std::thread::sleep(Duration::from_secs(2));
    let reads = read_syscalls(nv.pid()) - before;
    assert!(
        reads < 200,
        "{reads} read calls in 2 s of doing nothing\n{}",
        nv.stderr()
    );
    nv.stop();
}

#[test]
fn a_closed_log_pipe_does_not_stop_supervision() {
    use std::io::BufRead;
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        cmd.stderr(std::process::Stdio::piped());
    });
    // the log reader (a shipper, `tee`, `| head -1`) reads one line and goes away
    let pipe = nv.take_stderr().unwrap();
    let mut first = String::new();
    std::io::BufReader::new(pipe).read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    let old = nv.wait_start(1);
    // an upgrade logs a line per stage, each one now a write to a closed pipe
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    let new = nv.wait_start(2);
    assert_eq!(new.version, "1.2.0");
    assert!(!alive(old.pid));
    assert!(
        nv.running() && alive(new.pid),
        "nymvisor died with its log reader"
    );
    nv.signal(Signal::SIGTERM);
    assert!(nv.wait_exit().success());
    assert!(!alive(new.pid));
}

#[test]
fn cli_commands_piped_into_head_do_not_panic() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    for args in [
        &["man"][..],
        &["completions", "bash"],
        &["status"],
        &["config"],
        &["build-info"],
    ] {
        let mut child = home
            .nymvisor()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // the reader is gone before the first byte is written
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // a closed pipe is success; `status` may also have written into the pipe's buffer
        // before its reader went, and then says what it says as a probe (3: nymvisor does not
        // run here)
        let as_probe = args == ["status"] && out.status.code() == Some(3);
        assert!(
            out.status.success() || as_probe,
            "{args:?}: {} {err}",
            out.status
        );
    }
}

#[test]
fn a_fifo_in_place_of_the_plan_blocks_nothing() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let plan = data(&home).join("upgrade-plan.json");
    std::fs::remove_file(&plan).unwrap();
    nix::unistd::mkfifo(&plan, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();

    let out = output_within_patience(home.nymvisor().arg("status"));
    assert!(stdout(&out).contains("FIFO"), "{}", stdout(&out));

    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    let out = output_within_patience(home.nymvisor().args([
        "add-upgrade",
        new_bin.to_str().unwrap(),
        "--upgrade-name",
        "v1.2.0",
    ]));
    assert_failure(&out, "FIFO");

    // `run` runs the current binary and still honours a stop signal at once
    let mut nv = home.spawn_run(FAST, &[]);
    let start = nv.wait_start(1);
    nv.wait_stderr("FIFO");
    nv.stop();
    assert!(!alive(start.pid));
}

#[test]
fn a_device_or_a_huge_file_in_place_of_the_plan_is_not_read() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let plan = data(&home).join("upgrade-plan.json");
    std::fs::remove_file(&plan).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &plan).unwrap();
    let out = output_within_patience(home.nymvisor().arg("status"));
    assert!(
        stdout(&out).contains("character device"),
        "{}",
        stdout(&out)
    );

    std::fs::remove_file(&plan).unwrap();
    let huge = std::fs::File::create(&plan).unwrap();
    huge.set_len(1 << 30).unwrap(); // sparse: 1 GiB that costs no disk
    drop(huge);
    let out = output_within_patience(home.nymvisor().arg("status"));
    assert!(stdout(&out).contains("larger than"), "{}", stdout(&out));
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    nv.wait_stderr("larger than");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", nv.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        rss_kib < 64 * 1024,
        "peak RSS {rss_kib} KiB: the file was read"
    );
    nv.stop();
}

#[test]
fn a_corrupt_journal_is_moved_aside_and_the_node_runs() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let journal = data(&home).join("upgrade-journal.json");
    std::fs::write(&journal, b"{\"stage\": \"swapp").unwrap();
    let mut nv = home.spawn_run(FAST, &[]);
    assert_eq!(nv.wait_start(1).version, "1.1.0");
    nv.wait_stderr("moved aside");
    assert!(
        nv.stderr().contains("upgrade-journal.json"),
        "{}",
        nv.stderr()
    );
    assert!(!journal.exists());
    let aside: Vec<_> = std::fs::read_dir(data(&home))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("upgrade-journal.json.corrupt-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the corrupt journal is kept for the operator"
    );
    assert_eq!(
        std::fs::read(aside[0].path()).unwrap(),
        b"{\"stage\": \"swapp"
    );
    nv.stop();
}

/// A daemon that is a shell script: `body` runs, `@FAKE@` in it names the fake daemon (which
/// takes over the script's pid with `exec`).
fn script_home(home: &TestHome, version: &str, body: &str) -> std::path::PathBuf {
    let fake = home.daemon_bin(&format!("fake-{version}"), "nym-node", version, &[]);
    let fake_path = fake.display().to_string();
    script_daemon(
        &home.path().join(format!("bins/script-{version}")),
        &fake,
        &body.replace("@FAKE@", &format!("\"{fake_path}\"")),
    )
}

// orphans that live until the test ends them (a fixed lifetime would race a loaded machine)
const ORPHANS: &str = r#"i=0
while [ $i -lt 20 ]; do (sleep 600 &); i=$((i+1)); done
echo orphans-made >> "$FAKE_DAEMON_LOG"
exec @FAKE@ "$@""#;

/// Ends the orphans (as their own end would): their parent must reap them.
fn end_orphans(pids: &[i32]) {
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

#[test]
fn orphans_of_the_daemon_are_adopted_and_reaped() {
    let home = TestHome::new();
    let script = script_home(&home, "1.1.0", ORPHANS);
    assert_success(&home.run(&[
        "init",
        script.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]));
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_events("the orphans", |ev| ev.iter().any(|l| l == "orphans-made"));
    // nymvisor is their subreaper: they are re-parented to it, not to the host's init…
    assert!(
        wait_for(PATIENCE, || children_named(nv.pid(), "sleep").len() == 20),
        "the orphans were not re-parented to nymvisor"
    );
    end_orphans(&children_named(nv.pid(), "sleep"));
    // …and reaped when they exit (a zombie keeps its name and its parent)
    assert!(
        wait_for(PATIENCE, || children_named(nv.pid(), "sleep").is_empty()),
        "zombies left: {:?}",
        children_named(nv.pid(), "sleep")
    );
    nv.stop();
}

#[test]
fn as_pid_1_of_a_container_it_reaps_orphans_and_forwards_signals() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    if !prerequisite(
        probe.is_ok_and(|o| o.status.success()),
        "`unshare --pid --fork --mount-proc` is not permitted here",
    ) {
        return;
    }
    let home = TestHome::new();
    let script = script_home(&home, "1.1.0", ORPHANS);
    assert_success(&home.run(&[
        "init",
        script.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]));
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        // the same command line, started as PID 1 of a new PID namespace
        let wrapper =
            ["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"].map(std::ffi::OsStr::new);
        let stderr = std::fs::File::create(home.path().join("pid1.log")).unwrap();
        let wrapped = wrapped_nymvisor(cmd, "unshare", &wrapper, stderr);
        *cmd = wrapped;
    });
    // `unshare` forks nymvisor, which is PID 1 inside
    let unshare = nv.pid();
    let mut inner = Vec::new();
    assert!(wait_for(PATIENCE, || {
        inner = children_named(unshare, "nymvisor");
        !inner.is_empty()
    }));
    let nv_pid = inner[0];
    nv.wait_events("the orphans", |ev| ev.iter().any(|l| l == "orphans-made"));
    // the script logs its orphans before it becomes the fake daemon (`exec`)
    let daemon = nv.wait_start(1).pid;
    assert!(
        daemon < 10,
        "the daemon runs inside the container (pid {daemon})"
    );
    assert!(wait_for(PATIENCE, || children_named(nv_pid, "sleep").len() == 20));
    end_orphans(&children_named(nv_pid, "sleep"));
    assert!(
        wait_for(PATIENCE, || children_named(nv_pid, "sleep").is_empty()),
        "zombies left in the container"
    );
    let log = std::fs::read_to_string(home.path().join("pid1.log")).unwrap();
    assert!(log.contains("running as PID 1"), "{log}");
    // a stop signal from outside (docker stop) reaches PID 1, is forwarded, and ends it cleanly
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(nv_pid), Signal::SIGTERM).unwrap();
    assert!(nv.wait_exit().success());
    assert!(
        nv.events()
            .contains(&format!("signal pid={daemon} SIGTERM"))
    );
}

fn escapers(events: &[String]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|l| l.strip_prefix("escaper pid=")?.parse().ok())
        .collect()
}

#[test]
fn a_process_that_left_the_daemons_group_is_stopped_with_it() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&env_with(&[("FAKE_DAEMON_ESCAPE", "1")]), &[]);
    let start = nv.wait_start(1);
    nv.wait_events("the escaper", |ev| !escapers(ev).is_empty());
    let escaper = escapers(&nv.events())[0];
    let stat = std::fs::read_to_string(format!("/proc/{escaper}/stat")).unwrap();
    let pgrp: i32 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse().ok())
        .unwrap();
    assert_ne!(pgrp, start.pid, "the escaper really left the group");
    nv.stop();
    assert!(!alive(start.pid));
    assert!(!alive(escaper), "the escaped process outlived nymvisor");
    assert!(
        nv.events()
            .contains(&format!("signal pid={escaper} SIGTERM")),
        "{:?}",
        nv.events()
    );
}

#[test]
fn restarts_do_not_pile_up_escaped_copies() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_ESCAPE", "1"),
            ("FAKE_DAEMON_EXIT_AFTER_MS", "300"),
            ("FAKE_DAEMON_EXIT_CODE", "3"),
            ("DAEMON_MAX_STARTUP_FAILURES", "100"),
        ]),
        &[],
    );
    nv.wait_start(3);
    let events = nv.events();
    let third = events
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("start "))
        .nth(2)
        .unwrap()
        .0;
    let earlier = escapers(&events[..third]);
    assert_eq!(earlier.len(), 2, "{events:?}");
    for pid in earlier {
        assert!(
            !alive(pid),
            "the escaper {pid} of an earlier start still runs"
        );
    }
    nv.stop();
    assert!(escapers(&nv.events()).iter().all(|p| !alive(*p)));
}

#[test]
fn a_log_reader_started_by_the_shell_is_not_taken_for_the_daemon_s() {
    // `nymvisor run … 2> >(logger)`: bash starts the reader, then execs nymvisor, so the reader
    // is a child of nymvisor from the start. It is not the daemon's: an upgrade that stops the
    // daemon must leave it alone, or every later log line is lost (demo.sh lost them so).
    let home = TestHome::new();
    home.init_default("1.1.0");
    let log = home.path().join("through-the-reader.log");
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        let script = format!("exec \"$0\" \"$@\" 2> >(exec cat >> '{}')", log.display());
        let args = ["-c", script.as_str()].map(std::ffi::OsStr::new);
        let stderr = std::fs::File::create(home.path().join("bash.log")).unwrap();
        *cmd = wrapped_nymvisor(cmd, "bash", &args, stderr);
    });
    nv.wait_start(1);
    let mut readers = Vec::new();
    assert!(wait_for(PATIENCE, || {
        readers = children_named(nv.pid(), "cat");
        !readers.is_empty()
    }));
    let reader = readers[0];
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(PATIENCE, || read().contains("upgrade applied")),
        "nymvisor's lines after the stop no longer reach the reader:\n{}",
        read()
    );
    assert!(alive(reader), "the log reader was stopped with the daemon");
    assert!(!read().contains("left 1 process(es) behind"), "{}", read());
    nv.stop();
}

#[test]
fn a_daemon_that_daemonises_itself_is_reported_not_taken_for_done() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(&env_with(&[("FAKE_DAEMON_DAEMONIZE", "1")]), &[]);
    nv.wait_start(1);
    nv.wait_stderr("daemonised itself");
    let escaper = escapers(&nv.events())[0];
    assert!(
        nv.stderr().contains(&escaper.to_string()),
        "the log names the pid:\n{}",
        nv.stderr()
    );
    assert!(wait_for(PATIENCE, || !alive(escaper)));
    // a failure, not a clean end: the restart policy applies
    nv.wait_start(2);
    assert!(nv.running());
    nv.stop();
}

#[test]
fn group_members_left_behind_do_not_hold_an_upgrade_for_the_grace_period() {
    let home = TestHome::new();
    // a wrapper script whose background job ignores SIGINT, as in every non-interactive shell
    let body = "sleep 600 &\nexec @FAKE@ \"$@\"";
    let old = script_home(&home, "1.1.0", body);
    assert_success(&home.run(&[
        "init",
        old.to_str().unwrap(),
        "--daemon-home",
        home.daemon_home().to_str().unwrap(),
    ]));
    // the wrapper execs a binary outside the system directories, which the network helper's
    // sandbox would refuse to run for `build-info` (tests/e2e/sandbox.rs)
    let mut nv = home.spawn_run(
        &env_with(&[
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "60s"),
            ("NYMVISOR_NETWORK_HELPER", "false"),
        ]),
        &[],
    );
    let first = nv.wait_start(1);
    let mut sleeper = Vec::new();
    assert!(wait_for(PATIENCE, || {
        sleeper = children_named(first.pid, "sleep");
        !sleeper.is_empty()
    }));
    let new = script_home(&home, "1.2.0", body);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    // well inside the 60 s grace period (wait_start gives up after 20 s)
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    assert!(!alive(sleeper[0]));
    assert!(
        nv.stderr()
            .contains("left 1 process(es) behind: SIGTERM now"),
        "{}",
        nv.stderr()
    );
    nv.stop();
}

#[test]
fn a_second_stop_signal_kills_at_once() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_IGNORE", "TERM,INT"),
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "60s"),
        ]),
        &[],
    );
    let start = nv.wait_start(1);
    nv.signal(Signal::SIGTERM);
    let ignored = format!("signal pid={} SIGTERM ignored", start.pid);
    nv.wait_events("the first SIGTERM", |ev| ev.contains(&ignored));
    nv.signal(Signal::SIGTERM);
    // well inside the 60 s grace period (wait_exit gives up after 20 s)
    assert!(nv.wait_exit().success());
    assert!(!alive(start.pid));
    assert!(nv.stderr().contains("received again"), "{}", nv.stderr());
}

#[test]
fn a_stop_signal_while_an_upgrade_stops_the_daemon_abandons_the_upgrade() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(
        &env_with(&[
            ("FAKE_DAEMON_IGNORE", "INT"),
            ("DAEMON_SHUTDOWN_GRACE_PERIOD", "60s"),
        ]),
        &[],
    );
    let start = nv.wait_start(1);
    let new_bin = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new_bin, "v1.2.0", &["--now"]);
    let ignored = format!("signal pid={} SIGINT ignored", start.pid);
    nv.wait_events("the upgrade's SIGINT", |ev| ev.contains(&ignored));
    nv.signal(Signal::SIGTERM);
    assert!(nv.wait_exit().success(), "{}", nv.stderr());
    assert_eq!(nv.starts().len(), 1, "nothing was started after the stop");
    assert!(!alive(start.pid));
    assert_eq!(current_target(&home), "genesis");
    assert!(!data(&home).join("upgrade-journal.json").exists());
    let plan = read_json(&data(&home).join("upgrade-plan.json"));
    assert_eq!(plan["queuedUp"][0]["name"], "v1.2.0", "the upgrade waits");
}

#[test]
fn a_polling_rate_under_a_second_is_refused_naming_the_variable() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let out = home
        .nymvisor()
        .env("NYMVISOR_UPSTREAM_POLLING_RATE", "1ns")
        .arg("config")
        .output()
        .unwrap();
    assert_failure(&out, "NYMVISOR_UPSTREAM_POLLING_RATE");
    let out = home
        .nymvisor()
        .env("NYMVISOR_UPSTREAM_POLLING_RATE", "500ms")
        .arg("run")
        .output()
        .unwrap();
    assert_failure(&out, "once every 1s");
}

fn feed_env(server: &FeedServer) -> Vec<(&'static str, String)> {
    vec![
        ("NYMVISOR_UPSTREAM_SOURCE", "http".into()),
        (
            "NYMVISOR_UPSTREAM_BASE_UPGRADE_URL",
            format!("{}/", server.base()),
        ),
        ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s".into()),
    ]
}

fn spawn_feed(home: &TestHome, server: &FeedServer) -> RunHandle {
    let env = feed_env(server);
    let mut pairs: Vec<(&str, &str)> = FAST.to_vec();
    pairs.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    home.spawn_run(&pairs, &[])
}

#[test]
fn invalid_checksum_metadata_is_refused_before_the_download() {
    for (checksum, algorithm, why) in [
        (
            "a".repeat(64),
            "md5",
            "unsupported checksum algorithm \"md5\"",
        ),
        ("a".repeat(64), "", "has no checksumAlgorithm"),
        ("abcdef0123".to_owned(), "sha256", "is not 64 hex digits"),
        ("a".repeat(64), "sha512", "is not 128 hex digits"),
    ] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        let new = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
        server.route("/bin/nym-node", Reply::Body(std::fs::read(&new).unwrap()));
        let info = upgrade_info(
            "v1.2.0",
            "1.2.0",
            &format!("{}/bin/nym-node", server.base()),
            &checksum,
            algorithm,
        );
        server.route(
            "/nym-node/upgrade-info.json",
            Reply::Body(serde_json::to_vec(&info).unwrap()),
        );
        let mut nv = spawn_feed(&home, &server);
        nv.wait_start(1);
        nv.wait_stderr(why);
        assert!(
            !server.hits().iter().any(|h| h.starts_with("/bin/")),
            "{algorithm} {checksum}: the binary was fetched: {:?}",
            server.hits()
        );
        assert_eq!(nv.starts().len(), 1);
        nv.stop();
    }
}

#[test]
fn a_stale_binary_in_place_is_moved_aside_and_the_announced_one_fetched() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let release = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    server.route(
        "/bin/nym-node",
        Reply::Body(std::fs::read(&release).unwrap()),
    );
    let info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node", server.base()),
        &sha256_file(&release),
        "sha256",
    );
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    // left over from an earlier attempt: the same version, other bytes
    let bin_dir = data(&home).join("upgrades/v1.2.0/bin");
    stamp_fake_daemon(
        &bin_dir.join("nym-node"),
        "nym-node",
        "1.2.0",
        &["build=other"],
    );
    let mut nv = spawn_feed(&home, &server);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert!(nv.stderr().contains("moved it aside"), "{}", nv.stderr());
    assert!(server.hits().contains(&"/bin/nym-node".to_owned()));
    assert_eq!(
        sha256_file(&bin_dir.join("nym-node")),
        sha256_file(&release)
    );
    let stale: Vec<_> = std::fs::read_dir(&bin_dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("nym-node.stale-")
        })
        .collect();
    assert_eq!(stale.len(), 1);
    nv.stop();
}

#[test]
fn environment_values_that_are_not_utf8_reach_the_daemon() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let value = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1");
    let mut nv = home.spawn_run_cmd(FAST, &[], &[], |cmd| {
        cmd.env("NYM_LATIN1", value);
    });
    let start = nv.wait_start(1);
    let environ = std::fs::read(format!("/proc/{}/environ", start.pid)).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|kv| kv == b"NYM_LATIN1=caf\xe9-latin1"),
        "the daemon did not get the variable"
    );
    nv.stop();
}
