//! One nymvisor instance: its effective configuration and the paths derived from it, plus the
//! operations that change its state outside of `run` (`init`, `add-upgrade`).

mod add_upgrade;
pub mod backups;
mod init;

pub use add_upgrade::{
    AddUpgrade, AddUpgradeOutcome, DEFAULT_UPGRADE_DELAY, UpgradeWhen, add_upgrade,
};
pub use init::{InitOutcome, init};

use std::path::PathBuf;

use crate::config::{self, Config};
use crate::env::Env;
use crate::error::Result;
use crate::model::{CurrentVersionInfo, UpgradeHistory, UpgradePlan};
use crate::paths::{DaemonHomeDir, NymvisorHome, UpgradeDataDir};

/// An instance resolved from its configuration.
#[derive(Debug, Clone)]
pub struct Instance {
    pub config: Config,
    pub config_path: PathBuf,
    pub home: NymvisorHome,
    pub data: UpgradeDataDir,
    pub daemon_home: DaemonHomeDir,
}

impl Instance {
    /// The instance a command is about: located, loaded and overridden by `env` (SPEC §3).
    pub fn open(env: &Env) -> Result<Instance> {
        let (config_path, config) = config::load_effective(env)?;
        let home = NymvisorHome::from_env(env)?;
        Ok(Instance::new(config, config_path, home))
    }

    /// An instance from an already validated configuration.
    pub fn new(config: Config, config_path: PathBuf, home: NymvisorHome) -> Instance {
        let data = UpgradeDataDir::new(config.upgrade_data_dir(&home), &config.daemon.name);
        let daemon_home = DaemonHomeDir::new(&config.daemon.home);
        Instance {
            config,
            config_path,
            home,
            data,
            daemon_home,
        }
    }

    /// The upgrade plan (an error names the file when it is missing or corrupt).
    pub fn plan(&self) -> Result<UpgradePlan> {
        UpgradePlan::load(&self.data.plan())
    }

    /// The upgrade history (missing file: empty).
    pub fn history(&self) -> Result<UpgradeHistory> {
        UpgradeHistory::load(&self.data.history())
    }

    /// The current version record, from either file name.
    pub fn current_version(&self) -> Result<Option<CurrentVersionInfo>> {
        CurrentVersionInfo::load(&self.daemon_home)
    }
}
