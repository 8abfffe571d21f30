//! One nymvisor instance: its effective configuration and the paths derived from it, plus the
//! operations that change its state outside of `run` (`init`, `add-upgrade`).

mod add_upgrade;
pub mod backups;
pub mod cancel;
pub mod hold;
mod init;
pub mod owner;
pub mod retry;
pub mod rollback;

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
    /// This node's name in its fleet group (`fleet.member`, else `<hostname>/<id>`), resolved
    /// once here: the network helper's sandbox cannot read the host name, so it gets this.
    /// Empty without a fleet.
    pub fleet_member: String,
    /// This host's name as the fleet records it (slots and members carry it, so two hosts
    /// given the same member name are told apart); resolved here for the same reason.
    pub fleet_host: String,
}

impl Instance {
    /// The instance a command is about: located, loaded and overridden by `env`
    /// (docs/REFERENCE.md "Configuration").
    pub fn open(env: &Env) -> Result<Instance> {
        let (config_path, config) = config::load_effective(env)?;
        let home = NymvisorHome::from_env(env)?;
        Ok(Instance::new(config, config_path, home))
    }

    /// An instance from an already validated configuration.
    pub fn new(config: Config, config_path: PathBuf, home: NymvisorHome) -> Instance {
        let data = UpgradeDataDir::new(config.upgrade_data_dir(&home), &config.daemon.name);
        let daemon_home = DaemonHomeDir::new(&config.daemon.home);
        // the host name is read once, and only for a fleet (every command builds an instance)
        let (fleet_member, fleet_host) = if config.fleet.enabled() {
            let host = crate::config::fleet_host_name();
            (config.fleet.member_name(&host, config.id()), host)
        } else {
            (String::new(), String::new())
        };
        Instance {
            config,
            config_path,
            home,
            data,
            daemon_home,
            fleet_member,
            fleet_host,
        }
    }

    /// The configuration as this instance works from it, for `nymvisor config`: the file and
    /// the environment, and the fleet member's name as resolved (with a fleet).
    pub fn effective_config(&self) -> Config {
        let mut c = self.config.clone();
        if c.fleet.enabled() {
            c.fleet.member = Some(self.fleet_member.clone());
        }
        c
    }

    /// The upgrade plan (an error names the file when it is missing or corrupt).
    pub fn plan(&self) -> Result<UpgradePlan> {
        UpgradePlan::load(&self.data.plan())
    }

    /// The upgrade history (missing file: empty).
    pub fn history(&self) -> Result<UpgradeHistory> {
        UpgradeHistory::load(&self.data.history())
    }

    /// What a backup of the daemon home copies and leaves out: nymvisor's own directory in the
    /// home, the backup directory, the upgrade data directory and a restore's staging directory
    /// (wherever they lie), plus the operator's exclusions.
    pub fn backup_plan(&self, min_free_after: u64) -> crate::backup::BackupPlan {
        let cfg = &self.config;
        let backup_root = cfg.backup_dir();
        crate::backup::BackupPlan {
            source: cfg.daemon.home.clone(),
            skip: vec![
                self.daemon_home.dir().to_owned(),
                backup_root.clone(),
                self.data.root().to_owned(),
                cfg.daemon.home.join(".nymvisor-restore.partial"),
            ],
            backup_root,
            exclude: cfg.daemon.backup_exclude.clone(),
            keep: cfg.daemon.backup_keep as usize,
            min_free_after,
        }
    }

    /// Spread and windows of this instance, with its fleet seed (drawn once, kept in the
    /// instance's data directory across restarts and upgrades).
    pub fn timing(&self) -> Result<crate::timing::Timing> {
        self.timing_with(true)
    }

    /// [`Instance::timing`] for readers (`status`, `rollback`): a missing seed is not drawn
    /// (nothing is written); the spread is then estimated with seed 0.
    pub fn timing_readonly(&self) -> Result<crate::timing::Timing> {
        self.timing_with(false)
    }

    fn timing_with(&self, draw: bool) -> Result<crate::timing::Timing> {
        let windows = match &self.config.daemon.upgrade_windows {
            Some(text) => Some(crate::timing::Windows::parse(text).map_err(|message| {
                crate::error::Error::ConfigKey {
                    key: "daemon.upgrade_windows".into(),
                    env: "DAEMON_UPGRADE_WINDOWS",
                    message,
                }
            })?),
            None => None,
        };
        Ok(crate::timing::Timing {
            seed: self.fleet_seed(draw)?,
            spread: self.config.daemon.upgrade_spread,
            windows,
        })
    }

    /// The instance's fleet seed: read, or — only when there is none yet — drawn from the
    /// kernel's random source and saved. A seed file that exists but cannot be read or does not
    /// hold a seed is an error naming it: drawing a new seed would silently move this node's
    /// place in the fleet's spread.
    pub fn fleet_seed(&self, draw: bool) -> Result<u64> {
        let dir = self.home.instance_data_dir(self.config.id());
        let path = dir.join("fleet-seed");
        let unusable = |why: String| {
            crate::error::Error::Setup(format!(
                "the fleet seed {} {why}; no new seed is drawn (this node's place in the spread would move): fix it, or remove it to draw a new one",
                path.display()
            ))
        };
        match crate::fsutil::read_capped(&path, 64) {
            Ok(bytes) => {
                return u64::from_str_radix(String::from_utf8_lossy(&bytes).trim(), 16)
                    .map_err(|_| unusable("does not hold a seed (16 hex digits)".into()));
            }
            Err(crate::error::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !draw =>
            {
                return Ok(0);
            }
            Err(crate::error::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unusable(format!("cannot be read: {e}"))),
        }
        let mut raw = [0u8; 8];
        let seed = match std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))
        {
            Ok(()) => u64::from_le_bytes(raw),
            Err(_) => fastrand::u64(..),
        };
        crate::fsutil::create_dir_all(&dir)?;
        crate::fsutil::atomic_write(&path, format!("{seed:016x}\n").as_bytes(), 0o644)?;
        Ok(seed)
    }

    /// The verifiers' extra sandbox paths and the local mirror must not reach nymvisor's own
    /// state (its home: instances and upgrade data) either; the configuration checked the
    /// daemon home and the backups ([`Config::overlaps_secrets`]).
    pub fn check_sandbox_paths(&self) -> Result<()> {
        let n = &self.config.nymvisor;
        let state = [
            ("nymvisor's home", self.home.root().to_owned()),
            ("the upgrade data directory", self.data.root().to_owned()),
        ];
        for (key, env, paths) in [
            (
                "nymvisor.verifier_readable_paths",
                "NYMVISOR_VERIFIER_READABLE_PATHS",
                &n.verifier_readable_paths,
            ),
            (
                "nymvisor.verifier_writable_paths",
                "NYMVISOR_VERIFIER_WRITABLE_PATHS",
                &n.verifier_writable_paths,
            ),
        ] {
            for p in paths {
                if let Some(why) = config::overlap(p, state.iter().cloned()) {
                    return Err(crate::error::Error::ConfigKey {
                        key: key.into(),
                        env,
                        message: format!(
                            "{} {why}; a verifier's sandbox never reaches nymvisor's state",
                            p.display()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The hold on automatic upgrades, if one is in force.
    pub fn hold(&self) -> Result<Option<crate::model::Hold>> {
        crate::model::Hold::load(&self.data.hold())
    }

    /// The current version record, from either file name.
    pub fn current_version(&self) -> Result<Option<CurrentVersionInfo>> {
        CurrentVersionInfo::load(&self.daemon_home)
    }
}
