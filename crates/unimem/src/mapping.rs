//! A shared mapping of a file, owned: `mmap` on creation, `munmap` on drop.
//!
//! This is one of the few files that talks to the OS with `unsafe`. The
//! mapping is created by this type and never handed out as a raw pointer,
//! so its slices live no longer than the mapping itself. Other processes
//! (the resolver service, a device) may write the same pages concurrently;
//! like any shared memory, the bytes read here are a snapshot.
#![allow(unsafe_code)]

use crate::error::{Error, ErrorKind, Result};
use rustix::mm::{self, MapFlags, ProtFlags};
use std::os::fd::AsFd;
use std::ptr::NonNull;
use unimem_core::VirtAddr;

/// Advice [`Mapping::advise`] accepts: only kinds that leave the bytes as
/// they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_POPULATE_READ`: fault every page in for reading.
    PopulateRead,
    /// `MADV_POPULATE_WRITE`: fault every page in for writing.
    PopulateWrite,
    /// `MADV_HUGEPAGE`: prefer transparent huge pages.
    Hugepage,
    /// `MADV_COLLAPSE` (Linux 6.1+): rebuild the range in transparent huge
    /// pages now, copying the bytes, whatever the THP sysfs modes say.
    Collapse,
}

/// `MADV_COLLAPSE` from `include/uapi/asm-generic/mman-common.h`.
const MADV_COLLAPSE: i32 = 25;

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset)`, unmapped
/// on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; `Mapping` hands out slices
// only through `&self`/`&mut self`, so Rust's aliasing rules apply as for
// any owned buffer.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only allow reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset`, shared and read-write.
    pub fn shared(fd: impl AsFd, offset: u64, len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::new(ErrorKind::InvalidRequest, "cannot map 0 bytes"));
        }
        // SAFETY: a new mapping at an address the kernel chooses cannot
        // overlap any Rust object; `fd` is a valid descriptor for the call.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }
        .map_err(|e| {
            let kind = if e == rustix::io::Errno::NOMEM {
                ErrorKind::Resources
            } else {
                ErrorKind::Io
            };
            Error::with_source(
                kind,
                format!("cannot map {len} bytes of the surface"),
                e.into(),
            )
        })?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::new(ErrorKind::Io, "mmap returned a null mapping"))?;
        Ok(Self { ptr, len })
    }

    /// Maps pieces of `fd`, each `piece` bytes at the file offsets in
    /// `offsets`, next to each other in that order: one shared read-write
    /// range of `offsets.len() * piece` bytes starting on a multiple of
    /// `align` (hugetlb mappings must start on a huge page). A reservation
    /// of the whole range is made first and each piece mapped over it with
    /// `MAP_FIXED`, so no other mapping can be hit.
    pub fn pieces(fd: impl AsFd, offsets: &[u64], piece: usize, align: usize) -> Result<Self> {
        let len = offsets
            .len()
            .checked_mul(piece)
            .filter(|&l| l > 0)
            .ok_or_else(|| Error::new(ErrorKind::InvalidRequest, "no pieces to map"))?;
        let reserve = len
            .checked_add(align)
            .ok_or_else(|| Error::new(ErrorKind::InvalidRequest, "range too large"))?;
        let io = |what: String| {
            move |e: rustix::io::Errno| Error::with_source(ErrorKind::Resources, what, e.into())
        };
        // SAFETY: a new anonymous, inaccessible mapping at an address the
        // kernel chooses overlaps no Rust object.
        let base = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                reserve,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(io(format!(
            "cannot reserve {reserve} bytes of address space"
        )))? as usize;
        let start = base.next_multiple_of(align);
        // SAFETY: the head and tail trimmed here are parts of the
        // reservation just made, outside the range kept.
        unsafe {
            if start > base {
                let _ = mm::munmap(base as *mut _, start - base);
            }
            let end = start + len;
            if base + reserve > end {
                let _ = mm::munmap(end as *mut _, base + reserve - end);
            }
        }
        for (i, &offset) in offsets.iter().enumerate() {
            let at = start + i * piece;
            // SAFETY: `at..at + piece` lies inside the reservation this
            // function owns; MAP_FIXED replaces only that part of it.
            let mapped = unsafe {
                mm::mmap(
                    at as *mut _,
                    piece,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::SHARED | MapFlags::FIXED,
                    fd.as_fd(),
                    offset,
                )
            };
            if let Err(e) = mapped {
                // SAFETY: the whole range is this function's reservation.
                let _ = unsafe { mm::munmap(start as *mut _, len) };
                return Err(io(format!(
                    "cannot map the piece at file offset {offset:#x}"
                ))(e));
            }
        }
        let ptr = NonNull::new(start as *mut u8)
            .ok_or_else(|| Error::new(ErrorKind::Io, "mmap returned a null mapping"))?;
        Ok(Self { ptr, len })
    }

    /// `madvise(addr, len, advice)` over the whole mapping, for the few
    /// kinds of advice that cannot invalidate what a slice of it shows.
    pub fn advise(&self, advice: Advice) -> rustix::io::Result<()> {
        let advice = match advice {
            Advice::Collapse => {
                // SAFETY: as below; collapsing copies every byte into the
                // new huge page before the old pages go, so the contents
                // any slice shows stay the same.
                let r = unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.len, MADV_COLLAPSE) };
                return if r == 0 {
                    Ok(())
                } else {
                    Err(
                        rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                            .unwrap_or(rustix::io::Errno::INVAL),
                    )
                };
            }
            Advice::PopulateRead => mm::Advice::LinuxPopulateRead,
            Advice::PopulateWrite => mm::Advice::LinuxPopulateWrite,
            Advice::Hugepage => mm::Advice::LinuxHugepage,
        };
        // SAFETY: the range is exactly this live mapping, and each advice
        // allowed here only faults pages in or chooses their size: none
        // frees, zeroes or poisons memory a Rust reference may be reading.
        unsafe { mm::madvise(self.ptr.as_ptr().cast(), self.len, advice) }
    }

    /// Where the mapping starts in this process; page-aligned.
    pub fn addr(&self) -> VirtAddr {
        VirtAddr(self.ptr.as_ptr() as u64)
    }

    /// Length of the mapping in bytes, as asked for; never 0.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: [`Mapping::shared`] refuses 0 bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes. Another process sharing the pages may change them
    /// while the slice is read.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` bytes while `self` lives, and the
        // mapping is readable.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable; writes reach the file and every other
    /// mapping of it.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, writable, and `&mut self` makes this the only
        // Rust reference into the mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region this value mapped; no slice of
        // it can outlive `self`.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
