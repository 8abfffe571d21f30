//! Keeping nymvisor's resident size small while it idles next to the node for months.
//!
//! Start-up, upgrades and polls run code (argument and config parsing, JSON, the upgrade
//! transaction, spawning the network helper) that the idle loop never runs. The kernel maps the
//! executable in 64 KiB chunks (or larger folios) and leaves them mapped, so most of an idle
//! nymvisor's resident size is code it no longer needs. [`release_idle_pages`] gives it back at a
//! quiet moment, right before the runtime's thread goes idle ([`release_when_parked`] asks for
//! it, the runtime's park hook [`on_park`] does it), so the code that runs between the release
//! and the wait is as little as possible:
//! - the executable's code (`r-xp`) is unmapped from our page tables (`MADV_DONTNEED`). Code is
//!   never written (nor can the file be while it runs: `ETXTBSY`), so the next access faults the
//!   same bytes back in from the page cache, a minor fault without I/O. Unlike `MADV_PAGEOUT`,
//!   this also works for pages the kernel holds in large folios or shares with other processes
//!   (the network helper, the nymvisor of another node).
//! - its other read-only mappings (constants, and relocated data made read-only after start,
//!   whose private copies must be kept) get `MADV_PAGEOUT`, which only reclaims what is clean.
//! - glibc's allocator returns its free pages (`malloc_trim`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::mman::{MmapAdvise, madvise};

static WANTED: AtomicBool = AtomicBool::new(false);

/// Asks for [`release_idle_pages`] the next time the runtime's thread parks.
pub fn release_when_parked() {
    WANTED.store(true, Ordering::Relaxed);
}

/// An upgrade is about to stop the daemon: no page is given back until it is over (the
/// release waits for the next quiet moment), and the code is mapped in now, so that none of it
/// is faulted back in inside the downtime (Linux 5.14 and newer; nothing on older kernels).
pub fn warm_up() {
    WANTED.store(false, Ordering::Relaxed);
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for m in maps.lines().filter_map(Mapping::parse) {
        if m.perms != "r-xp" || !m.path.starts_with('/') {
            continue;
        }
        // SAFETY: MADV_POPULATE_READ only maps the pages of a whole executable mapping taken
        // from /proc/self/maps, as reading them would; it changes no content.
        let _ = unsafe {
            nix::libc::madvise(
                m.start as *mut std::ffi::c_void,
                m.end.saturating_sub(m.start),
                nix::libc::MADV_POPULATE_READ,
            )
        };
    }
}

/// The runtime's `on_thread_park` hook: releases the pages when asked to (one atomic load
/// otherwise).
pub fn on_park() {
    if WANTED.swap(false, Ordering::Relaxed) {
        release_idle_pages();
    }
}

/// Gives back the resident pages an idle nymvisor does not need (Linux; best effort, cheap: two
/// small reads from `/proc/self` and a few system calls).
pub fn release_idle_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let exe = std::fs::read_link("/proc/self/exe").ok();
    // a debugger's breakpoints are private copies of code pages: never discard them
    let traced = std::fs::read_to_string("/proc/self/status").map_or(true, |s| {
        !s.lines()
            .any(|l| l.split_whitespace().eq(["TracerPid:", "0"]))
    });
    let mut plan: Vec<(Mapping, MmapAdvise)> = maps
        .lines()
        .filter_map(Mapping::parse)
        .filter_map(|m| {
            let own = exe.as_deref() == Some(std::path::Path::new(m.path));
            let advice = match m.perms {
                "r-xp" if m.path.starts_with('/') && !traced => MmapAdvise::MADV_DONTNEED,
                _ if own && !m.perms.contains('w') => MmapAdvise::MADV_PAGEOUT,
                _ => return None,
            };
            Some((m, advice))
        })
        .collect();
    // our own code last: what runs after it is dropped is faulted back in
    plan.sort_by_key(|(m, advice)| {
        exe.as_deref() == Some(std::path::Path::new(m.path)) && *advice == MmapAdvise::MADV_DONTNEED
    });
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of glibc's arenas to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
    for (m, advice) in plan {
        let Some(addr) = NonNull::new(m.start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is a whole mapping taken from /proc/self/maps. An executable file
        // mapping of an untraced process holds only the file's bytes (code is never written, and
        // the files cannot change while they run), so MADV_DONTNEED loses nothing: the next
        // access maps the same page-cache page again. Our other read-only mappings may hold
        // private relocated copies, which MADV_PAGEOUT keeps (it reclaims, never discards).
        let _ = unsafe { madvise(addr, m.end.saturating_sub(m.start), advice) };
    }
}

/// One line of `/proc/self/maps`: `start-end perms offset dev inode path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a str,
}

impl<'a> Mapping<'a> {
    fn parse(line: &'a str) -> Option<Mapping<'a>> {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        let path = fields.nth(3)?;
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            perms,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let m =
            Mapping::parse("5581a2c00000-5581a2e4b000 r-xp 00054000 fd:01 1234 /usr/bin/nymvisor");
        assert_eq!(
            m,
            Some(Mapping {
                start: 0x5581a2c00000,
                end: 0x5581a2e4b000,
                perms: "r-xp",
                path: "/usr/bin/nymvisor"
            })
        );
        // anonymous mappings have no path
        assert_eq!(
            Mapping::parse("7f0000000000-7f0000021000 rw-p 00000000 00:00 0 "),
            None
        );
    }

    #[test]
    fn the_code_still_runs_after_its_pages_are_dropped() {
        fn work() -> u64 {
            (1..=1000u64).map(|i| i * i % 7).sum()
        }
        let before = work();
        release_idle_pages();
        assert_eq!(work(), before);
        release_idle_pages();
        assert_eq!(work(), before);
    }
}
