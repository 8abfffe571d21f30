//! Upgrades found by polling a source: the HTTP feed (served by a misbehaving local server) and
//! a local directory mirror; and everything a hostile feed can do, which must leave the daemon
//! running and nothing unverified in place.

use nymvisor_tests::feed::{FeedServer, Reply, sha256_file, upgrade_info};
use nymvisor_tests::*;

fn http_env(server: &FeedServer) -> Vec<(String, String)> {
    vec![
        ("NYMVISOR_UPSTREAM_SOURCE".into(), "http".into()),
        (
            "NYMVISOR_UPSTREAM_BASE_UPGRADE_URL".into(),
            format!("{}/", server.base()),
        ),
        ("NYMVISOR_UPSTREAM_POLLING_RATE".into(), "1s".into()),
        ("DAEMON_STARTUP_PERIOD_DURATION".into(), "1s".into()),
        ("DAEMON_FAILURE_RESTART_DELAY".into(), "100ms".into()),
        ("NYMVISOR_HTTP_IDLE_TIMEOUT".into(), "1s".into()),
        ("NYMVISOR_HTTP_DOCUMENT_TIMEOUT".into(), "3s".into()),
        ("NYMVISOR_HTTP_DOWNLOAD_TIMEOUT".into(), "5s".into()),
    ]
}

fn spawn(home: &TestHome, env: &[(String, String)]) -> RunHandle {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    home.spawn_run(&pairs, &["run"])
}

/// Asserts no binary and no temporary file was left for `name`.
fn nothing_installed(home: &TestHome, name: &str) {
    let bin_dir = home
        .data_dir("nym-node")
        .join("upgrades")
        .join(name)
        .join("bin");
    let leftovers: Vec<_> = std::fs::read_dir(&bin_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "left in {}: {leftovers:?}",
        bin_dir.display()
    );
}

fn current(home: &TestHome) -> String {
    std::fs::read_link(home.data_dir("nym-node").join("current"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn upgrades_from_the_http_feed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let new = home.daemon_bin("release", "nym-node", "1.2.0", &[]);
    server.route(
        "/bin/nym-node-1.2.0",
        Reply::Body(std::fs::read(&new).unwrap()),
    );
    let info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        &format!("{}/bin/nym-node-1.2.0", server.base()),
        &sha256_file(&new).to_uppercase(),
        "sha256",
    );
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info).unwrap()),
    );
    let mut nv = spawn(&home, &http_env(&server));
    nv.wait_start(1);
    let started = nv.wait_start(2);
    assert_eq!(started.version, "1.2.0", "{}", nv.stderr());
    assert_eq!(current(&home), "upgrades/v1.2.0");
    let installed = home
        .data_dir("nym-node")
        .join("upgrades/v1.2.0/bin/nym-node");
    assert_eq!(
        std::fs::read(installed).unwrap(),
        std::fs::read(&new).unwrap()
    );
    // downloaded and verified while the old daemon ran: the stop came after the download line
    let log = nv.stderr();
    assert!(
        !log.contains('\r') && !log.contains("MiB/s"),
        "no progress display in a non-interactive log:\n{log}"
    );
    let (dl, stop) = (log.find("stage=\"download\""), log.find("stage=\"stop\""));
    assert!(dl.is_some() && stop.is_some() && dl < stop, "{log}");
    // polled again afterwards without queueing the same release twice
    nv.wait_events("more polls", |_| {
        server
            .hits()
            .iter()
            .filter(|h| h.ends_with("upgrade-info.json"))
            .count()
            >= 4
    });
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(plan["queuedUp"], serde_json::json!([]));
    nv.stop();
}

