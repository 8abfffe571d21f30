//! Captures nymvisor's own build information (`nymvisor build-info`, `--version`).

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let unknown = || "unknown".to_owned();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["-V"]).unwrap_or_else(unknown);
    let channel = if rustc_version.contains("nightly") {
        "nightly"
    } else if rustc_version.contains("beta") {
        "beta"
    } else {
        "stable"
    };
    let version_number = rustc_version
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(unknown);
    let build_timestamp = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => output(
            "date",
            &["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"],
        ),
        Err(_) => output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    }
    .unwrap_or_else(unknown);
    let vars = [
        ("NYMVISOR_BUILD_TIMESTAMP", build_timestamp),
        (
            "NYMVISOR_COMMIT_SHA",
            output("git", &["rev-parse", "HEAD"]).unwrap_or_else(unknown),
        ),
        (
            "NYMVISOR_COMMIT_TIMESTAMP",
            output("git", &["log", "-1", "--format=%cI"]).unwrap_or_else(unknown),
        ),
        (
            "NYMVISOR_COMMIT_BRANCH",
            output("git", &["rev-parse", "--abbrev-ref", "HEAD"]).unwrap_or_else(unknown),
        ),
        ("NYMVISOR_RUSTC_VERSION", version_number),
        ("NYMVISOR_RUSTC_CHANNEL", channel.to_owned()),
        (
            "NYMVISOR_CARGO_PROFILE",
            std::env::var("PROFILE").unwrap_or_else(|_| unknown()),
        ),
        (
            "NYMVISOR_CARGO_TRIPLE",
            std::env::var("TARGET").unwrap_or_else(|_| unknown()),
        ),
    ];
    for (key, value) in vars {
        println!("cargo:rustc-env={key}={value}");
    }
}
