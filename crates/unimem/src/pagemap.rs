//! Reading `/proc/PID/pagemap`: the direct resolver.
//!
//! Streams one bounded chunk of entries per `pread` (64 KiB, the size the
//! kernel walks in anyway), feeding each chunk into the segment map, so
//! memory grows with the number of physically contiguous runs, never with
//! the number of pages. Large ranges are read by several threads at once
//! ([`parallel`]); huge pages are read one entry per huge page ([`huge`]). Whether PFNs are visible depends on the *opener's*
//! CAP_SYS_ADMIN at read time; hidden PFNs are an error, never a map of
//! zeros.

use crate::error::{Error, ErrorKind, Result};
use crate::system;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use unimem_core::pagemap::{self as decode, FeedError, ENTRY_SIZE};
use unimem_core::{AddressKind, PaMap, PageSize, VirtAddr};

pub mod huge;
pub mod parallel;
mod scan;

/// Entries read per `pread`: 8192 × 8 bytes = 64 KiB.
pub const CHUNK_ENTRIES: usize = 8192;

/// Ranges of up to this many entries are read into a buffer on the stack.
const SMALL_ENTRIES: usize = 512;

/// What to tell a user whose PFNs are hidden.
pub const HIDDEN_PFNS: &str =
    "physical addresses are hidden: the kernel shows PFNs in pagemap only to \
readers with CAP_SYS_ADMIN. Run as root (sudo), or resolve through the resolver service, which \
needs no privilege from you: start `unimem serve` as root and run `unimem probe --via service`";

/// An open pagemap file of one process.
#[derive(Debug)]
pub struct Pagemap {
    file: File,
    label: String,
    base: PageSize,
}

impl Pagemap {
    /// `/proc/self/pagemap`.
    pub fn open_self() -> Result<Self> {
        let file = File::open("/proc/self/pagemap")
            .map_err(|e| Error::io("cannot open /proc/self/pagemap (is /proc mounted?)", e))?;
        Ok(Self {
            file,
            label: "this process".into(),
            base: system::page_size(),
        })
    }

    /// `/proc/PID/pagemap` of another process.
    pub fn open_pid(pid: u32) -> Result<Self> {
        let path = format!("/proc/{pid}/pagemap");
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::with_source(
                ErrorKind::NotFound,
                format!("process {pid} does not exist (has it exited?)"),
                e,
            ),
            io::ErrorKind::PermissionDenied => Error::with_source(
                ErrorKind::PermissionDenied,
                format!("cannot open {path}: reading another process's page tables needs root (ptrace access)"),
                e,
            ),
            _ => Error::io(format!("cannot open {path}"), e),
        })?;
        Ok(Self {
            file,
            label: format!("process {pid}"),
            base: system::page_size(),
        })
    }

    /// The page size pagemap is indexed in.
    pub fn base_page(&self) -> PageSize {
        self.base
    }

    /// The open pagemap file, for ioctls on it.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Reads the entries of `out.len()` consecutive base pages from `va`.
    pub fn read(&self, va: VirtAddr, out: &mut [u64]) -> Result<()> {
        if let [one] = out {
            let mut b = [0u8; ENTRY_SIZE as usize];
            self.read_bytes(va, &mut b)?;
            *one = u64::from_le_bytes(b);
            return Ok(());
        }
        let mut bytes = vec![0u8; out.len() * ENTRY_SIZE as usize];
        self.read_bytes(va, &mut bytes)?;
        for (word, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(b.try_into().expect("8-byte chunk"));
        }
        Ok(())
    }

    /// Reads the raw entries of `bytes.len() / 8` base pages from `va`.
    pub(crate) fn read_bytes(&self, va: VirtAddr, bytes: &mut [u8]) -> Result<()> {
        let offset = (va.0 >> self.base.shift()) * ENTRY_SIZE;
        self.file
            .read_exact_at(bytes, offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => Error::new(
                    ErrorKind::InvalidRequest,
                    format!("address {va} is beyond the address space of {}", self.label),
                ),
                _ => Error::io(format!("cannot read the pagemap of {}", self.label), e),
            })
    }

    /// Resolves `[va, va + len)` into a map of physical addresses, holes
    /// included. `page_size` is the page size the map counts in (a huge page
    /// size for hugetlb memory); `va` and `len` must be multiples of the
    /// base page size.
    ///
    /// This is the fast path for any caller: a `page_size` larger than the
    /// base page means hugetlb memory, read one entry per huge page; a large
    /// range is read by several threads; a small one by this thread alone.
    /// The map is the one [`Pagemap::resolve_sequential`] gives.
    pub fn resolve(&self, va: VirtAddr, len: u64, page_size: PageSize) -> Result<PaMap> {
        let mut map = PaMap::new(AddressKind::Physical, page_size, len);
        if page_size.bytes() > self.base.bytes() {
            huge::resolve_hugetlb_into(self, &mut map, va, len, page_size)?;
        } else {
            self.resolve_into(&mut map, va, len)?;
        }
        Ok(map)
    }

    /// Resolves a shmem THP range: huge, present runs found by
    /// `PAGEMAP_SCAN` are read one entry per huge page, everything else in
    /// full. Without `PAGEMAP_SCAN` (before Linux 6.7) the whole range is
    /// read in full. The map is the one [`Pagemap::resolve_sequential`]
    /// gives.
    pub fn resolve_thp(&self, va: VirtAddr, len: u64) -> Result<PaMap> {
        let mut map = PaMap::new(AddressKind::Physical, self.base, len);
        huge::resolve_thp_into(self, &mut map, va, len)?;
        Ok(map)
    }

    /// Resolves `[va, va + len)` with one thread and one full read of every
    /// entry: the reference the fast paths are tested against.
    pub fn resolve_sequential(&self, va: VirtAddr, len: u64, page_size: PageSize) -> Result<PaMap> {
        let mut map = PaMap::new(AddressKind::Physical, page_size, len);
        self.resolve_sequential_into(&mut map, va, len)?;
        Ok(map)
    }

    /// Appends `[va, va + len)` to `map` (which must have room for it),
    /// with several threads when the range is large.
    pub fn resolve_into(&self, map: &mut PaMap, va: VirtAddr, len: u64) -> Result<()> {
        check_range(self.base, va, len)?;
        if parallel::worth_it(self.base, len) {
            parallel::resolve_into(self, map, va, len)
        } else {
            self.resolve_sequential_into(map, va, len)
        }
    }

    /// Appends `[va, va + len)` to `map` on this thread, one chunk of
    /// entries per `pread`.
    pub fn resolve_sequential_into(&self, map: &mut PaMap, va: VirtAddr, len: u64) -> Result<()> {
        check_range(self.base, va, len)?;
        if len >> self.base.shift() <= SMALL_ENTRIES as u64 {
            // A small range reads into the stack: no allocation but the map.
            let mut stack = [0u8; SMALL_ENTRIES * ENTRY_SIZE as usize];
            return self.feed_chunks(map, va, len, &mut stack, 0);
        }
        let mut buf = Vec::new();
        self.feed_range(map, va, len, &mut buf, 0)
    }

    /// Reads `[va, va + len)` chunk by chunk through `buf` (grown as
    /// needed and kept by the caller for the next range) into `map`.
    /// Offsets in errors are counted from `origin` bytes before `va`, where
    /// the caller's whole range begins.
    pub(crate) fn feed_range(
        &self,
        map: &mut PaMap,
        va: VirtAddr,
        len: u64,
        buf: &mut Vec<u8>,
        origin: u64,
    ) -> Result<()> {
        check_range(self.base, va, len)?;
        let pages = len >> self.base.shift();
        let want = (pages as usize).min(CHUNK_ENTRIES) * ENTRY_SIZE as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        self.feed_chunks(map, va, len, buf, origin)
    }

    /// Reads `[va, va + len)` (checked) in chunks of up to `buf.len() / 8`
    /// entries into `map`; error offsets as for [`Pagemap::feed_range`].
    fn feed_chunks(
        &self,
        map: &mut PaMap,
        va: VirtAddr,
        len: u64,
        buf: &mut [u8],
        origin: u64,
    ) -> Result<()> {
        let start_offset = map.filled_to().wrapping_sub(origin);
        let pages = len >> self.base.shift();
        let per_read = (buf.len() / ENTRY_SIZE as usize).min(CHUNK_ENTRIES);
        // One buffer for every chunk, decoded in place: the per-page work is
        // the decode and the run check, nothing else.
        let mut done = 0u64;
        while done < pages {
            let n = ((pages - done) as usize).min(per_read);
            let at = VirtAddr(va.0 + (done << self.base.shift()));
            let bytes = &mut buf[..n * ENTRY_SIZE as usize];
            self.read_bytes(at, bytes)?;
            let words = bytes
                .chunks_exact(ENTRY_SIZE as usize)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8-byte chunk")));
            decode::feed_words(map, self.base, words).map_err(|e| feed_error(e, start_offset))?;
            done += n as u64;
        }
        Ok(())
    }
}

