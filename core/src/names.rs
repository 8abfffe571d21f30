//! Names and versions as every stage reads them: safe names (of upgrades, instances, daemons),
//! daemon versions, checksum algorithm names, the platform key.

use crate::error::{Error, Result};

/// Longest accepted upgrade name or instance id.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a name that will become a directory name (upgrade names, instance ids, daemon names):
/// `[A-Za-z0-9._-]`, 1–128 characters, not `.` or `..`.
///
/// Names come from the network; nothing may be created from one that fails this check.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("is longer than 128 characters");
    }
    if name == "." || name == ".." {
        return Err("is `.` or `..`");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// Parses a daemon version; a leading `v` is tolerated (`v1.2.0`).
pub fn parse_version(version: &str, context: &str) -> Result<semver::Version> {
    let trimmed = version.trim();
    let trimmed = trimmed.strip_prefix('v').unwrap_or(trimmed);
    semver::Version::parse(trimmed).map_err(|source| Error::InvalidVersion {
        version: version.to_owned(),
        context: context.to_owned(),
        source,
    })
}

/// The canonical name of a checksum algorithm as the verifiers name their digests: lower case,
/// `sha3_256` → `sha3-256`, `sha-256` → `sha256`.
pub fn checksum_algorithm_name(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    match n.as_str() {
        "sha-256" => "sha256".to_owned(),
        "sha-512" => "sha512".to_owned(),
        _ => n,
    }
}

/// The platform key of this machine (`linux-x86_64`, `darwin-aarch64`, …).
pub fn platform_key() -> String {
    platform_key_for(std::env::consts::OS, std::env::consts::ARCH)
}

/// The platform key for an OS/arch pair, with Rust's `macos` spelled `darwin`.
pub fn platform_key_for(os: &str, arch: &str) -> String {
    let os = if os == "macos" { "darwin" } else { os };
    format!("{os}-{arch}")
}

/// Platform keys tried in order when picking a download: this machine's, then `any`.
pub fn platform_keys() -> [String; 2] {
    [platform_key(), "any".to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn names() {
        for ok in [
            "v2026.9-venaco",
            "genesis",
            "a",
            "A_b.c-1",
            &"x".repeat(128),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a b",
            "ü",
            "a\0",
            &"x".repeat(129),
            "a\\b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn semver_not_string_order() {
        // what the policy compares: precedence, so build metadata does not count
        let order = |a: &str, b: &str| {
            parse_version(a, "a")
                .unwrap()
                .cmp_precedence(&parse_version(b, "b").unwrap())
        };
        assert_eq!(order("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(order("v1.2.0", "1.2.0"), Ordering::Equal);
        assert_eq!(order("1.2.0-rc.1", "1.2.0"), Ordering::Less);
        assert_eq!(order("1.2.0+b", "1.2.0+a"), Ordering::Equal);
        assert!(parse_version("1.2", "the upgrade").is_err());
    }

    #[test]
    fn platform() {
        assert_eq!(platform_key_for("linux", "x86_64"), "linux-x86_64");
        assert_eq!(platform_key_for("macos", "aarch64"), "darwin-aarch64");
        assert!(platform_key().contains('-'));
    }
}
