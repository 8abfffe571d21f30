//! What `run` exposes to Prometheus (`nymvisor.metrics_address`): the daemon's state, restarts,
//! upgrades and their outcomes, refusals, polls of the upstream source, the queue and the health
//! probe. The values are kept here (prometheus-client); serving them over HTTP is the
//! `nymvisor-sources` crate's job, so this crate stays free of an HTTP stack.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DaemonLabels {
    daemon: String,
    version: String,
    upgrade: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueuedLabels {
    upgrade: String,
    version: String,
    /// What it waits for (`spread`, `window`, `hold`, …), `none` when it waits for nothing.
    waiting_for: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// The verifier that refused, or `nymvisor` (the policy, a hook, the disk…).
    verifier: String,
    /// `never` (until the entry changes) or `not-now` (tried again).
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpgradeLabels {
    upgrade: String,
}

/// No labels: a family that has no sample until it is first set (a "never" that alerts on
/// "time since" cannot mistake for 1970).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Once {}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Log lines dropped because whatever reads nymvisor's stderr did not keep up (counted by the
/// log writer, which exists before any [`Metrics`]; read at each scrape).
pub static LOG_LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Every metric of `run`. Cheap to update from the event loop; rendered on each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    daemon_up: Gauge,
    daemon_info: Family<DaemonLabels, Gauge>,
    daemon_restarts: Counter,
    daemon_start_time: FloatGauge,
    upgrades: Family<OutcomeLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    last_downtime: FloatGauge,
    polls: Family<ResultLabels, Counter>,
    last_poll_success: Family<Once, FloatGauge>,
    queued: Gauge,
    queued_effective: Family<QueuedLabels, FloatGauge>,
    hold: Gauge,
    fleet_slot_held: Gauge,
    fleet_waiting: Gauge,
    fleet_hold: Gauge,
    confirmation_deadline: Family<UpgradeLabels, FloatGauge>,
    refusals_active: Gauge,
    startup_failures: Gauge,
    log_lines_dropped: Counter,
    verifier_duration: Family<VerifierLabels, FloatGauge>,
    health: Option<HealthMetrics>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerifierLabels {
    verifier: String,
}

#[derive(Debug)]
struct HealthMetrics {
    healthy: Gauge,
    failures: Gauge,
    last_probe: FloatGauge,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Metrics {
    /// The metrics of a nymvisor at `version`; the health metrics exist only with a health URL.
    pub fn new(version: &str, with_health: bool) -> Metrics {
        let mut registry = Registry::with_prefix("nymvisor");
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        registry.register("build_info", "nymvisor's own version", build_info);
        let m = Metrics {
            daemon_up: Gauge::default(),
            daemon_info: Family::default(),
            daemon_restarts: Counter::default(),
            daemon_start_time: FloatGauge::default(),
            upgrades: Family::default(),
            refusals: Family::default(),
            last_downtime: FloatGauge::default(),
            polls: Family::default(),
            last_poll_success: Family::default(),
            queued: Gauge::default(),
            queued_effective: Family::default(),
            hold: Gauge::default(),
            fleet_slot_held: Gauge::default(),
            fleet_waiting: Gauge::default(),
            fleet_hold: Gauge::default(),
            confirmation_deadline: Family::default(),
            refusals_active: Gauge::default(),
            startup_failures: Gauge::default(),
            log_lines_dropped: Counter::default(),
            verifier_duration: Family::default(),
            health: with_health.then(|| HealthMetrics {
                healthy: Gauge::default(),
                failures: Gauge::default(),
                last_probe: FloatGauge::default(),
            }),
            registry,
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register("daemon_up", "1 while the daemon runs", m.daemon_up.clone());
        r.register(
            "daemon_info",
            "the running daemon: name, version and upgrade name",
            m.daemon_info.clone(),
        );
        r.register(
            "daemon_restarts",
            "restarts of the daemon after it failed or hung",
            m.daemon_restarts.clone(),
        );
        r.register(
            "daemon_start_time_seconds",
            "when the running daemon started (unix time)",
            m.daemon_start_time.clone(),
        );
        r.register(
            "upgrades",
            "upgrades by outcome: confirmed, rolled-back, failed",
            m.upgrades.clone(),
        );
        r.register(
            "upgrade_refusals",
            "upgrades or offers refused, by verifier (`nymvisor`: the policy, a hook, the disk…) and kind (never, not-now)",
            m.refusals.clone(),
        );
        r.register(
            "last_upgrade_downtime_seconds",
            "how long the daemon was down during the last upgrade",
            m.last_downtime.clone(),
        );
        r.register(
            "upstream_polls",
            "polls of the upstream source by result: ok, error, refused (its document was not trusted)",
            m.polls.clone(),
        );
        r.register(
            "upstream_last_success_timestamp_seconds",
            "the last successful poll of the upstream source (unix time); absent until the first",
            m.last_poll_success.clone(),
        );
        r.register(
            "queued_upgrade_effective_timestamp_seconds",
            "when each queued upgrade may be applied, after spread, windows and hold (unix time), and what it waits for",
            m.queued_effective.clone(),
        );
        r.register("hold", "1 while upgrades are on hold", m.hold.clone());
        r.register(
            "fleet_slot_held",
            "1 while this member holds an upgrade slot of its fleet group",
            m.fleet_slot_held.clone(),
        );
        r.register(
            "fleet_waiting",
            "1 while a due upgrade waits for the fleet (a slot, a canary, the fleet hold, a failed version, etcd)",
            m.fleet_waiting.clone(),
        );
        r.register(
            "fleet_hold",
            "1 while a due upgrade waits for the fleet hold to be lifted",
            m.fleet_hold.clone(),
        );
        r.register(
            "upgrade_confirmation_deadline_timestamp_seconds",
            "the upgrade awaiting confirmation and when its startup period ends (unix time)",
            m.confirmation_deadline.clone(),
        );
        r.register(
            "upgrade_refusals_active",
            "refusals in force now (refused upgrades and offers)",
            m.refusals_active.clone(),
        );
        r.register(
            "daemon_startup_failures",
            "failures of the daemon within its startup period in a row",
            m.startup_failures.clone(),
        );
        r.register(
            "queued_upgrades",
            "upgrades queued in the plan",
            m.queued.clone(),
        );
        r.register(
            "verifier_last_duration_seconds",
            "how long each verifier took the last time it checked a candidate",
            m.verifier_duration.clone(),
        );
        r.register(
            "log_lines_dropped",
            "log lines dropped because the reader of nymvisor's stderr did not keep up",
            m.log_lines_dropped.clone(),
        );
        if let Some(h) = &m.health {
            r.register(
                "daemon_healthy",
                "1 when the daemon's last health probe was healthy",
                h.healthy.clone(),
            );
            r.register(
                "daemon_health_consecutive_failures",
                "failed health probes in a row",
                h.failures.clone(),
            );
            r.register(
                "daemon_health_last_probe_timestamp_seconds",
                "the last health probe (unix time)",
                h.last_probe.clone(),
            );
        }
        // the upgrade outcomes and poll results exist from the start, at zero
        for outcome in ["confirmed", "rolled-back", "failed"] {
            let _ = m.upgrades.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        for result in ["ok", "error", "refused"] {
            let _ = m.polls.get_or_create(&ResultLabels {
                result: result.to_owned(),
            });
        }
        m
    }

    /// The daemon started: up, its identity and start time.
    pub fn daemon_started(&self, daemon: &str, version: &str, upgrade: &str) {
        self.daemon_up.set(1);
        self.daemon_start_time.set(unix_now());
        self.daemon_info.clear();
        self.daemon_info
            .get_or_create(&DaemonLabels {
                daemon: daemon.to_owned(),
                version: version.to_owned(),
                upgrade: upgrade.to_owned(),
            })
            .set(1);
    }

    pub fn daemon_stopped(&self) {
        self.daemon_up.set(0);
    }

    pub fn daemon_restarted(&self) {
        self.daemon_restarts.inc();
    }

    /// An upgrade's outcome: `confirmed`, `rolled-back` or `failed`.
    pub fn upgrade(&self, outcome: &str) {
        self.upgrades
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn downtime(&self, d: std::time::Duration) {
        self.last_downtime.set(d.as_secs_f64());
    }

    /// A refusal by `verifier` (`None`: nymvisor itself) of `kind` (`never`, `not-now`).
    pub fn refused(&self, verifier: Option<&str>, kind: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                verifier: verifier.unwrap_or("nymvisor").to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// A poll's result: `ok`, `error` (the source failed) or `refused` (its document was
    /// refused, e.g. an unsigned feed): only `ok` is a good poll.
    pub fn polled(&self, result: &str) {
        let ok = result == "ok";
        self.polls
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        if ok {
            self.last_poll_success
                .get_or_create(&Once {})
                .set(unix_now());
        }
    }

    pub fn queued(&self, n: usize) {
        self.queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// This member's standing in its fleet group.
    pub fn fleet(&self, slot_held: bool, waiting: bool, hold: bool) {
        self.fleet_slot_held.set(i64::from(slot_held));
        self.fleet_waiting.set(i64::from(waiting));
        self.fleet_hold.set(i64::from(hold));
    }

    /// The queue as the running nymvisor sees it: each upgrade's effective time and what it
    /// waits for; the hold; the upgrade awaiting confirmation and its deadline.
    pub fn queue(
        &self,
        entries: &[crate::model::QueueEntry],
        hold: bool,
        confirming: Option<(&str, time::OffsetDateTime)>,
    ) {
        self.queued_effective.clear();
        for e in entries {
            let waiting_for = e
                .waiting_for
                .and_then(|w| serde_json::to_value(w).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "none".to_owned());
            self.queued_effective
                .get_or_create(&QueuedLabels {
                    upgrade: e.name.clone(),
                    version: e.version.clone(),
                    waiting_for,
                })
                .set(e.effective_upgrade_time.unix_timestamp() as f64);
        }
        self.hold.set(i64::from(hold));
        self.confirmation_deadline.clear();
        if let Some((name, deadline)) = confirming {
            self.confirmation_deadline
                .get_or_create(&UpgradeLabels {
                    upgrade: name.to_owned(),
                })
                .set(deadline.unix_timestamp() as f64);
        }
    }

    pub fn refusals_active(&self, n: usize) {
        self.refusals_active
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A verifier's duration, the last time it ran.
    pub fn verifier_ran(&self, verifier: &str, seconds: f64) {
        self.verifier_duration
            .get_or_create(&VerifierLabels {
                verifier: verifier.to_owned(),
            })
            .set(seconds);
    }

    pub fn startup_failures(&self, n: u32) {
        self.startup_failures.set(i64::from(n));
    }

    pub fn health(&self, healthy: bool, consecutive_failures: u32) {
        if let Some(h) = &self.health {
            h.healthy.set(i64::from(healthy));
            h.failures.set(i64::from(consecutive_failures));
            h.last_probe.set(unix_now());
        }
    }

    /// Every metric in the Prometheus text exposition format (0.0.4), which `promtool check
    /// metrics` and every Prometheus read.
    ///
    /// prometheus-client writes OpenMetrics, where a counter's `# HELP`/`# TYPE` name lacks the
    /// `_total` of its samples; the Prometheus format wants them to match, so they are renamed.
    pub fn render(&self) -> String {
        let dropped = LOG_LINES_DROPPED.load(std::sync::atomic::Ordering::Relaxed);
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        let mut open = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut open, &self.registry);
        let counters: Vec<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len() + 64);
        for line in open.lines() {
            if line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(&name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let m = Metrics::new("0.2.0", true);
        m.daemon_started("nym-node", "1.1.0", "genesis");
        m.upgrade("confirmed");
        m.polled("ok");
        m.polled("error");
        m.queued(2);
        m.health(false, 2);
        let text = m.render();
        for line in [
            "nymvisor_build_info{version=\"0.2.0\"} 1",
            "nymvisor_daemon_up 1",
            "nymvisor_daemon_info{daemon=\"nym-node\",version=\"1.1.0\",upgrade=\"genesis\"} 1",
            "nymvisor_daemon_restarts_total 0",
            "nymvisor_upgrades_total{outcome=\"confirmed\"} 1",
            "nymvisor_upgrades_total{outcome=\"rolled-back\"} 0",
            "nymvisor_upstream_polls_total{result=\"error\"} 1",
            "nymvisor_queued_upgrades 2",
            "nymvisor_daemon_health_consecutive_failures 2",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        assert!(!Metrics::new("0.2.0", false).render().contains("health"));
        // the Prometheus format: a counter's HELP and TYPE name its samples
        assert!(text.contains("# TYPE nymvisor_upgrades_total counter"));
        assert!(!text.contains("# EOF"));
    }
}