#[test]
fn upgrades_from_a_local_mirror() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let mirror = home.path().join("mirror");
    std::fs::create_dir_all(mirror.join("nym-node/bin")).unwrap();
    let new = stamp_fake_daemon(
        &mirror.join("nym-node/bin/nym-node-1.2.0"),
        "nym-node",
        "1.2.0",
        &[],
    );
    let info = upgrade_info(
        "v1.2.0",
        "1.2.0",
        "bin/nym-node-1.2.0",
        &sha256_file(&new),
        "sha256",
    );
    let env = vec![
        ("NYMVISOR_UPSTREAM_SOURCE".to_owned(), "local".to_owned()),
        (
            "NYMVISOR_LOCAL_MIRROR_DIRECTORY".to_owned(),
            mirror.display().to_string(),
        ),
        ("NYMVISOR_UPSTREAM_POLLING_RATE".to_owned(), "1s".to_owned()),
    ];
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    // publish: written under a temporary name, then renamed, like a mirror sync would
    std::fs::write(
        mirror.join("nym-node/.tmp"),
        serde_json::to_vec(&info).unwrap(),
    )
    .unwrap();
    std::fs::rename(
        mirror.join("nym-node/.tmp"),
        mirror.join("nym-node/upgrade-info.json"),
    )
    .unwrap();
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert_eq!(current(&home), "upgrades/v1.2.0");
    nv.stop();
}

/// Runs nymvisor against a feed offering `info` (binary served as `reply`), waits for `needle`
/// in its log, and checks the daemon kept running and nothing was installed.
fn refused(info: serde_json::Value, reply: Reply, needle: &str, extra_env: &[(&str, &str)]) {
    refused_signed(info, reply, needle, extra_env, None);
}

/// [`refused`] with the feed document signed by `feed_signer` (required with keys configured).
fn refused_signed(
    info: serde_json::Value,
    reply: Reply,
    needle: &str,
    extra_env: &[(&str, &str)],
    feed_signer: Option<&minisign::KeyPair>,
) {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    server.route("/bin/nym-node-1.2.0", reply);
    let doc = serde_json::to_vec(&info).unwrap();
    if let Some(kp) = feed_signer {
        server.route(
            "/nym-node/upgrade-info.json.minisig",
            Reply::Body(sign(kp, &doc, "timestamp:1")),
        );
    }
    server.route("/nym-node/upgrade-info.json", Reply::Body(doc));
    let mut env = http_env(&server);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut nv = spawn(&home, &env);
    let start = nv.wait_start(1);
    nv.wait_stderr(needle);
    assert!(
        nv.running() && alive(start.pid),
        "the daemon must keep running"
    );
    assert_eq!(
        nv.starts().len(),
        1,
        "the daemon was restarted:\n{}",
        nv.stderr()
    );
    assert_eq!(current(&home), "genesis");
    if let Some(name) = info["name"].as_str().filter(|n| !n.contains('/')) {
        nothing_installed(&home, name);
    }
    nv.stop();
}

fn release(home_bin: &std::path::Path) -> (Vec<u8>, String) {
    (std::fs::read(home_bin).unwrap(), sha256_file(home_bin))
}

fn sample_release() -> (tempfile::TempDir, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = stamp_fake_daemon(&dir.path().join("nym-node"), "nym-node", "1.2.0", &[]);
    let (bytes, sum) = release(&bin);
    (dir, bytes, sum)
}

const URL: &str = "/bin/nym-node-1.2.0";

fn info_for(base_url: &str, checksum: &str) -> serde_json::Value {
    upgrade_info("v1.2.0", "1.2.0", base_url, checksum, "sha256")
}

#[test]
fn wrong_checksum_is_refused() {
    let (_d, bytes, _) = sample_release();
    refused(
        info_for(URL, &"ab".repeat(32)),
        Reply::Body(bytes),
        "checksum verification failed",
        &[],
    );
}

#[test]
fn missing_checksum_is_refused_when_enforced() {
    let (_d, bytes, _) = sample_release();
    refused(
        info_for(URL, ""),
        Reply::Body(bytes),
        "has no checksum",
        &[],
    );
}

#[test]
fn feed_errors_are_not_parsed() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    server.route("/nym-node/upgrade-info.json", Reply::Status(500));
    let mut nv = spawn(&home, &http_env(&server));
    let start = nv.wait_start(1);
    nv.wait_stderr("HTTP 500");
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(b"{not json".to_vec()),
    );
    nv.wait_stderr("not a valid upgrade-info document");
    assert!(nv.running() && alive(start.pid));
    nv.stop();
}

#[test]
fn binary_404_is_retried_not_applied() {
    refused(
        info_for(URL, &"ab".repeat(32)),
        Reply::Status(404),
        "HTTP 404",
        &[],
    );
}

