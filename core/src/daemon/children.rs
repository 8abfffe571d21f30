//! nymvisor's children, and the processes the daemon leaves behind.
//!
//! nymvisor is a child subreaper (`PR_SET_CHILD_SUBREAPER`; as PID 1 of a container it is init
//! anyway): a process whose parent exits is re-parented to nymvisor instead of to the host's
//! init. That gives two guarantees:
//!
//! - **Every orphan is reaped.** Children fall in two kinds. *Owned* children are the ones
//!   nymvisor started itself (the daemon, build-info probes, verifier commands, hooks): each has
//!   an owner that waits for it, so they are registered here at spawn time and never reaped
//!   behind their owner's back. Every other child is an *adopted* orphan and is reaped by
//!   [`reap_orphans`] as soon as it exits.
//! - **Nothing the daemon started escapes.** A process the daemon started with `setsid` (or a
//!   daemon that double-forks) leaves its process group, so signalling the group misses it. As
//!   subreaper, nymvisor still finds it: it is either a descendant of the running daemon or,
//!   once its parent exited, an adopted child of nymvisor. [`strays`] lists them all.
//!
//! Signals to processes that nymvisor has not reaped itself go through a pidfd opened before the
//! identity (pid + start time) is checked, so a pid that was reused in the meantime is never
//! signalled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use super::procfs;

/// nymvisor is a child subreaper (or PID 1): whatever the daemon started is a descendant of
/// the daemon or of nymvisor, so the children files suffice to find it (see [`strays`]).
static SUBREAPER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Pids of the children that have an owner waiting for them.
static OWNED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn owned() -> MutexGuard<'static, BTreeSet<i32>> {
    // the set stays consistent whatever panicked while holding it: it is only inserts/removes
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The children nymvisor already had when `run` started (see [`note_inherited`]).
static INHERITED: Mutex<Vec<Proc>> = Mutex::new(Vec::new());

fn inherited() -> MutexGuard<'static, Vec<Proc>> {
    INHERITED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the children nymvisor has before it starts any. They came with the process across
/// `exec`: a shell's process substitution (`nymvisor run … 2> >(logger)` makes the log reader a
/// child of nymvisor), a wrapper script's background job. They are not the daemon's, so
/// [`strays`] never counts them (nor what they start) among its leftovers; when they exit they
/// are reaped like any orphan. Call it before the first spawn. Returns how many there are.
pub fn note_inherited() -> usize {
    let me = std::process::id() as i32;
    let found: Vec<Proc> = procfs::table()
        .into_iter()
        .filter(|(_, p)| p.ppid == me && p.state != 'Z')
        .map(|(pid, p)| Proc {
            pid,
            start_ticks: p.start_ticks,
        })
        .collect();
    let n = found.len();
    *inherited() = found;
    n
}

/// Makes nymvisor the reaper of its descendants' orphans. Returns whether it worked (it does on
/// every Linux since 3.4).
pub fn become_subreaper() -> bool {
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => {
            SUBREAPER.store(true, std::sync::atomic::Ordering::SeqCst);
            true
        }
        Err(e) => {
            tracing::warn!(
                "cannot become a child subreaper ({e}): processes the daemon moves out of its process group cannot be stopped with it"
            );
            false
        }
    }
}

/// Whether nymvisor runs as PID 1 (the init of a container's PID namespace).
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Spawns a `std` command as an owned child.
pub fn spawn_std(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    // held across the fork, so the reaper cannot see the child before it is registered
    let mut set = owned();
    let child = cmd.spawn()?;
    set.insert(child.id() as i32);
    Ok(child)
}

/// Spawns a tokio command as an owned child.
pub fn spawn_tokio(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut set = owned();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        set.insert(pid as i32);
    }
    Ok(child)
}

/// The owner of `pid` has reaped it (or will not need it any more).
pub fn release(pid: u32) {
    owned().remove(&(pid as i32));
}

/// Releases an owned pid when dropped (put it next to the code that waits for the child).
#[derive(Debug)]
pub struct Owned(pub Option<u32>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            release(pid);
        }
    }
}

