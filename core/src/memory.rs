//! Keeping nymvisor's resident size small while it idles next to the node for months.
//!
//! Start-up (argument parsing, config and JSON parsing, the first spawn) touches code that the
//! idle loop never runs again; the kernel maps such code in 64 KiB chunks and keeps it resident.
//! [`release_startup_pages`] asks the kernel to drop nymvisor's own read-only, file-backed pages
//! from its page tables (`MADV_PAGEOUT`). They are clean copies of the executable: nothing is
//! lost, and whatever runs next is faulted back in from the page cache.

use std::ptr::NonNull;

use nix::sys::mman::{MmapAdvise, madvise};

/// Drops the resident pages of nymvisor's own executable mappings (Linux; best effort).
pub fn release_startup_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // `start-end perms offset dev inode path`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(range), Some(perms), Some(path)) = (fields.first(), fields.get(1), fields.get(5))
        else {
            continue;
        };
        if std::path::Path::new(path) != exe || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let Some(addr) = NonNull::new(start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is a whole read-only mapping of our own executable, taken from
        // /proc/self/maps. MADV_PAGEOUT only drops clean file-backed pages from the page tables;
        // their content is unchanged and is read back on the next access.
        let _ = unsafe { madvise(addr, end.saturating_sub(start), MmapAdvise::MADV_PAGEOUT) };
    }
}
