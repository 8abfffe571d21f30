//! `run-state.json` in the instance data directory: what the running nymvisor is doing, for
//! `status` and for a later nymvisor to recognise a daemon left behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil;

/// The state document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub nymvisor_pid: u32,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub nymvisor_started_at: Option<OffsetDateTime>,
    pub daemon_pid: Option<u32>,
    /// `/proc` start time of the daemon, to recognise that exact process later.
    pub daemon_start_ticks: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub daemon_started_at: Option<OffsetDateTime>,
    pub startup_failures: u32,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_error_at: Option<OffsetDateTime>,
    /// Queued upgrades whose binary is in place and verified.
    #[serde(default)]
    pub ready: Vec<String>,
    /// The upgrade whose binary is being fetched or verified.
    #[serde(default)]
    pub preparing: Option<String>,
    /// The health probe's last answers (with a health URL).
    #[serde(default)]
    pub health: Option<HealthState>,
    /// The queue as the running nymvisor sees it (with its own settings: spread, windows).
    #[serde(default)]
    pub queue: Option<Vec<super::QueueEntry>>,
    /// The upstream document was refused at the last poll (why): nothing from it is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_refused: Option<String>,
    /// The daemon failed and waits to be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartWait>,
    /// The applied upgrade awaiting its confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirming: Option<ConfirmWait>,
    /// Why and when nymvisor stopped (written as it exits; kept for `status` until the next
    /// `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// Where this member stands in its fleet group (with `NYMVISOR_FLEET_ETCD_ENDPOINTS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetState>,
}

/// This member's standing in its fleet group, as the running nymvisor last knew it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetState {
    pub group: String,
    pub member: String,
    /// The upgrade it holds a slot for.
    #[serde(default)]
    pub holds: Option<String>,
    /// Why its due upgrade waits for the fleet.
    #[serde(default)]
    pub waiting: Option<String>,
    /// It waits for the fleet hold to be lifted.
    #[serde(default)]
    pub on_hold: bool,
    /// The last fleet job that failed (etcd unreachable, …), still being retried.
    #[serde(default)]
    pub error: Option<String>,
    /// Fleet records still to be written (releases, failures), in order.
    #[serde(default)]
    pub pending: Vec<String>,
}

impl FleetState {
    /// `status`'s lines about the fleet (`running`: nymvisor runs, so what it waits for holds).
    pub fn lines(&self, running: bool) -> Vec<String> {
        let mut out = vec![format!(
            "fleet:         member {} of group {}{}",
            self.member,
            self.group,
            match &self.holds {
                Some(u) => format!(", holds a slot for `{u}`"),
                None => String::new(),
            }
        )];
        if running {
            if let Some(w) = &self.waiting {
                out.push(format!("  waiting:     {w}"));
            }
            if let Some(e) = &self.error
                && !self
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.contains(e.as_str()))
            {
                out.push(format!("  error:       {e} (retried)"));
            }
        }
        for p in &self.pending {
            out.push(format!("  to write:    {p}"));
        }
        out
    }
}

/// A restart the daemon waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartWait {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Failures within the startup period so far, and how many end in giving up (0: the failure
    /// came after the startup period, and does not count).
    pub startup_failures: u32,
    pub max_startup_failures: u32,
}

/// An upgrade awaiting its confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmWait {
    pub upgrade: String,
    /// When the startup period ends: confirmed then, or rolled back (with a health URL, when no
    /// healthy answer came).
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// What confirms it, in words.
    pub confirmed_by: String,
}

/// How nymvisor's last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: String,
    /// It stopped because of an error (it gave up), not because it was asked to or the daemon
    /// exited cleanly.
    pub error: bool,
}

/// What the health probe said last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthState {
    pub healthy: bool,
    /// The answer in words (`HTTP 200`, `HTTP 503: {"status":"down"}`, `connection refused`).
    pub last_answer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_probe_at: OffsetDateTime,
    pub consecutive_failures: u32,
}

impl RunState {
    pub fn path(instance_data: &Path) -> PathBuf {
        instance_data.join("run-state.json")
    }

    pub fn load(instance_data: &Path) -> Result<Option<RunState>> {
        fsutil::read_json_opt(&Self::path(instance_data))
    }

    /// Best effort: failing to record the state must never stop supervision.
    pub fn save(&self, instance_data: &Path) {
        let _ = fsutil::create_dir_all(instance_data);
        if let Err(e) = fsutil::write_json(&Self::path(instance_data), self) {
            tracing::warn!("could not record the run state: {e}");
        }
    }
}