/// Reaps every exited child that no owner waits for. Returns the pids reaped. Never blocks.
pub fn reap_orphans() -> Vec<i32> {
    let mut set = owned();
    let me = std::process::id() as i32;
    let mut reaped = Vec::new();
    // Fast path: peek at any exited child; an owned one hides the others, then /proc tells.
    let mut scan = false;
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(status) => match status.pid() {
                Some(pid) if !set.contains(&pid.as_raw()) => {
                    if reap(pid) {
                        reaped.push(pid.as_raw());
                    } else {
                        break;
                    }
                }
                _ => {
                    scan = true;
                    break;
                }
            },
        }
    }
    if scan {
        // our children are all that matter here: their files, not the whole table. The files
        // may miss a child while another is reaped (the kernel walks the list by position): an
        // orphan missed now is reaped at the next SIGCHLD, and the list is never used to forget
        // an owned pid (that safety net needs the whole table; owners release theirs anyway)
        let table = match procfs::children(me) {
            Some(kids) => kids
                .into_iter()
                .filter_map(|pid| Some((pid, procfs::stat(pid)?)))
                .collect(),
            None => {
                let table = procfs::table();
                // forget owned pids that are no longer our children (tokio reaped them)
                set.retain(|pid| table.get(pid).is_some_and(|p| p.ppid == me));
                table
            }
        };
        for (pid, p) in &table {
            if p.ppid == me && p.state == 'Z' && !set.contains(pid) && reap(Pid::from_raw(*pid)) {
                reaped.push(*pid);
            }
        }
    }
    reaped
}

