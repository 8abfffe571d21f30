//! The network helper's sandbox, seen from inside: a verifier command (which the helper runs)
//! tries to write outside its staging directory, read the node's key and touch nymvisor's own
//! files, and reports what it could do. The same command run without the helper shows the test
//! can tell the difference.

use std::path::Path;

use nymvisor_tests::*;

/// A verifier command that tries things and writes what happened next to the candidate binary
/// (its staging directory), then accepts the upgrade. `outside` is a process outside the
/// sandbox it tries to signal.
fn prober(home: &TestHome, outside: u32) -> std::path::PathBuf {
    prober_in(home, &home.path().join("verifier"), outside, "")
}

/// [`prober`] in `dir`, with `extra` tries.
fn prober_in(home: &TestHome, dir: &Path, outside: u32, extra: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        r#"#!/bin/sh
bin=$(sed -n 's/.*"binaryPath":"\([^"]*\)".*/\1/p')
dir=$(dirname "$bin")
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "$1: allowed"; else echo "$1: denied"; fi; }}
{{
  try staging-write "echo x > '$dir/written-by-verifier'"
  try tmp-write 'f=$(mktemp) && echo x > "$f"'
  try home-write "echo pwned > '{home}/pwned'"
  try key-read "cat '{home}/keys/id.key'"
  try home-list "ls '{home}'"
  try data-write "touch '{data}/sandbox-probe'"
  try signal-outside "kill -0 {outside}"
{extra}
}} > "$dir/sandbox-report"
exit 0
"#,
        home = home.daemon_home().display(),
        data = home.data_dir("nym-node").display(),
    );
    let path = dir.join("probe.sh");
    write_executable(&path, script.as_bytes());
    path
}

/// A process outside any sandbox, for the verifier to try to signal.
fn outsider() -> ChildGuard {
    ChildGuard(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap(),
    )
}

fn report(home: &TestHome, env: &[(&str, &str)]) -> String {
    let outside = outsider();
    let probe = prober(home, outside.0.id());
    report_with(home, &probe, env)
}

/// What `probe` reported from one upgrade with `env`.
fn report_with(home: &TestHome, probe: &Path, env: &[(&str, &str)]) -> String {
    home.init_default("1.1.0");
    let keys = home.daemon_home().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("id.key"), "the node's private key").unwrap();
    let mut all = FAST.to_vec();
    all.push(("NYMVISOR_VERIFIER_COMMANDS", probe.to_str().unwrap()));
    all.extend_from_slice(env);
    let log = home.run_one_upgrade(&all);
    let path = home
        .data_dir("nym-node")
        .join("upgrades/v1.2.0/bin/sandbox-report");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}\n{log}", path.display()))
}

#[test]
fn the_helper_cannot_write_outside_its_staging_directory_nor_read_the_node_s_data() {
    if !prerequisite(
        nymvisor_core::sandbox::landlock_abi().is_some(),
        "this kernel has no Landlock",
    ) {
        return;
    }
    let home = TestHome::new();
    let report = report(&home, &[]);
    // signal scoping came with Landlock ABI 6 (Linux 6.12)
    let scoped = nymvisor_core::sandbox::landlock_abi().is_some_and(|abi| abi >= 6);
    assert_eq!(
        report,
        format!(
            "staging-write: allowed\ntmp-write: allowed\nhome-write: denied\nkey-read: denied\nhome-list: denied\ndata-write: denied\nsignal-outside: {}\n",
            if scoped { "denied" } else { "allowed" }
        )
    );
    assert!(!home.daemon_home().join("pwned").exists());
    assert!(!Path::new(&home.data_dir("nym-node").join("sandbox-probe")).exists());
    // each job's TMPDIR is gone with the job
    let tmp = home.data_dir("nym-node").join(".helper-tmp");
    assert!(!tmp.exists(), "{}", tmp.display());
}

#[test]
fn without_the_helper_the_same_command_reaches_everything() {
    let home = TestHome::new();
    let report = report(&home, &[("NYMVISOR_NETWORK_HELPER", "false")]);
    assert_eq!(
        report,
        "staging-write: allowed\ntmp-write: allowed\nhome-write: allowed\nkey-read: allowed\nhome-list: allowed\ndata-write: allowed\nsignal-outside: allowed\n"
    );
    assert!(home.daemon_home().join("pwned").exists());
}

