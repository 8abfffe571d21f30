//! `nymvisor mirror sync`: a private mirror made from the GitHub mock, signed with keys made by
//! the real `minisign` tool, served by a static file server (or shared as a `local` mirror), and
//! nodes that upgrade from it with signatures required.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nymvisor_tests::feed::FeedServer;
use nymvisor_tests::github::*;
use nymvisor_tests::*;

const TAG_12: &str = "nym-binaries-v2026.9-venaco";
const NAME_12: &str = "v2026.9-venaco";
const TAG_13: &str = "nym-binaries-v2026.10-wensleydale";
const NAME_13: &str = "v2026.10-wensleydale";

fn minisign_present() -> bool {
    prerequisite(
        Command::new("minisign").arg("-v").output().is_ok(),
        "the minisign tool (Debian package minisign)",
    )
}

/// A key pair made by the real `minisign -G`: the secret key file and the public key's base64
/// line. With a password, the key is encrypted with it (given twice on stdin, as typed).
fn minisign_key(dir: &Path, name: &str, password: Option<&str>) -> (PathBuf, String) {
    let (sec, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    let mut cmd = Command::new("minisign");
    cmd.arg("-G").arg("-p").arg(&public).arg("-s").arg(&sec);
    if password.is_none() {
        cmd.arg("-W");
    }
    // the password, typed twice, only for a key that has one (`-W` reads nothing)
    let stdin = match password {
        Some(_) => std::process::Stdio::piped(),
        None => std::process::Stdio::null(),
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    if let (Some(pw), Some(mut input)) = (password, child.stdin.take()) {
        std::io::Write::write_all(&mut input, format!("{pw}\n{pw}\n").as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&public).unwrap();
    (sec, text.lines().nth(1).unwrap().trim().to_owned())
}

/// A release of the fake `nym-node` at `version` as Nym's release action publishes it.
fn release(home: &TestHome, tag: &str, published: &str, version: &str) -> MockRelease {
    release_of(home, tag, published, &[("nym-node", version, false)])
}

/// A release with these daemons' binaries (name, version, whether `hashes.json` gives a wrong
/// sha256 for it) and `hashes.json` with their build information.
fn release_of(
    home: &TestHome,
    tag: &str,
    published: &str,
    daemons: &[(&str, &str, bool)],
) -> MockRelease {
    let mut assets = Vec::new();
    let mut entries = Vec::new();
    for (daemon, version, _) in daemons {
        let bin = home.daemon_bin(&format!("release-{daemon}-{version}"), daemon, version, &[]);
        let details = build_details(&bin);
        let bytes = std::fs::read(&bin).unwrap();
        assets.push(MockAsset::new(daemon, bytes.clone()).without_digest());
        entries.push((*daemon, bytes, Some(details)));
    }
    let listed: Vec<(&str, &[u8], Option<serde_json::Value>)> = entries
        .iter()
        .map(|(d, b, v)| (*d, b.as_slice(), v.clone()))
        .collect();
    let mut hashes = String::from_utf8(hashes_json(tag, &listed)).unwrap();
    for ((_, _, bad), (_, bytes, _)) in daemons.iter().zip(&entries) {
        if *bad {
            let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
            hashes = hashes.replace(&sum, &"ab".repeat(32));
        }
    }
    assets.push(MockAsset::new("hashes.json", hashes.into_bytes()));
    MockRelease::new(tag, published, assets)
}

/// `nymvisor mirror sync --out OUT ARGS…` from the GitHub mock, with `env` added.
fn sync_cmd(
    home: &TestHome,
    mock: &GithubMock,
    out: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = home.nymvisor();
    cmd.env("NYMVISOR_UPSTREAM_SOURCE", "github")
        .env("NYMVISOR_GITHUB_API_URL", mock.api_url())
        .envs(env.iter().copied())
        .args(["mirror", "sync", "--out"])
        .arg(out)
        .args(args);
    cmd
}

fn sync(
    home: &TestHome,
    mock: &GithubMock,
    out: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    output_within_patience(&mut sync_cmd(home, mock, out, args, env))
}

fn feed(out: &Path) -> serde_json::Value {
    read_json(&out.join("nym-node/upgrade-info.json"))
}

/// A mirror signed with two keys, served over HTTP: a node that trusts both and wants both
/// signatures upgrades from it; a second sync downloads nothing and signs a fresher feed; a
/// binary tampered with on the mirror is refused by the node, and the next sync puts the
/// verified one back.
#[test]
fn a_node_upgrades_from_a_signed_mirror_and_refuses_a_tampered_binary() {
    if !minisign_present() {
        return;
    }
    let home = TestHome::new();
    home.init_default("1.1.0");
    let keys = tempfile::tempdir().unwrap();
    let (old_key, old_pk) = minisign_key(keys.path(), "old", None);
    let (new_key, new_pk) = minisign_key(keys.path(), "new", None);
    let mock = GithubMock::start(vec![release(
        &home,
        TAG_12,
        "2026-09-16T15:00:00Z",
        "1.2.0",
    )]);
    let out = home.path().join("mirror");
    let signing = [
        "--sign-key",
        old_key.to_str().unwrap(),
        "--sign-key",
        new_key.to_str().unwrap(),
    ];
    let first = sync(&home, &mock, &out, &signing, &[]);
    assert_success(&first);
    assert!(
        stdout(&first).contains("downloaded and verified"),
        "{}",
        stdout(&first)
    );
    assert_eq!(mock.downloads_of("nym-node"), 1);
    let one = feed(&out);
    assert_eq!(one["name"], NAME_12);
    assert!(out.join("nym-node/upgrade-info.json.minisig.1").is_file());
    // the real tool agrees with the signatures
    for (i, public) in [(0, &old_pk), (1, &new_pk)] {
        let sig = match i {
            0 => out.join("nym-node/upgrade-info.json.minisig"),
            _ => out.join("nym-node/upgrade-info.json.minisig.1"),
        };
        let check = Command::new("minisign")
            .arg("-Vm")
            .arg(out.join("nym-node/upgrade-info.json"))
            .arg("-x")
            .arg(sig)
            .args(["-P", public])
            .output()
            .unwrap();
        assert_success(&check);
    }

    let second = sync(&home, &mock, &out, &signing, &[]);
    assert_success(&second);
    assert!(
        stdout(&second).contains("not downloaded again"),
        "{}",
        stdout(&second)
    );
    assert_eq!(mock.downloads_of("nym-node"), 1, "nothing new: no download");
    let two = feed(&out);
    assert!(
        two["sequence"].as_u64() > one["sequence"].as_u64(),
        "{one} {two}"
    );
    assert_eq!(two["platforms"], one["platforms"]);

    // tampered with on the mirror: the node refuses it, nothing is applied
    let bin = out.join("nym-node").join(NAME_12).join("nym-node");
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&bin, &bytes).unwrap();
    let server = FeedServer::start();
    server.serve_dir(&out);
    let trusted = format!("{old_pk},{new_pk}");
    let mut nv = home.spawn_run_on_feed(
        &server,
        &[
            ("DAEMON_MINISIGN_PUBLIC_KEYS", trusted.as_str()),
            ("DAEMON_FEED_SIGNATURE_THRESHOLD", "2"),
        ],
    );
    nv.wait_start(1);
    nv.wait_stderr("checksum verification failed");
    assert_eq!(nv.starts().len(), 1);

    // the next sync finds it changed and puts the verified binary back; `retry` takes it
    let third = sync(&home, &mock, &out, &signing, &[]);
    assert_success(&third);
    assert!(
        stdout(&third).contains("downloaded and verified"),
        "{}",
        stdout(&third)
    );
    assert_eq!(mock.downloads_of("nym-node"), 2);
    assert!(
        wait_for(PATIENCE, || home.run(&["retry", NAME_12]).status.success()),
        "{}",
        nv.stderr()
    );
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());
    assert!(
        nv.stderr().contains("signed by the trusted key"),
        "{}",
        nv.stderr()
    );
    nv.stop();
}

/// A mirror shared as a directory (the `local` source), signed with a password-protected key:
/// the node follows it from one release to the next, and `--keep 1` removes the older release
/// from the mirror.
#[test]
fn a_node_follows_a_shared_mirror_from_release_to_release() {
    if !minisign_present() {
        return;
    }
    let home = TestHome::new();
    home.init_default("1.1.0");
    let keys = tempfile::tempdir().unwrap();
    let (key, pk) = minisign_key(keys.path(), "mirror", Some("correct horse"));
    let r12 = release(&home, TAG_12, "2026-09-16T15:00:00Z", "1.2.0");
    let mock = GithubMock::start(vec![r12.clone()]);
    let out = home.path().join("share");
    let args = [
        "--sign-key",
        key.to_str().unwrap(),
        "--sign-key-password-env",
        "MIRROR_KEY_PASSWORD",
        "--keep",
        "1",
        "--expires",
        "2d",
    ];
    let env = [("MIRROR_KEY_PASSWORD", "correct horse")];
    assert_success(&sync(&home, &mock, &out, &args, &env));
    let expires =
        nymvisor_core::model::parse_rfc3339(feed(&out)["expires"].as_str().unwrap()).unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::hours(47) && left <= time::Duration::hours(48),
        "{left}"
    );

    let mirror_dir = out.to_str().unwrap().to_owned();
    let mut envs: Vec<(&str, &str)> = FAST.to_vec();
    envs.extend([
        ("NYMVISOR_UPSTREAM_SOURCE", "local"),
        ("NYMVISOR_LOCAL_MIRROR_DIRECTORY", mirror_dir.as_str()),
        ("NYMVISOR_UPSTREAM_POLLING_RATE", "1s"),
        ("DAEMON_MINISIGN_PUBLIC_KEYS", pk.as_str()),
    ]);
    let mut nv = home.spawn_run(&envs, &[]);
    nv.wait_start(1);
    assert_eq!(nv.wait_start(2).version, "1.2.0", "{}", nv.stderr());

    mock.set_releases(vec![
        release(&home, TAG_13, "2026-10-20T15:00:00Z", "1.3.0"),
        r12,
    ]);
    let next = sync(&home, &mock, &out, &args, &env);
    assert_success(&next);
    assert!(
        stdout(&next).contains(&format!("removed older releases: {NAME_12}")),
        "{}",
        stdout(&next)
    );
    assert!(!out.join("nym-node").join(NAME_12).exists());
    assert_eq!(feed(&out)["name"], NAME_13);
    assert_eq!(nv.wait_start(3).version, "1.3.0", "{}", nv.stderr());
    nv.stop();

    // a wrong password changes nothing and says what is wrong
    let before = std::fs::read(out.join("nym-node/upgrade-info.json")).unwrap();
    let wrong = sync(
        &home,
        &mock,
        &out,
        &args,
        &[("MIRROR_KEY_PASSWORD", "wrong")],
    );
    assert_failure(&wrong, "wrong password for this key");
    assert_eq!(
        std::fs::read(out.join("nym-node/upgrade-info.json")).unwrap(),
        before
    );
}

