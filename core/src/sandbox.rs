//! The network helper's sandbox, as apt sandboxes its download methods: `no_new_privs` (nothing
//! it runs can gain privileges through set-uid binaries or file capabilities) and a Landlock
//! ruleset: the system's directories read-only, the staging directories writable, and nothing
//! else at all — not the daemon home, not its keys, not nymvisor's own state files.
//!
//! Landlock applies to the helper and everything it starts (a verifier command, the candidate
//! binary's `build-info`). From Landlock ABI 6 (Linux 6.12) they also cannot signal a process
//! outside the sandbox (nymvisor, the node); older kernels do not offer that scope. On a kernel
//! without Landlock the helper runs with `no_new_privs` only, and says so in the log.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

/// System directories the helper reads (and may execute from): libraries, the CA bundle and
/// resolver configuration in `/etc`, the shell and tools a verifier command calls.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc",
    "/opt",
    "/nix/store",
];

/// Device files the helper and its children may open (`/dev/null` for their standard streams).
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// What the sandbox lets through, besides [`SYSTEM_READ`] and [`DEVICES`].
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Read (and execute) only: a local mirror, verifier commands' directories, plugins.
    pub read: Vec<PathBuf>,
    /// Read, write and execute: the staging directories.
    pub write: Vec<PathBuf>,
}

/// How much of the sandbox the kernel enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforced {
    /// Landlock and `no_new_privs`.
    Full,
    /// Landlock with fewer access rights than asked (an older kernel), and `no_new_privs`.
    Partial,
    /// `no_new_privs` only (no Landlock in this kernel).
    NoNewPrivsOnly,
}

/// A failure to enter the sandbox.
#[derive(Debug, thiserror::Error)]
#[error("cannot enter the network helper's sandbox: {0}")]
pub struct Error(String);

/// Restricts the calling process (and what it starts later) to `rules`. Irreversible. Paths
/// that do not exist are left out.
pub fn enter(rules: &Rules) -> Result<Enforced, Error> {
    let abi = ABI::V5;
    let existing = |paths: Vec<&Path>| -> Vec<PathBuf> {
        paths
            .into_iter()
            .filter(|p| p.exists())
            .map(Path::to_owned)
            .collect()
    };
    let read = existing(
        SYSTEM_READ
            .iter()
            .map(Path::new)
            .chain(rules.read.iter().map(PathBuf::as_path))
            .collect(),
    );
    let devices = existing(DEVICES.iter().map(Path::new).collect());
    let write = existing(rules.write.iter().map(PathBuf::as_path).collect());
    let status: RestrictionStatus = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        // ABI 6 (Linux 6.12): no signal to a process outside the sandbox (nymvisor, the node);
        // older kernels ignore the request (best effort)
        .and_then(|r| r.scope(Scope::Signal))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read, AccessFs::from_read(abi))))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                &devices,
                AccessFs::ReadFile | AccessFs::WriteFile,
            ))
        })
        .and_then(|r| r.add_rules(path_beneath_rules(&write, AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| Error(e.to_string()))?;
    if !status.no_new_privs {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| Error(format!("PR_SET_NO_NEW_PRIVS: {e}")))?;
    }
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Full,
        RulesetStatus::PartiallyEnforced => Enforced::Partial,
        RulesetStatus::NotEnforced => Enforced::NoNewPrivsOnly,
    })
}

/// The Landlock ABI version this kernel offers, if it offers Landlock at all.
pub fn landlock_abi() -> Option<i32> {
    // SAFETY: landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION and no attributes
    // only returns the ABI version (or an error); it creates nothing.
    let abi = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (abi > 0).then_some(abi as i32)
}