#[test]
fn a_candidate_reaching_outside_the_sandbox_is_refused_with_a_hint() {
    if !prerequisite(
        nymvisor_core::sandbox::landlock_abi().is_some(),
        "this kernel has no Landlock",
    ) {
        return;
    }
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    // a wrapper script whose real binary lies outside what the sandbox may run
    let fake = home.daemon_bin("elsewhere", "nym-node", "1.2.0", &[]);
    let wrapper = script_daemon(
        &home.path().join("bins/wrapper-1.2.0"),
        &fake,
        &format!("exec \"{}\" \"$@\"", fake.display()),
    );
    home.add_upgrade(&wrapper, "v1.2.0", &["--now"]);
    nv.wait_stderr("cannot apply upgrade `v1.2.0`");
    let log = nv.stderr();
    assert!(log.contains("Permission denied"), "{log}");
    assert!(log.contains("NYMVISOR_VERIFIER_READABLE_PATHS"), "{log}");
    assert_eq!(nv.starts().len(), 1, "the node runs on");
    nv.stop();
}

/// A verifier kept in a directory that also holds the node's home (e.g. `/var/lib/nym`) is
/// granted its own file, not that directory: the keys stay out of reach. Paths the operator
/// opens for it (a config to read, an audit directory to write) are reachable.
#[test]
fn a_verifier_gets_its_own_file_and_the_paths_opened_for_it_only() {
    if !prerequisite(
        nymvisor_core::sandbox::landlock_abi().is_some(),
        "this kernel has no Landlock",
    ) {
        return;
    }
    let home = TestHome::new();
    let outside = outsider();
    let audit = home.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let settings = home.path().join("allow-list.conf");
    std::fs::write(&settings, "sha256 allowed\n").unwrap();
    // the verifier lies right next to the daemon home
    let extra = format!(
        "  try audit-write \"echo accepted >> '{}/decisions.log'\"\n  try settings-read \"cat '{}'\"",
        audit.display(),
        settings.display()
    );
    let probe = prober_in(&home, home.path(), outside.0.id(), &extra);
    let readable = settings.display().to_string();
    let writable = audit.display().to_string();
    let report = report_with(
        &home,
        &probe,
        &[
            ("NYMVISOR_VERIFIER_READABLE_PATHS", readable.as_str()),
            ("NYMVISOR_VERIFIER_WRITABLE_PATHS", writable.as_str()),
        ],
    );
    assert!(report.contains("key-read: denied"), "{report}");
    assert!(report.contains("home-list: denied"), "{report}");
    assert!(report.contains("audit-write: allowed"), "{report}");
    assert!(report.contains("settings-read: allowed"), "{report}");
    assert_eq!(
        std::fs::read_to_string(audit.join("decisions.log")).unwrap(),
        "accepted\n"
    );
}

/// Opening the node's home (or what contains it, or nymvisor's state) to verifiers is refused,
/// naming the variable.
#[test]
fn opening_the_node_s_data_to_verifiers_is_refused() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    for (var, value) in [
        (
            "NYMVISOR_VERIFIER_READABLE_PATHS",
            home.path().to_path_buf(),
        ),
        (
            "NYMVISOR_VERIFIER_WRITABLE_PATHS",
            home.daemon_home().join("keys"),
        ),
    ] {
        let out = home
            .nymvisor()
            .env(var, &value)
            .arg("config")
            .output()
            .unwrap();
        assert_failure(&out, var);
        assert!(stderr(&out).contains("daemon home"), "{}", stderr(&out));
    }
    let out = home
        .nymvisor()
        .env("NYMVISOR_VERIFIER_WRITABLE_PATHS", home.nymvisors())
        .arg("run")
        .output()
        .unwrap();
    assert_failure(&out, "NYMVISOR_VERIFIER_WRITABLE_PATHS");
    assert!(stderr(&out).contains("nymvisor's"), "{}", stderr(&out));
}