#[test]
fn endless_body_hits_the_size_cap() {
    refused(
        info_for(URL, &"ab".repeat(32)),
        Reply::Endless,
        "cap",
        &[("NYMVISOR_MAX_BINARY_SIZE", "3000000")],
    );
}

#[test]
fn stalled_download_times_out() {
    refused(
        info_for(URL, &"ab".repeat(32)),
        Reply::Stall(30),
        "timed out",
        &[],
    );
}

#[test]
fn body_longer_than_content_length_is_cut_and_fails_verification() {
    let (_d, bytes, sum) = sample_release();
    let mut body = bytes.clone();
    body.extend_from_slice(b"trailing garbage");
    refused(
        info_for(URL, &sum),
        Reply::Overlong {
            body,
            declared: bytes.len() - 10,
        },
        "checksum verification failed",
        &[],
    );
}

#[test]
fn redirect_loop_is_refused() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    for i in 0..10 {
        server.route(
            &format!("/loop{i}"),
            Reply::Redirect(format!("{}/loop{}", server.base(), i + 1)),
        );
    }
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Redirect(format!("{}/loop0", server.base())),
    );
    let mut nv = spawn(&home, &http_env(&server));
    nv.wait_start(1);
    nv.wait_stderr("redirect");
    assert!(
        server
            .hits()
            .iter()
            .filter(|h| h.starts_with("/loop"))
            .count()
            <= 6,
        "{:?}",
        server.hits()
    );
    nv.stop();
}

#[test]
fn hostile_names_and_downgrades_are_not_queued() {
    for (name, version, needle) in [("../../etc", "1.2.0", "unsafe name"), ("old", "1.0.0", "")] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        let info = upgrade_info(name, version, URL, &"ab".repeat(32), "sha256");
        server.route(
            "/nym-node/upgrade-info.json",
            Reply::Body(serde_json::to_vec(&info).unwrap()),
        );
        let mut nv = spawn(&home, &http_env(&server));
        nv.wait_start(1);
        if needle.is_empty() {
            nv.wait_events("two polls", |_| server.hits().len() >= 2);
        } else {
            nv.wait_stderr(needle);
        }
        let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
        assert_eq!(plan["queuedUp"], serde_json::json!([]), "{name}");
        assert!(!home.nymvisors().join("data/etc").exists());
        assert!(
            !server.hits().iter().any(|h| h.starts_with("/bin")),
            "nothing is downloaded"
        );
        nv.stop();
    }
}

#[test]
fn trickling_download_completes() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    // a tiny "binary" that trickles in under the idle timeout: it fails build-info, not the download
    let body = b"#!/bin/sh\nexit 1\n".to_vec();
    let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    server.route(URL, Reply::Trickle(body, 20));
    server.route(
        "/nym-node/upgrade-info.json",
        Reply::Body(serde_json::to_vec(&info_for(URL, &sum)).unwrap()),
    );
    let mut nv = spawn(&home, &http_env(&server));
    let start = nv.wait_start(1);
    nv.wait_stderr("could not read the build information");
    assert!(
        nv.stderr().contains("stage=\"download\""),
        "{}",
        nv.stderr()
    );
    assert!(alive(start.pid));
    nothing_installed(&home, "v1.2.0");
    nv.stop();
}

/// A key pair, its public key in base64, and a signer with a chosen trusted comment.
fn signer() -> (minisign::KeyPair, String) {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let pk = kp.pk.to_base64();
    (kp, pk)
}

fn sign(kp: &minisign::KeyPair, data: &[u8], trusted: &str) -> Vec<u8> {
    minisign::sign(
        Some(&kp.pk),
        &kp.sk,
        std::io::Cursor::new(data),
        Some(trusted),
        None,
    )
    .unwrap()
    .to_string()
    .into_bytes()
}

