//! External command verifiers: the request goes to the command as one JSON object on stdin; exit
//! status 0 accepts, anything else refuses with the command's stderr as the reason.
//!
//! The request (`abiVersion` 1):
//! `{"abiVersion":1,"daemon":"nym-node","upgrade":{…upgrade-info…},"binaryPath":"…",`
//! `"digests":{"sha256":"…"},"downloaded":true,"platform":{…}|null}`.
//!
//! The command runs in its own process group with a timeout; on timeout the whole group is
//! killed. A command that cannot be started or does not answer in time refuses the upgrade for
//! now (it is retried later); a command that says no refuses it until the plan entry changes.
//! Nothing a command does can crash nymvisor.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use nymvisor_core::daemon::children;
use nymvisor_core::env::Env;
use nymvisor_core::source::UpgradeSource;
use nymvisor_core::verify::{Candidate, Refusal, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Version of the request document.
pub const ABI_VERSION: u32 = 1;
/// `EX_TEMPFAIL` (sysexits.h): the command's "try again later".
const EX_TEMPFAIL: i32 = 75;
/// Most of a command's stderr kept as the reason.
const MAX_REASON: u64 = 4096;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ExecVerifier {
    command: PathBuf,
    timeout: Duration,
    name: String,
    /// The command's environment: the supervisor's resolved one (`-c` files applied).
    env: Env,
    /// It runs in the network helper's sandbox: a `Permission denied` is the sandbox's.
    sandboxed: bool,
}

impl ExecVerifier {
    pub fn new(command: PathBuf, timeout: Duration, env: Env) -> ExecVerifier {
        let name = format!("command {}", command.display());
        ExecVerifier {
            command,
            timeout,
            name,
            env,
            sandboxed: false,
        }
    }

    /// Marks it as run inside the network helper's sandbox, where `Permission denied` on its
    /// stderr is the sandbox refusing an access ("not now"), not the check's verdict.
    pub fn sandboxed(mut self, sandboxed: bool) -> ExecVerifier {
        self.sandboxed = sandboxed;
        self
    }

    /// The JSON request for a candidate.
    pub fn request(c: &Candidate<'_>) -> serde_json::Value {
        serde_json::json!({
            "abiVersion": ABI_VERSION,
            "daemon": c.daemon,
            "upgrade": c.info,
            "binaryPath": c.path,
            "digests": c.digests,
            "downloaded": c.downloaded,
            "platform": c.platform,
        })
    }
}

#[async_trait::async_trait]
impl Verifier for ExecVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(
        &self,
        c: &Candidate<'_>,
        source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal> {
        self.verify_with_message(c, source).await.map(|_| ())
    }

    /// Exit 0 accepts (stderr is the message), 75 (`EX_TEMPFAIL`) is "not now", and so is a
    /// failure of the check itself — it could not be run (126/127), it was killed by a signal,
    /// or the sandbox refused it an access; any other status refuses, stderr the reason.
    async fn verify_with_message(
        &self,
        c: &Candidate<'_>,
        _source: Option<&dyn UpgradeSource>,
    ) -> Result<Option<String>, Refusal> {
        let request = serde_json::to_vec(&Self::request(c))
            .map_err(|e| Refusal::never(format!("cannot build the request: {e}")))?;
        let mut child = children::spawn_tokio(
            tokio::process::Command::new(&self.command)
                .env_clear()
                .envs(self.env.iter_os())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true),
        )
        .map_err(|e| Refusal::transient(format!("cannot run it: {e}")))?;
        let _owned = children::Owned(child.id());
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let work = async {
            if let Some(mut s) = stdin.take() {
                // a command that does not read its input is fine: ignore a broken pipe
                let _ = s.write_all(&request).await;
                let _ = s.shutdown().await;
            }
            let mut reason = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(MAX_REASON).read_to_end(&mut reason).await;
                // drain the rest, so a chatty command does not block on a full pipe
                let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
            }
            let status = child.wait().await;
            (status, reason)
        };
        let (status, reason) = match tokio::time::timeout(self.timeout, work).await {
            Ok(done) => done,
            Err(_) => {
                // not reaped yet (we never got its status): the group id is still its own
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                return Err(Refusal::transient(format!(
                    "no answer within {}; its process group was killed",
                    humantime::format_duration(self.timeout)
                )));
            }
        };
        let status = status.map_err(|e| Refusal::transient(format!("cannot wait for it: {e}")))?;
        // one line, and short: it ends up in a log line and in the status
        let reason: String = String::from_utf8_lossy(&reason)
            .trim()
            .replace('\n', " ")
            .chars()
            .take(1000)
            .collect();
        if status.success() {
            return Ok((!reason.is_empty()).then_some(reason));
        }
        let said = |what: &str| {
            if reason.is_empty() {
                format!("{what} ({status}) without a reason")
            } else {
                format!("{what} ({status}): {reason}")
            }
        };
        let not_now = status.code() == Some(EX_TEMPFAIL)
            || status.code().is_none() // killed by a signal
            || matches!(status.code(), Some(126 | 127))
            || (self.sandboxed && reason.contains("Permission denied"));
        Err(if not_now {
            Refusal::transient(said("not now"))
        } else {
            Refusal::never(said("refused"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `install` in a child process: a test thread that forks while this one holds
    /// the script open for writing would make its execution fail with ETXTBSY.
    fn env() -> Env {
        Env::from_os_pairs(std::env::vars_os())
    }

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        let staged = dir.join(format!("{name}.staged"));
        std::fs::write(&staged, format!("#!/bin/sh\n{body}\n")).unwrap();
        let ok = std::process::Command::new("install")
            .args(["-m", "0755"])
            .arg(&staged)
            .arg(&p)
            .status()
            .unwrap();
        assert!(ok.success());
        p
    }

    async fn run(v: &ExecVerifier) -> Result<(), Refusal> {
        let info: nymvisor_core::model::UpgradeInfo = serde_json::from_str(
            r#"{"name":"v1.2.0","version":"1.2.0","upgradeTime":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let digests = Default::default();
        let c = Candidate {
            daemon: "nym-node",
            info: &info,
            platform: None,
            path: std::path::Path::new("/tmp/candidate"),
            digests: &digests,
            downloaded: false,
        };
        v.verify(&c, None).await
    }

    #[tokio::test]
    async fn accept_refuse_and_misbehave() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(2);
        let seen = dir.path().join("seen.json");
        let ok = script(dir.path(), "ok", &format!("cat > {}", seen.display()));
        assert!(run(&ExecVerifier::new(ok, t, env())).await.is_ok());
        let req: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!(req["abiVersion"], 1);
        assert_eq!(req["upgrade"]["version"], "1.2.0");

        let no = script(
            dir.path(),
            "no",
            "echo 'version 1.2.0 is not on the allow-list' >&2; exit 3",
        );
        let r = run(&ExecVerifier::new(no, t, env())).await.unwrap_err();
        assert!(
            !r.retryable() && r.reason.contains("not on the allow-list"),
            "{r:?}"
        );

        let hang = script(dir.path(), "hang", "sleep 30");
        let started = std::time::Instant::now();
        let r = run(&ExecVerifier::new(hang, Duration::from_millis(300), env()))
            .await
            .unwrap_err();
        assert!(r.retryable() && r.reason.contains("no answer"), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10));

        let missing = run(&ExecVerifier::new(dir.path().join("missing"), t, env()))
            .await
            .unwrap_err();
        assert!(
            missing.retryable() && missing.reason.contains("cannot run it"),
            "{missing:?}"
        );

        let garbage = script(
            dir.path(),
            "garbage",
            "head -c 100000 /dev/urandom >&2; exit 1",
        );
        let r = run(&ExecVerifier::new(garbage, t, env()))
            .await
            .unwrap_err();
        assert!(!r.retryable() && r.reason.len() < 5000);
    }
}
