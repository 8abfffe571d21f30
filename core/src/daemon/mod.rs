//! Daemon process control.
//!
//! Guarantees:
//! - the daemon runs in its own process group, with stdin null, stdout/stderr inherited, the
//!   environment passed through byte for byte, default signal dispositions and an empty signal
//!   mask (even if nymvisor inherited ignored signals), and gets SIGTERM if nymvisor dies
//!   without stopping it;
//! - the daemon is never reaped before nymvisor is done signalling its group: its exit is
//!   observed with `waitid(WNOWAIT)`, so the leader stays a zombie and its pid (= the group id)
//!   cannot be reused while signals may still be sent. No signal goes to a reused pid;
//! - stopping the daemon stops everything it started, also processes that left its process
//!   group ([`children`]): once the daemon itself is gone, what it left behind gets SIGTERM at
//!   once and SIGKILL after [`LEFTOVER_GRACE`] (or the rest of the grace period, if shorter);
//! - a second stop signal while the daemon is being stopped kills it (and what it left) at once.

pub mod children;
pub mod procfs;
pub mod signals;

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, killpg, sigprocmask};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};

use self::signals::{Signals, is_stop};
use crate::env::Env;
use crate::error::{Error, Result};

/// How long processes left behind by an exited daemon get between SIGTERM and SIGKILL (at most;
/// less when the grace period ends sooner).
pub const LEFTOVER_GRACE: Duration = Duration::from_secs(1);

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

/// SIGCHLD, with the reaping of adopted orphans that every SIGCHLD calls for.
#[derive(Debug)]
pub struct ChildEvents {
    sigchld: SignalStream,
}

impl ChildEvents {
    /// Must be created before any child is started, so that no exit is missed.
    pub fn new() -> Result<ChildEvents> {
        let sigchld = signal(SignalKind::child()).map_err(|source| Error::Signals {
            what: "child processes (SIGCHLD)",
            source,
        })?;
        Ok(ChildEvents { sigchld })
    }

    /// Resolves at the next SIGCHLD, once the orphans that exited are reaped. Cancel-safe.
    pub async fn next(&mut self) {
        self.sigchld.recv().await;
        let reaped = children::reap_orphans();
        if !reaped.is_empty() {
            tracing::debug!(?reaped, "reaped orphaned processes");
        }
    }
}

