//! `nymvisor add-upgrade` (SPEC §8.5): queueing an upgrade with a local binary.
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
use crate::model::{self, UpgradeInfo, UpgradePlan};
use crate::paths::GENESIS;
use crate::rules::{compare_versions, parse_version, validate_upgrade_name};

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
    validate_upgrade_name(&req.name)?;
    if req.name == GENESIS {
        return Err(Error::UpgradeRefused(
            "`genesis` is the name of the initial binary; choose another --upgrade-name".into(),
        ));
    }
    check_executable(&req.binary)?;
    let build = build_info::probe_daemon(&req.binary, &instance.config.daemon.name).await?;
    parse_version(
        &build.build_version,
        &format!("the build information of {}", req.binary.display()),
    )?;

    let data = &instance.data;
    let _plan_lock = FileLock::acquire_blocking(&data.plan_lock())?;
    let mut plan = instance.plan()?;
    let info_path = data.upgrade_info(&req.name);
    let bin_path = data.upgrade_bin(&req.name);

    if plan.current.name == req.name {
        return Err(Error::UpgradeRefused(format!(
            "`{}` is the upgrade the daemon runs now; choose another --upgrade-name",
            req.name
        )));
    }

    if let Some(journal) = crate::run::Journal::load(data.root())?
        && (journal.upgrade.name == req.name || journal.previous.name == req.name)
    {
        return Err(Error::UpgradeRefused(format!(
            "upgrade `{}` is being applied or awaits confirmation by the running nymvisor; try again once it is confirmed",
            req.name
        )));
    }

    if req.add_binary {
        return add_binary_only(req, &build, &info_path, &bin_path);
    }

    let exists = info_path.exists() || bin_path.exists() || plan.queued(&req.name).is_some();
    if exists && !req.force {
        return Err(Error::UpgradeRefused(format!(
            "upgrade `{}` already exists ({}); pass --force to overwrite it, or --add-binary to only add its binary",
            req.name,
            data.upgrade_dir(&req.name).display()
        )));
    }
    check_version(instance, &plan, req, &build.build_version)?;

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
    };

    fsutil::create_dir_all(&data.upgrade_bin_dir(&req.name))?;
    fsutil::atomic_copy(&req.binary, &bin_path, BINARY_MODE, true)?;
    fsutil::write_json(&info_path, &info)?;
    plan.remove(&req.name);
    plan.insert(info.clone());
    plan.save(&data.plan())?;
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

/// Newer than what runs, and not a version that is already queued under another name.
fn check_version(
    instance: &Instance,
    plan: &UpgradePlan,
    req: &AddUpgrade,
    version: &str,
) -> Result<()> {
    let allow_downgrade = req.allow_downgrade || instance.config.daemon.allow_downgrade;
    if !allow_downgrade && compare_versions(version, &plan.current.version)?.is_le() {
        return Err(Error::UpgradeRefused(format!(
            "version {version} is not newer than the running {} (upgrade `{}`); pass --allow-downgrade (or set DAEMON_ALLOW_DOWNGRADE=true) to queue it anyway",
            plan.current.version, plan.current.name
        )));
    }
    if let Some(other) = plan
        .queued_up
        .iter()
        .find(|q| q.name != req.name && q.version == version)
    {
        return Err(Error::UpgradeRefused(format!(
            "version {version} is already queued as upgrade `{}`",
            other.name
        )));
    }
    Ok(())
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
