//! The operator's pre-upgrade hook as a task of the event loop (the node stays supervised while
//! it runs), and the last word before the stop: the hold read again, the window checked now.

use super::{Supervisor, book};
use crate::model::refusals::Origin;
use crate::model::{self, UpgradeInfo};
use crate::refusal::Refusal;
use crate::upgrade::hooks;

impl Supervisor {
    /// Starts the pre-upgrade hook for `info` as a task (unless one runs).
    pub(super) fn start_hook(&mut self, info: &UpgradeInfo) {
        if self.book.hook.is_some() {
            return;
        }
        let Some(command) = self.inst.config.daemon.pre_upgrade_command.clone() else {
            return;
        };
        let (inst, env, upgrade) = (self.inst.clone(), self.host.spec.env.clone(), info.clone());
        let current_version = self.book.plan.current.version.clone();
        tracing::debug!(upgrade = %info.name, "running the pre-upgrade hook");
        let handle = tokio::spawn(async move {
            let call = hooks::HookCall {
                command: &command,
                upgrade: &upgrade,
                current_version: &current_version,
                outcome: None,
            };
            hooks::run(&inst, &env, &call).await
        });
        self.book.hook = Some(book::HookTask {
            upgrade: info.clone(),
            handle,
            started: std::time::Instant::now(),
        });
    }

    /// The pre-upgrade hook ended.
    pub(super) fn on_hooked(
        &mut self,
        res: std::result::Result<hooks::HookResult, tokio::task::JoinError>,
    ) {
        let Some(task) = self.book.hook.take() else {
            return;
        };
        let info = task.upgrade;
        match res {
            Ok(hooks::HookResult::Ok) => {
                tracing::info!(upgrade = %info.name, stage = "pre-upgrade-hook", elapsed_ms = task.started.elapsed().as_millis() as u64, "the pre-upgrade hook agreed");
                self.book.hook_passed = Some(info);
            }
            Ok(hooks::HookResult::Failed(reason)) => self.book.refuse(
                &self.inst,
                &mut self.host,
                &info,
                Refusal::transient(format!("the pre-upgrade hook said not now: {reason}")),
                Origin::Hook,
            ),
            Err(e) => self.book.refuse(
                &self.inst,
                &mut self.host,
                &info,
                Refusal::transient(format!("the pre-upgrade hook could not run: {e}")),
                Origin::Hook,
            ),
        }
    }

    /// Right before the stop of an automatic upgrade: the hold file is read again (unreadable
    /// counts as a hold) and the maintenance window checked at this very moment.
    pub(super) fn last_moment_allows(&mut self, info: &UpgradeInfo) -> bool {
        let hold = match self.inst.hold() {
            Ok(h) => h,
            Err(e) => Some(crate::model::Hold::unreadable(&e)),
        };
        if let Some(h) = hold {
            if self.book.hold.is_none() {
                tracing::info!(upgrade = %info.name, "upgrades were put on hold{} just before `{}` was applied: it waits", h.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(), info.name);
            }
            self.book.hold = Some(h);
            return false;
        }
        if info.follows_fleet_timing()
            && let Some(stale) = self.book.feed.as_ref().and_then(|f| f.stale(model::now()))
        {
            tracing::info!(upgrade = %info.name, "{stale}; `{}` waits", info.name);
            return false;
        }
        if info.follows_fleet_timing()
            && let Some(w) = &self.book.timing.windows
            && !w.contains(model::now())
        {
            tracing::info!(upgrade = %info.name, "the maintenance window ({w}) closed before `{}` could be applied: it waits for the next one", info.name);
            return false;
        }
        true
    }
}
