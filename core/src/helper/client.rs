//! The supervisor's side of the network helper: one child process per job.

use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Answer, InstanceSnapshot, Job, PollOutcome, Request, SUBCOMMAND};
use crate::daemon::children;
use crate::model::UpgradeInfo;
use crate::refusal::Refusal;

/// Longest answer read from a helper (an upgrade document and the source's state).
const MAX_ANSWER: u64 = 4 * 1024 * 1024;

/// Runs jobs in `nymvisor __helper` children, keeping the source's state between them.
#[derive(Debug)]
pub struct Helper {
    /// What the source is, for logs (the helper builds the source itself); `None`: no source,
    /// the helper only prepares binaries added with `add-upgrade`.
    describe: Option<String>,
    /// This very program, even if its file was replaced since it started (a package upgrade).
    exe: std::path::PathBuf,
    /// Parent of each job's temporary directory (see [`crate::paths::HELPER_TMP_DIR`]).
    tmp_root: std::path::PathBuf,
    /// The configuration the supervisor resolved, sent with every job.
    instance: InstanceSnapshot,
    /// The supervisor's resolved environment (`-c` files applied): the helper's, and through
    /// it its verifier commands' and plugins'.
    env: crate::env::Env,
    state: Mutex<Option<serde_json::Value>>,
    /// What the last fleet job left for the next (an etcd login token).
    fleet_session: Mutex<Option<serde_json::Value>>,
    forget: AtomicBool,
}

impl Helper {
    /// Jobs for `inst` as resolved, run with the environment `env` (the supervisor's, `-c`
    /// files applied). Each job gets a temporary directory in the upgrade data directory.
    pub fn new(
        describe: Option<String>,
        inst: &crate::instance::Instance,
        env: &crate::env::Env,
    ) -> Helper {
        Helper {
            describe,
            exe: "/proc/self/exe".into(),
            tmp_root: inst.data.root().join(crate::paths::HELPER_TMP_DIR),
            instance: InstanceSnapshot::of(inst),
            env: env.clone(),
            state: Mutex::new(None),
            fleet_session: Mutex::new(None),
            forget: AtomicBool::new(false),
        }
    }

    /// The source, as the helper will build it (`None`: there is none to poll).
    pub fn describe(&self) -> Option<&str> {
        self.describe.as_deref()
    }

    /// Polls the source (and checks its document) in a helper.
    pub async fn poll(&self) -> PollOutcome {
        let job = Job::Poll {
            state: self.state(),
            forget_validators: self.forget.swap(false, Ordering::SeqCst),
        };
        match self.call(&job).await {
            Ok(Answer::Polled { outcome, state }) => {
                self.keep(state);
                outcome
            }
            Ok(other) => PollOutcome::Failed {
                error: format!("the network helper gave an answer to another job: {other:?}"),
                not_before: None,
            },
            Err(error) => PollOutcome::Failed {
                error,
                not_before: None,
            },
        }
    }

    /// Prepares `info` in a helper: its binary downloaded if need be, verified and in place;
    /// with how long each verifier took.
    pub async fn prepare(&self, info: &UpgradeInfo) -> (Result<(), Refusal>, Vec<(String, f64)>) {
        let job = Job::Prepare {
            upgrade: Box::new(info.clone()),
            state: self.state(),
        };
        match self.call(&job).await {
            Ok(Answer::Prepared {
                refusal,
                state,
                timings,
            }) => {
                self.keep(state);
                let result = match refusal {
                    None => Ok(()),
                    Some(r) => Err(r.into()),
                };
                (result, timings)
            }
            Ok(other) => (
                Err(Refusal::transient(format!(
                    "the network helper gave an answer to another job: {other:?}"
                ))),
                Vec::new(),
            ),
            Err(e) => (Err(Refusal::transient(e)), Vec::new()),
        }
    }

    /// Does a fleet job in a helper.
    pub async fn fleet(
        &self,
        op: super::fleet::FleetOp,
    ) -> Result<super::fleet::FleetReply, String> {
        let session = self.fleet_session.lock().ok().and_then(|s| s.clone());
        match self.call(&Job::Fleet { op, session }).await? {
            Answer::Fleet { result, session } => {
                if let Ok(mut s) = self.fleet_session.lock() {
                    *s = session;
                }
                result
            }
            other => Err(format!(
                "the network helper gave an answer to another job: {other:?}"
            )),
        }
    }

    /// Each job's temporary directory is made in `root` instead of the upgrade data directory
    /// (a command run by another user than the instance's owner must not create files there).
    pub fn with_tmp_root(mut self, root: std::path::PathBuf) -> Helper {
        self.tmp_root = root;
        self
    }

    /// The next poll asks for the whole document.
    pub fn forget(&self) {
        self.forget.store(true, Ordering::SeqCst);
    }

    fn state(&self) -> Option<serde_json::Value> {
        self.state.lock().ok().and_then(|s| s.clone())
    }

    fn keep(&self, state: Option<serde_json::Value>) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    /// Runs one job: the request on the helper's stdin, the answer from its stdout; its stderr
    /// is nymvisor's (its log lines land where nymvisor's do). The helper is killed if this
    /// future is dropped.
    async fn call(&self, job: &Job) -> Result<Answer, String> {
        let request = Request {
            instance: self.instance.clone(),
            job: job.clone(),
        };
        let request = serde_json::to_vec(&request)
            .map_err(|e| format!("cannot encode the network helper's job: {e}"))?;
        // removed when the job is over, whatever the helper or its commands left in it
        let tmp = std::fs::create_dir_all(&self.tmp_root)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix("job-")
                    .tempdir_in(&self.tmp_root)
            })
            .map_err(|e| {
                format!(
                    "cannot create the network helper's temporary directory in {}: {e}",
                    self.tmp_root.display()
                )
            })?;
        let answer = self.run_job(&request, tmp.path()).await;
        drop(tmp);
        // gone unless another job is running
        let _ = std::fs::remove_dir(&self.tmp_root);
        answer
    }

    async fn run_job(&self, request: &[u8], tmp: &std::path::Path) -> Result<Answer, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        // the supervisor's resolved environment, not the one nymvisor was started with
        cmd.arg(SUBCOMMAND)
            .env_clear()
            .envs(self.env.iter_os())
            .env("TMPDIR", tmp)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = children::spawn_tokio(&mut cmd)
            .map_err(|e| format!("cannot start the network helper ({SUBCOMMAND}): {e}"))?;
        let _owned = children::Owned(child.id());
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the network helper has no pipes".into());
        };
        let mut answer = Vec::new();
        let talk = async {
            // the helper reads the whole job before it answers
            stdin.write_all(request).await?;
            drop(stdin);
            stdout.take(MAX_ANSWER + 1).read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(())
        };
        let talked = talk.await;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("cannot wait for the network helper: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the network helper failed ({status}); its messages are in the log above"
            ));
        }
        talked.map_err(|e| format!("cannot talk to the network helper: {e}"))?;
        if answer.len() as u64 > MAX_ANSWER {
            return Err(format!(
                "the network helper's answer is larger than {MAX_ANSWER} bytes"
            ));
        }
        serde_json::from_slice(&answer)
            .map_err(|e| format!("the network helper's answer does not parse: {e}"))
    }
}

#[async_trait::async_trait]
impl crate::upgrade::Elsewhere for Helper {
    async fn prepare(&self, info: &UpgradeInfo) -> (Result<(), Refusal>, Vec<(String, f64)>) {
        Helper::prepare(self, info).await
    }
}
