//! Reading process facts from `/proc` (Linux): start times (to tell a process from a later one
//! that reuses its pid) and process-group membership.

use std::collections::BTreeMap;

use nix::unistd::Pid;

/// Fields of `/proc/<pid>/stat` that nymvisor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks after boot: with the pid, it identifies a process for good.
    pub start_ticks: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist (or no procfs).
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // `comm` is in parentheses and may itself contain spaces and parentheses
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Every process visible in `/proc`, by pid (empty without procfs).
pub fn table() -> BTreeMap<i32, ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// The children of process `pid` (of each of its threads), from `/proc/<pid>/task/*/children`:
/// a few small reads instead of the whole table. `None` when the kernel does not offer the file
/// (it needs `CONFIG_PROC_CHILDREN`; callers then read [`table`]); empty for a process that is
/// gone.
pub fn children(pid: i32) -> Option<Vec<i32>> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(Vec::new());
    };
    let mut found = Vec::new();
    let mut offered = false;
    for task in tasks.flatten() {
        // a thread that ended meanwhile has no file any more
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            offered = true;
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    // a zombie has no threads to read: nothing offered, nothing missing
    (offered || stat(pid).is_some_and(|s| s.state == 'Z')).then_some(found)
}

/// Live (non-zombie) members of process group `pgid`, other than `except`.
pub fn group_members(pgid: Pid, except: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != except.as_raw())
        .filter(|&pid| stat(pid).is_some_and(|s| s.pgrp == pgid.as_raw() && s.state != 'Z'))
        .map(Pid::from_raw)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_odd_command_names() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.state, s.ppid, s.pgrp, s.start_ticks),
            ('S', 1, 1234, 987654)
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn lists_own_children_without_the_table() {
        let me = std::process::id() as i32;
        if children(me).is_none() {
            eprintln!("SKIPPED: this kernel has no /proc/<pid>/task/*/children");
            return;
        }
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = children(me).unwrap_or_default();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
        assert_eq!(children(i32::MAX), Some(Vec::new()));
    }

    #[test]
    fn reads_own_process() {
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(table().contains_key(&(std::process::id() as i32)));
    }
}
