//! Who may change an instance's files: the user that owns its upgrade data directory (the
//! service user `run` runs as). Every command that writes the instance's files asks first.
//!
//! Why refuse rather than write as root and `chown`: a file or lock created by another user is
//! one the running nymvisor may not be able to rewrite, so an upgrade it applied could not be
//! recorded (0.1.41-era defect: `sudo nymvisor add-upgrade` left a root-owned plan lock and the
//! node restarted into the same upgrade forever). Refusing with the exact command to run keeps
//! every file with one owner, whatever the next command touches.

use std::os::unix::fs::MetadataExt;

use super::Instance;
use crate::error::{Error, Result};

/// Refuses when the effective user is not the owner of the instance's upgrade data directory,
/// naming the owner and the command line that works. A directory that does not exist (yet) is
/// no reason to refuse: the command's own error will say what is missing.
pub fn check_writer(inst: &Instance, command: &str) -> Result<()> {
    let dir = inst.data.root();
    let Some((owner_name, me_name)) = foreign_owner(dir) else {
        return Ok(());
    };
    // NYM_HOME_DIR: sudo resets the environment, and the service user's home is elsewhere
    let base = inst
        .home
        .root()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| format!("NYM_HOME_DIR={} ", p.display()))
        .unwrap_or_default();
    Err(Error::NotOwner(format!(
        "the files of instance `{id}` ({dir}) belong to {owner_name}, but this runs as {me_name}: files it wrote would belong to {me_name} and the nymvisor running as {owner_name} could not update them; run it as {owner_name}: sudo -u {owner_name} {base}NYMVISOR_ID={id} nymvisor {command}",
        id = inst.config.id(),
        dir = dir.display(),
    )))
}

/// A user's name, or `uid N` when the user database has none.
pub(crate) fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// The names of the owner of `path` and of this process's effective user, when they differ
/// (`None`: the same user, or no such path yet).
pub(crate) fn foreign_owner(path: &std::path::Path) -> Option<(String, String)> {
    let owner = std::fs::metadata(path).ok()?.uid();
    let me = nix::unistd::geteuid().as_raw();
    (owner != me).then(|| (user_name(owner), user_name(me)))
}
