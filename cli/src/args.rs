//! The command line (docs/REFERENCE.md "Commands"), as clap definitions only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;

use crate::init_flags::InitFlags;

#[derive(Debug, Parser)]
#[command(
    name = "nymvisor",
    about = "Supervises a Nym binary and upgrades it automatically",
    version,
    disable_version_flag = true
)]
pub struct Cli {
    /// Load environment variables from this dotenv file first (they override the process
    /// environment and reach the daemon)
    #[arg(short = 'c', long = "config-env-file", value_name = "FILE")]
    pub config_env_file: Option<PathBuf>,

    /// Print `nymvisor <version>`
    #[arg(short = 'V', action = clap::ArgAction::SetTrue)]
    pub short_version: bool,

    /// Print the build information block
    #[arg(long = "version", action = clap::ArgAction::SetTrue)]
    pub long_version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an instance for a daemon binary
    Init(InitArgs),
    /// Run and supervise the daemon: `nymvisor run run --id my-node` runs `nym-node run --id my-node`
    #[command(
        disable_help_flag = true,
        after_long_help = "Everything after `run` goes to the daemon verbatim; `nymvisor run -- --help` shows the daemon's own help."
    )]
    Run(RunArgs),
    /// Print nymvisor's own build information
    BuildInfo(OutputArgs),
    /// Print the build information of the daemon binary `current` points to
    DaemonBuildInfo(OutputArgs),
    /// Queue an upgrade with a local binary
    AddUpgrade(AddUpgradeArgs),
    /// Print the effective configuration (file + environment overrides)
    Config(OutputArgs),
    /// Show what runs, which version, what is queued, the last upgrade and the last error
    Status(OutputArgs),
    /// Apply no upgrade automatically until `unhold` (`add-upgrade --now` still applies)
    Hold {
        /// Why (shown by `status` and in the log)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Lift the hold: upgrades are applied again
    Unhold,
    /// Consider an upgrade again: a refused one (an upstream entry takes upstream's current
    /// document), a cancelled one, or a rolled-back one (queued again from its kept binary)
    Retry {
        /// The upgrade's name, as `status` shows it
        #[arg(value_name = "NAME")]
        name: String,
        /// Apply it as soon as it is verified, whatever the spread, windows or hold
        #[arg(long)]
        now: bool,
    },
    /// Take a queued upgrade out of the plan; the same release offered upstream is not queued
    /// again until upstream changes it or `nymvisor retry NAME`
    Cancel {
        /// The upgrade's name, as `status` shows it
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Go back to the version that ran before the current one (with `run` running, the running
    /// nymvisor does it; otherwise this command, and the daemon runs it at the next start)
    Rollback {
        /// Also restore the backup taken before the current version was installed (a safety
        /// copy of the data it replaces is kept)
        #[arg(long)]
        with_data: bool,
        /// At once, even on hold or outside the maintenance windows
        #[arg(long)]
        now: bool,
    },
    /// List or restore backups of the daemon's data
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Keep a private mirror for your nodes: `mirror sync` fetches, verifies and signs the
    /// newest releases into a directory any static web server can serve
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// The fleet group on etcd (NYMVISOR_FLEET_ETCD_ENDPOINTS): its slots, failures and hold;
    /// run from any member
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Print a shell completion script (e.g. `nymvisor completions bash > /etc/bash_completion.d/nymvisor`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (e.g. `nymvisor man > /usr/local/share/man/man1/nymvisor.1`)
    Man,
    /// Internal: one network job of `run` (a poll, or preparing a binary), in a sandbox
    #[command(name = "__helper", hide = true)]
    Helper,
    /// Internal: one call of a verifier plugin, in a process of its own
    #[command(name = "__plugin", hide = true)]
    Plugin {
        /// Say the plugin's name and whether it is a source, instead of calling it
        #[arg(long)]
        describe: bool,
        #[arg(value_name = "LIBRARY")]
        library: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Arguments passed to the daemon verbatim (including ones that start with `-`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "DAEMON_ARGS"
    )]
    pub daemon_args: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The daemon binary to manage (copied to genesis/bin/<name>)
    #[arg(value_name = "DAEMON_BINARY")]
    pub binary: PathBuf,

    #[command(flatten)]
    pub flags: InitFlags,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct AddUpgradeArgs {
    /// The new daemon binary
    #[arg(value_name = "BINARY")]
    pub binary: PathBuf,

    /// Name of the upgrade ([A-Za-z0-9._-], up to 128 characters)
    #[arg(long, value_name = "NAME")]
    pub upgrade_name: String,

    /// Overwrite an existing upgrade of that name
    #[arg(long)]
    pub force: bool,

    /// Only add the binary to an existing upgrade whose info matches it; the plan is untouched
    #[arg(long)]
    pub add_binary: bool,

    #[command(flatten)]
    pub when: WhenArgs,

    /// Publish date recorded in the upgrade info (RFC 3339) [default: now]
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub publish_date: Option<OffsetDateTime>,

    /// Queue the upgrade even if its version is not newer than the running one
    #[arg(long)]
    pub allow_downgrade: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct WhenArgs {
    /// Perform the upgrade as soon as possible
    #[arg(long)]
    pub now: bool,

    /// Perform the upgrade at this time (RFC 3339)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub upgrade_time: Option<OffsetDateTime>,

    /// Perform the upgrade after this delay [default: 15m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub upgrade_delay: Option<Duration>,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    nymvisor_core::model::parse_rfc3339(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("not a duration such as `30s` or `1h 30m` ({e})"))
}

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// List the backups, oldest first
    List(OutputArgs),
    /// Restore a backup into the daemon home (`<upgrade>` for its newest, or `<upgrade>/<timestamp>`)
    Restore {
        #[arg(value_name = "BACKUP")]
        backup: String,
        /// Stop the running nymvisor (and with it the daemon) first
        #[arg(long)]
        stop: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Members seen, slots and their holders, failed versions, confirmations per version and
    /// the fleet hold
    Status(OutputArgs),
    /// Hold the whole group: no member applies an upgrade automatically until `fleet unhold`
    /// (`add-upgrade --now` still applies, with a log line)
    Hold {
        /// Why (shown by `status` and `fleet status` on every member)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift the fleet hold
    Unhold,
    /// Release MEMBER's failed slot, once the incident is understood
    Release {
        member: String,
        /// Also a slot its member is upgrading or confirming with now (another member may then
        /// stop while this one may still be down)
        #[arg(long)]
        force: bool,
    },
    /// Let the group apply VERSION again after it failed on a member
    Retry { version: String },
    /// Forget MEMBER's record (a host gone for good; a canary that would otherwise keep the
    /// others waiting for its confirmations)
    Forget { member: String },
}

#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Fetch the newest release of each daemon from upstream, verify it as `run` would, and
    /// write it with a signed feed into the mirror directory (for a timer: a second run with
    /// nothing new downloads nothing and only signs the feed anew)
    Sync(MirrorSyncArgs),
}

#[derive(Debug, Args)]
pub struct MirrorSyncArgs {
    /// The mirror directory (created if need be); serve it as the nodes'
    /// NYMVISOR_UPSTREAM_BASE_UPGRADE_URL, or share it as their NYMVISOR_LOCAL_MIRROR_DIRECTORY
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// A daemon to mirror; repeat for several [default: the instance's with --id, else
    /// DAEMON_NAME, else nym-node]
    #[arg(long = "daemon", value_name = "NAME")]
    pub daemons: Vec<String>,

    /// Take the upstream and verification settings from this instance (its config file with
    /// environment overrides); without it, from the environment over the defaults
    /// (NYMVISOR_UPSTREAM_SOURCE, NYMVISOR_GITHUB_*, DAEMON_MINISIGN_PUBLIC_KEYS, ...)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// A minisign secret key to sign with; repeat to sign the feeds with several (rotation,
    /// thresholds); the first also signs the binaries [default: the mirror is not signed]
    #[arg(long = "sign-key", value_name = "FILE")]
    pub sign_keys: Vec<PathBuf>,

    /// The environment variable that holds the password of encrypted secret keys
    #[arg(long, value_name = "VAR")]
    pub sign_key_password_env: Option<String>,

    /// The URL the mirror is served at: binary URLs in the feeds become absolute under it
    /// [default: relative to each feed]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// How long each signed feed stays valid; nodes treat an expired one as stale, so sync
    /// well before (the shipped timer syncs hourly)
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub expires: Duration,

    /// How many releases per daemon the mirror keeps
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

/// Whether the command line has `--` right after `run` (`nymvisor [-c FILE] run -- --help`):
/// clap drops the separator, so `run -- --help` and `run --help` would look alike, but the
/// first asks the daemon for its help.
pub fn separator_after_run(args: &[std::ffi::OsString]) -> bool {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-c" | "--config-env-file") => {
                it.next();
            }
            Some(s)
                if s.starts_with("--config-env-file=") || (s.starts_with("-c") && s.len() > 2) => {}
            Some("run") => return it.next().is_some_and(|n| n == "--"),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<std::ffi::OsString> {
        s.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn the_separator_after_run_is_seen() {
        assert!(separator_after_run(&args(&[
            "nymvisor", "run", "--", "--help"
        ])));
        assert!(separator_after_run(&args(&[
            "nymvisor", "-c", "x.env", "run", "--", "-h"
        ])));
        assert!(separator_after_run(&args(&[
            "nymvisor",
            "--config-env-file=x",
            "run",
            "--"
        ])));
        assert!(!separator_after_run(&args(&["nymvisor", "run", "--help"])));
        assert!(!separator_after_run(&args(&["nymvisor", "status", "--"])));
        assert!(!separator_after_run(&args(&[
            "nymvisor", "run", "run", "--", "--help"
        ])));
    }
}
