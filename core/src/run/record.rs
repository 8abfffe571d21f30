//! An upgrade in place that is not written down yet: `current` points to it, but the plan or
//! the history could not be written (a lock or file another user made, a full disk). It is never
//! applied again; the record is retried until it is written, or until `current` points
//! elsewhere (a rollback).

use tokio::time::Instant;

use super::{RECORD_RETRY, Supervisor, Unrecorded};
use crate::model::UpgradeInfo;
use crate::upgrade::transaction;

impl Supervisor {
    /// The name of the upgrade `current` points to (`genesis` or `upgrades/<name>`), if the
    /// link can be read.
    pub(super) fn installed(&self) -> Option<String> {
        let link = std::fs::read_link(self.inst.data.current_link()).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// `current` points to `info`, yet the plan queues it: the plan is corrected (in memory at
    /// once, on disk as soon as it can be written).
    pub(super) fn reconcile_installed(&mut self, info: UpgradeInfo) {
        if self
            .unrecorded
            .as_ref()
            .is_some_and(|u| u.upgrade.name == info.name)
        {
            // its record is being retried already (with the journal: history too)
            return;
        }
        tracing::warn!(upgrade = %info.name, "upgrade `{}` ({} {}) is already in place (current -> {}) but the plan still queues it: it is not applied again; recording it as the current version", info.name, self.inst.config.daemon.name, info.version, self.inst.data.link_target(&info.name).display());
        self.unrecorded = Some(Unrecorded {
            upgrade: info,
            journal: None,
            retry_at: Instant::now(),
            confirmed: false,
        });
        self.retry_record();
    }

    /// Writes down an upgrade that is in place but not yet recorded, when its retry is due.
    pub(super) fn retry_record(&mut self) {
        let Some(u) = self.unrecorded.take() else {
            return;
        };
        if Instant::now() < u.retry_at {
            self.unrecorded = Some(u);
            return;
        }
        let name = u.upgrade.name.clone();
        if self.installed().as_deref() != Some(name.as_str()) {
            // rolled back (or replaced) meanwhile: nothing to record any more
            return;
        }
        let written = match &u.journal {
            Some(journal) => transaction::record_upgrade(&self.inst, &mut self.book.plan, journal),
            None => transaction::update_plan(&self.inst, &mut self.book.plan, |p| {
                p.remove(&name);
                p.current = u.upgrade.clone();
            }),
        };
        match written {
            Ok(()) => {
                if let (true, Some(j)) = (u.confirmed, &u.journal) {
                    // confirmed before its record landed
                    let path = self.inst.data.history();
                    if let Ok(mut h) = crate::model::UpgradeHistory::load(&path)
                        && h.confirm(&name, j.started_at)
                    {
                        let _ = h.save(&path);
                    }
                }
                tracing::info!(upgrade = %name, stage = "record", "upgrade `{name}` is recorded now");
                self.book.save_progress(&mut self.host);
            }
            Err(e) => {
                let note = format!(
                    "upgrade `{name}` is in place but could not be recorded: {e}; nymvisor retries every {} (it does not apply the upgrade again)",
                    humantime::format_duration(RECORD_RETRY)
                );
                if self.host.state.last_error.as_deref() != Some(note.as_str()) {
                    self.host.record_error(note.clone());
                    tracing::error!(upgrade = %name, stage = "record", "{note}");
                }
                self.unrecorded = Some(Unrecorded {
                    retry_at: Instant::now() + RECORD_RETRY,
                    ..u
                });
            }
        }
    }
}
