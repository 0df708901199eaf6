//! The fast paths of the pagemap reader give exactly the map of one
//! sequential full read: several threads on large ranges (fresh and
//! fragmented memory), one entry per huge page on hugetlb, and
//! `PAGEMAP_SCAN`-guided reads on collapsed shmem THP. Every buffer is
//! pinned while it is read, so its pages cannot move between the readings;
//! each map is also checked page by page against the test's own read of
//! pagemap.
//!
//! The tests that fragment memory or reserve huge pages hold the
//! machine-wide lock the project's memory tests share, and put back what
//! they change.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::os::unix::fs::FileExt;
use unimem::core::{PaMap, PageSize, VirtAddr};
use unimem::mapping::{Advice, Mapping};
use unimem::pagemap::{parallel, Pagemap};
use unimem::pin::Pin;
use unimem::surface::{Backing, Surface};

const MIB: u64 = 1 << 20;
use unimem_testkit::mm_lock;

fn require_root() {
    unimem_testkit::require_root("these tests read PFNs and pin memory");
}

fn base() -> PageSize {
    unimem::system::page_size()
}

/// The physical address of every base page, from the test's own pread.
fn own_addresses(va: u64, len: u64) -> Vec<Option<u64>> {
    let page = base();
    let n = (len >> page.shift()) as usize;
    let mut bytes = vec![0u8; n * 8];
    File::open("/proc/self/pagemap")
        .unwrap()
        .read_exact_at(&mut bytes, (va >> page.shift()) * 8)
        .unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| {
            let w = u64::from_le_bytes(b.try_into().unwrap());
            (w >> 63 == 1).then(|| (w & ((1 << 55) - 1)) << page.shift())
        })
        .collect()
}

fn assert_matches_own_read(map: &PaMap, va: u64, len: u64, what: &str) {
    let own = own_addresses(va, len);
    let page = base().bytes();
    for (i, a) in own.iter().enumerate() {
        assert_eq!(
            map.lookup(i as u64 * page).map(|x| x.get()),
            *a,
            "{what}: page {i}"
        );
    }
}

/// A shared memfd mapping of `len` bytes, populated and pinned.
fn pinned_buffer(len: u64) -> (std::os::fd::OwnedFd, Mapping, Pin) {
    let fd = rustix::fs::memfd_create("unimem-fast-path", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    let m = Mapping::shared(&fd, 0, len as usize).unwrap();
    m.advise(Advice::PopulateWrite).unwrap();
    let pin = Pin::new(&m).unwrap();
    (fd, m, pin)
}

/// Checks the threaded reader against the sequential one over the whole
/// buffer and over ranges whose ends fall inside chunks.
fn check_parallel(m: &Mapping, what: &str) -> usize {
    let pm = Pagemap::open_self().unwrap();
    let (va, len) = (m.addr(), m.len() as u64);
    assert!(
        parallel::worth_it(base(), len),
        "{what}: too small to be read in parallel"
    );
    let fast = pm.resolve(va, len, base()).unwrap();
    let slow = pm.resolve_sequential(va, len, base()).unwrap();
    assert_eq!(
        fast, slow,
        "{what}: threaded map differs from the sequential one"
    );
    assert_matches_own_read(&fast, va.0, len, what);
    // Odd ranges: start 3 pages in, end 5 pages before the end.
    let page = base().bytes();
    let (a, l) = (VirtAddr(va.0 + 3 * page), len - 8 * page);
    assert_eq!(
        pm.resolve(a, l, base()).unwrap(),
        pm.resolve_sequential(a, l, base()).unwrap(),
        "{what}: odd range"
    );
    fast.address_segment_count()
}

#[test]
fn parallel_read_equals_sequential_on_fresh_memory() {
    require_root();
    let (_fd, m, _pin) = pinned_buffer(256 * MIB);
    let segments = check_parallel(&m, "fresh");
    eprintln!("fresh 256 MiB: {segments} segments");
}

#[test]
fn parallel_read_equals_sequential_on_fragmented_memory() {
    require_root();
    let _lock = mm_lock();
    let len = 256 * MIB;
    let page = base().bytes();
    // Fragment: fault a filler twice the buffer's size, then free every
    // other page of it, so the buffer's pages land in the holes.
    let filler_fd =
        rustix::fs::memfd_create("unimem-filler", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&filler_fd, 2 * len).unwrap();
    {
        let filler = Mapping::shared(&filler_fd, 0, 2 * len as usize).unwrap();
        filler.advise(Advice::PopulateWrite).unwrap();
    }
    for off in (0..2 * len).step_by(2 * page as usize) {
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&filler_fd, flags, off, page).unwrap();
    }
    let (_fd, m, _pin) = pinned_buffer(len);
    drop(filler_fd);
    let segments = check_parallel(&m, "fragmented");
    let pages = (len / page) as usize;
    eprintln!("fragmented 256 MiB: {segments} segments of {pages} pages");
    assert!(
        segments > pages / 8,
        "only {segments} segments for {pages} pages: the buffer was not fragmented, so this \
         run does not test merging many short runs"
    );
}

