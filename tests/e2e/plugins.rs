//! Dynamic verifier plugins loaded by the real nymvisor: the example allow-list accepting and
//! refusing, and every failure mode of a plugin refusing the upgrade while the daemon keeps
//! running.

use nymvisor_tests::*;

fn with_plugin(
    plugin: &std::path::Path,
    extra: &[(&str, &str)],
    version: &str,
) -> (TestHome, RunHandle) {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut env = FAST.to_vec();
    let path = plugin.to_str().unwrap().to_owned();
    let path: &'static str = Box::leak(path.into_boxed_str());
    env.push(("NYMVISOR_PLUGIN_PATHS", path));
    env.push(("NYMVISOR_VERIFIER_TIMEOUT", "1s"));
    env.extend_from_slice(extra);
    let nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", version, &[]);
    home.add_upgrade(&new, "next", &["--now"]);
    (home, nv)
}

#[test]
fn example_plugin_accepts_allowed_versions() {
    let (_home, mut nv) = with_plugin(
        &plugin_lib("nymvisor-example-plugin"),
        &[("NYMVISOR_ALLOWED_VERSIONS", "1.2.0")],
        "1.2.0",
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
}

#[test]
fn example_plugin_refuses_other_versions() {
    let (home, mut nv) = with_plugin(
        &plugin_lib("nymvisor-example-plugin"),
        &[("NYMVISOR_ALLOWED_VERSIONS", "1.5.0")],
        "1.2.0",
    );
    nv.wait_stderr("is not in NYMVISOR_ALLOWED_VERSIONS");
    assert_eq!(nv.starts().len(), 1);
    assert_eq!(
        std::fs::read_link(home.data_dir("nym-node").join("current")).unwrap(),
        std::path::Path::new("genesis")
    );
    nv.stop();
}

#[test]
fn plugin_failures_refuse_the_upgrade_and_never_crash_nymvisor() {
    let misbehave = plugin_lib("nymvisor-test-plugin");
    let missing = std::env::temp_dir().join("no-such-nymvisor-plugin.so");
    let not_a_library = std::env::current_exe().unwrap();
    let cases: Vec<(&std::path::Path, &str, &str)> = vec![
        (&missing, "", "does not exist"),
        (&not_a_library, "", "cannot load"),
        (&misbehave, "abi", "ABI version 99"),
        (&misbehave, "panic", "the plugin panicked: deliberate panic"),
        (&misbehave, "hang", "no answer within 1s"),
        (&misbehave, "garbage", "not a verdict"),
    ];
    for (plugin, mode, needle) in cases {
        let (_home, mut nv) = with_plugin(plugin, &[("NYMVISOR_TEST_PLUGIN", mode)], "1.2.0");
        nv.wait_stderr(needle);
        assert!(nv.running(), "{mode}: nymvisor died");
        assert_eq!(nv.starts().len(), 1, "{mode}: the daemon was restarted");
        assert!(alive(nv.starts()[0].pid), "{mode}");
        nv.stop();
    }
}

#[test]
fn a_plugin_can_be_the_upstream_source() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let release = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    let sum = nymvisor_tests::feed::sha256_file(&release);
    let doc = nymvisor_tests::feed::upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("file://{}", release.display()),
        &sum,
        "sha256",
    );
    // next to the release, in the local mirror: the sandboxed network helper that calls the
    // plugin reads the system directories, the mirror and the plugin's own directory only
    let feed = release.parent().unwrap().join("plugin-feed.json");
    let plugin = plugin_lib("nymvisor-test-plugin");
    let mut env = FAST.to_vec();
    let (plugin_s, feed_s) = (
        plugin.to_str().unwrap().to_owned(),
        feed.to_str().unwrap().to_owned(),
    );
    // the plugin's file:// URLs are read inside the local mirror directory only
    let mirror = release.parent().unwrap().to_str().unwrap().to_owned();
    env.extend_from_slice(&[
        ("NYMVISOR_UPSTREAM_SOURCE", "plugin:test-plugin"),
        ("NYMVISOR_PLUGIN_PATHS", plugin_s.as_str()),
        ("NYMVISOR_TEST_PLUGIN_FEED", feed_s.as_str()),
        ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s"),
        ("NYMVISOR_LOCAL_MIRROR_DIRECTORY", mirror.as_str()),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    // nothing offered yet ("null"); then the plugin offers 1.2.0
    std::fs::write(&feed, serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert!(
        nv.stderr().contains("the source plugin `test-plugin`"),
        "{}",
        nv.stderr()
    );
    nv.stop();

    // a source name no plugin has: a clear error at start
    let out = home
        .nymvisor()
        .args(["run"])
        .env("NYMVISOR_UPSTREAM_SOURCE", "plugin:nope")
        .env("NYMVISOR_PLUGIN_PATHS", &plugin_s)
        .output()
        .unwrap();
    assert_failure(&out, "no plugin named `nope`");
}

/// Without the network helper a plugin still runs in a process of its own: one that aborts
/// takes only that process — nymvisor and the node run on, the upgrade waits ("not now") — also
/// across a restart with the upgrade due at start (the node starts first).
#[test]
fn an_aborting_plugin_never_takes_nymvisor_down_even_without_the_helper() {
    let (home, mut nv) = with_plugin(
        &plugin_lib("nymvisor-test-plugin"),
        &[
            ("NYMVISOR_NETWORK_HELPER", "false"),
            ("NYMVISOR_TEST_PLUGIN", "abort"),
        ],
        "1.2.0",
    );
    nv.wait_stderr("the plugin crashed or aborted");
    let first = nv.starts()[0].clone();
    assert!(nv.running() && alive(first.pid), "{}", nv.stderr());
    assert!(nv.stderr().contains("said not now"), "{}", nv.stderr());
    nv.stop();
    // the upgrade is due at start: the node starts first, the plugin aborts in its own process
    let path = plugin_lib("nymvisor-test-plugin");
    let mut env = FAST.to_vec();
    env.extend([
        ("NYMVISOR_PLUGIN_PATHS", path.to_str().unwrap()),
        ("NYMVISOR_NETWORK_HELPER", "false"),
        ("NYMVISOR_TEST_PLUGIN", "abort"),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    assert_eq!(nv.wait_start(1).version, "1.1.0");
    nv.wait_stderr("the plugin crashed or aborted");
    assert!(nv.running());
    nv.stop();
}

/// A verifier command that says "not now" (exit 75: its allow-list service is down) is asked
/// again with the backoff, and the upgrade goes through once it agrees — no `retry`; what it
/// said when it accepted is in the log with its name (the audit trail), and its request carries
/// the sha256 of an `add-upgrade` binary.
#[test]
fn not_now_is_asked_again_until_the_verifier_agrees() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let audit = home.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let flag = audit.join("service-up");
    let script = home.path().join("verifier/allow-list.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    write_executable(
        &script,
        format!(
            "#!/bin/sh\ncat > '{a}/request.json'\nif [ -e '{f}' ]; then echo 'sha256 on the allow-list' >&2; exit 0; fi\necho 'allow-list service down' >&2; exit 75\n",
            a = audit.display(),
            f = flag.display()
        )
        .as_bytes(),
    );
    let (cmd, writable) = (script.display().to_string(), audit.display().to_string());
    let mut env = FAST.to_vec();
    env.extend([
        ("NYMVISOR_VERIFIER_COMMANDS", cmd.as_str()),
        ("NYMVISOR_VERIFIER_WRITABLE_PATHS", writable.as_str()),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("said not now to `v1.2.0`");
    assert!(
        nv.stderr().contains("allow-list service down"),
        "{}",
        nv.stderr()
    );
    // the helper says it before the supervisor has recorded it
    assert!(
        wait_for(PATIENCE, || status_json(&home)["queued"][0]["state"]
            == "retrying"),
        "{}",
        status_json(&home)
    );
    std::fs::write(&flag, b"").unwrap();
    assert_eq!(
        nv.wait_start(2).version,
        "1.2.0",
        "not retried: {}",
        nv.stderr()
    );
    let log = nv.stderr();
    assert!(
        log.contains(&format!(
            "command {cmd} accepted `v1.2.0`: sha256 on the allow-list"
        )),
        "{log}"
    );
    let request = read_json(&audit.join("request.json"));
    assert_eq!(
        request["digests"]["sha256"],
        nymvisor_tests::feed::sha256_file(&new),
        "{request}"
    );
    nv.stop();
}

fn status_json(home: &TestHome) -> serde_json::Value {
    serde_json::from_slice(&home.run(&["status", "-o", "json"]).stdout).unwrap()
}

/// A plugin's own process (`nymvisor __plugin`, without the helper) gets the resolved
/// environment without the GitHub token, like verifier commands.
#[test]
fn the_github_token_never_reaches_a_plugin_s_process() {
    let (_home, mut nv) = with_plugin(
        &plugin_lib("nymvisor-test-plugin"),
        &[
            ("NYMVISOR_NETWORK_HELPER", "false"),
            ("NYMVISOR_TEST_PLUGIN", "no-token"),
            ("GITHUB_TOKEN", "ghp_secret"),
        ],
        "1.2.0",
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    eprintln!("{}", nv.stderr());
    nv.stop();
}
