//! `nymvisor add-upgrade`: queueing an upgrade with a local binary.
//!
//! Everything is checked before anything is written; then the binary is copied atomically, its
//! `upgrade-info.json` written, and the plan updated last, under the plan lock, so a running
//! nymvisor never sees a plan entry whose binary is not complete.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use crate::build_info;
use crate::error::{Error, Result};
use crate::fsutil::{self, BINARY_MODE, FileLock};
use crate::instance::Instance;
use crate::model::{self, Journal, Refusals, UpgradeInfo};
use crate::names::parse_version;
use crate::refusal::Refusal;
use crate::upgrade::policy;

/// Default delay before a queued upgrade is applied.
pub const DEFAULT_UPGRADE_DELAY: Duration = Duration::from_secs(15 * 60);

/// When the queued upgrade should happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeWhen {
    Now,
    At(OffsetDateTime),
    After(Duration),
}

/// An `add-upgrade` request.
#[derive(Debug, Clone)]
pub struct AddUpgrade {
    pub binary: PathBuf,
    pub name: String,
    pub force: bool,
    pub add_binary: bool,
    pub when: UpgradeWhen,
    pub publish_date: Option<OffsetDateTime>,
    /// Queue a version that is not newer than the current one.
    pub allow_downgrade: bool,
}

/// What `add-upgrade` did.
#[derive(Debug, Clone)]
pub struct AddUpgradeOutcome {
    pub info: UpgradeInfo,
    /// Only the binary was added to an existing upgrade (`--add-binary`).
    pub binary_only: bool,
    pub binary_path: PathBuf,
}

/// Validates and queues the upgrade. On error nothing on disk has changed.
pub async fn add_upgrade(instance: &Instance, req: &AddUpgrade) -> Result<AddUpgradeOutcome> {
    super::owner::check_writer(instance, "add-upgrade …")?;
    policy::check_name(&req.name).map_err(refused)?;
    check_executable(&req.binary)?;
    let build = build_info::probe_daemon(&req.binary, &instance.config.daemon.name).await?;
    parse_version(
        &build.build_version,
        &format!("the build information of {}", req.binary.display()),
    )?;

    let data = &instance.data;
    let _plan_lock = FileLock::acquire_blocking(&data.plan_lock())?;
    let mut plan = instance.plan()?;
    let history = instance.history()?;
    let journal = Journal::load(data.root())?;
    let mut refusals = Refusals::load(&data.refusals())?;
    let ctx = policy::Context {
        current: &plan.current,
        queued: &plan.queued_up,
        history: &history,
        in_flight: journal.as_ref(),
        allow_downgrade: req.allow_downgrade || instance.config.daemon.allow_downgrade,
        refusals: &refusals,
    };
    let info_path = data.upgrade_info(&req.name);
    let bin_path = data.upgrade_bin(&req.name);

    if req.add_binary {
        policy::admit_binary(&ctx, &req.name).map_err(refused)?;
        return add_binary_only(req, &build, &info_path, &bin_path);
    }

    let exists = info_path.exists() || bin_path.exists() || plan.queued(&req.name).is_some();
    policy::admit_manual(&ctx, &req.name, &build.build_version, exists, req.force)
        .map_err(refused)?;

    let now = model::now();
    let upgrade_time = match req.when {
        UpgradeWhen::Now => now,
        UpgradeWhen::At(t) => t,
        UpgradeWhen::After(d) => time::Duration::try_from(d)
            .ok()
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| {
                Error::UpgradeRefused(format!(
                    "--upgrade-delay {} is too far in the future",
                    humantime::format_duration(d)
                ))
            })?,
    };
    let info = UpgradeInfo {
        manual: false,
        name: req.name.clone(),
        notes: "manually added via 'add-upgrade' command".to_owned(),
        publish_date: Some(req.publish_date.unwrap_or(now)),
        version: build.build_version.clone(),
        platforms: Default::default(),
        upgrade_time,
        binary_details: Some(build),
        immediate: req.when == UpgradeWhen::Now,
        allow_downgrade: req.allow_downgrade,
        first_seen_at: None,
    };

    fsutil::create_dir_all(&data.upgrade_bin_dir(&req.name))?;
    fsutil::atomic_copy(&req.binary, &bin_path, BINARY_MODE, true)?;
    fsutil::write_json(&info_path, &info)?;
    plan.remove(&req.name);
    plan.insert(info.clone());
    plan.save(&data.plan())?;
    // a new entry is a new candidate: whatever was refused under this name is forgotten
    if refusals.clear(&req.name) {
        refusals.save(&data.refusals())?;
    }
    Ok(AddUpgradeOutcome {
        info,
        binary_only: false,
        binary_path: bin_path,
    })
}

fn check_executable(binary: &Path) -> Result<()> {
    let meta = std::fs::metadata(binary)
        .map_err(|e| Error::io("cannot use the upgrade binary", binary, e))?;
    if !meta.is_file() {
        return Err(Error::UpgradeRefused(format!(
            "{} is not a regular file",
            binary.display()
        )));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::UpgradeRefused(format!(
            "{} is not executable; run `chmod +x {}` first",
            binary.display(),
            binary.display()
        )));
    }
    Ok(())
}

fn refused(r: Refusal) -> Error {
    Error::UpgradeRefused(r.reason)
}

/// `--add-binary`: the upgrade's info exists and describes this binary; only the binary is
/// written, the plan is not touched.
fn add_binary_only(
    req: &AddUpgrade,
    build: &crate::model::BuildInfo,
    info_path: &Path,
    bin_path: &Path,
) -> Result<AddUpgradeOutcome> {
    let Some(info) = fsutil::read_json_opt::<UpgradeInfo>(info_path)? else {
        return Err(Error::UpgradeRefused(format!(
            "--add-binary: there is no upgrade `{}` ({} is missing); add it without --add-binary",
            req.name,
            info_path.display()
        )));
    };
    if info.version != build.build_version
        || info
            .binary_details
            .as_ref()
            .is_some_and(|d| !build.matches(d))
    {
        return Err(Error::UpgradeRefused(format!(
            "--add-binary: {} is version {} but upgrade `{}` expects {}{}",
            req.binary.display(),
            build.build_version,
            req.name,
            info.version,
            if info.version == build.build_version {
                " with other build details"
            } else {
                ""
            }
        )));
    }
    if bin_path.exists() && !req.force {
        return Err(Error::UpgradeRefused(format!(
            "upgrade `{}` already has a binary ({}); pass --force to replace it",
            req.name,
            bin_path.display()
        )));
    }
    if let Some(dir) = bin_path.parent() {
        fsutil::create_dir_all(dir)?;
    }
    fsutil::atomic_copy(&req.binary, bin_path, BINARY_MODE, true)?;
    Ok(AddUpgradeOutcome {
        info,
        binary_only: true,
        binary_path: bin_path.to_owned(),
    })
}