/// Restores `nr_hugepages` when dropped.
struct HugePool(String);

impl Drop for HugePool {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/vm/nr_hugepages", &self.0);
    }
}

#[test]
fn hugetlb_heads_equal_the_full_read() {
    require_root();
    let _lock = mm_lock();
    let huge = unimem::system::default_huge_page_size().expect("hugetlb support");
    let old = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap();
    let _restore = HugePool(old.trim().to_string());
    let n: u64 = old.trim().parse().unwrap();
    // 128 huge pages: enough for the threaded path (64 per work item).
    let count = 128;
    std::fs::write("/proc/sys/vm/nr_hugepages", (n + count).to_string()).unwrap();
    let s = Surface::create(count * huge, Backing::Hugetlb).expect("reserve the hugetlb pool");
    let _pin = Pin::new(s.mapping()).unwrap();
    let pm = Pagemap::open_self().unwrap();
    let page = s.page_size();
    assert_eq!(page.bytes(), huge);
    for (what, va, len) in [
        ("all", s.addr(), s.len()),
        ("three pages", s.addr(), 3 * huge),
        // Not whole huge pages: read in full.
        ("unaligned", VirtAddr(s.addr().0 + 4096), huge),
    ] {
        let fast = pm.resolve(va, len, page).unwrap();
        let slow = pm.resolve_sequential(va, len, page).unwrap();
        assert_eq!(fast, slow, "hugetlb {what}");
        assert_matches_own_read(&fast, va.0, len, &format!("hugetlb {what}"));
    }
}

/// Restores `shmem_enabled` when dropped.
struct ShmemThp(String);

impl Drop for ShmemThp {
    fn drop(&mut self) {
        let _ = std::fs::write(unimem::system::THP_SHMEM_ENABLED, &self.0);
    }
}

#[test]
fn thp_scan_equals_the_full_read() {
    require_root();
    let _lock = mm_lock();
    // Some kernels refuse MADV_COLLAPSE on shmem under `never`.
    let old = unimem::system::thp_mode(unimem::system::THP_SHMEM_ENABLED).expect("shmem THP");
    let _restore = ShmemThp(old);
    std::fs::write(unimem::system::THP_SHMEM_ENABLED, "advise").unwrap();
    let s = Surface::create(64 * MIB, Backing::Thp).expect("a collapsed THP surface");
    let _pin = Pin::new(s.mapping()).unwrap();
    let pm = Pagemap::open_self().unwrap();
    let fast = pm.resolve_thp(s.addr(), s.len()).unwrap();
    let slow = pm.resolve_sequential(s.addr(), s.len(), base()).unwrap();
    assert_eq!(fast, slow, "THP");
    assert_matches_own_read(&fast, s.addr().0, s.len(), "THP");
    let huge = 2 * MIB;
    let huge_bytes: u64 = fast
        .address_segments()
        .filter(|seg| seg.address().unwrap().get() % huge == 0 && seg.length >= huge)
        .map(|seg| seg.length)
        .sum();
    assert!(
        huge_bytes >= s.len() / 2,
        "only {huge_bytes} of {} bytes in huge runs: MADV_COLLAPSE did not take",
        s.len()
    );
    // A range that starts and ends inside huge pages.
    let (a, l) = (VirtAddr(s.addr().0 + 12 * 4096), s.len() - 7 * huge / 2);
    assert_eq!(
        pm.resolve_thp(a, l).unwrap(),
        pm.resolve_sequential(a, l, base()).unwrap(),
        "THP odd range"
    );
}
