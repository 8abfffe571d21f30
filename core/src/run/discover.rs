//! Discovery (SPEC §8.1, §12): polling the upstream source, and queueing what it offers when the
//! rules allow it — a safe name, a newer version, not already queued, not a replay of a version
//! with another checksum, not an upgrade that was rolled back before.

use std::time::Duration;

use tokio::time::Instant;

use super::Supervisor;
use crate::error::Result;
use crate::fsutil;
use crate::model::{Outcome, UpgradeInfo};
use crate::rules::{compare_versions, validate_upgrade_name};
use crate::source::{SourceError, SourcedUpgrade};

impl Supervisor {
    /// When the next poll is due (`None`: no source, or a poll is in flight).
    pub(super) fn poll_at(&self) -> Option<Instant> {
        (self.preparer.source.is_some() && self.polling.is_none()).then_some(self.next_poll)
    }

    pub(super) fn start_poll(&mut self) {
        let Some(source) = self.preparer.source.clone() else {
            return;
        };
        self.polling = Some(tokio::spawn(async move { source.latest().await }));
        // polling rate with ±10 % jitter, so that many nodes do not poll in lockstep
        let rate = self.inst.config.nymvisor.upstream_polling_rate;
        let jittered = rate.mul_f64(0.9 + 0.2 * fastrand::f64());
        self.next_poll = Instant::now() + jittered.max(Duration::from_millis(100));
    }

    pub(super) async fn on_polled(&mut self, res: Result<Option<SourcedUpgrade>, SourceError>) {
        self.polling = None;
        // the HTTP stack's code is not needed again until the next poll
        self.quiet_later();
        match res {
            Ok(None) => {}
            Ok(Some(found)) => {
                if let Some(source) = self.preparer.source.clone() {
                    for v in self.preparer.verifiers.clone().iter() {
                        if let Err(r) = v.verify_document(&found, source.as_ref()).await {
                            self.note(format!(
                                "the upstream document was refused by {}: {}",
                                v.name(),
                                r.reason
                            ));
                            // its signature may be fixed without the document changing
                            source.forget_validators();
                            return;
                        }
                    }
                }
                if let Err(e) = self.discover(found.info) {
                    // ask for the whole document next time, so the release is not lost to a 304
                    if let Some(source) = &self.preparer.source {
                        source.forget_validators();
                    }
                    tracing::error!("could not queue the upgrade offered upstream: {e}");
                    self.record_error(e.to_string());
                }
            }
            Err(e) => {
                let note = format!("polling the upstream source failed: {e}");
                if self.last_poll_note.as_deref() != Some(&note) {
                    tracing::error!(
                        "{note}; the daemon keeps running and the next poll will try again"
                    );
                    self.last_poll_note = Some(note.clone());
                }
                self.record_error(note);
            }
        }
    }

    /// Logs `note` once (until a different one comes), at warn level.
    fn note(&mut self, note: String) {
        if self.last_poll_note.as_deref() != Some(&note) {
            tracing::warn!("{note}");
            self.last_poll_note = Some(note);
        }
    }

    /// Applies the discovery rules to an offered upgrade and queues it if they allow.
    pub(super) fn discover(&mut self, info: UpgradeInfo) -> Result<()> {
        if let Err(e) = validate_upgrade_name(&info.name) {
            self.note(format!(
                "upstream offers an upgrade with an unsafe name; ignored: {e}"
            ));
            return Ok(());
        }
        let name = info.name.clone();
        if self.plan.current.name == name {
            if self.plan.current.version != info.version {
                self.note(format!(
                    "upstream offers version {} under the name `{name}` of the running {}; names are not reused, ignored",
                    info.version, self.plan.current.version
                ));
            }
            return Ok(()); // what runs now
        }
        if name == crate::paths::GENESIS {
            self.note(
                "upstream offers an upgrade named `genesis`, which is reserved; ignored".to_owned(),
            );
            return Ok(());
        }
        if let Some(queued) = self.plan.queued(&name) {
            if queued == &info {
                return Ok(());
            }
            if queued.version != info.version || checksums(queued) != checksums(&info) {
                self.note(format!(
                    "upstream changed upgrade `{name}` after it was queued (version {} → {}, or its checksums); the queued entry is kept and the change ignored",
                    queued.version, info.version
                ));
                return Ok(());
            }
        }
        if let Some(other) = self
            .plan
            .queued_up
            .iter()
            .find(|q| q.name != name && q.version == info.version)
        {
            self.note(format!(
                "upstream offers {} as `{name}`, already queued as `{}`; ignored",
                info.version, other.name
            ));
            return Ok(());
        }
        if self.plan.current.version == info.version
            && checksums(&self.plan.current) != checksums(&info)
            && !checksums(&self.plan.current).is_empty()
        {
            self.note(format!(
                "upstream offers the running version {} with a different checksum (a replay?); refused",
                info.version
            ));
            return Ok(());
        }
        let history = self.inst.history()?;
        if let Some(h) = history.history.iter().rev().find(|h| h.info.name == name) {
            if h.outcome == Some(Outcome::RolledBack) && h.info.version == info.version {
                self.note(format!(
                    "upstream offers `{name}` ({}), which was rolled back before; not retried",
                    info.version
                ));
            } else if h.info.version != info.version {
                self.note(format!("upstream offers version {} under the name `{name}`, used before for {}; names are not reused, ignored", info.version, h.info.version));
            }
            if h.outcome == Some(Outcome::RolledBack) || h.info.version != info.version {
                return Ok(());
            }
        }
        if !self.inst.config.daemon.allow_downgrade {
            match compare_versions(&info.version, &self.plan.current.version) {
                Ok(o) if o.is_le() => {
                    tracing::debug!(
                        "upstream offers {} which is not newer than the running {}",
                        info.version,
                        self.plan.current.version
                    );
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    self.note(format!(
                        "upstream offers `{name}` with an unusable version: {e}"
                    ));
                    return Ok(());
                }
            }
        }
        let dir = self.inst.data.upgrade_dir(&name);
        fsutil::create_dir_all(&dir)?;
        fsutil::write_json(&self.inst.data.upgrade_info(&name), &info)?;
        let queued = info.clone();
        self.update_plan(|plan| {
            plan.remove(&queued.name);
            plan.insert(queued);
        })?;
        tracing::info!(upgrade = %name, stage = "discover", "new release upstream: {} {} (`{name}`), due {}", self.inst.config.daemon.name, info.version, crate::model::rfc3339(info.upgrade_time));
        Ok(())
    }
}

/// The non-empty checksums of an upgrade, by platform.
fn checksums(info: &UpgradeInfo) -> Vec<(String, String)> {
    info.platforms
        .iter()
        .filter(|(_, p)| !p.checksum.is_empty())
        .map(|(k, p)| (k.clone(), p.checksum.to_ascii_lowercase()))
        .collect()
}
