//! Operable in production: one configuration truth for the network helper (`-c` env files),
//! admin commands run by another user than the instance's owner, an upgrade whose record fails
//! is never applied twice, `--allow-downgrade` honoured by `run`, and a release fixed upstream
//! replacing the refused one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;

/// A release of the fake `nym-node` 1.2.0 served at `/bin/nym-node-1.2.0`; returns its sha256.
fn serve_release(home: &TestHome, server: &FeedServer) -> (Vec<u8>, String) {
    let bin = home.daemon_bin("release-1.2.0", "nym-node", "1.2.0", &[]);
    let bytes = std::fs::read(&bin).unwrap();
    server.route("/bin/nym-node-1.2.0", Reply::Body(bytes.clone()));
    (bytes, sha256_file(&bin))
}

/// Serves the feed of 1.2.0 with `checksum`; returns the document served.
fn serve_feed(server: &FeedServer, checksum: &str) -> Vec<u8> {
    let info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node-1.2.0", server.base()),
        checksum,
        "sha256",
    );
    let doc = serde_json::to_vec(&info).unwrap();
    server.route("/nym-node/upgrade-info.json", Reply::Body(doc.clone()));
    doc
}

fn feed_hits(server: &FeedServer) -> usize {
    server
        .hits()
        .iter()
        .filter(|h| h.ends_with("upgrade-info.json"))
        .count()
}