#[test]
fn signed_release_is_accepted_and_bad_signatures_refused() {
    let (kp, pk) = signer();
    let (other, _) = signer();
    let (_d, bytes, sum) = sample_release();
    let sig_url = format!("{URL}.minisig");
    // 1. a valid signature: upgraded
    {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        serve_signed_release(&server, &kp, &bytes);
        let doc = serde_json::to_vec(&info_for(URL, &sum)).unwrap();
        // with keys, signatures are required: of the feed too
        serve_signed_doc(&server, &kp, doc);
        let mut env = http_env(&server);
        env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
        let mut nv = spawn(&home, &env);
        assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
        assert!(server.hits().contains(&sig_url));
        nv.stop();
    }
    let keys = [("DAEMON_MINISIGN_PUBLIC_KEYS", pk.as_str())];
    // 2. no signature while keys are configured
    refused_signed(
        info_for(URL, &sum),
        Reply::Body(bytes.clone()),
        "no signature at",
        &keys,
        Some(&kp),
    );
    // 3. signed by a key that is not trusted, 4. a signature of other bytes, 5. a replayed
    //    signature of another version: each refused (served through a custom signature URL)
    for (sig, needle) in [
        (
            sign(&other, &bytes, "timestamp:1"),
            "no configured public key matches",
        ),
        (
            sign(&kp, b"other bytes", "timestamp:1"),
            "does not match the binary",
        ),
        (sign(&kp, &bytes, "timestamp:1\tversion:1.1.9"), "not 1.2.0"),
    ] {
        let mut info = info_for(URL, &sum);
        let platform = info["platforms"]
            .as_object_mut()
            .unwrap()
            .values_mut()
            .next()
            .unwrap();
        platform["signatureUrl"] = "/sig/custom.minisig".into();
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        server.route(URL, Reply::Body(bytes.clone()));
        server.route("/sig/custom.minisig", Reply::Body(sig));
        let doc = serde_json::to_vec(&info).unwrap();
        serve_signed_doc(&server, &kp, doc);
        let mut env = http_env(&server);
        env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
        let mut nv = spawn(&home, &env);
        let start = nv.wait_start(1);
        nv.wait_stderr(needle);
        assert!(alive(start.pid) && nv.starts().len() == 1);
        nothing_installed(&home, "v1.2.0");
        nv.stop();
    }
}

#[test]
fn local_mirror_refuses_symlinks_and_paths_out_of_the_mirror() {
    for (url, needle) in [
        ("bin/link", "symlink"),
        ("../../outside/nym-node", "is outside the mirror"),
    ] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let mirror = home.path().join("mirror");
        std::fs::create_dir_all(mirror.join("nym-node/bin")).unwrap();
        let real = stamp_fake_daemon(
            &home.path().join("outside/nym-node"),
            "nym-node",
            "1.2.0",
            &[],
        );
        std::os::unix::fs::symlink(&real, mirror.join("nym-node/bin/link")).unwrap();
        let info = upgrade_info("v1.2.0", "1.2.0", url, &sha256_file(&real), "sha256");
        std::fs::write(
            mirror.join("nym-node/upgrade-info.json"),
            serde_json::to_vec(&info).unwrap(),
        )
        .unwrap();
        let env = vec![
            ("NYMVISOR_UPSTREAM_SOURCE".to_owned(), "local".to_owned()),
            (
                "NYMVISOR_LOCAL_MIRROR_DIRECTORY".to_owned(),
                mirror.display().to_string(),
            ),
            ("NYMVISOR_UPSTREAM_POLLING_RATE".to_owned(), "1s".to_owned()),
        ];
        let mut nv = spawn(&home, &env);
        let start = nv.wait_start(1);
        nv.wait_stderr(needle);
        assert!(alive(start.pid) && nv.starts().len() == 1, "{url}");
        nothing_installed(&home, "v1.2.0");
        nv.stop();
    }
}

