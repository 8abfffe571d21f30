//! Live backups: the daemon home is copied while the old daemon runs, and only what changed is
//! copied after the stop. The backup must be the home exactly as the daemon left it; an
//! interrupted or failed pre-copy or delta must never leave a half copy as a backup.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nymvisor_tests::*;

/// Every entry under `root`, relative, with its kind, content hash or link target, mode, and
/// modification time to the nanosecond.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&bytes, &mut h);
                format!(
                    "{} bytes {:016x}",
                    bytes.len(),
                    std::hash::Hasher::finish(&h)
                )
            };
            out.push(format!(
                "{rel}: {what} mode {:o} mtime {}.{:09}",
                m.mode() & 0o7777,
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    }
    out.sort();
    out
}

/// The backups made for `upgrade` (names in the upgrade's backup directory).
fn backups_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What the old daemon does when told to stop, after the pre-copy and before the delta: adds,
/// changes (also with the same size), deletes, re-links, changes modes, turns a file into a
/// directory; then keeps a copy (`cp -a`) of the tree as it leaves it, for the comparison.
const ON_STOP: &str = r#"set -e
cd "$NODE"
[ -e "$SNAPSHOT" ] && exit 0
printf 'new file' > db/added.db
mkdir -p new-dir/deeper && printf 'deep' > new-dir/deeper/file
printf 'v2 of the state, longer' > db/state.db
printf 'BBBB' > db/same-size.db
rm -f db/obsolete.db
rm -rf old-dir
ln -sfn db/added.db current-db
chmod 600 keys/id.key
chmod 700 keys
rm -f was-a-file && mkdir was-a-file && printf 'inside' > was-a-file/now
cp -a "$NODE" "$SNAPSHOT"
"#;

fn node_tree(home: &TestHome) -> PathBuf {
    let node = home.daemon_home().join("node");
    for (rel, text) in [
        ("db/state.db", "v1 of the state"),
        ("db/same-size.db", "AAAA"),
        ("db/obsolete.db", "going away"),
        ("keys/id.key", "secret"),
        ("old-dir/a", "a"),
        ("old-dir/sub/b", "b"),
        ("was-a-file", "a file"),
    ] {
        let p = node.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::os::unix::fs::symlink("db/state.db", node.join("current-db")).unwrap();
    node
}

#[test]
fn the_backup_is_the_home_exactly_as_the_stopping_daemon_left_it() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    let node = node_tree(&home);
    let snapshot = home.path().join("snapshot-at-stop");
    let churn = node.join("db");
    let (node_s, snap_s, churn_s) = (
        node.to_str().unwrap(),
        snapshot.to_str().unwrap(),
        churn.to_str().unwrap(),
    );
    let mut env = FAST.to_vec();
    env.extend_from_slice(&[
        ("NODE", node_s),
        ("SNAPSHOT", snap_s),
        ("FAKE_DAEMON_ON_STOP", ON_STOP),
        // a database rewritten in place every 100 ms, and at shutdown
        ("FAKE_DAEMON_CHURN", churn_s),
    ]);
    let mut nv = home.spawn_run(&env, &[]);
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("upgrade applied");
    let log = nv.stderr();
    assert!(
        log.contains("copied the daemon's data while it runs"),
        "{log}"
    );
    assert!(log.contains("the live copy, with"), "{log}");
    // the new daemon's churn must not disturb the comparison: it stops writing when stopped
    nv.stop();

    let dir = home.daemon_home().join("nymvisor/backups/v1.2.0");
    let names = backups_of(&dir);
    assert_eq!(names.len(), 1, "one backup, no partial: {names:?}");
    let backup = dir.join(&names[0]).join("node");
    assert_eq!(listing(&backup), listing(&snapshot));
    // the shutdown writes are in it
    let last = std::fs::read_to_string(backup.join("db/added.db")).unwrap();
    assert_eq!(last, "new file");
    assert!(!backup.join("old-dir").exists());
    assert!(backup.join("was-a-file/now").is_file());
}

