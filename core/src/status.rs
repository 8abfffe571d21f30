//! `nymvisor status`: what runs, which version, what is queued and in which state, the last
//! upgrade and the last error — read from the files, so it works whether or not nymvisor runs.

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Result;
use crate::fsutil::FileLock;
use crate::instance::Instance;
use std::collections::BTreeMap;

use crate::model::refusals::Origin;
use crate::model::run_state::{ConfirmWait, HealthState, RestartWait, Stopped};
use crate::model::{self, Hold, Journal, Outcome, Refusals, RunState, Stage, UpgradePlan};
use crate::upgrade::queue::{self, Entry};

/// The status document (`status -o json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub instance: String,
    pub daemon: String,
    pub nymvisor: NymvisorStatus,
    pub daemon_process: Option<DaemonProcess>,
    pub current: Option<Current>,
    /// Every queued upgrade with its state, what it waits for and why it was refused.
    pub queued: Vec<Entry>,
    /// Offers of the upstream source that were not queued.
    pub refused_offers: Vec<RefusedOffer>,
    /// Upgrades the operator cancelled (`nymvisor retry <name>` queues one again).
    pub cancelled: Vec<RefusedOffer>,
    /// An upgrade applied but not yet confirmed (its rollback is still possible).
    pub awaiting_confirmation: Option<String>,
    /// Its deadline and what confirms it (while nymvisor runs).
    pub confirmation: Option<ConfirmWait>,
    /// The daemon failed and waits to be restarted (while nymvisor runs).
    pub restart: Option<RestartWait>,
    /// When and why nymvisor last stopped (while it does not run).
    pub stopped: Option<Stopped>,
    pub last_upgrade: Option<LastUpgrade>,
    pub last_error: Option<LastError>,
    /// A problem reading the plan, if any.
    pub plan_error: Option<String>,
    /// A problem reading the history or the refusals, if any: no upgrade is applied
    /// automatically until they can be read.
    pub records_error: Option<String>,
    /// The operator's hold on automatic upgrades, if one is in force.
    pub hold: Option<Hold>,
    /// The health probe's last answers, when a health URL is configured.
    pub health: Option<HealthState>,
    /// Why the upstream document was refused at the last poll (an unsigned feed…), if it was.
    pub feed_refused: Option<String>,
    /// This member's standing in its fleet group (with a fleet configured).
    pub fleet: Option<crate::model::run_state::FleetState>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NymvisorStatus {
    pub running: bool,
    pub pid: Option<u32>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonProcess {
    pub pid: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    pub uptime_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Current {
    pub name: String,
    pub version: String,
}

/// An offer of the upstream source that was not queued, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedOffer {
    pub name: String,
    pub version: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub refused_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastUpgrade {
    pub name: String,
    pub version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub performed_at: OffsetDateTime,
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub message: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
}

/// Gathers the status of `inst`. Missing files are simply absent from the result.
pub fn status(inst: &Instance) -> Result<Status> {
    let holder = FileLock::holder(&inst.data.run_lock())?;
    let recorded = RunState::load(&inst.home.instance_data_dir(inst.config.id()))
        .ok()
        .flatten();
    // what the last nymvisor said as it stopped, when none runs now
    let stopped = recorded
        .as_ref()
        .filter(|_| holder.is_none())
        .and_then(|s| s.stopped.clone());
    let last_run_error = recorded
        .as_ref()
        .filter(|_| holder.is_none())
        .and_then(|s| {
            s.last_error.clone().map(|message| LastError {
                message,
                at: s.last_error_at,
            })
        });
    // the live view only from a nymvisor that runs
    let state = recorded.filter(|_| holder.is_some());
    let (plan, plan_error) = match UpgradePlan::load(&inst.data.plan()) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let current = inst
        .current_version()
        .ok()
        .flatten()
        .map(|c| Current {
            name: c.name,
            version: c.version,
        })
        .or_else(|| {
            plan.as_ref().map(|p| Current {
                name: p.current.name.clone(),
                version: p.current.version.clone(),
            })
        });
    // unreadable records hold every automatic upgrade (as for the running nymvisor)
    let (refusals, refusals_error) = match Refusals::load(&inst.data.refusals()) {
        Ok(r) => (r, None),
        Err(e) => (Refusals::default(), Some(e.to_string())),
    };
    let history_error = inst.history().err().map(|e| e.to_string());
    let (timing, timing_error) = match inst.timing_readonly() {
        Ok(t) => (t, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let errors: Vec<String> = [history_error, refusals_error, timing_error]
        .into_iter()
        .flatten()
        .collect();
    let records_error = (!errors.is_empty()).then(|| errors.join("; "));
    let records_broken = records_error.is_some();
    // an unreadable hold file holds (as for the running nymvisor)
    let hold = inst.hold().unwrap_or_else(|e| Some(Hold::unreadable(&e)));
    let journal = Journal::load(inst.data.root()).ok().flatten();
    let confirming = journal
        .as_ref()
        .filter(|j| j.stage == Stage::Confirming)
        .map(|j| {
            let started = state
                .as_ref()
                .and_then(|s| s.daemon_started_at)
                .unwrap_or_else(model::now);
            (
                j.upgrade.name.as_str(),
                started + inst.config.daemon.startup_period_duration,
            )
        });
    // what the running nymvisor has prepared; without one, nothing is known to be verified
    let ready: BTreeMap<String, model::UpgradeInfo> = match (&plan, &state) {
        (Some(p), Some(st)) => st
            .ready
            .iter()
            .filter_map(|n| Some((n.clone(), p.queued(n)?.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    // the running nymvisor's view (its own settings); without one, computed here
    let running_view = state.as_ref().and_then(|s| s.queue.clone());
    let queued = running_view.unwrap_or_else(|| {
        plan.as_ref()
            .map(|p| {
                queue::decide(&queue::Snapshot {
                    now: model::now(),
                    plan: p,
                    refusals: &refusals,
                    ready: &ready,
                    preparing: state.as_ref().and_then(|s| s.preparing.as_deref()),
                    hook_running: None,
                    fleet: None,
                    confirming,
                    plan_broken: false,
                    records_broken,
                    timing: &timing,
                    hold: hold.as_ref(),
                    // an unreadable mark counts as stale, as in the running nymvisor
                    feed_stale: crate::upgrade::freshness::applies(&inst.config)
                        && crate::model::feed_mark::FeedMark::load(&inst.data.feed_mark()).map_or(
                            true,
                            |m| {
                                crate::upgrade::freshness::stale(m.as_ref(), model::now()).is_some()
                            },
                        ),
                })
                .entries
            })
            .unwrap_or_default()
    });
    let offers = |origin: Origin| {
        refusals
            .refusals
            .iter()
            .filter(|r| r.origin == origin)
            .map(|r| RefusedOffer {
                name: r.name.clone(),
                version: r.version.clone(),
                reason: r.reason.clone(),
                refused_at: r.last_refused_at,
            })
            .collect::<Vec<_>>()
    };
    let refused_offers = offers(Origin::Upstream);
    let cancelled = offers(Origin::Cancelled);
    let last_upgrade = inst
        .history()
        .ok()
        .and_then(|h| h.history.last().cloned())
        .map(|h| LastUpgrade {
            name: h.info.name,
            version: h.info.version,
            performed_at: h.performed_at,
            outcome: h.outcome,
            error: h.error,
        });
    let now = model::now();
    let daemon_process = state.as_ref().and_then(|s| {
        s.daemon_pid.map(|pid| DaemonProcess {
            pid,
            started_at: s.daemon_started_at,
            uptime_seconds: s.daemon_started_at.map(|t| (now - t).whole_seconds()),
        })
    });
    Ok(Status {
        instance: inst.config.id().to_owned(),
        daemon: inst.config.daemon.name.clone(),
        nymvisor: NymvisorStatus {
            running: holder.is_some(),
            pid: holder.flatten(),
            started_at: state.as_ref().and_then(|s| s.nymvisor_started_at),
        },
        daemon_process,
        current,
        queued,
        refused_offers,
        cancelled,
        awaiting_confirmation: journal.map(|j| j.upgrade.name),
        confirmation: state.as_ref().and_then(|s| s.confirming.clone()),
        restart: state.as_ref().and_then(|s| s.restart.clone()),
        stopped,
        last_upgrade,
        hold,
        health: state.as_ref().and_then(|s| s.health.clone()),
        feed_refused: state.as_ref().and_then(|s| s.feed_refused.clone()),
        fleet: state.as_ref().and_then(|s| s.fleet.clone()),
        last_error: state
            .and_then(|s| {
                s.last_error.map(|message| LastError {
                    message,
                    at: s.last_error_at,
                })
            })
            .or(last_run_error),
        plan_error,
        records_error,
    })
}

impl Status {
    /// The exit status of `nymvisor status` as a probe: 0 when nymvisor and the daemon run, 3
    /// when either does not (the LSB `status` convention).
    pub fn probe_code(&self) -> u8 {
        if self.nymvisor.running && self.daemon_process.is_some() {
            0
        } else {
            3
        }
    }

    /// Human-readable lines.
    pub fn to_text(&self) -> String {
        self.to_text_at(model::now())
    }

    /// [`Status::to_text`] with the clock given (times are shown relative to `now`).
    pub fn to_text_at(&self, now: OffsetDateTime) -> String {
        let when = |t: OffsetDateTime| model::human_time(t, now);
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!(
            "instance:      {} ({})",
            self.instance, self.daemon
        ));
        line(match (self.nymvisor.running, self.nymvisor.pid) {
            (true, Some(pid)) => format!("nymvisor:      running (pid {pid})"),
            (true, None) => "nymvisor:      running".to_owned(),
            (false, _) => match &self.stopped {
                Some(s) if s.error => {
                    format!(
                        "nymvisor:      not running — gave up at {}: {}",
                        when(s.at),
                        s.reason
                    )
                }
                Some(s) => format!(
                    "nymvisor:      not running — stopped at {}: {}",
                    when(s.at),
                    s.reason
                ),
                None => "nymvisor:      not running".to_owned(),
            },
        });
        match &self.daemon_process {
            Some(d) => line(format!(
                "daemon:        running (pid {}{})",
                d.pid,
                d.uptime_seconds
                    .map(|s| format!(
                        ", up {}",
                        humantime::format_duration(std::time::Duration::from_secs(s.max(0) as u64))
                    ))
                    .unwrap_or_default()
            )),
            None => match &self.restart {
                Some(r) if r.startup_failures > 0 => line(format!(
                    "daemon:        not running — restart {} of {} at {}",
                    r.startup_failures,
                    r.max_startup_failures,
                    when(r.at)
                )),
                Some(r) => line(format!(
                    "daemon:        not running — restart at {}",
                    when(r.at)
                )),
                None => line("daemon:        not running".to_owned()),
            },
        }
        if let Some(c) = &self.current {
            line(format!(
                "current:       {} {} (`{}`)",
                self.daemon, c.version, c.name
            ));
        }
        match (&self.awaiting_confirmation, &self.confirmation) {
            (_, Some(c)) => line(format!(
                "confirming:    `{}` until {}, by {}; otherwise it is rolled back",
                c.upgrade,
                when(c.deadline),
                c.confirmed_by
            )),
            (Some(name), None) => line(format!(
                "confirming:    `{name}` (its start is watched again when nymvisor runs)"
            )),
            (None, None) => {}
        }
        if self.queued.is_empty() {
            line("queued:        nothing".to_owned());
        } else {
            line("queued:".to_owned());
            for q in &self.queued {
                let state = serde_json::to_value(q.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let waiting = q
                    .waiting_for
                    .and_then(|w| serde_json::to_value(w).ok())
                    .and_then(|v| v.as_str().map(|w| format!(", waiting for {w}")))
                    .unwrap_or_default();
                let until = q
                    .until
                    .map(|t| format!(" until {}", when(t)))
                    .unwrap_or_default();
                line(format!(
                    "  {} {} at {} — {state}{waiting}{until}{}",
                    q.name,
                    q.version,
                    when(q.effective_upgrade_time),
                    q.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ));
            }
        }
        for o in &self.refused_offers {
            line(format!(
                "offer refused: {} {} ({}): {}",
                o.name,
                o.version,
                when(o.refused_at),
                o.reason
            ));
        }
        for c in &self.cancelled {
            line(format!(
                "cancelled:     {} {} by the operator at {} (`nymvisor retry {}` queues it again)",
                c.name,
                c.version,
                when(c.refused_at),
                c.name
            ));
        }
        if let Some(u) = &self.last_upgrade {
            line(format!(
                "last upgrade:  {} {} at {} ({}){}",
                u.name,
                u.version,
                when(u.performed_at),
                match u.outcome {
                    Some(Outcome::Pending) => "pending: not confirmed yet",
                    Some(Outcome::Confirmed) => "confirmed",
                    Some(Outcome::Success) | None => "applied",
                    Some(Outcome::RolledBack) => "rolled back",
                    Some(Outcome::Failed) => "failed",
                },
                u.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(e) = &self.last_error {
            line(format!(
                "last error:    {}{}",
                e.message,
                e.at.map(|t| format!(" (at {})", when(t)))
                    .unwrap_or_default()
            ));
        }
        if let Some(f) = &self.feed_refused {
            line(format!("feed:          refused at the last poll: {f}"));
        }
        if let Some(e) = &self.plan_error {
            line(format!("plan problem:  {e}"));
        }
        if let Some(e) = &self.records_error {
            line(format!(
                "records:       {e}; no upgrade is applied automatically until it can be read (the node keeps running)"
            ));
        }
        if let Some(h) = &self.hold {
            line(format!(
                "hold:          since {}{} — nothing is applied automatically (`nymvisor unhold`)",
                when(h.since),
                h.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        for l in self
            .fleet
            .iter()
            .flat_map(|f| f.lines(self.nymvisor.running))
        {
            line(l);
        }
        if let Some(h) = &self.health {
            line(format!(
                "health:        {} at {} ({}), {} failure(s) in a row",
                if h.healthy { "healthy" } else { "unhealthy" },
                when(h.last_probe_at),
                h.last_answer,
                h.consecutive_failures
            ));
        }
        out
    }
}
