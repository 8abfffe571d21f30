//! Daemon process control.
//!
//! Guarantees:
//! - the daemon runs in its own process group, with stdin null, stdout/stderr inherited, default
//!   signal dispositions and an empty signal mask (even if nymvisor inherited ignored signals),
//!   and gets SIGTERM if nymvisor dies without stopping it;
//! - the daemon is never reaped before nymvisor is done signalling its group: its exit is
//!   observed with `waitid(WNOWAIT)`, so the leader stays a zombie and its pid (= the group id)
//!   cannot be reused while signals may still be sent. No signal goes to a reused pid.

pub mod procfs;

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::signal::unix::Signal as SignalStream;

use crate::env::Env;
use crate::error::{Error, Result};

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonExit {
    Code(i32),
    Signal(Signal),
}

impl DaemonExit {
    pub fn success(self) -> bool {
        self == DaemonExit::Code(0)
    }
}

impl fmt::Display for DaemonExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonExit::Code(c) => write!(f, "exit code {c}"),
            DaemonExit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub binary: PathBuf,
    pub args: Vec<OsString>,
    pub env: Env,
}

/// A running (or exited but not yet reaped) daemon.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pid: Pid,
    started: Instant,
    start_ticks: Option<u64>,
    exit: Option<DaemonExit>,
}

impl Daemon {
    /// Starts the daemon. The caller must hold a SIGCHLD stream created before this call, so
    /// that an immediate exit is not missed.
    pub fn spawn(spec: &DaemonSpec) -> Result<Daemon> {
        let parent = nix::unistd::getpid();
        let mut cmd = Command::new(&spec.binary);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter())
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (sigaction, sigprocmask, prctl, getppid) without
        // allocating.
        unsafe {
            cmd.pre_exec(move || reset_child_signals(parent));
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::io("failed to start the daemon binary", spec.binary.clone(), e))?;
        let pid = Pid::from_raw(child.id() as i32);
        Ok(Daemon {
            child,
            pid,
            started: Instant::now(),
            start_ticks: procfs::stat(pid.as_raw()).map(|s| s.start_ticks),
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// `/proc` start time, recorded so a later nymvisor can recognise this exact process.
    pub fn start_ticks(&self) -> Option<u64> {
        self.start_ticks
    }

    /// How long ago it was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exit, if the leader has exited (it is not reaped).
    pub fn poll_exit(&mut self) -> Option<DaemonExit> {
        if self.exit.is_none() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            self.exit = match waitid(Id::Pid(self.pid), flags) {
                Ok(WaitStatus::Exited(_, code)) => Some(DaemonExit::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(DaemonExit::Signal(sig)),
                _ => None,
            };
        }
        self.exit
    }

    /// Sends `sig` to the daemon's whole process group. Safe at any time before
    /// [`Daemon::reap`]: the leader is at worst a zombie, so the group id is still ours.
    pub fn signal_group(&self, sig: Signal) {
        if let Err(e) = killpg(self.pid, sig) {
            tracing::debug!(pid = self.pid.as_raw(), %sig, "signal not delivered: {e}");
        }
    }

    /// Waits until the leader exits (without reaping it).
    pub async fn exited(&mut self, sigchld: &mut SignalStream) -> DaemonExit {
        loop {
            if let Some(exit) = self.poll_exit() {
                return exit;
            }
            // SIGCHLD wakes us at once; the timeout is only a safety net
            let _ = tokio::time::timeout(Duration::from_secs(1), sigchld.recv()).await;
        }
    }

    /// Stops the daemon: `sig` to the group, SIGKILL to the group once `grace` has passed, then
    /// reaps it. Returns how it ended.
    pub async fn stop(
        mut self,
        sig: Signal,
        grace: Duration,
        sigchld: &mut SignalStream,
    ) -> DaemonExit {
        let deadline = tokio::time::Instant::now() + grace;
        if self.poll_exit().is_none() {
            self.signal_group(sig);
        }
        let exit = match tokio::time::timeout_at(deadline, self.exited(sigchld)).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid.as_raw(),
                    "daemon still running after the {} grace period; killing its process group",
                    humantime::format_duration(grace)
                );
                self.signal_group(Signal::SIGKILL);
                self.exited(sigchld).await
            }
        };
        self.clear_group(deadline).await;
        self.reap();
        exit
    }

    /// After the leader exited on its own: members of its group that outlive it get until
    /// `grace` from now, then SIGKILL; then the leader is reaped.
    pub async fn finish(mut self, grace: Duration, sigchld: &mut SignalStream) -> DaemonExit {
        let exit = self.exited(sigchld).await;
        self.clear_group(tokio::time::Instant::now() + grace).await;
        self.reap();
        exit
    }

    /// Leftover group members (a grandchild that ignored the stop signal) are killed at the
    /// deadline. The leader is still an unreaped zombie here, so the group id is ours.
    async fn clear_group(&mut self, deadline: tokio::time::Instant) {
        loop {
            let members = procfs::group_members(self.pid, self.pid);
            if members.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    pgid = self.pid.as_raw(),
                    count = members.len(),
                    "killing processes left in the daemon's process group"
                );
                self.signal_group(Signal::SIGKILL);
                // SIGKILL cannot be ignored; give the kernel a moment to tear them down
                let until = tokio::time::Instant::now() + Duration::from_secs(5);
                while !procfs::group_members(self.pid, self.pid).is_empty()
                    && tokio::time::Instant::now() < until
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn reap(&mut self) {
        if let Err(e) = self.child.wait() {
            tracing::warn!(pid = self.pid.as_raw(), "failed to reap the daemon: {e}");
        }
    }
}

/// Runs in the child between fork and exec (see [`Daemon::spawn`]).
fn reset_child_signals(parent: Pid) -> std::io::Result<()> {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: setting the default disposition is always sound.
            let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
    // if nymvisor dies without stopping the daemon, the daemon is told to shut down
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
    if nix::unistd::getppid() != parent {
        // nymvisor died between fork and prctl: do not start an unsupervised daemon
        return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
    }
    Ok(())
}

/// Stops a daemon left behind by an earlier nymvisor (recorded pid and start time), if that
/// exact process still runs. Returns whether one was found.
pub async fn stop_leftover(pid: u32, start_ticks: u64, grace: Duration) -> bool {
    let pid = Pid::from_raw(pid as i32);
    let same = |p: Pid| {
        procfs::stat(p.as_raw()).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z')
    };
    if !same(pid) {
        return false;
    }
    tracing::warn!(
        pid = pid.as_raw(),
        "a daemon started by an earlier nymvisor is still running; stopping it"
    );
    // Not our child: we cannot hold it as a zombie, so re-check its identity right before every
    // signal (start time + pid cannot repeat).
    let _ = nix::sys::signal::kill(pid, Signal::SIGINT);
    let deadline = Instant::now() + grace;
    while same(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if same(pid) {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    while same(pid) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
