//! The container image, for real: built with podman from `contrib/container/Dockerfile` (on a
//! base image CI makes with mmdebstrap: no registry is reachable here), started from an empty
//! volume — the entrypoint initialises the node and the instance — with nymvisor as PID 1 and a
//! read-only root, probed with `nymvisor status`, and stopped with SIGTERM. And the Kubernetes
//! manifest, checked against the Kubernetes schemas.

use std::process::{Command, Output};

use nymvisor_tests::*;

/// A podman command (with the `CONTAINERS_CONF` CI sets, if any).
fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().unwrap()
}

/// Removes what the test made, whatever happens.
struct Cleanup {
    container: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", &self.container]);
        let _ = podman(&["volume", "rm", "-f", &self.volume]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

#[test]
fn the_image_runs_a_node_from_an_empty_volume_as_pid_1() {
    let base = std::env::var("NYMVISOR_CONTAINER_BASE").ok();
    let podman_works = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !prerequisite(
        podman_works && base.is_some(),
        "podman and a base image (NYMVISOR_CONTAINER_BASE, made by .ci/run with mmdebstrap)",
    ) {
        return;
    }
    let base = base.unwrap();
    // the build context: the repository's layout, with this build's binaries
    let ctx = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::create_dir_all(ctx.path().join("target/release")).unwrap();
    std::fs::create_dir_all(ctx.path().join("contrib/container")).unwrap();
    std::fs::copy(nymvisor_bin(), ctx.path().join("target/release/nymvisor")).unwrap();
    for f in ["Dockerfile", "entrypoint.sh"] {
        std::fs::copy(
            root.join("contrib/container").join(f),
            ctx.path().join("contrib/container").join(f),
        )
        .unwrap();
    }
    stamp_fake_daemon(
        &ctx.path().join("contrib/container/nym-node"),
        "nym-node",
        "1.1.0",
        &[],
    );
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let guard = Cleanup {
        container: format!("nymvisor-test-{unique}"),
        volume: format!("nymvisor-test-{unique}"),
        image: format!("localhost/nymvisor-test:{unique}"),
    };
    let ctx_path = ctx.path().to_str().unwrap();
    let build_arg = format!("BASE={base}");
    let out = podman(&[
        "build",
        "--network",
        "none",
        "-q",
        "-f",
        "contrib/container/Dockerfile",
        "--build-arg",
        &build_arg,
        "-t",
        &guard.image,
        ctx_path,
    ]);
    assert!(out.status.success(), "podman build: {}", stderr(&out));
    assert!(
        podman(&["volume", "create", &guard.volume])
            .status
            .success()
    );
    let mount = format!("{}:/var/lib/nym", guard.volume);
    let out = podman(&[
        "run",
        "-d",
        "--name",
        &guard.container,
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        &mount,
        "-e",
        "NYMVISOR_UPSTREAM_SOURCE=none",
        "-e",
        "FAKE_DAEMON_LOG=/var/lib/nym/daemon.log",
        &guard.image,
    ]);
    assert!(out.status.success(), "podman run: {}", stderr(&out));
    // the probe: 0 once nymvisor and the node run
    let probe = || podman(&["exec", &guard.container, "/usr/bin/nymvisor", "status"]);
    assert!(
        wait_for(PATIENCE, || probe().status.code() == Some(0)),
        "not running: {}\n{}",
        stdout(&probe()),
        stderr(&podman(&["logs", &guard.container]))
    );
    let comm = podman(&["exec", &guard.container, "cat", "/proc/1/comm"]);
    assert_eq!(stdout(&comm).trim(), "nymvisor", "PID 1 is not nymvisor");
    let logs = stderr(&podman(&["logs", &guard.container]));
    assert!(logs.contains("initialised the nymvisor instance"), "{logs}");
    assert!(logs.contains("running as PID 1"), "{logs}");
    // docker stop / podman stop: SIGTERM, forwarded, a clean exit
    assert!(
        podman(&["stop", "-t", "30", &guard.container])
            .status
            .success()
    );
    let code = podman(&[
        "inspect",
        &guard.container,
        "--format",
        "{{.State.ExitCode}}",
    ]);
    assert_eq!(
        stdout(&code).trim(),
        "0",
        "{}",
        stderr(&podman(&["logs", &guard.container]))
    );
    let log = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        &base,
        "cat",
        "/var/lib/nym/daemon.log",
    ]);
    let log = stdout(&log);
    assert!(
        log.contains("SIGTERM") && log.contains("args=[\"run\",\"--id\",\"default-nym-node\"]"),
        "{log}"
    );
}

#[test]
fn the_kubernetes_manifest_matches_the_kubernetes_schemas() {
    let tool = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    if !prerequisite(
        tool.is_ok_and(|o| o.status.success()),
        "kubernetes-validate (PyPI) is not installed",
    ) {
        return;
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/kubernetes/nymvisor-statefulset.yaml");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("passed"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
