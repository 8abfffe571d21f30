//! The helper's side: one job done with the instance's real source and verifiers.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Answer, Job, PollOutcome, WireRefusal};
use crate::config::UpstreamSource;
use crate::instance::Instance;
use crate::progress::ProgressSink;
use crate::sandbox::Rules;
use crate::source::UpgradeSource;
use crate::upgrade::Preparer;
use crate::verify::{Verifier, check_document};

/// The directories a job may write to (created here): the upgrade's `bin/` for a prepare, and
/// the GitHub source's probe directory. Everything else is read-only or out of reach in the
/// helper's sandbox.
pub fn staging_dirs(inst: &Instance, job: &Job) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    if let Job::Fleet { .. } = job {
        // talks to etcd only: writes nothing
        return Ok(dirs);
    }
    if let Job::Prepare { upgrade, .. } = job {
        crate::upgrade::policy::check_name(&upgrade.name)
            .map_err(|r| std::io::Error::other(r.reason))?;
        if let Some(bin_dir) = inst.data.upgrade_bin(&upgrade.name).parent() {
            dirs.push(bin_dir.to_owned());
        }
    }
    // the parent made each job a directory in it and set TMPDIR to that
    dirs.push(inst.data.root().join(crate::paths::HELPER_TMP_DIR));
    if inst.config.nymvisor.upstream_source == UpstreamSource::Github {
        dirs.push(inst.data.root().join(crate::paths::PROBE_DIR));
    }
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    Ok(dirs)
}

/// What the helper may touch for `job`: its staging directories (created here) and the
/// operator's `verifier_writable_paths` read-write; the local mirror, each verifier command's
/// and plugin's own file (never the directory around it, which may hold the node's data) and
/// the operator's `verifier_readable_paths` read-only; plus the system directories
/// [`crate::sandbox`] always allows. The daemon home, the backups and nymvisor's state are not
/// among them (the configuration refuses extra paths that reach them).
pub fn sandbox_rules(inst: &Instance, job: &Job) -> std::io::Result<Rules> {
    inst.check_sandbox_paths()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let n = &inst.config.nymvisor;
    let read = n
        .local_mirror_directory
        .iter()
        .chain(&n.verifier_commands)
        .chain(&n.plugin_paths)
        .chain(&n.verifier_readable_paths)
        .cloned()
        .collect();
    let mut write = staging_dirs(inst, job)?;
    write.extend(n.verifier_writable_paths.iter().cloned());
    Ok(Rules { read, write })
}

/// Added to a refusal that may come from the sandbox (a verifier command or the candidate's
/// `build-info` reaching for a file it may not).
const SANDBOX_HINT: &str = " (this ran in the network helper's sandbox: it reads the system directories, the upgrade's own directory, the local mirror, each verifier command's and plugin's own file and NYMVISOR_VERIFIER_READABLE_PATHS; it writes only the upgrade's directory, its $TMPDIR and NYMVISOR_VERIFIER_WRITABLE_PATHS; the network, loopback included, is open)";

/// Does `job` and says how it went. Every failure is part of the answer.
pub async fn serve(
    job: Job,
    inst: &Instance,
    source: Option<Arc<dyn UpgradeSource>>,
    verifiers: Vec<Arc<dyn Verifier>>,
    progress: Option<Arc<dyn ProgressSink>>,
) -> Answer {
    match job {
        Job::Poll {
            state,
            forget_validators,
        } => {
            let Some(source) = source else {
                return Answer::Polled {
                    outcome: PollOutcome::Nothing,
                    state: None,
                };
            };
            if let Some(state) = state {
                source.load_state(state);
            }
            if forget_validators {
                source.forget_validators();
            }
            let outcome = match source.latest().await {
                Ok(None) => PollOutcome::Nothing,
                Err(e) => PollOutcome::Failed {
                    error: e.message,
                    not_before: e.not_before,
                },
                Ok(Some(found)) => {
                    match check_document(&verifiers, &found, source.as_ref()).await {
                        Ok(()) => PollOutcome::Found {
                            upgrade: Box::new(found.info),
                            document_url: found.document_url,
                            document: String::from_utf8_lossy(&found.document).into_owned(),
                        },
                        Err(note) => PollOutcome::Refused { note },
                    }
                }
            };
            Answer::Polled {
                outcome,
                state: source.save_state(),
            }
        }
        Job::Prepare { upgrade, state } => {
            if let (Some(source), Some(state)) = (&source, state) {
                source.load_state(state);
            }
            let preparer = Preparer::for_instance(inst, source.clone(), verifiers, progress, None);
            let refusal = preparer.prepare(&upgrade).await.err().map(|mut r| {
                if r.reason.contains("Permission denied") {
                    r.reason.push_str(SANDBOX_HINT);
                }
                WireRefusal::from(&r)
            });
            Answer::Prepared {
                refusal,
                state: source.and_then(|s| s.save_state()),
                timings: preparer.take_timings(),
            }
        }
        Job::Fleet { .. } => Answer::Fleet {
            result: Err("a fleet job reached the source's helper (a bug)".into()),
            session: None,
        },
    }
}

/// Does a fleet job with `store` (`None`: the fleet is not configured), from the `session`
/// the last one left.
pub async fn serve_fleet(
    op: super::fleet::FleetOp,
    session: Option<serde_json::Value>,
    inst: &Instance,
    store: Option<Arc<dyn crate::fleet::FleetStore>>,
) -> Answer {
    let Some(store) = store else {
        return Answer::Fleet {
            result: Err("no fleet is configured (NYMVISOR_FLEET_ETCD_ENDPOINTS is unset)".into()),
            session: None,
        };
    };
    if let Some(s) = session {
        store.load_session(s);
    }
    let me = super::fleet::Membership::of(inst);
    let result = super::fleet::perform(store.as_ref(), &me, op)
        .await
        .map_err(|e| e.message);
    Answer::Fleet {
        result,
        session: store.save_session(),
    }
}
