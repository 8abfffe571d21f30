//! Typed paths for every file and directory nymvisor uses (docs/REFERENCE.md "Files and
//! formats").
//!
//! Nothing here touches the disk except [`NymvisorHome::instances`], which lists a directory.

use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{Error, Result};

/// Where the GitHub source keeps a probed download (in the upgrade data directory, on the same
/// file system as the upgrades, never in a `/tmp` that may live in memory).
pub const PROBE_DIR: &str = ".github-probe";

/// Where each network helper job gets a temporary directory of its own (`TMPDIR` for it and
/// the verifier commands it runs: the sandbox keeps them out of `/tmp`), removed after the job.
pub const HELPER_TMP_DIR: &str = ".helper-tmp";

/// `<home>/.nym/nymvisors`: instances and the default upgrade data directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NymvisorHome {
    root: PathBuf,
}

impl NymvisorHome {
    /// `$NYM_HOME_DIR/.nym/nymvisors`, else `$HOME/.nym/nymvisors`.
    pub fn from_env(env: &Env) -> Result<Self> {
        let base = env.home_dir().ok_or_else(|| {
            Error::NoInstance("neither NYM_HOME_DIR nor HOME is set; set one of them".to_owned())
        })?;
        Ok(Self::at_base(&base))
    }

    /// The tree under `base/.nym/nymvisors`.
    pub fn at_base(base: &Path) -> Self {
        NymvisorHome {
            root: base.join(".nym").join("nymvisors"),
        }
    }

    /// The tree at `root` itself (`<base>/.nym/nymvisors`, as [`NymvisorHome::root`] gives it).
    pub fn at_root(root: PathBuf) -> Self {
        NymvisorHome { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.root.join("instances")
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.instances_dir().join(id)
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("config").join("config.toml")
    }

    /// Instance-private state (status, run journal).
    pub fn instance_data_dir(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("data")
    }

    pub fn default_upgrade_data_dir(&self, daemon: &str) -> PathBuf {
        self.root.join("data").join(daemon)
    }

    /// Ids of the instances that have a config file, sorted.
    pub fn instances(&self) -> Result<Vec<String>> {
        let dir = self.instances_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("failed to list instances in", dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("failed to list instances in", &dir, e))?;
            if let Some(id) = entry.file_name().to_str()
                && self.config_path(id).is_file()
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// The upgrade data directory of one daemon: binaries, upgrade infos, plan, history, lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeDataDir {
    root: PathBuf,
    daemon: String,
}

/// Name of the `current` symlink's target for the genesis binary.
pub const GENESIS: &str = "genesis";

impl UpgradeDataDir {
    pub fn new(root: PathBuf, daemon: &str) -> Self {
        UpgradeDataDir {
            root,
            daemon: daemon.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn daemon(&self) -> &str {
        &self.daemon
    }

    /// `current`: symlink to `genesis` or `upgrades/<name>`.
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The binary the daemon runs from: `current/bin/<daemon>`.
    pub fn current_bin(&self) -> PathBuf {
        self.current_link().join("bin").join(&self.daemon)
    }

    pub fn genesis_dir(&self) -> PathBuf {
        self.root.join(GENESIS)
    }

    pub fn upgrades_dir(&self) -> PathBuf {
        self.root.join("upgrades")
    }

    /// Directory of an upgrade; `genesis` maps to the genesis directory.
    /// The name must have been checked with [`crate::names::validate_name`].
    pub fn upgrade_dir(&self, name: &str) -> PathBuf {
        if name == GENESIS {
            self.genesis_dir()
        } else {
            self.upgrades_dir().join(name)
        }
    }

    /// Relative symlink target for an upgrade (`genesis` or `upgrades/<name>`).
    pub fn link_target(&self, name: &str) -> PathBuf {
        if name == GENESIS {
            PathBuf::from(GENESIS)
        } else {
            Path::new("upgrades").join(name)
        }
    }

    pub fn upgrade_bin_dir(&self, name: &str) -> PathBuf {
        self.upgrade_dir(name).join("bin")
    }

    pub fn upgrade_bin(&self, name: &str) -> PathBuf {
        self.upgrade_bin_dir(name).join(&self.daemon)
    }

    pub fn upgrade_info(&self, name: &str) -> PathBuf {
        self.upgrade_dir(name).join("upgrade-info.json")
    }

    pub fn plan(&self) -> PathBuf {
        self.root.join("upgrade-plan.json")
    }

    pub fn history(&self) -> PathBuf {
        self.root.join("upgrade-history.json")
    }

    /// Refused upgrades and why (see [`crate::model::Refusals`]).
    pub fn refusals(&self) -> PathBuf {
        self.root.join("upgrade-refusals.json")
    }

    /// The newest signed feed accepted (see [`crate::model::feed_mark::FeedMark`]).
    pub fn feed_mark(&self) -> PathBuf {
        self.root.join("upstream-feed-mark.json")
    }

    /// Fleet records still to be written to etcd, in order (`run/fleet/records.rs`): a release or a
    /// failure that could not reach etcd survives a restart of nymvisor.
    pub fn fleet_pending(&self) -> PathBuf {
        self.root.join("fleet-pending.json")
    }

    /// The hold on automatic upgrades (see [`crate::model::Hold`]).
    pub fn hold(&self) -> PathBuf {
        self.root.join("upgrade-hold.json")
    }

    /// The operator's rollback request for the running nymvisor (see
    /// [`crate::model::RollbackRequest`]).
    pub fn rollback_request(&self) -> PathBuf {
        self.root.join("upgrade-rollback.json")
    }

    /// The upgrade journal (see [`crate::model::Journal`]).
    pub fn journal(&self) -> PathBuf {
        self.root.join("upgrade-journal.json")
    }

    /// Held (flock) by `run` for its whole life; never deleted.
    pub fn run_lock(&self) -> PathBuf {
        self.root.join("upgrade.lock")
    }

    /// Held briefly by every read-modify-write of the plan (`add-upgrade`, `run`).
    pub fn plan_lock(&self) -> PathBuf {
        self.root.join("upgrade-plan.lock")
    }
}

/// nymvisor's files inside the daemon's home: `<DAEMON_HOME>/nymvisor/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonHomeDir {
    dir: PathBuf,
}

impl DaemonHomeDir {
    pub fn new(daemon_home: &Path) -> Self {
        DaemonHomeDir {
            dir: daemon_home.join("nymvisor"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn current_version_info(&self) -> PathBuf {
        self.dir.join("current-version-info.json")
    }

    /// The name 0.1.41 used; read when the new one is absent.
    pub fn legacy_current_version_info(&self) -> PathBuf {
        self.dir.join("current-version.json")
    }
}
