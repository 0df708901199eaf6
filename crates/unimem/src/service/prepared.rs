//! One prepared range on the service side: the client's fd checked, mapped
//! by the service, pinned, and its addresses read from the service's own
//! pagemap after pinning.
//!
//! Nothing here trusts the client: the fd's kind (memfd/tmpfs or
//! hugetlbfs), its access mode, its seals, the range against the file's
//! size and the range being backed by memory already are checked before
//! anything is mapped ([`backing`]). Before every reply that describes the
//! range, the pages are checked to still be the ones pinned, and the
//! service never dereferences the mapping (checksums read it with
//! `process_vm_readv`, after that check), so a client that changes its file
//! afterwards gets an error, not a lie and not a dead service.

use super::rule::Rule;
use super::{backing, sys, Counters, Refusal};
use crate::error::ErrorKind;
use crate::mapping::{Advice, Mapping};
use crate::pagemap::Pagemap;
use crate::pin::{Pin, PinTable};
use crate::system;
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use unimem_core::checksum::Checksum;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::SegmentsReply;
use unimem_core::{AddressKind, Coverage, PaMap, PageSize, VirtAddr};

/// `statfs.f_type` of tmpfs, which memfds without `MFD_HUGETLB` live on.
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `statfs.f_type` of hugetlbfs (`MFD_HUGETLB` memfds, hugetlbfs mounts).
pub const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;

/// Bytes copied per `process_vm_readv` when checksumming.
const CHECKSUM_CHUNK: usize = 1 << 20;

/// A checked fd: kind, page size and size, before anything is mapped.
#[derive(Debug)]
pub struct CheckedFd {
    pub fd: OwnedFd,
    pub page_size: PageSize,
    pub file_size: u64,
    /// The file is on hugetlbfs.
    pub hugetlb: bool,
}

/// Checks that `fd` is a read-write regular file on tmpfs or hugetlbfs.
pub fn check_fd(fd: OwnedFd) -> Result<CheckedFd, Refusal> {
    let st = rustix::fs::fstat(&fd).map_err(|e| Refusal::os("fstat of the client's fd", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Refusal::rule(
            Rule::FdKind,
            format!(
                "fd is a {:?}, not a regular file",
                FileType::from_raw_mode(st.st_mode)
            ),
        ));
    }
    let sfs = rustix::fs::fstatfs(&fd).map_err(|e| Refusal::os("fstatfs of the client's fd", e))?;
    let magic = sfs.f_type as u32;
    let hugetlb = match magic {
        TMPFS_MAGIC => false,
        HUGETLBFS_MAGIC => true,
        other => {
            return Err(Refusal::rule(
                Rule::FdKind,
                format!("fd is on a file system with magic {other:#x}"),
            ))
        }
    };
    let page_size = if hugetlb {
        // hugetlbfs reports its huge page size as the block size.
        PageSize::new(st.st_blksize as u64).ok_or_else(|| {
            Refusal::rule(
                Rule::FdKind,
                format!("hugetlbfs block size {} is odd", st.st_blksize),
            )
        })?
    } else {
        system::page_size()
    };
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Refusal::os("fcntl(F_GETFL)", e))?;
    if flags & OFlags::RWMODE != OFlags::RDWR {
        return Err(Refusal::rule(Rule::FdAccess, "fd is not open O_RDWR"));
    }
    backing::check_seals(&fd, hugetlb)?;
    Ok(CheckedFd {
        fd,
        page_size,
        file_size: st.st_size.max(0) as u64,
        hugetlb,
    })
}

/// Checks `[offset, offset + length)` against the page size and the file,
/// and that every page of it is backed already.
pub fn check_range(f: &CheckedFd, offset: u64, length: u64) -> Result<(), Refusal> {
    if length == 0 {
        return Err(Refusal::rule(Rule::Range, "length is 0"));
    }
    if !f.page_size.is_aligned(offset) || !f.page_size.is_aligned(length) {
        return Err(Refusal::rule(
            Rule::Alignment,
            format!(
                "offset {offset:#x} / length {length:#x} vs page size {:#x}",
                f.page_size.bytes()
            ),
        ));
    }
    match offset.checked_add(length) {
        Some(end) if end <= f.file_size => {
            backing::check_backed(&f.fd, f.hugetlb, offset, length, f.file_size)
        }
        _ => Err(Refusal::rule(
            Rule::Range,
            format!(
                "range {offset:#x}+{length:#x} vs file size {:#x}",
                f.file_size
            ),
        )),
    }
}

/// A prepared, pinned range. Dropping it unpins, then unmaps.
pub struct PreparedRange {
    pin: Option<Pin>,
    mapping: Option<Mapping>,
    map: PaMap,
    counters: Arc<Counters>,
    /// Bytes reserved against the service-wide limit, returned on drop.
    reserved: u64,
}

