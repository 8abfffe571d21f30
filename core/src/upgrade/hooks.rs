//! Upgrade hooks: the operator's commands around an upgrade (drain a gateway, notify a channel,
//! migrate a config), run with `sh -c` in a process group of their own, bounded by the hook
//! timeout. A hook is finished when its process exits: what it left running in its group (a
//! background job) is killed then, and so is the whole group at the timeout or when the hook is
//! abandoned (its future dropped: a stop signal). Its stderr is read as it comes, keeping the
//! last 16 KiB, never waiting for an end-of-file a background job may hold back.
//!
//! - `pre_upgrade_command` runs after the new binary is prepared and verified, while the old
//!   daemon still runs; a non-zero exit postpones the upgrade (retried with the backoff) with the
//!   last line of its stderr as the reason.
//! - `post_upgrade_command` runs once the outcome is known (`confirmed`, `rolled-back`,
//!   `failed`); its failure is only logged.
//!
//! Environment: `NYMVISOR_UPGRADE_NAME`, `NYMVISOR_UPGRADE_VERSION`, `NYMVISOR_CURRENT_VERSION`,
//! `NYMVISOR_NEW_BINARY`, `DAEMON_NAME`, `DAEMON_HOME`, and for the post hook
//! `NYMVISOR_UPGRADE_OUTCOME`.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use crate::daemon::children;
use crate::env::Env;
use crate::instance::Instance;
use crate::model::UpgradeInfo;

/// Most of a hook's stderr kept.
const MAX_STDERR: u64 = 16 * 1024;

/// What a hook is told.
#[derive(Debug, Clone)]
pub struct HookCall<'a> {
    pub command: &'a str,
    pub upgrade: &'a UpgradeInfo,
    pub current_version: &'a str,
    /// `confirmed` | `rolled-back` | `failed`, for the post hook.
    pub outcome: Option<&'a str>,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    Ok,
    /// Non-zero exit, a signal, a timeout or no start at all; the reason in words.
    Failed(String),
}

/// Runs a hook to its end (or its timeout). `env` is nymvisor's environment, passed on.
pub async fn run(inst: &Instance, env: &Env, call: &HookCall<'_>) -> HookResult {
    let timeout = inst.config.daemon.hook_timeout;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(call.command)
        .env_clear()
        .envs(env.iter_os())
        .env("NYMVISOR_UPGRADE_NAME", &call.upgrade.name)
        .env("NYMVISOR_UPGRADE_VERSION", &call.upgrade.version)
        .env("NYMVISOR_CURRENT_VERSION", call.current_version)
        .env(
            "NYMVISOR_NEW_BINARY",
            inst.data.upgrade_bin(&call.upgrade.name),
        )
        .env("DAEMON_NAME", &inst.config.daemon.name)
        .env("DAEMON_HOME", &inst.config.daemon.home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(outcome) = call.outcome {
        cmd.env("NYMVISOR_UPGRADE_OUTCOME", outcome);
    }
    let mut child = match children::spawn_tokio(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            return HookResult::Failed(format!("`{}` could not be started: {e}", call.command));
        }
    };
    let _owned = children::Owned(child.id());
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // whatever ends this future, the hook's group goes with it
    let _group = pgid.map(GroupKill);
    let mut stderr = child.stderr.take();
    let mut tail = Vec::new();
    let status = {
        let read = read_tail(stderr.as_mut(), &mut tail);
        tokio::pin!(read);
        let wait = child.wait();
        tokio::pin!(wait);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut read_done = false;
        let status = loop {
            tokio::select! {
                s = &mut wait => break Some(s),
                () = &mut read, if !read_done => read_done = true,
                () = &mut deadline => break None,
            }
        };
        // finished (or out of time): what it left in its group goes now, and with it the
        // pipe's other ends, so the rest of its output arrives at once
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if !read_done {
            // a writer that left the group could hold the pipe open: not waited for
            let _ = tokio::time::timeout(Duration::from_millis(200), &mut read).await;
        }
        status
    };
    let Some(status) = status else {
        return HookResult::Failed(format!(
            "`{}` did not finish within {}; its process group was killed",
            call.command,
            humantime::format_duration(timeout)
        ));
    };
    let text = tail;
    let last_line = String::from_utf8_lossy(&text)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect::<String>());
    match status {
        Ok(s) if s.success() => HookResult::Ok,
        Ok(s) => HookResult::Failed(match last_line {
            Some(line) => line,
            None => format!("`{}` exited with {s}", call.command),
        }),
        Err(e) => HookResult::Failed(format!("cannot wait for `{}`: {e}", call.command)),
    }
}

/// Kills a hook's process group when dropped.
struct GroupKill(Pid);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// Reads `stream` to its end, keeping its last [`MAX_STDERR`] bytes in `tail`.
async fn read_tail(stream: Option<&mut tokio::process::ChildStderr>, tail: &mut Vec<u8>) {
    let Some(s) = stream else { return };
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                let over = tail.len().saturating_sub(MAX_STDERR as usize);
                tail.drain(..over);
            }
        }
    }
}

/// The post hook, in the background (it never holds the supervisor up); its failure is logged.
pub fn spawn_post(
    inst: &Instance,
    env: &Env,
    upgrade: &UpgradeInfo,
    current: &str,
    outcome: &'static str,
) {
    let Some(command) = inst.config.daemon.post_upgrade_command.clone() else {
        return;
    };
    let (inst, env, upgrade, current) = (
        inst.clone(),
        env.clone(),
        upgrade.clone(),
        current.to_owned(),
    );
    tokio::spawn(async move {
        let call = HookCall {
            command: &command,
            upgrade: &upgrade,
            current_version: &current,
            outcome: Some(outcome),
        };
        match run(&inst, &env, &call).await {
            HookResult::Ok => {
                tracing::info!(upgrade = %upgrade.name, "the post-upgrade hook ran ({outcome})")
            }
            HookResult::Failed(reason) => {
                tracing::warn!(upgrade = %upgrade.name, "the post-upgrade hook failed ({outcome}): {reason}")
            }
        }
    });
}