/// How [`Daemon::stop`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub exit: DaemonExit,
    /// A stop signal that arrived while the daemon was being stopped for another reason (an
    /// upgrade): nymvisor must not start anything and exit.
    pub stop_signal: Option<Signal>,
    /// A repeated stop signal cut the grace period short.
    pub forced: bool,
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
    /// Starts the daemon. The caller must hold a [`ChildEvents`] created before this call, so
    /// that an immediate exit is not missed.
    pub fn spawn(spec: &DaemonSpec) -> Result<Daemon> {
        let parent = nix::unistd::getpid();
        let mut cmd = Command::new(&spec.binary);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter_os())
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
        let child = children::spawn_std(&mut cmd)
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

    /// Waits until the leader exits (without reaping it). Cancel-safe.
    pub async fn exited(&mut self, events: &mut ChildEvents) -> DaemonExit {
        loop {
            if let Some(exit) = self.poll_exit() {
                return exit;
            }
            events.next().await;
        }
    }

    /// Processes the daemon started that still run, wherever they went (see [`children`]).
    pub fn leftovers(&self) -> Vec<children::Proc> {
        children::strays(self.pid.as_raw())
    }

    /// Stops the daemon: `sig` to the group, SIGKILL to the group and whatever the daemon left
    /// behind once `grace` has passed, then reaps it.
    ///
    /// `operator`: this stop was asked for by a stop signal, so another one escalates at once.
    /// Otherwise (an upgrade, a restart) the first stop signal is forwarded and reported in
    /// [`Stopped::stop_signal`], and a second one escalates.
    pub async fn stop(
        mut self,
        sig: Signal,
        grace: Duration,
        events: &mut ChildEvents,
        signals: &mut Signals,
        operator: bool,
    ) -> Stopped {
        let deadline = tokio::time::Instant::now() + grace;
        let mut stop_signal = None;
        let mut forced = false;
        if self.poll_exit().is_none() {
            self.signal_group(sig);
        }
        let exit = loop {
            tokio::select! {
                exit = self.exited(events) => break exit,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        pid = self.pid.as_raw(),
                        "daemon still running after the {} grace period; killing its process group and what it started",
                        humantime::format_duration(grace)
                    );
                    self.kill_all();
                    break self.exited(events).await;
                }
                s = signals.recv() => {
                    if !is_stop(s) {
                        self.signal_group(s);
                    } else if operator || stop_signal.is_some() {
                        tracing::warn!("{s} received again while the daemon is stopping: killing its process group and what it started now");
                        forced = true;
                        self.kill_all();
                        break self.exited(events).await;
                    } else {
                        tracing::info!("{s} received while the daemon is being stopped: nothing will be started; send it again to kill the daemon at once");
                        stop_signal = Some(s);
                        self.signal_group(s);
                    }
                }
            }
        };
        let deadline = if forced {
            tokio::time::Instant::now()
        } else {
            deadline
        };
        self.clear_leftovers(deadline).await;
        self.reap();
        Stopped {
            exit,
            stop_signal,
            forced,
        }
    }

    /// After the leader exited on its own: what it left behind gets SIGTERM at once and SIGKILL
    /// after at most `grace`; then the leader is reaped.
    pub async fn finish(mut self, grace: Duration, events: &mut ChildEvents) -> DaemonExit {
        let exit = self.exited(events).await;
        self.clear_leftovers(tokio::time::Instant::now() + grace)
            .await;
        self.reap();
        exit
    }

    /// SIGKILL to the group and to every process the daemon left outside it.
    fn kill_all(&self) {
        self.signal_group(Signal::SIGKILL);
        for p in self.leftovers() {
            children::signal(&p, Signal::SIGKILL);
        }
    }

    /// The leader has exited (it is an unreaped zombie, so the group id is still ours): what is
    /// left of its group and its descendants gets SIGTERM now, SIGKILL after [`LEFTOVER_GRACE`]
    /// or at `deadline`, whichever comes first.
    async fn clear_leftovers(&mut self, deadline: tokio::time::Instant) {
        let left = self.leftovers();
        if left.is_empty() {
            return;
        }
        let pids: Vec<i32> = left.iter().map(|p| p.pid).collect();
        let now = tokio::time::Instant::now();
        let kill_at = deadline.min(now + LEFTOVER_GRACE);
        if kill_at > now {
            tracing::info!(
                ?pids,
                "the daemon left {} process(es) behind: SIGTERM now, SIGKILL in {} ms if they are still there",
                left.len(),
                (kill_at - now).as_millis()
            );
            self.signal_group(Signal::SIGTERM);
            for p in &left {
                children::signal(p, Signal::SIGTERM);
            }
            while left.iter().any(children::alive) && tokio::time::Instant::now() < kill_at {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let remaining: Vec<_> = self
            .leftovers()
            .into_iter()
            .chain(left.into_iter().filter(children::alive))
            .collect();
        if !remaining.is_empty() {
            let pids: Vec<i32> = remaining.iter().map(|p| p.pid).collect();
            tracing::warn!(?pids, "killing processes the daemon left behind");
            self.signal_group(Signal::SIGKILL);
            for p in &remaining {
                children::signal(p, Signal::SIGKILL);
            }
            // SIGKILL cannot be ignored; give the kernel a moment to tear them down
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            while remaining.iter().any(children::alive) && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // the ones that were nymvisor's (adopted) children are zombies now
        let _ = children::reap_orphans();
    }

    fn reap(&mut self) {
        if let Err(e) = self.child.wait() {
            tracing::warn!(pid = self.pid.as_raw(), "failed to reap the daemon: {e}");
        }
        children::release(self.pid());
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