#[test]
fn a_stop_signal_during_the_precopy_stops_the_node_and_leaves_no_backup() {
    let home = TestHome::new();
    home.init_default("1.1.0");
    node_tree(&home);
    let mut env = FAST.to_vec();
    env.push(("NYMVISOR_FAILPOINT", "during-precopy"));
    let mut nv = home.spawn_run(&env, &[]);
    let first = nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("fail point `during-precopy` reached");
    let dir = home.daemon_home().join("nymvisor/backups/v1.2.0");
    let names = backups_of(&dir);
    assert!(
        names.len() == 1 && names[0].ends_with(".partial"),
        "the pre-copy is under way: {names:?}"
    );
    assert!(alive(first.pid), "the node runs during the pre-copy");

    nv.signal(Signal::SIGTERM);
    assert!(nv.wait_exit().success(), "{}", nv.stderr());
    assert!(
        nv.events()
            .iter()
            .any(|l| l.starts_with(&format!("exit pid={} ", first.pid))),
        "the node was stopped: {:?}",
        nv.events()
    );
    assert_eq!(nv.starts().len(), 1, "nothing new was started");
    assert_eq!(backups_of(&dir), Vec::<String>::new(), "no half copy kept");
    let data = home.data_dir("nym-node");
    assert!(!data.join("upgrade-journal.json").exists());
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["current"]["version"], "1.1.0");
    assert_eq!(
        plan["queuedUp"][0]["name"], "v1.2.0",
        "the upgrade still waits"
    );

    // started again (without the fail point), it applies the due upgrade before starting the
    // node, with a complete backup
    let mut nv = home.spawn_run(FAST, &[]);
    nv.wait_stderr("upgrade applied");
    assert_eq!(nv.wait_start(1).version, "1.2.0");
    let names = backups_of(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!names[0].starts_with('.'), "{names:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join(&names[0]).join("node/db/state.db")).unwrap(),
        "v1 of the state"
    );
    nv.stop();
}

/// Whether this machine lets a test mount a small tmpfs in a private mount namespace (as root,
/// or as an unprivileged user through a user namespace); the `unshare` arguments that do.
fn mount_namespace() -> Option<&'static [&'static str]> {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--mount", "--propagation", "private"][..],
        &["--map-root-user", "--mount", "--propagation", "private"][..],
    ] {
        let ok = std::process::Command::new("unshare")
            .args(args)
            .args(["sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$0\""])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(args);
        }
    }
    None
}

#[test]
fn a_full_disk_during_the_delta_abandons_the_upgrade_and_the_node_runs_on() {
    let Some(unshare_args) = mount_namespace() else {
        prerequisite(
            false,
            "mounting a tmpfs in a private mount namespace is not permitted here",
        );
        return;
    };
    let home = TestHome::new();
    home.init_default("1.1.0");
    let node = node_tree(&home);
    std::fs::write(node.join("db/big.db"), vec![7u8; 2 << 20]).unwrap();
    // backups go to a 4 MiB file system: the 2 MiB pre-copy fits, the 3 MiB written at
    // shutdown does not
    let backups = home.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let grow = format!(
        "head -c 3145728 /dev/zero > {}/db/grown.db",
        node.to_str().unwrap()
    );
    let mut env = FAST.to_vec();
    env.extend_from_slice(&[
        ("DAEMON_BACKUP_DATA_DIRECTORY", backups.to_str().unwrap()),
        ("DAEMON_BACKUP_MIN_FREE", "0"),
        ("FAKE_DAEMON_ON_STOP", &grow),
    ]);
    // the log file `spawn_run_cmd` names for this run, which its handle reads
    let n = std::fs::read_dir(home.path()).unwrap().count();
    let stderr_path = home.path().join(format!("nymvisor-{n}.log"));
    let mut nv = home.spawn_run_cmd(&env, &[], &[], |cmd| {
        let mut wrapper: Vec<&std::ffi::OsStr> =
            unshare_args.iter().map(std::ffi::OsStr::new).collect();
        let mount = "mount -t tmpfs -o size=4m tmpfs \"$0\" && exec \"$@\"";
        wrapper.extend([
            "sh".as_ref(),
            "-c".as_ref(),
            mount.as_ref(),
            backups.as_os_str(),
        ]);
        let wrapped = wrapped_nymvisor(
            cmd,
            "unshare",
            &wrapper,
            std::fs::File::create(&stderr_path).unwrap(),
        );
        *cmd = wrapped;
    });
    nv.wait_start(1);
    let new = home.daemon_bin("new", "nym-node", "1.2.0", &[]);
    home.add_upgrade(&new, "v1.2.0", &["--now"]);
    nv.wait_stderr("copied the daemon's data while it runs");
    nv.wait_stderr("upgrade abandoned before the swap");
    let log = nv.stderr();
    assert!(log.contains("No space left on device"), "{log}");
    let second = nv.wait_start(2);
    assert_eq!(second.version, "1.1.0", "the old version runs on");

    // seen from inside nymvisor's mount namespace: no backup, no half copy
    let inside =
        PathBuf::from(format!("/proc/{}/root", nv.pid())).join(backups.strip_prefix("/").unwrap());
    assert_eq!(
        backups_of(&inside.join("v1.2.0")),
        Vec::<String>::new(),
        "nothing half-done kept"
    );
    let data = home.data_dir("nym-node");
    assert!(!data.join("upgrade-journal.json").exists());
    let plan = read_json(&data.join("upgrade-plan.json"));
    assert_eq!(plan["current"]["version"], "1.1.0");
    let status = home.run(&["status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let err = status.to_string();
    assert!(err.contains("No space left on device"), "{err}");
    // the home is untouched by the failed backup
    assert_eq!(
        std::fs::metadata(node.join("db/grown.db")).unwrap().len(),
        3 << 20
    );
    nv.stop();
}
