//! `nymvisor init`: creating an instance.
//!
//! Order of writes: binary, genesis info, `current` link, plan, current version info, and the
//! config file last. The config file is the commit point: an instance exists once it is there, and
//! an `init` interrupted before it can simply be run again.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::build_info;
use crate::config::{Config, KeyDef};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::fsutil::{self, BINARY_MODE};
use crate::instance::Instance;
use crate::model::{CurrentVersionInfo, UpgradeInfo, UpgradePlan};
use crate::names::parse_version;
use crate::paths::{GENESIS, NymvisorHome};

/// What `init` did.
#[derive(Debug)]
pub struct InitOutcome {
    pub instance: Instance,
    /// False when the same instance already existed with the same setup (nothing was written).
    pub created: bool,
}

/// Creates an instance for `binary`. `flags` are the `init` flags given on the command line;
/// environment variables in `env` win over them.
pub async fn init<'a>(
    env: &Env,
    binary: &Path,
    flags: impl IntoIterator<Item = (&'a KeyDef, String)>,
) -> Result<InitOutcome> {
    let home = NymvisorHome::from_env(env)?;
    let build = build_info::probe(binary, build_info::PROBE_TIMEOUT).await?;
    parse_version(
        &build.build_version,
        &format!("the build information of {}", binary.display()),
    )?;

    let mut config = Config::default().apply_flags(flags)?.apply_env(env)?;
    if config.daemon.name.is_empty() {
        config.daemon.name = build.binary_name.clone();
    }
    absolutize(&mut config)?;
    let config = config.validated()?;
    if build.binary_name != config.daemon.name {
        return Err(Error::WrongDaemon {
            binary: binary.to_owned(),
            expected: config.daemon.name.clone(),
            found: build.binary_name,
        });
    }
    if !config.daemon.home.is_dir() {
        return Err(Error::InitRefused(format!(
            "the daemon home {} does not exist; initialise the daemon first (e.g. `{} init`) or pass the right --daemon-home",
            config.daemon.home.display(),
            config.daemon.name
        )));
    }

    let config_path = home.config_path(config.id());
    let instance = Instance::new(config, config_path, home);
    let genesis_bin = instance.data.upgrade_bin(GENESIS);

    if instance.config_path.exists() {
        confirm_same_setup(&instance, binary)?;
        return Ok(InitOutcome {
            instance,
            created: false,
        });
    }
    refuse_shared_data_dir(&instance)?;
    refuse_foreign_plan(&instance, binary)?;

    let genesis = UpgradeInfo {
        manual: true,
        name: GENESIS.to_owned(),
        notes: String::new(),
        publish_date: None,
        version: build.build_version.clone(),
        platforms: Default::default(),
        upgrade_time: OffsetDateTime::UNIX_EPOCH,
        binary_details: Some(build),
        immediate: false,
        allow_downgrade: false,
        first_seen_at: None,
    };
    let data = &instance.data;
    fsutil::create_dir_all(&data.upgrade_bin_dir(GENESIS))?;
    fsutil::create_dir_all(&data.upgrades_dir())?;
    fsutil::atomic_copy(binary, &genesis_bin, BINARY_MODE, true)?;
    fsutil::write_json(&data.upgrade_info(GENESIS), &genesis)?;
    fsutil::swap_symlink(&data.current_link(), &data.link_target(GENESIS))?;
    UpgradePlan::new(genesis.clone()).save(&data.plan())?;
    CurrentVersionInfo::from_upgrade(&genesis).save(&instance.daemon_home)?;
    if let Some(dir) = instance.config_path.parent() {
        fsutil::create_dir_all(dir)?;
    }
    fsutil::create_dir_all(&instance.home.instance_data_dir(instance.config.id()))?;
    instance.config.save(&instance.config_path)?;
    Ok(InitOutcome {
        instance,
        created: true,
    })
}

