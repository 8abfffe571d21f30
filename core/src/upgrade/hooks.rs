//! Upgrade hooks: the operator's commands around an upgrade (drain a gateway, notify a channel,
//! migrate a config), run with `sh -c` in a process group of their own, bounded by the hook
//! timeout (then the whole group is killed).
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
    let mut stderr = child.stderr.take();
    let work = async {
        let mut text = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(MAX_STDERR).read_to_end(&mut text).await;
            let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
        }
        (child.wait().await, text)
    };
    let (status, text) = match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            // not reaped yet (its status was never collected): the group id is still its own
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            return HookResult::Failed(format!(
                "`{}` did not finish within {}; its process group was killed",
                call.command,
                humantime::format_duration(timeout)
            ));
        }
    };
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
