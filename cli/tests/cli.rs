//! Smoke tests of the binary's command line. (Having an integration test here also makes
//! `cargo test --workspace` build the `nymvisor` executable that `nymvisor-tests` drives.)

#![allow(clippy::expect_used)]

use std::process::Command;

fn nymvisor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nymvisor"))
        .args(args)
        .env_clear()
        .output()
        .expect("run nymvisor")
}

#[test]
fn short_version_is_one_line() {
    let out = nymvisor(&["-V"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("nymvisor {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_every_command() {
    let out = nymvisor(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "init",
        "build-info",
        "daemon-build-info",
        "add-upgrade",
        "config",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

#[test]
fn init_has_a_flag_for_every_reference_key() {
    let out = nymvisor(&["init", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--id",
        "--upstream-base-upgrade-url",
        "--upstream-polling-rate",
        "--disable-nymvisor-logs",
        "--upgrade-data-directory",
        "--daemon-home",
        "--daemon-absolute-upstream-upgrade-url",
        "--allow-download-upgrade-binaries",
        "--enforce-download-checksum",
        "--restart-daemon-after-upgrade",
        "--restart-daemon-on-failure",
        "--on-failure-daemon-restart-delay",
        "--max-daemon-startup-failures",
        "--startup-period-duration",
        "--daemon-shutdown-grace-period",
        "--daemon-backup-data-directory",
        "--unsafe-skip-backup",
    ] {
        assert!(text.contains(flag), "{flag} missing from init --help");
    }
}

#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = nymvisor(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("add-upgrade") && text.contains("nymvisor"),
            "{shell}: {text}"
        );
    }
    let out = nymvisor(&["man"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH nymvisor"),
        "{text}"
    );
    assert!(text.contains("add\\-upgrade") || text.contains("add-upgrade"));
}
