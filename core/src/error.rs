//! The one error type of `nymvisor-core`.
//!
//! Every variant names the file, variable or binary involved so that the one-line message the CLI
//! prints tells the operator what failed and where.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON state file could not be parsed.
    #[error("{} is not valid: {source}; fix or restore the file (nothing was changed)", path.display())]
    CorruptJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A state file is not a regular file (a FIFO, a device, a directory…).
    #[error("{} is {kind}, not a regular file; nymvisor does not read it (move it away and restore the file)", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },

    /// A state file is larger than any file nymvisor writes.
    #[error("{} is larger than {} MiB, far more than nymvisor ever writes there; it is not read (move it away and restore the file)", path.display(), cap / (1024 * 1024))]
    TooLarge { path: PathBuf, cap: u64 },

    /// The configuration file could not be parsed.
    #[error("{} is not a valid nymvisor config: {message}", path.display())]
    CorruptConfig { path: PathBuf, message: String },

    /// A value in the configuration is not acceptable.
    #[error("config key `{key}`: {message}")]
    ConfigValue { key: String, message: String },

    /// A value of a key, from the file or its environment variable, is not acceptable.
    #[error("config key `{key}` (environment variable {env}): {message}")]
    ConfigKey {
        key: String,
        env: &'static str,
        message: String,
    },

    /// An environment variable is set but its value is malformed.
    #[error("environment variable {var}={value:?} is malformed: {message}")]
    EnvValue {
        var: String,
        value: String,
        message: String,
    },

    /// An `init` flag has a malformed value.
    #[error("--{flag} {value:?}: {message}")]
    FlagValue {
        flag: String,
        value: String,
        message: String,
    },

    /// No configuration could be found for a command.
    #[error("{0}")]
    NoInstance(String),

    /// A version string is not semver.
    #[error("invalid version {version:?} in {context}: {source}")]
    InvalidVersion {
        version: String,
        context: String,
        #[source]
        source: semver::Error,
    },

    /// Probing a binary for its build information failed.
    #[error("could not read the build information of {}: {message}", binary.display())]
    BuildInfo { binary: PathBuf, message: String },

    /// A binary does not belong to the managed daemon.
    #[error("{} is a `{found}` binary, but this instance manages `{expected}`", binary.display())]
    WrongDaemon {
        binary: PathBuf,
        expected: String,
        found: String,
    },

    /// Another process holds a lock.
    #[error("{} is locked by another nymvisor{}; only one may manage an upgrade data directory", path.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<u32> },

    /// `init` refused to touch an existing setup.
    #[error("{0}")]
    InitRefused(String),

    /// `add-upgrade` refused the request.
    #[error("{0}")]
    UpgradeRefused(String),

    /// Not enough free space for a backup.
    #[error("not enough free space for a backup in {}: {needed} bytes needed, {free} free; the upgrade is postponed and the daemon keeps running (free some space or set DAEMON_BACKUP_DATA_DIRECTORY)", dir.display())]
    BackupSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },

    /// The daemon failed and nymvisor gives up.
    #[error("{0}")]
    DaemonFailed(String),

    /// A signal handler could not be installed.
    #[error("cannot watch {what}: {source}")]
    Signals {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A background task (a backup, a restore, a download's flush) ended without an answer.
    #[error("{what} was interrupted: {message}")]
    Task { what: &'static str, message: String },

    /// A backup was cancelled (a stop signal, a newer upgrade).
    #[error("the backup was cancelled")]
    Cancelled,

    /// A source or a verifier could not be set up from the configuration.
    #[error("{0}")]
    Setup(String),

    /// A command that writes the instance's files was run by another user than their owner.
    #[error("{0}")]
    NotOwner(String),
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