/// Relative paths would change meaning with the working directory of later commands.
fn absolutize(config: &mut Config) -> Result<()> {
    let abs = |p: &mut PathBuf| -> Result<()> {
        if !p.as_os_str().is_empty() && p.is_relative() {
            *p = std::path::absolute(&*p)
                .map_err(|e| Error::io("failed to resolve the path", p.clone(), e))?;
        }
        Ok(())
    };
    abs(&mut config.daemon.home)?;
    if let Some(p) = config.nymvisor.upgrade_data_directory.as_mut() {
        abs(p)?;
    }
    if let Some(p) = config.daemon.backup_data_directory.as_mut() {
        abs(p)?;
    }
    if let Some(p) = config.nymvisor.local_mirror_directory.as_mut() {
        abs(p)?;
    }
    Ok(())
}

/// A repeated `init` of an existing instance: fine if nothing would change, refused otherwise.
fn confirm_same_setup(instance: &Instance, binary: &Path) -> Result<()> {
    let existing = Config::load_file(&instance.config_path)?;
    let existing = existing.validated()?;
    let (old, new) = (existing.to_value(), instance.config.to_value());
    let mut differences = Vec::new();
    for section in ["nymvisor", "daemon"] {
        if let (Some(o), Some(n)) = (old[section].as_object(), new[section].as_object()) {
            for (key, value) in n {
                if o.get(key) != Some(value) {
                    differences.push(format!("{section}.{key}"));
                }
            }
        }
    }
    if !differences.is_empty() {
        return Err(Error::InitRefused(format!(
            "instance `{}` already exists ({}) with a different configuration ({}); nothing was changed. Edit that file, or remove the instance to start over",
            instance.config.id(),
            instance.config_path.display(),
            differences.join(", ")
        )));
    }
    let genesis_bin = instance.data.upgrade_bin(GENESIS);
    if !genesis_bin.exists() || !fsutil::same_contents(&genesis_bin, binary)? {
        return Err(Error::InitRefused(format!(
            "instance `{}` already exists and its genesis binary {} differs from {}; nothing was changed. To run a new binary use `nymvisor add-upgrade`",
            instance.config.id(),
            genesis_bin.display(),
            binary.display()
        )));
    }
    Ok(())
}

/// Two instances never share an upgrade data directory silently (0.1.41 did, and an upgrade of
/// one broke the other).
fn refuse_shared_data_dir(instance: &Instance) -> Result<()> {
    let ours = instance.data.root();
    for other in instance.home.instances()? {
        if other == instance.config.id() {
            continue;
        }
        let Ok(config) = Config::load_file(&instance.home.config_path(&other)) else {
            continue;
        };
        let Ok(config) = config.validated() else {
            continue;
        };
        if same_path(&config.upgrade_data_dir(&instance.home), ours) {
            return Err(Error::InitRefused(format!(
                "the upgrade data directory {} is already used by instance `{other}`; give this instance its own with --upgrade-data-directory <DIR> (or NYMVISOR_UPGRADE_DATA_DIRECTORY)",
                ours.display()
            )));
        }
    }
    Ok(())
}

/// An upgrade data directory that holds someone else's plan is not taken over. A plan left by an
/// interrupted `init` of the same binary is resumed.
fn refuse_foreign_plan(instance: &Instance, binary: &Path) -> Result<()> {
    let plan_path = instance.data.plan();
    if !plan_path.exists() {
        return Ok(());
    }
    let genesis_bin = instance.data.upgrade_bin(GENESIS);
    let resumable = match UpgradePlan::load(&plan_path) {
        Ok(plan) => {
            plan.current.name == GENESIS
                && plan.queued_up.is_empty()
                && genesis_bin.exists()
                && fsutil::same_contents(&genesis_bin, binary)?
        }
        Err(_) => false,
    };
    if resumable {
        return Ok(());
    }
    Err(Error::InitRefused(format!(
        "{} already holds an upgrade plan that no instance owns; nothing was changed. Move it away, or give this instance its own directory with --upgrade-data-directory <DIR>",
        instance.data.root().display()
    )))
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
