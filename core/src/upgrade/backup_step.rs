//! The backup step of an upgrade: the daemon's data copied with the configured strategy, off the
//! supervisor's thread, abandoned at once (and cleaned up) when a stop signal arrives.

use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::transaction::Control;
use crate::backup::{self, BackupPlan, BackupStrategy, Cancel};
use crate::error::{Error, Result};
use crate::model;
use crate::progress::ProgressSink;

/// How the backup step ended.
#[derive(Debug)]
pub enum BackupResult {
    Made(PathBuf),
    Interrupted(Signal),
}

/// Takes the backup of upgrade `name`.
pub async fn run<C: Control>(
    strategy: Arc<dyn BackupStrategy>,
    plan: BackupPlan,
    name: &str,
    progress: Option<Arc<dyn ProgressSink>>,
    control: &mut C,
) -> Result<BackupResult> {
    let cancel = Cancel::default();
    let (name_owned, cancel2) = (name.to_owned(), cancel.clone());
    let stamp = timestamp();
    // a display only when one is wanted (an interactive terminal); its total costs a walk
    let mut bar = progress.as_ref().map(|p| {
        p.begin(
            "backing up",
            Some(
                plan.skip_set()
                    .map(|s| backup::tree_size(&plan.source, &s))
                    .unwrap_or(0),
            ),
        )
    });
    let mut task = tokio::task::spawn_blocking(move || {
        backup::take_backup(strategy.as_ref(), &plan, &name_owned, &stamp, &cancel2)
    });
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let result = loop {
        let watchdog = control.watchdog_due();
        let stop = tokio::select! {
            r = &mut task => break r,
            sig = control.next_stop() => Some(sig),
            () = sleep_until_opt(watchdog) => {
                control.watchdog_ping();
                None
            }
            _ = tick.tick(), if bar.is_some() => {
                if let Some(bar) = bar.as_mut() {
                    bar.set(cancel.done());
                }
                None
            }
        };
        if let Some(sig) = stop {
            tracing::warn!("{sig} received during the backup: abandoning it");
            cancel.cancel();
            let _ = task.await;
            return Ok(BackupResult::Interrupted(sig));
        }
    };

    match result {
        Ok(Ok(path)) => Ok(BackupResult::Made(path)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Error::Task {
            what: "taking the backup",
            message: e.to_string(),
        }),
    }
}

/// `YYYYMMDDTHHMMSS.mmmZ` in UTC: the name of a backup's directory.
pub fn timestamp() -> String {
    let now = model::now();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// Sleeps until `at`; never resolves for `None`.
pub async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
