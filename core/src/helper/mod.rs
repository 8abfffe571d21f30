//! The network helper: polling the upstream source (and checking its document) and preparing a
//! binary (download and verification) happen in a short-lived child process — nymvisor
//! re-executed as `nymvisor __helper` — that gets one [`Job`] as JSON on its stdin, answers with
//! one [`Answer`] as JSON on its stdout and exits.
//!
//! Why: the supervisor that keeps the node running never runs the HTTP, TLS and JSON code that
//! reads what the network sends, so it does not keep those pages and allocator arenas resident
//! between polls (docs/BENCHMARKS.md "Idle cost"), and a bug in that code meets a sandbox
//! ([`crate::sandbox`]) instead of the node's data: the helper may write only to its staging
//! directory, and cannot read the daemon home or its keys.
//!
//! What a source remembers between polls (ETags, rate limits, a staged download) travels with
//! the jobs as an opaque `state` value ([`crate::source::UpgradeSource::save_state`]).
//!
//! One configuration truth: every job carries the configuration the supervisor resolved
//! ([`Request::instance`], `-c` env files and environment overrides applied), and the helper is
//! started with the supervisor's resolved environment; the helper never locates, reads or
//! overrides a `config.toml` of its own, so it cannot poll another feed or skip a signature the
//! supervisor requires.

mod client;
pub mod fleet;
mod serve;

pub use client::Helper;
pub use serve::{sandbox_rules, serve, serve_fleet, staging_dirs};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::UpgradeInfo;
use crate::refusal::{Refusal, Retry};

/// The hidden subcommand that runs a job.
pub const SUBCOMMAND: &str = "__helper";

/// What the helper is sent: the instance as the supervisor resolved it, and the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub instance: InstanceSnapshot,
    pub job: Job,
}

/// Everything needed to rebuild the supervisor's [`crate::instance::Instance`] identically,
/// without reading the environment or any file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSnapshot {
    /// The effective configuration (file, `-c` file and environment overrides applied).
    pub config: crate::config::Config,
    pub config_path: std::path::PathBuf,
    /// `<home>/.nym/nymvisors`.
    pub nymvisor_home: std::path::PathBuf,
    /// The fleet member's name as the supervisor resolved it (the sandbox cannot read the
    /// host name).
    #[serde(default)]
    pub fleet_member: String,
    /// This host's name, for the same reason.
    #[serde(default)]
    pub fleet_host: String,
}

impl InstanceSnapshot {
    pub fn of(inst: &crate::instance::Instance) -> InstanceSnapshot {
        InstanceSnapshot {
            config: inst.config.clone(),
            config_path: inst.config_path.clone(),
            nymvisor_home: inst.home.root().to_owned(),
            fleet_member: inst.fleet_member.clone(),
            fleet_host: inst.fleet_host.clone(),
        }
    }

    /// The instance, exactly as the supervisor has it.
    pub fn into_instance(self) -> crate::instance::Instance {
        let mut inst = crate::instance::Instance::new(
            self.config,
            self.config_path,
            crate::paths::NymvisorHome::at_root(self.nymvisor_home),
        );
        if !self.fleet_member.is_empty() {
            inst.fleet_member = self.fleet_member;
        }
        if !self.fleet_host.is_empty() {
            inst.fleet_host = self.fleet_host;
        }
        inst
    }
}

/// One job, written to the helper's stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "camelCase")]
pub enum Job {
    /// Ask the source for its latest release and check its document.
    #[serde(rename_all = "camelCase")]
    Poll {
        state: Option<serde_json::Value>,
        /// Ask for the whole document (what was found last time could not be recorded).
        forget_validators: bool,
    },
    /// Put the upgrade's binary in place, verified.
    #[serde(rename_all = "camelCase")]
    Prepare {
        upgrade: Box<UpgradeInfo>,
        state: Option<serde_json::Value>,
    },
    /// Something to do with the fleet group's records (etcd); `session`: what the last fleet
    /// job left (a login token), see [`crate::fleet::FleetStore::save_session`].
    Fleet {
        op: fleet::FleetOp,
        #[serde(default)]
        session: Option<serde_json::Value>,
    },
}

/// The helper's answer, written to its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "camelCase")]
pub enum Answer {
    Polled {
        outcome: PollOutcome,
        state: Option<serde_json::Value>,
    },
    Prepared {
        refusal: Option<WireRefusal>,
        state: Option<serde_json::Value>,
        /// How long each verifier took (seconds).
        #[serde(default)]
        timings: Vec<(String, f64)>,
    },
    /// `Err`: what failed (etcd unreachable, credentials refused, …).
    Fleet {
        result: Result<fleet::FleetReply, String>,
        #[serde(default)]
        session: Option<serde_json::Value>,
    },
}

/// What a poll came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PollOutcome {
    /// Nothing (new) to see.
    Nothing,
    /// A release, whose document passed the verifiers' checks.
    #[serde(rename_all = "camelCase")]
    Found {
        upgrade: Box<UpgradeInfo>,
        document_url: String,
        /// The document as the source served it (its signature is checked already): the
        /// supervisor checks its freshness against the mark it keeps.
        #[serde(default)]
        document: String,
    },
    /// The source failed (the message names the URL or path); `not_before`: it asked not to
    /// be asked again before then (a rate limit).
    #[serde(rename_all = "camelCase")]
    Failed {
        error: String,
        #[serde(default, with = "time::serde::rfc3339::option")]
        not_before: Option<OffsetDateTime>,
    },
    /// The document was refused by a verifier (the note says which and why).
    Refused { note: String },
}

/// A [`Refusal`] as it crosses the pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRefusal {
    pub reason: String,
    /// `never`, `backoff` (with at least `afterSecs`), or `at` (with `at`).
    pub retry: String,
    #[serde(default)]
    pub after_secs: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    #[serde(default)]
    pub verifier: Option<String>,
}

impl From<&Refusal> for WireRefusal {
    fn from(r: &Refusal) -> Self {
        let (retry, after_secs, at) = match r.retry {
            Retry::Never => ("never", 0, None),
            Retry::After(d) => ("backoff", d.as_secs(), None),
            Retry::At(t) => ("at", 0, Some(t)),
        };
        WireRefusal {
            reason: r.reason.clone(),
            retry: retry.to_owned(),
            after_secs,
            at,
            verifier: r.verifier.clone(),
        }
    }
}

impl From<WireRefusal> for Refusal {
    fn from(w: WireRefusal) -> Self {
        let retry = match (w.retry.as_str(), w.at) {
            ("never", _) => Retry::Never,
            ("at", Some(t)) => Retry::At(t),
            _ => Retry::After(std::time::Duration::from_secs(w.after_secs)),
        };
        Refusal {
            reason: w.reason,
            retry,
            verifier: w.verifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_cross_the_pipe_unchanged() {
        let at = time::macros::datetime!(2026-11-28 12:00 UTC);
        for r in [
            Refusal::never("bad checksum"),
            Refusal::transient("mirror down"),
            Refusal::until("rate limited", at),
            Refusal {
                reason: "slow".into(),
                retry: Retry::After(std::time::Duration::from_secs(90)),
                verifier: Some("command /x".into()),
            },
        ] {
            let text = serde_json::to_string(&WireRefusal::from(&r)).unwrap();
            let back: WireRefusal = serde_json::from_str(&text).unwrap();
            assert_eq!(Refusal::from(back), r);
        }
    }
}