#[test]
fn feed_document_with_a_bad_signature_is_not_queued() {
    let (kp, pk) = signer();
    let (_d, bytes, sum) = sample_release();
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    let doc = serde_json::to_vec(&info_for(URL, &sum)).unwrap();
    server.route(URL, Reply::Body(bytes.clone()));
    server.route(
        &format!("{URL}.minisig"),
        Reply::Body(sign(&kp, &bytes, "timestamp:1")),
    );
    server.route("/nym-node/upgrade-info.json", Reply::Body(doc.clone()));
    // the document's signature covers other bytes
    server.route(
        "/nym-node/upgrade-info.json.minisig",
        Reply::Body(sign(&kp, b"another document", "timestamp:1")),
    );
    let mut env = http_env(&server);
    env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
    let mut nv = spawn(&home, &env);
    let start = nv.wait_start(1);
    nv.wait_stderr("feed document's signature");
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(plan["queuedUp"], serde_json::json!([]));
    assert!(alive(start.pid) && nv.starts().len() == 1);
    // once the document is signed properly, it is queued and applied
    server.route(
        "/nym-node/upgrade-info.json.minisig",
        Reply::Body(sign(&kp, &doc, "timestamp:1")),
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
}

/// With signatures required, the feed's own signature is required too: missing, over the cap
/// or answering 500, the feed is refused — nothing from it is queued, `status` and the metrics
/// say so — even when the binary it points to is validly signed (a rewritten `manual: true`
/// would stop the node). Once a valid signature is served, the release is applied.
#[test]
fn with_signatures_required_an_unsigned_feed_is_never_used() {
    let (kp, pk) = signer();
    let (_d, bytes, sum) = sample_release();
    let mut info = info_for(URL, &sum);
    info["manual"] = true.into();
    let doc = serde_json::to_vec(&info).unwrap();
    for (name, feed_sig) in [
        ("missing", None),
        ("over the cap", Some(Reply::Body(vec![b'x'; 70 * 1024]))),
        ("HTTP 500", Some(Reply::Status(500))),
    ] {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        serve_signed_release(&server, &kp, &bytes);
        server.route("/nym-node/upgrade-info.json", Reply::Body(doc.clone()));
        if let Some(reply) = feed_sig {
            server.route("/nym-node/upgrade-info.json.minisig", reply);
        }
        let mut env = http_env(&server);
        env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
        env.push(("NYMVISOR_METRICS_ADDRESS".into(), "127.0.0.1:0".into()));
        let mut nv = spawn(&home, &env);
        nv.wait_start(1);
        nv.wait_stderr("the feed has no valid signature");
        let polls = server.hits().len();
        assert!(wait_for(PATIENCE, || server.hits().len() >= polls + 2));
        assert_eq!(nv.starts().len(), 1, "{name}: {}", nv.stderr());
        let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
        assert_eq!(
            plan["queuedUp"],
            serde_json::json!([]),
            "{name}: queued from an unsigned feed"
        );
        let s = stdout(&home.run(&["status"]));
        assert!(s.contains("feed:          refused"), "{name}: {s}");
        assert!(nv.running(), "{name}");
        nv.stop();
    }
    // signed: applied (not manual: the signature covers the document as it is)
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    serve_signed_release(&server, &kp, &bytes);
    let doc = serde_json::to_vec(&info_for(URL, &sum)).unwrap();
    serve_signed_doc(&server, &kp, doc);
    let mut env = http_env(&server);
    env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
    let mut nv = spawn(&home, &env);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert!(
        nv.stderr().contains("is signed by the trusted key"),
        "{}",
        nv.stderr()
    );
    nv.stop();
}

/// A local mirror whose directory is gone (an unmounted share) is a failed poll, not a quiet
/// one; keys are checked where the other settings are.
#[test]
fn a_missing_mirror_fails_and_bad_keys_are_refused_early() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let gone = home.path().join("mirror-not-mounted");
    let gone_s = gone.display().to_string();
    let mut nv = home.spawn_run(
        &[
            ("NYMVISOR_UPSTREAM_SOURCE", "local"),
            ("NYMVISOR_LOCAL_MIRROR_DIRECTORY", gone_s.as_str()),
            ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s"),
        ],
        &[],
    );
    nv.wait_start(1);
    nv.wait_stderr("does not exist (an unmounted share?)");
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("does not exist"), "{s}");
    nv.stop();
    for (var, value, needle) in [
        (
            "DAEMON_MINISIGN_PUBLIC_KEYS",
            "/etc/nym/minisign.pub",
            "not a minisign public key",
        ),
        (
            "DAEMON_REQUIRE_SIGNATURE",
            "true",
            "no DAEMON_MINISIGN_PUBLIC_KEYS",
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
}

/// A feed document and its signature by `kp`, at the HTTP source's feed path.
fn serve_signed_doc(server: &FeedServer, kp: &minisign::KeyPair, doc: Vec<u8>) {
    server.route(
        "/nym-node/upgrade-info.json.minisig",
        Reply::Body(sign(kp, &doc, "timestamp:1")),
    );
    server.route("/nym-node/upgrade-info.json", Reply::Body(doc));
}

/// The sample release and its signature, at [`URL`].
fn serve_signed_release(server: &FeedServer, kp: &minisign::KeyPair, bytes: &[u8]) {
    server.route(URL, Reply::Body(bytes.to_vec()));
    server.route(
        &format!("{URL}.minisig"),
        Reply::Body(sign(
            kp,
            bytes,
            "timestamp:1\tfile:nym-node-1.2.0\tversion:1.2.0",
        )),
    );
}

/// A signed feed served with `expires` and `sequence` in it, signed by `kp`.
fn serve_signed_feed(
    server: &FeedServer,
    kp: &minisign::KeyPair,
    mut info: serde_json::Value,
    expires: time::OffsetDateTime,
    sequence: u64,
) {
    info["expires"] = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    info["sequence"] = sequence.into();
    let doc = serde_json::to_vec(&info).unwrap();
    serve_signed_doc(server, kp, doc);
}

/// A feed signed an hour "in the future" says this machine's clock is behind (a warning; the
/// feed is still used and the node keeps running).
#[test]
fn a_feed_signed_ahead_of_this_clock_is_reported_and_still_used() {
    let (kp, pk) = signer();
    let (_d, bytes, sum) = sample_release();
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    serve_signed_release(&server, &kp, &bytes);
    let now = time::OffsetDateTime::now_utc();
    let mut info = info_for(URL, &sum);
    info["signedAt"] = (now + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    serve_signed_feed(&server, &kp, info, now + time::Duration::days(7), 1);
    let mut env = http_env(&server);
    env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.wait_stderr("ahead of this machine's clock");
    // said once, however many polls saw it (each with its own time of the clock)
    let polls = server.hits().len();
    assert!(wait_for(PATIENCE, || server.hits().len() >= polls + 4));
    assert_eq!(
        nv.stderr().matches("ahead of this machine's clock").count(),
        1
    );
    nv.stop();
}

/// With signatures required, a feed past its `expires` is stale (nothing from it is used,
/// `status` says so, polls count as refused), and a fresh one afterwards is used; a feed with a
/// lower `sequence` than one accepted is a replay, refused also after a restart.
#[test]
fn stale_and_replayed_signed_feeds_are_refused() {
    let (kp, pk) = signer();
    let (_d, bytes, sum) = sample_release();
    let home = TestHome::new();
    home.init_default("1.1.0");
    let server = FeedServer::start();
    serve_signed_release(&server, &kp, &bytes);
    let now = time::OffsetDateTime::now_utc();
    serve_signed_feed(
        &server,
        &kp,
        info_for(URL, &sum),
        now - time::Duration::hours(1),
        5,
    );
    let mut env = http_env(&server);
    env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), pk.clone()));
    env.push(("NYMVISOR_METRICS_ADDRESS".into(), "127.0.0.1:0".into()));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("the feed is stale: it expired at");
    let polls = server.hits().len();
    assert!(wait_for(PATIENCE, || server.hits().len() >= polls + 2));
    assert_eq!(nv.starts().len(), 1, "{}", nv.stderr());
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("feed:          refused"), "{s}");
    assert!(s.contains("stale"), "{s}");
    let (_, metrics) =
        super::observability::http_get(super::observability::metrics_port(&nv), "/metrics");
    assert!(
        metrics.contains(
            r#"nymvisor_upgrade_refusals_total{verifier="feed-freshness",kind="not-now"}"#
        ),
        "{metrics}"
    );
    // the mirror signs a fresh feed: used
    serve_signed_feed(
        &server,
        &kp,
        info_for(URL, &sum),
        now + time::Duration::days(7),
        5,
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    let mark = read_json(&home.data_dir("nym-node").join("upstream-feed-mark.json"));
    assert_eq!(mark["sequence"], 5);

    // a replay: an older sequence, validly signed, offering something new — refused
    let replay = upgrade_info("v1.3.0", "1.3.0", "/bin/nym-node-1.3.0", &sum, "sha256");
    serve_signed_feed(
        &server,
        &kp,
        replay.clone(),
        now + time::Duration::days(7),
        4,
    );
    nv.wait_stderr("refused as a replay of an older feed");
    nv.stop();
    // also after a restart: the mark is kept
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("refused as a replay of an older feed");
    let plan = read_json(&home.data_dir("nym-node").join("upgrade-plan.json"));
    assert_eq!(
        plan["queuedUp"],
        serde_json::json!([]),
        "queued from a replay"
    );
    // the same sequence with other contents: equivocation
    serve_signed_feed(
        &server,
        &kp,
        replay.clone(),
        now + time::Duration::days(7),
        5,
    );
    nv.wait_stderr("with other contents");
    // a newer sequence: used (queued)
    serve_signed_feed(&server, &kp, replay, now + time::Duration::days(7), 6);
    assert!(
        wait_for(PATIENCE, || {
            read_json(&home.data_dir("nym-node").join("upgrade-plan.json"))["queuedUp"]
                .to_string()
                .contains("v1.3.0")
        }),
        "{}",
        nv.stderr()
    );
    nv.stop();
}