/// The error for a failed decode; offsets in it are counted from
/// `start_offset`, where the caller's range begins in the map.
pub(crate) fn feed_error(e: FeedError, start_offset: u64) -> Error {
    match e {
        FeedError::Hidden { offset } => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{HIDDEN_PFNS} (first hidden page at offset {:#x})",
                offset.wrapping_sub(start_offset)
            ),
        ),
        other => Error::new(ErrorKind::Protocol, format!("bad pagemap entry: {other}")),
    }
}

/// Checks that `[va, va + len)` is a non-empty, page-aligned range.
pub fn check_range(base: PageSize, va: VirtAddr, len: u64) -> Result<()> {
    if len == 0 {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            "length is 0: give a length of at least one page",
        ));
    }
    if !base.is_aligned(va.0) {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "address {va} is not aligned to the {}-byte page size",
                base.bytes()
            ),
        ));
    }
    if !base.is_aligned(len) {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "length {len} is not a multiple of the {}-byte page size",
                base.bytes()
            ),
        ));
    }
    if va.0.checked_add(len).is_none() {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            format!("range {va} + {len} wraps the address space"),
        ));
    }
    Ok(())
}

/// Whether this process sees PFNs: maps a page, touches it and reads its
/// entry. `Ok(false)` means present-but-hidden.
pub fn can_see_pfns() -> Result<bool> {
    let page = system::page_size();
    let fd = rustix::fs::memfd_create("unimem-pfn-check", rustix::fs::MemfdFlags::CLOEXEC)?;
    rustix::fs::ftruncate(&fd, page.bytes())?;
    let mut m = crate::mapping::Mapping::shared(&fd, 0, page.bytes() as usize)?;
    m.as_mut_slice()[0] = 1;
    let pm = Pagemap::open_self()?;
    let mut entry = [0u64];
    pm.read(m.addr(), &mut entry)?;
    match decode::Entry(entry[0]).state() {
        decode::PageState::Present(_) => Ok(true),
        decode::PageState::Hidden => Ok(false),
        _ => Err(Error::new(
            ErrorKind::Io,
            "a page just written is not present in pagemap",
        )),
    }
}
