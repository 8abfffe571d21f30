//! The daemon protocol (docs/REFERENCE.md "Build information"): asking a binary for its build
//! information.
//!
//! The binary is run in its own process group with a timeout; when the timeout fires the whole
//! group is killed, so a probe can never leave a process behind or hang nymvisor.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::model::BuildInfo;

/// Default probe timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Cap on what a probe may print.
const MAX_OUTPUT: u64 = 256 * 1024;

/// Asks `binary` for its build information: `--no-banner build-info --output=json`, falling
/// back to `build-info --output=json` when the first form fails.
pub async fn probe(binary: &Path, timeout: Duration) -> Result<BuildInfo> {
    let meta = std::fs::metadata(binary).map_err(|e| Error::BuildInfo {
        binary: binary.to_owned(),
        message: format!("cannot access it ({e})"),
    })?;
    if !meta.is_file() {
        return Err(Error::BuildInfo {
            binary: binary.to_owned(),
            message: "not a regular file".into(),
        });
    }
    let first = run_once(
        binary,
        &["--no-banner", "build-info", "--output=json"],
        timeout,
    )
    .await;
    match first {
        Ok(info) => Ok(info),
        // a hung binary would hang again: do not try the second form
        Err(e @ ProbeError::Timeout) | Err(e @ ProbeError::Spawn(_)) => Err(e.into_error(binary)),
        Err(first_err) => match run_once(binary, &["build-info", "--output=json"], timeout).await {
            Ok(info) => Ok(info),
            Err(second) => Err(Error::BuildInfo {
                binary: binary.to_owned(),
                message: format!(
                    "`--no-banner build-info --output=json`: {}; `build-info --output=json`: {}",
                    first_err.describe(),
                    second.describe()
                ),
            }),
        },
    }
}

/// [`probe`], then checks that the binary is the expected daemon.
pub async fn probe_daemon(binary: &Path, expected_name: &str) -> Result<BuildInfo> {
    let info = probe(binary, PROBE_TIMEOUT).await?;
    if info.binary_name != expected_name {
        return Err(Error::WrongDaemon {
            binary: binary.to_owned(),
            expected: expected_name.to_owned(),
            found: info.binary_name,
        });
    }
    Ok(info)
}

#[derive(Debug)]
enum ProbeError {
    Spawn(std::io::Error),
    Timeout,
    Failed { status: String, stderr: String },
    BadOutput(String),
}

impl ProbeError {
    fn describe(&self) -> String {
        match self {
            ProbeError::Spawn(e) => format!("could not be executed ({e})"),
            ProbeError::Timeout => "did not answer in time; its process group was killed".into(),
            ProbeError::Failed { status, stderr } if stderr.is_empty() => {
                format!("exited with {status}")
            }
            ProbeError::Failed { status, stderr } => format!("exited with {status}: {stderr}"),
            ProbeError::BadOutput(e) => format!("printed no build information JSON ({e})"),
        }
    }

    fn into_error(self, binary: &Path) -> Error {
        Error::BuildInfo {
            binary: binary.to_owned(),
            message: self.describe(),
        }
    }
}

async fn run_once(
    binary: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<BuildInfo, ProbeError> {
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A binary that was just written can be "busy" for a moment: any process forked while it
    // was open for writing holds that descriptor until its own exec.
    let mut attempts = 0;
    let mut child = loop {
        match crate::daemon::children::spawn_tokio(&mut cmd) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => break other.map_err(ProbeError::Spawn)?,
        }
    };
    let pid = child.id();
    // whatever happens below, the child is reaped by the time this returns
    let _owned = crate::daemon::children::Owned(pid);
    let pgid = pid.map(|id| Pid::from_raw(id as i32));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(MAX_OUTPUT).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(MAX_OUTPUT).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let result = tokio::time::timeout(timeout, work).await;
    let (status, out, err) = match result {
        Ok(done) => done,
        Err(_) => {
            // The leader has not been reaped yet (we never got its status), so its pgid cannot
            // have been reused: killing the group is safe.
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            return Err(ProbeError::Timeout);
        }
    };
    let status = status.map_err(ProbeError::Spawn)?;
    if !status.success() {
        return Err(ProbeError::Failed {
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&err)
                .trim()
                .chars()
                .take(300)
                .collect(),
        });
    }
    parse_output(&out).map_err(ProbeError::BadOutput)
}

/// Finds the build-information object in a probe's output (tolerating a banner before it).
fn parse_output(out: &[u8]) -> Result<BuildInfo, String> {
    let text = String::from_utf8_lossy(out);
    let start = text.find('{').ok_or("no JSON object in the output")?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<BuildInfo>();
    match stream.next() {
        Some(Ok(info)) => Ok(info),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no JSON object in the output".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_with_banner_and_old_shape() {
        let out = br#"banner text
{"binary_name":"nym-node","build_timestamp":"t","build_version":"1.0.0","commit_sha":"x","commit_timestamp":"t","commit_branch":"master","rustc_version":"1.80.0","rustc_channel":"stable","cargo_profile":"release"}"#;
        let info = parse_output(out).unwrap();
        assert_eq!(info.binary_name, "nym-node");
        assert_eq!(info.cargo_triple, None);
        assert!(parse_output(b"nothing").is_err());
        assert!(parse_output(br#"{"binary_name": 3}"#).is_err());
    }
}
