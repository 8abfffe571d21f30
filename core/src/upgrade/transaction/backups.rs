//! The backup steps of an upgrade: the daemon's data copied with the configured strategy (or
//! pre-copied while the daemon runs, then brought up to date after the stop), off the
//! supervisor's thread, abandoned at once (and cleaned up) when a stop signal arrives.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Control, Waited, watched};
use crate::backup::{self, BackupPlan, BackupStrategy, Cancel, DeltaStats, Precopy};
use crate::error::{Error, Result};
use crate::progress::ProgressSink;

/// Takes the backup of upgrade `name` in one go (the daemon is stopped).
pub async fn run<C: Control>(
    strategy: Arc<dyn BackupStrategy>,
    plan: BackupPlan,
    name: &str,
    progress: Option<Arc<dyn ProgressSink>>,
    control: &mut C,
) -> Result<Waited<PathBuf>> {
    let (name, stamp) = (name.to_owned(), backup::timestamp());
    let total = progress.as_ref().map(|_| total_of(&plan));
    let job =
        move |cancel: &Cancel| backup::take_backup(strategy.as_ref(), &plan, &name, &stamp, cancel);
    in_background(job, "backing up", total, progress, control).await
}

/// Copies the daemon's data for upgrade `name` while the daemon still runs.
pub async fn precopy<C: Control>(
    plan: BackupPlan,
    name: &str,
    progress: Option<Arc<dyn ProgressSink>>,
    control: &mut C,
) -> Result<Waited<Precopy>> {
    let (name, stamp) = (name.to_owned(), backup::timestamp());
    let total = progress.as_ref().map(|_| total_of(&plan));
    let job = move |cancel: &Cancel| backup::precopy(&plan, &name, &stamp, cancel);
    in_background(
        job,
        "copying the data (node running)",
        total,
        progress,
        control,
    )
    .await
}

/// Brings a pre-copy up to date (the daemon is stopped) and makes it the backup.
pub async fn finish<C: Control>(
    precopy: Precopy,
    plan: BackupPlan,
    progress: Option<Arc<dyn ProgressSink>>,
    control: &mut C,
) -> Result<Waited<(PathBuf, DeltaStats)>> {
    let job = move |cancel: &Cancel| precopy.finish(&plan, cancel);
    in_background(job, "copying what changed", None, progress, control).await
}

/// Bytes to copy, for a progress display (costs a walk).
fn total_of(plan: &BackupPlan) -> u64 {
    plan.skip_set()
        .map(|s| backup::tree_size(&plan.source, &s))
        .unwrap_or(0)
}

/// Runs a blocking backup job on a blocking thread, keeping the service manager's watchdog fed
/// and a progress display (when wanted) up to date. A stop signal cancels the job and waits for
/// it to clean up after itself.
async fn in_background<C: Control, T: Send + 'static>(
    job: impl FnOnce(&Cancel) -> Result<T> + Send + 'static,
    label: &str,
    total: Option<u64>,
    progress: Option<Arc<dyn ProgressSink>>,
    control: &mut C,
) -> Result<Waited<T>> {
    let cancel = Cancel::default().with_failpoint(control.active_failpoint());
    let cancel2 = cancel.clone();
    let mut bar = progress.as_ref().map(|p| p.begin(label, total));
    let mut task = tokio::task::spawn_blocking(move || job(&cancel2));
    let work = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tokio::select! {
                r = &mut task => break r,
                _ = tick.tick(), if bar.is_some() => {
                    if let Some(bar) = bar.as_mut() {
                        bar.set(cancel.done());
                    }
                }
            }
        }
    };
    let result = match watched(control, work).await {
        Ok(r) => r,
        Err(sig) => {
            tracing::warn!("{sig} received during the backup ({label}): abandoning it");
            cancel.cancel();
            let _ = task.await;
            return Ok(Waited::Interrupted(sig));
        }
    };
    match result {
        Ok(Ok(made)) => Ok(Waited::Done(made)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Error::Task {
            what: "taking the backup",
            message: e.to_string(),
        }),
    }
}