impl PreparedRange {
    /// Maps and pins `[offset, offset + length)` of `f` (which
    /// [`check_range`] found fully backed) into free slots of the
    /// connection's `pins`, then reads the addresses. `reserved` bytes were already reserved in
    /// `counters` and are returned when the range drops (or on failure).
    pub fn create(
        f: &CheckedFd,
        offset: u64,
        length: u64,
        pagemap: &Pagemap,
        pins: &PinTable,
        counters: Arc<Counters>,
    ) -> Result<PreparedRange, Refusal> {
        let mut range = PreparedRange {
            pin: None,
            mapping: None,
            map: PaMap::new(AddressKind::Physical, f.page_size, length),
            counters,
            reserved: length,
        };
        let len = usize::try_from(length)
            .map_err(|_| Refusal::rule(Rule::Range, "length does not fit the address space"))?;
        let mapping = Mapping::shared(&f.fd, offset, len).map_err(|e| {
            let errno = e.os_code().unwrap_or(libc::EIO);
            Refusal::from_errno("map the client's file", errno, e.to_string())
        })?;
        range.counters.mappings.fetch_add(1, Ordering::SeqCst);
        let mapping = range.mapping.insert(mapping);
        // A hole punched after check_range would be filled by the faults
        // below, at the service's expense: the file's allocated bytes tell.
        let allocated = backing::allocated_bytes(&f.fd)?;
        // Map the file's pages in the service's page tables: pagemap shows
        // the caller's page tables, not the file. Every page exists
        // (check_range), so this allocates nothing. Read faults map pages in
        // batches (fault-around) where write faults map one at a time, so
        // this is 2-3x cheaper for 4 KiB pages; the pin that follows finds
        // every entry present and writable and takes its references without
        // faulting. The pin could populate on its own, but it faults for
        // writing, one page per fault: 1 GiB of 4 KiB pages took about
        // 235 ms to pin unpopulated against 110 ms to populate and pin.
        mapping
            .advise(Advice::PopulateRead)
            .map_err(|e| Refusal::os("populate the mapping (MADV_POPULATE_READ)", e))?;
        let pin = pins.pin(mapping).map_err(|e| {
            let errno = e.os_code().unwrap_or(libc::EIO);
            Refusal::from_errno("pin the mapping", errno, e.to_string())
        })?;
        range
            .counters
            .pinned_bytes
            .fetch_add(pin.bytes(), Ordering::SeqCst);
        range.pin = Some(pin);
        if backing::allocated_bytes(&f.fd)? > allocated {
            return Err(Refusal::rule(
                Rule::NotBacked,
                "a hole appeared in the range while it was being prepared",
            ));
        }
        // Addresses are read after pinning: the pin may migrate pages first.
        // A pinned page shows as a swap (migration) entry for a moment while
        // compaction tries and fails to move it: such a map is read again.
        let addr = mapping.addr();
        let mut retries = 0;
        let map = loop {
            let map = pagemap
                .resolve(addr, length, f.page_size)
                .map_err(|e| match e.kind() {
                    ErrorKind::PermissionDenied => Refusal {
                        status: IoReturn::NOT_PRIVILEGED,
                        detail: libc::EPERM as u32,
                        log: format!(
                            "the service cannot see PFNs (it needs CAP_SYS_ADMIN; run it as \
                             root): {e}"
                        ),
                    },
                    _ => Refusal::from_errno(
                        "read the service's pagemap",
                        e.os_code().unwrap_or(libc::EIO),
                        e.to_string(),
                    ),
                })?;
            match map.coverage() {
                Coverage::Gap { reason, .. } if reason == "swapped" && retries < 200 => {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_micros(500));
                }
                Coverage::Gap { offset, reason, .. } => {
                    return Err(Refusal::rule(
                        Rule::NotPresent,
                        format!("page at offset {offset:#x} is {reason} after pinning"),
                    ));
                }
                Coverage::Full => break map,
            }
        };
        range.map = map;
        Ok(range)
    }

    pub fn len(&self) -> u64 {
        self.map.total_length()
    }

    /// Physically contiguous runs in the range.
    pub fn segment_count(&self) -> usize {
        self.map.address_segment_count()
    }

    pub fn page_size(&self) -> PageSize {
        self.map.page_size()
    }

    /// The reply to `selector` (PREPARE or SEGMENTS) carrying the segments
    /// from `continuation` on, as many as one reply holds.
    pub fn batch(
        &self,
        selector: u16,
        handle: u64,
        continuation: u64,
    ) -> Result<Box<SegmentsReply>, Refusal> {
        let total = self.len();
        if continuation > total || !self.page_size().is_aligned(continuation) {
            return Err(Refusal::rule(
                Rule::Continuation,
                format!("continuation {continuation:#x} of {total:#x}"),
            ));
        }
        let segs = self.map.segments();
        let first = segs.partition_point(|s| s.end() <= continuation);
        let mut reply = SegmentsReply::new(
            selector,
            handle,
            total,
            continuation,
            self.page_size().bytes(),
            AddressKind::Physical,
        );
        for s in &segs[first..] {
            // The map has no holes (checked at prepare).
            let Some(addr) = s.address().map(|a| a.get()) else {
                break;
            };
            let skip = reply.next.get() - s.offset;
            if !reply.push(addr + skip, s.length - skip) {
                break;
            }
        }
        Ok(reply)
    }

    /// Refuses with [`Rule::SurfaceChanged`] unless the pages covering
    /// `[offset, offset + length)` of the range are still the frames pinned
    /// at prepare ([`backing::verify_unchanged`]).
    pub fn verify(&self, pagemap: &Pagemap, offset: u64, length: u64) -> Result<(), Refusal> {
        let base = pagemap.base_page();
        let start = base.round_down(offset);
        let end = base
            .round_up(offset.saturating_add(length))
            .unwrap_or(u64::MAX)
            .min(self.len());
        if end <= start {
            return Ok(());
        }
        let addr = self.mapping.as_ref().map_or(0, |m| m.addr().0);
        backing::verify_unchanged(pagemap, &self.map, VirtAddr(addr), start, end - start)
    }

    /// Checksum of `[offset, offset + length)` of the range, read through
    /// the service's own mapping. Each chunk is read only after its pages
    /// were found to be the pinned ones, so the read never faults a page
    /// into the client's file, and the whole range is checked again after
    /// the last read, so a change during the read is an error, not a sum.
    pub fn checksum(&self, pagemap: &Pagemap, offset: u64, length: u64) -> Result<u64, Refusal> {
        let ok = length > 0
            && offset.is_multiple_of(8)
            && length.is_multiple_of(8)
            && offset
                .checked_add(length)
                .is_some_and(|end| end <= self.len());
        if !ok {
            return Err(Refusal::rule(
                Rule::ChecksumRange,
                format!("checksum {offset:#x}+{length:#x} of {:#x}", self.len()),
            ));
        }
        let base = self.mapping.as_ref().map_or(0, |m| m.addr().0) + offset;
        let mut buf = vec![0u8; CHECKSUM_CHUNK.min(length as usize)];
        let mut sum = Checksum::default();
        let mut done = 0u64;
        while done < length {
            let n = ((length - done) as usize).min(buf.len());
            self.verify(pagemap, offset + done, n as u64)?;
            sys::read_own_memory(base + done, &mut buf[..n]).map_err(|e| {
                Refusal::from_errno(
                    "read the prepared range (was the client's file truncated?)",
                    e.raw_os_error().unwrap_or(libc::EFAULT),
                    e.to_string(),
                )
            })?;
            sum.update(&buf[..n]);
            done += n as u64;
        }
        self.verify(pagemap, offset, length)?;
        Ok(sum.value())
    }

    /// Unpins now, keeping the mapping; returns the bytes that were pinned.
    /// The connection replies to complete after this and unmaps (drops the
    /// range) only once the reply is sent: tearing down the page tables of
    /// a large range costs more than the pin and the read together, and
    /// nothing the client can observe depends on it.
    pub fn unpin(&mut self) -> u64 {
        let Some(pin) = self.pin.take() else { return 0 };
        let bytes = pin.bytes();
        drop(pin);
        self.counters
            .pinned_bytes
            .fetch_sub(bytes, Ordering::SeqCst);
        bytes
    }

    /// Unpins and unmaps now; returns the bytes that were pinned.
    pub fn release(self) -> u64 {
        self.pin.as_ref().map_or(0, Pin::bytes)
        // Drop does the work.
    }
}