fn reap(pid: Pid) -> bool {
    matches!(
        waitpid(pid, Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    )
}

/// A process identified for good: its pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Live processes the daemon (leader `daemon`) started, wherever they went: members of its
/// process group, descendants of the daemon, and descendants of every adopted child of
/// nymvisor (orphans the daemon's processes left behind). The daemon itself is not included,
/// nor anything nymvisor's other owned children (probes, verifier commands) or the children it
/// inherited at start ([`note_inherited`]) started.
pub fn strays(daemon: i32) -> Vec<Proc> {
    let me = std::process::id() as i32;
    let subreaper = SUBREAPER.load(std::sync::atomic::Ordering::SeqCst) || is_init();
    if subreaper && let Some(mine) = procfs::children(me) {
        return strays_by_children(daemon, me, mine);
    }
    let table = procfs::table();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (pid, p) in &table {
        children.entry(p.ppid).or_default().push(*pid);
    }
    let group = table
        .iter()
        .filter(|(_, p)| p.pgrp == daemon)
        .map(|(pid, _)| *pid);
    collect_strays(
        daemon,
        me,
        children.get(&me).cloned().unwrap_or_default(),
        |pid| children.get(&pid).cloned().unwrap_or_default(),
        |pid| table.get(&pid).copied(),
        group,
    )
}

/// [`strays`] from the children files alone (`mine`: nymvisor's children). As subreaper,
/// nymvisor has every process the daemon started among the daemon's descendants or its own: a
/// process leaves that tree only by being re-parented, and re-parenting leads to nymvisor. (A
/// process that joined the daemon's group from outside the tree, with `setpgid`, is not looked
/// for: only a process of the same session could, and nymvisor starts none that does.) This is
/// what runs inside an upgrade's downtime: a handful of small reads instead of the whole
/// process table.
fn strays_by_children(daemon: i32, me: i32, mine: Vec<i32>) -> Vec<Proc> {
    collect_strays(
        daemon,
        me,
        mine,
        |pid| procfs::children(pid).unwrap_or_default(),
        procfs::stat,
        std::iter::empty(),
    )
}

/// The walk both ways of finding strays share: from the daemon and nymvisor's adopted children
/// (`mine` less the owned and the inherited ones) down through `kids`, plus `extra`, then the
/// live ones as `stat` sees them.
fn collect_strays(
    daemon: i32,
    me: i32,
    mine: Vec<i32>,
    kids: impl Fn(i32) -> Vec<i32>,
    stat: impl Fn(i32) -> Option<procfs::ProcStat>,
    extra: impl IntoIterator<Item = i32>,
) -> Vec<Proc> {
    let mut roots = vec![daemon];
    {
        let set = owned();
        let inherited = inherited();
        // pid and start time: a later process reusing an inherited child's pid is not exempt
        let was_inherited = |pid: i32| {
            stat(pid).is_some_and(|p| {
                inherited
                    .iter()
                    .any(|i| i.pid == pid && i.start_ticks == p.start_ticks)
            })
        };
        roots.extend(
            mine.into_iter()
                .filter(|pid| *pid != daemon && !set.contains(pid) && !was_inherited(*pid)),
        );
    }
    let mut found = BTreeSet::new();
    let mut stack = roots;
    while let Some(pid) = stack.pop() {
        if found.insert(pid) {
            stack.extend(kids(pid));
        }
    }
    found.extend(extra);
    found
        .into_iter()
        .filter(|pid| *pid != daemon && *pid != me)
        .filter_map(|pid| {
            let p = stat(pid)?;
            (p.state != 'Z').then_some(Proc {
                pid,
                start_ticks: p.start_ticks,
            })
        })
        .collect()
}

/// Whether that exact process still runs (not a zombie).
pub fn alive(p: &Proc) -> bool {
    procfs::stat(p.pid).is_some_and(|s| s.start_ticks == p.start_ticks && s.state != 'Z')
}

/// Sends `sig` to that exact process, never to a later process that reuses its pid. Returns
/// whether it was sent.
pub fn signal(p: &Proc, sig: Signal) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1; no
    // memory is passed.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, p.pid, 0) };
    if fd < 0 {
        // kernels before 5.3: check the identity right before kill (a tiny window remains)
        return procfs::stat(p.pid).is_some_and(|s| s.start_ticks == p.start_ticks)
            && nix::sys::signal::kill(Pid::from_raw(p.pid), sig).is_ok();
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // the pidfd pins the process it was opened for: if the start time matches now, it is the one
    if procfs::stat(p.pid).is_none_or(|s| s.start_ticks != p.start_ticks) {
        return false;
    }
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: pidfd_send_signal(pidfd, sig, info = NULL, flags = 0): a valid descriptor, a valid
    // signal number and a null siginfo pointer, which the kernel accepts.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            raw,
            sig as i32,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaps_adopted_children_but_not_owned_ones() {
        // a child spawned without registering stands for an adopted orphan
        let mut orphan = std::process::Command::new("true").spawn().unwrap();
        let mut own = spawn_std(&mut std::process::Command::new("true")).unwrap();
        let (op, ow) = (orphan.id() as i32, own.id() as i32);
        let mut reaped = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !reaped.contains(&op) && std::time::Instant::now() < deadline {
            reaped.extend(reap_orphans());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(reaped.contains(&op), "the unowned child was not reaped");
        assert!(!reaped.contains(&ow), "an owned child was reaped");
        // its owner can still wait for it
        assert!(own.wait().unwrap().success());
        release(ow as u32);
        // and the reaped one is gone for `std` too
        assert!(orphan.wait().is_err());
    }

    #[test]
    fn signals_only_the_identified_process() {
        let mut child = spawn_std(std::process::Command::new("sleep").arg("30")).unwrap();
        let pid = child.id() as i32;
        let ticks = procfs::stat(pid).unwrap().start_ticks;
        let wrong = Proc {
            pid,
            start_ticks: ticks + 1,
        };
        assert!(!signal(&wrong, Signal::SIGKILL), "a different start time");
        let right = Proc {
            pid,
            start_ticks: ticks,
        };
        assert!(alive(&right));
        assert!(signal(&right, Signal::SIGKILL));
        assert!(!child.wait().unwrap().success());
        release(pid as u32);
        assert!(!alive(&right));
    }
}