/// Key rotation and thresholds: a feed signed by a newly added second key only is accepted; with
/// `DAEMON_FEED_SIGNATURE_THRESHOLD=2` one signature is refused and two (`.minisig` and
/// `.minisig.1`, by distinct keys) are accepted; a threshold above the number of keys is a
/// configuration error.
#[test]
fn feed_signatures_rotate_and_meet_a_threshold() {
    let (old, old_pk) = signer();
    let (new, new_pk) = signer();
    let (_d, bytes, sum) = sample_release();
    let keys = format!("{old_pk},{new_pk}");
    let doc = serde_json::to_vec(&info_for(URL, &sum)).unwrap();
    let feed = "/nym-node/upgrade-info.json";
    // a node trusting both keys, its feed signed by `feed_signer` (`.minisig`)
    let node = |feed_signer: &minisign::KeyPair| {
        let home = TestHome::new();
        home.init_default("1.1.0");
        let server = FeedServer::start();
        serve_signed_release(&server, &old, &bytes);
        server.route(
            &format!("{feed}.minisig"),
            Reply::Body(sign(feed_signer, &doc, "timestamp:1")),
        );
        server.route(feed, Reply::Body(doc.clone()));
        let mut env = http_env(&server);
        env.push(("DAEMON_MINISIGN_PUBLIC_KEYS".into(), keys.clone()));
        (home, server, env)
    };
    // rotation: the feed signed by the new key only
    let (home, _server, env) = node(&new);
    let mut nv = spawn(&home, &env);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
    // a threshold of two: one signature is not enough
    let (home, server, mut env) = node(&old);
    env.push(("DAEMON_FEED_SIGNATURE_THRESHOLD".into(), "2".into()));
    let mut nv = spawn(&home, &env);
    nv.wait_start(1);
    nv.wait_stderr("signed by 1 distinct trusted key(s), 2 are required");
    let s = stdout(&home.run(&["status"]));
    assert!(s.contains("feed:          refused"), "{s}");
    // the same key twice does not count twice
    server.route(
        &format!("{feed}.minisig.1"),
        Reply::Body(sign(&old, &doc, "timestamp:2")),
    );
    let polls = server
        .hits()
        .iter()
        .filter(|h| h.ends_with(".minisig.1"))
        .count();
    assert!(wait_for(PATIENCE, || {
        server
            .hits()
            .iter()
            .filter(|h| h.ends_with(".minisig.1"))
            .count()
            >= polls + 2
    }));
    assert_eq!(nv.starts().len(), 1, "{}", nv.stderr());
    // a second, distinct key: accepted
    server.route(
        &format!("{feed}.minisig.1"),
        Reply::Body(sign(&new, &doc, "timestamp:2")),
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    nv.stop();
    // more than there are keys: refused at start
    let out = home
        .nymvisor()
        .args(["run"])
        .env("DAEMON_MINISIGN_PUBLIC_KEYS", &keys)
        .env("DAEMON_FEED_SIGNATURE_THRESHOLD", "3")
        .output()
        .unwrap();
    assert_failure(
        &out,
        "only 2 distinct DAEMON_MINISIGN_PUBLIC_KEYS are configured",
    );
}