/// Everything the helper needs is only in the `-c` file: the source, the feed URL, the home
/// (the process environment points at an empty one) and the minisign key. The helper must poll
/// that feed of that instance and refuse the unsigned feed (signatures are required with a
/// key); once the feed and the binary are signed, the release is applied.
#[test]
fn the_network_helper_works_from_the_c_env_file() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let (bytes, sum) = serve_release(&home, &server);
    let feed_doc = serve_feed(&server, &sum);
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let env_file = home.path().join("node.env");
    std::fs::write(
        &env_file,
        format!(
            "NYM_HOME_DIR={}\nNYMVISOR_UPSTREAM_SOURCE=http\nNYMVISOR_UPSTREAM_BASE_UPGRADE_URL={}/\nNYMVISOR_UPSTREAM_POLLING_RATE=1s\nDAEMON_MINISIGN_PUBLIC_KEYS={}\n",
            home.nym_home().display(),
            server.base(),
            kp.pk.to_base64()
        ),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let env_arg = env_file.to_str().unwrap();
    let mut envs: Vec<(&str, &str)> = FAST.to_vec();
    envs.push(("NYM_HOME_DIR", elsewhere.path().to_str().unwrap()));
    let mut nv = home.spawn_run_with_args(&envs, &["-c", env_arg], &[]);
    nv.wait_start(1);
    nv.wait_stderr("the feed has no valid signature");
    assert!(
        feed_hits(&server) >= 1,
        "the helper never polled the feed of the -c file"
    );
    assert!(
        !nv.stderr().contains("no nymvisor instance"),
        "the helper looked for the instance elsewhere:\n{}",
        nv.stderr()
    );
    assert_eq!(nv.starts().len(), 1, "an unsigned binary was applied");
    assert!(
        nv.starts().iter().all(|s| s.version == "1.1.0"),
        "{}",
        nv.stderr()
    );

    // signed now (the feed and the binary): the next poll takes it
    let feed_sig = minisign::sign(
        Some(&kp.pk),
        &kp.sk,
        std::io::Cursor::new(&feed_doc),
        Some("timestamp:1"),
        None,
    )
    .unwrap()
    .to_string();
    let sig = minisign::sign(
        Some(&kp.pk),
        &kp.sk,
        std::io::Cursor::new(&bytes),
        Some("timestamp:1\tfile:nym-node-1.2.0\tversion:1.2.0"),
        None,
    )
    .unwrap()
    .to_string();
    server.route("/bin/nym-node-1.2.0.minisig", Reply::Body(sig.into_bytes()));
    server.route(
        "/nym-node/upgrade-info.json.minisig",
        Reply::Body(feed_sig.into_bytes()),
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    // recorded after the new daemon started
    nv.wait_stderr("upgrade applied");
    // and the admin commands find the instance through the same env file
    let mut status = home.nymvisor();
    status
        .env("NYM_HOME_DIR", elsewhere.path())
        .args(["-c", env_arg, "status"]);
    assert!(stdout(&status.output().unwrap()).contains("nym-node 1.2.0"));
    nv.stop();
}

/// `add-upgrade`, `hold`, `unhold`, `retry`, `cancel`, `rollback` and `backups restore` run by
/// another user than the owner of the instance's files refuse with one line naming the owner
/// and the command that works; run by the owner they work, and what they write is the owner's.
#[test]
fn admin_commands_refuse_another_user_than_the_owner() {
    if !two_users() {
        return;
    }
    let home = TestHome::new();
    home.init_default("1.1.0");
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    // the instance belongs to a service user (as after `sudo -u nym nymvisor init`)
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(home.nym_home())
        .arg(home.daemon_home())
        .status()
        .unwrap();
    assert!(status.success());
    let as_root = |args: &[&str]| home.run(args);
    let as_owner = |args: &[&str]| {
        let mut cmd = home.nymvisor();
        cmd.uid(NOBODY).gid(NOBODY).args(args);
        cmd.output().unwrap()
    };
    let new_path = new.to_str().unwrap();
    for args in [
        vec!["hold"],
        vec!["unhold"],
        vec!["add-upgrade", new_path, "--upgrade-name", "v1.2.0", "--now"],
        vec!["retry", "v1.2.0"],
        vec!["cancel", "v1.2.0"],
        vec!["rollback"],
        vec!["backups", "restore", "v1.2.0"],
    ] {
        let out = as_root(&args);
        assert!(!out.status.success(), "{args:?} succeeded as root");
        let err = stderr(&out);
        assert!(
            err.contains("belong to nobody") && err.contains("sudo -u nobody"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let data = home.data_dir("nym-node");
    let owned_by_nobody = |name: &str| {
        let meta = std::fs::metadata(data.join(name)).unwrap();
        assert_eq!(meta.uid(), NOBODY, "{name} is not the owner's");
    };
    assert!(!data.join("upgrade-hold.json").exists());
    // the owner can
    assert_success(&as_owner(&["hold", "--reason", "maintenance"]));
    owned_by_nobody("upgrade-hold.json");
    owned_by_nobody("upgrade-plan.lock");
    assert_success(&as_owner(&["unhold"]));
    let out = as_owner(&["add-upgrade", new_path, "--upgrade-name", "v1.2.0"]);
    assert_success(&out);
    owned_by_nobody("upgrade-plan.json");
    assert_success(&as_owner(&["cancel", "v1.2.0"]));
    // reading needs no ownership
    assert_success(&as_root(&["config"]));
    assert_eq!(as_root(&["status"]).status.code(), Some(3));
}

/// The plan cannot be written once the upgrade is in place (its lock is a directory now, as a
/// stand-in for any failure to record): the upgrade is applied once, the record is retried and
/// said so, and once it can be written it is; the daemon is never restarted into it again.
#[test]
fn an_upgrade_that_cannot_be_recorded_is_not_applied_again() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--upgrade-delay", "2s"]);
    let lock = home.data_dir("nym-node").join("upgrade-plan.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    assert_eq!(nv.wait_start(2).version, "1.2.0");
    nv.wait_stderr("could not be fully recorded");
    // several startup periods (1 s) later, still the one start of 1.2.0
    let stderr_len = nv.stderr().len();
    assert!(wait_for(PATIENCE, || nv.stderr().len() > stderr_len
        && nv.stderr().contains("upgrade confirmed")));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(nv.starts().len(), 2, "applied again:\n{}", nv.stderr());
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("could not be") && s.contains("1.2.0"), "{s}");
    // fixed: the record is written by the retry
    std::fs::remove_dir(&lock).unwrap();
    nv.wait_stderr("is recorded now");
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(plan["current"]["name"], "v1.2.0", "{plan}");
    assert_eq!(plan["queuedUp"].as_array().unwrap().len(), 0, "{plan}");
    assert_eq!(nv.starts().len(), 2);
    nv.stop();
}

/// `add-upgrade --allow-downgrade` is kept in the plan entry, and the running nymvisor applies
/// the older version.
#[test]
fn allow_downgrade_is_honoured_by_run() {
    let home = TestHome::new();
    home.init_default("1.2.0");
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_start(1);
    let old = home.daemon_bin("old", "nym-node", "1.1.0", &[]);
    let refused = home.run(&[
        "add-upgrade",
        old.to_str().unwrap(),
        "--upgrade-name",
        "back",
        "--now",
    ]);
    assert_failure(&refused, "not newer");
    home.add_upgrade(&old, "back", &["--now", "--allow-downgrade"]);
    assert_eq!(nv.wait_start(2).version, "1.1.0", "{}", nv.stderr());
    assert!(
        !nv.stderr().contains("pass --allow-downgrade"),
        "{}",
        nv.stderr()
    );
    nv.stop();
}

/// Upstream publishes 1.2.0 with a wrong checksum, then the right one: the refused entry is
/// replaced by the fixed release and applied, with no `retry`.
#[test]
fn a_release_fixed_upstream_replaces_the_refused_one() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let (_, sum) = serve_release(&home, &server);
    serve_feed(&server, &"ab".repeat(32));
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    nv.wait_start(1);
    nv.wait_stderr("checksum verification failed");
    serve_feed(&server, &sum);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert!(nv.stderr().contains("replaces it"), "{}", nv.stderr());
    let refusals = read_json(&home.data_dir("nym-node").join("upgrade-refusals.json"));
    assert_eq!(
        refusals["refusals"].as_array().unwrap().len(),
        0,
        "{refusals}"
    );
    nv.stop();
}

/// A feed cannot grant itself the operator's overrides: `immediate` (skip spread, windows and
/// hold) and `allowDowngrade` in a document are ignored.
#[test]
fn a_feed_cannot_set_the_operator_overrides() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    assert_success(&home.run(&["hold", "--reason", "freeze"]));
    let server = FeedServer::start();
    let (_, sum) = serve_release(&home, &server);
    let mut info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node-1.2.0", server.base()),
        &sum,
        "sha256",
    );
    info["immediate"] = true.into();
    info["allowDowngrade"] = true.into();
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    let mut nv = home.spawn_run_on_feed(&server, &[]);
    nv.wait_start(1);
    nv.wait_stderr("waits for the hold");
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    let queued = &plan["queuedUp"][0];
    assert_eq!(queued["name"], "v1.2.0", "{plan}");
    assert!(
        queued.get("immediate").is_none() && queued.get("allowDowngrade").is_none(),
        "{plan}"
    );
    assert_eq!(nv.starts().len(), 1);
    nv.stop();
}