impl Drop for PreparedRange {
    fn drop(&mut self) {
        // Unpin before unmapping, and only then say so in the counters, so
        // a reader of the counters never sees "0 pinned" too early.
        if let Some(pin) = self.pin.take() {
            let bytes = pin.bytes();
            drop(pin);
            self.counters
                .pinned_bytes
                .fetch_sub(bytes, Ordering::SeqCst);
        }
        if self.mapping.take().is_some() {
            self.counters.mappings.fetch_sub(1, Ordering::SeqCst);
        }
        self.counters
            .reserved_bytes
            .fetch_sub(self.reserved, Ordering::SeqCst);
    }
}

/// Maps an errno from mapping or pinning to the status a reply carries.
pub fn status_for_errno(errno: i32) -> IoReturn {
    match Errno::from_raw_os_error(errno) {
        Errno::NOMEM => IoReturn::NO_MEMORY,
        Errno::FAULT => IoReturn::CANNOT_WIRE,
        Errno::PERM | Errno::ACCESS => IoReturn::NOT_PERMITTED,
        Errno::INVAL => IoReturn::BAD_ARGUMENT,
        Errno::NOSYS | Errno::OPNOTSUPP => IoReturn::UNSUPPORTED,
        _ => IoReturn::VM_ERROR,
    }
}
