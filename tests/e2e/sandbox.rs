//! The network helper's sandbox, seen from inside: a verifier command (which the helper runs)
//! tries to write outside its staging directory, read the node's key and touch nymvisor's own
//! files, and reports what it could do. The same command run without the helper shows the test
//! can tell the difference.

use std::path::Path;

use nymvisor_tests::*;

/// A verifier command that tries things and writes what happened next to the candidate binary
/// (its staging directory), then accepts the upgrade.
fn prober(home: &TestHome) -> std::path::PathBuf {
    let dir = home.path().join("verifier");
    std::fs::create_dir_all(&dir).unwrap();
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

fn report(home: &TestHome, env: &[(&str, &str)]) -> String {
    home.init_default("1.1.0");
    let keys = home.daemon_home().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("id.key"), "the node's private key").unwrap();
    let probe = prober(home);
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
    assert_eq!(
        report,
        "staging-write: allowed\ntmp-write: allowed\nhome-write: denied\nkey-read: denied\nhome-list: denied\ndata-write: denied\n"
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
        "staging-write: allowed\ntmp-write: allowed\nhome-write: allowed\nkey-read: allowed\nhome-list: allowed\ndata-write: allowed\n"
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
    assert!(log.contains("NYMVISOR_NETWORK_HELPER=false"), "{log}");
    assert_eq!(nv.starts().len(), 1, "the node runs on");
    nv.stop();
}
