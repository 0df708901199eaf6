//! The `PAGEMAP_SCAN` ioctl on a pagemap file (Linux 6.7+): which ranges
//! of an address range are present huge pages, without reading an entry
//! per page. It reports ranges and categories only, never frames.
//!
//! This file holds the one `ioctl` call: the argument is a `#[repr(C)]`
//! copy of the kernel's struct whose result vector is a local array, valid
//! for the call, of the length the struct declares.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use unimem_core::VirtAddr;

/// `struct pm_scan_arg` from `include/uapi/linux/fs.h` (Linux 6.7+).
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region` from `include/uapi/linux/fs.h`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = (3 << 30) | ((size_of::<PmScanArg>() as u64) << 16) | (0x66 << 8) | 16;
/// `PAGE_IS_PRESENT` and `PAGE_IS_HUGE` from `include/uapi/linux/fs.h`.
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_HUGE: u64 = 1 << 6;

/// The present, huge runs of `[va, va + len)` in address order, joined
/// where they touch; `None` when this kernel has no `PAGEMAP_SCAN`.
pub fn huge_runs(file: &File, va: VirtAddr, len: u64) -> Result<Option<Vec<(u64, u64)>>> {
    let end = va.0 + len;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut regions = [PageRegion::default(); 64];
    let mut at = va.0;
    while at < end {
        let mut arg = PmScanArg {
            size: size_of::<PmScanArg>() as u64,
            start: at,
            end,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            category_mask: PAGE_IS_PRESENT | PAGE_IS_HUGE,
            return_mask: PAGE_IS_PRESENT | PAGE_IS_HUGE,
            ..PmScanArg::default()
        };
        // SAFETY: `arg` is a valid pm_scan_arg whose `vec` points to
        // `vec_len` writable page_region structs that outlive the call; the
        // kernel writes at most that many and updates `arg` in place.
        let n = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                PAGEMAP_SCAN as _,
                &mut arg as *mut PmScanArg,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                // No such ioctl on this kernel: read in full.
                Some(libc::ENOTTY) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(None),
                _ => Err(Error::io("PAGEMAP_SCAN on the pagemap failed", e)),
            };
        }
        for r in &regions[..n as usize] {
            match runs.last_mut() {
                Some(last) if last.1 == r.start => last.1 = r.end,
                _ => runs.push((r.start, r.end)),
            }
        }
        if arg.walk_end <= at {
            break;
        }
        at = arg.walk_end;
    }
    Ok(Some(runs))
}