/// A release that fails verification leaves that daemon's mirror as it was, the other daemons
/// are still synced, the exit status says it failed; a second sync of the same directory at
/// the same time is refused.
#[test]
fn a_refused_release_changes_nothing_and_other_daemons_are_still_synced() {
    let home = TestHome::new();
    // Nym ships its binaries in one release; this one's nym-node digest is wrong
    let release = release_of(
        &home,
        TAG_12,
        "2026-09-16T15:00:00Z",
        &[("nym-node", "1.2.0", true), ("nym-api", "1.2.0", false)],
    );
    let mock = GithubMock::start(vec![release]);
    let out = home.path().join("mirror");
    let synced = sync(
        &home,
        &mock,
        &out,
        &["--daemon", "nym-node", "--daemon", "nym-api"],
        &[],
    );
    assert_failure(
        &synced,
        "nym-node: release v2026.9-venaco (1.2.0) was refused",
    );
    assert!(
        stderr(&synced).contains("the mirror is unchanged"),
        "{}",
        stderr(&synced)
    );
    assert_eq!(
        stderr(&synced).matches("nymvisor: error:").count(),
        1,
        "{}",
        stderr(&synced)
    );
    assert!(!out.join("nym-node/upgrade-info.json").exists());
    assert!(!out.join("nym-node").join(NAME_12).exists());
    assert!(
        stdout(&synced).contains("nym-api: v2026.9-venaco (1.2.0) downloaded and verified"),
        "{}",
        stdout(&synced)
    );
    assert!(
        stderr(&synced).contains("no --sign-key"),
        "{}",
        stderr(&synced)
    );
    assert!(out.join("nym-api/upgrade-info.json").is_file());
    assert!(!out.join("nym-api/upgrade-info.json.minisig").exists());
    // nothing of the work left behind
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nymvisor-sync-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // one sync at a time
    let lock = std::fs::File::open(out.join(".nymvisor-mirror.lock")).unwrap();
    lock.lock().unwrap();
    let second = sync(&home, &mock, &out, &["--daemon", "nym-api"], &[]);
    assert_failure(&second, "another `nymvisor mirror sync` is writing");
    drop(lock);

    // options nodes would refuse
    assert_failure(
        &sync(&home, &mock, &out, &["--expires", "400d"], &[]),
        "more than a year",
    );
    assert_failure(
        &sync(&home, &mock, &out, &["--base-url", "mirror.example"], &[]),
        "--base-url",
    );
}

/// A mirror belongs to one user (the one its timer runs as): another one, root included, is
/// refused with the command that works, and what the owner writes is the owner's.
#[test]
fn a_mirror_is_written_only_by_its_owner() {
    if !two_users() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let home = TestHome::new();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mock = GithubMock::start(vec![release(
        &home,
        TAG_12,
        "2026-09-16T15:00:00Z",
        "1.2.0",
    )]);
    let out = home.path().join("mirror");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    let refused = sync(&home, &mock, &out, &[], &[]);
    assert_failure(&refused, "belongs to nobody");
    assert!(
        stderr(&refused).contains("sudo -u nobody"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
    let mut as_owner = sync_cmd(&home, &mock, &out, &[], &[]);
    as_owner.uid(NOBODY).gid(NOBODY);
    let done = output_within_patience(&mut as_owner);
    assert_success(&done);
    for file in [
        "nym-node/upgrade-info.json",
        "nym-node/mirror-state.json",
        ".nymvisor-mirror.lock",
    ] {
        assert_eq!(
            std::fs::metadata(out.join(file)).unwrap().uid(),
            NOBODY,
            "{file}"
        );
    }
}
