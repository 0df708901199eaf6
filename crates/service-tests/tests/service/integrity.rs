//! The service never describes pages that are not the file's, and never
//! allocates a client's memory: a memfd must be sealed against shrinking
//! and fully written before it is prepared; a hole punched under a
//! prepared range turns every later segments and checksum reply into
//! "the surface changed"; a checksum never fills a hole; a surface sealed
//! against writing is refused by name.

use crate::common::*;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use unimem::core::iokit::IoReturn;
use unimem::core::wire::{Header, Reply, Request, VERSION};
use unimem::resolve::service::ServiceClient;
use unimem::service::rule::Rule;
use unimem::service::{Limits, Policy};
use unimem::ErrorKind;
use unimem_service_tests::request::{exchange, prepare, rule_of};

const PAGES: u64 = 8;

fn page() -> u64 {
    rustix::param::page_size() as u64
}

fn handshaken(svc: &Running) -> OwnedFd {
    let s = raw_connect(&svc.socket);
    let hs = Request::handshake(VERSION, VERSION);
    assert!(matches!(
        Reply::decode(0, &exchange(&s, &hs, None)),
        Ok(Reply::Handshake(_))
    ));
    s
}

fn blocks(fd: &OwnedFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_blocks as u64
}

fn punch(fd: &OwnedFd, offset: u64, len: u64) {
    use rustix::fs::FallocateFlags as F;
    rustix::fs::fallocate(fd, F::PUNCH_HOLE | F::KEEP_SIZE, offset, len).unwrap();
}

#[test]
fn a_memfd_that_may_shrink_is_refused_with_how_to_seal_it() {
    let svc = start(Policy::default(), Limits::default());
    let ps = page();
    let fd = unsealed_memfd(PAGES * ps);
    populate(&fd, PAGES * ps);
    let s = handshaken(&svc);
    let reply = exchange(&s, &prepare(0, PAGES * ps), Some(fd.as_fd()));
    assert_eq!(rule_of(&reply), Some(Rule::NotShrinkSealed));
    assert_eq!(
        Header::parse(&reply).unwrap().status(),
        IoReturn::NOT_PERMITTED
    );
    assert!(Rule::NotShrinkSealed
        .describe()
        .contains("fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)"));
    // The client's error says how to seal, too.
    let mut c = ServiceClient::connect(&svc.socket).unwrap();
    let e = c.prepare(fd.as_fd(), 0, PAGES * ps).unwrap_err();
    assert!(e.to_string().contains("F_ADD_SEALS, F_SEAL_SHRINK"), "{e}");
    // Sealed, the same file is prepared.
    rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::SHRINK).unwrap();
    let (h, map) = c.prepare(fd.as_fd(), 0, PAGES * ps).unwrap();
    assert_eq!(map.total_length(), PAGES * ps);
    c.complete(h).unwrap();
    assert_eq!(svc.handle.stats().refused, 2);
}

#[test]
fn a_punched_hole_under_a_prepared_range_is_reported_never_described_or_filled() {
    let svc = start(Policy::default(), Limits::default());
    let ps = page();
    let len = PAGES * ps;
    let fd = memfd(len);
    let s = handshaken(&svc);
    let first = exchange(&s, &prepare(0, len), Some(fd.as_fd()));
    let Ok(Reply::Segments(batch)) = Reply::decode(1, &first) else {
        panic!("prepare refused: {:?}", rule_of(&first))
    };
    let handle = batch.handle.get();
    let segments = Request::segments(handle, 0);
    let checksum = Request::checksum(handle, 0, len);
    // Unchanged: both answered.
    assert_eq!(rule_of(&exchange(&s, &segments, None)), None);
    assert_eq!(rule_of(&exchange(&s, &checksum, None)), None);

    // One page punched out: the file lost it, the pin keeps an orphan.
    punch(&fd, 3 * ps, ps);
    let before = blocks(&fd);
    assert_eq!(before, (PAGES - 1) * ps / 512);
    for (what, req) in [("segments", &segments), ("checksum", &checksum)] {
        let reply = exchange(&s, req, None);
        assert_eq!(
            rule_of(&reply),
            Some(Rule::SurfaceChanged),
            "{what} after a punched hole"
        );
        assert_eq!(
            reply.len(),
            16,
            "{what}: an error reply carries nothing else"
        );
    }
    // A checksum of only the pages still there is still answered.
    let head = Request::checksum(handle, 0, 3 * ps);
    assert_eq!(rule_of(&exchange(&s, &head, None)), None);
    // The service filled nothing.
    assert_eq!(blocks(&fd), before, "the service faulted the hole back in");

    // The client writes the page again: a new page, not the pinned one.
    populate(&fd, len);
    assert_eq!(blocks(&fd), len / 512);
    for (what, req) in [("segments", &segments), ("checksum", &checksum)] {
        assert_eq!(
            rule_of(&exchange(&s, req, None)),
            Some(Rule::SurfaceChanged),
            "{what} after the hole was written again"
        );
    }
    // Through the client library, the change is its own kind of error.
    let mut c = ServiceClient::connect(&svc.socket).unwrap();
    let (h2, _) = c.prepare(fd.as_fd(), 0, len).unwrap();
    c.checksum(h2, 0, len).unwrap();
    punch(&fd, 0, len);
    let e = c.checksum(h2, 0, len).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SurfaceChanged, "{e}");
    assert!(e.to_string().contains("prepare it again"), "{e}");
    assert_eq!(blocks(&fd), 0, "the checksum filled the punched file");
    drop(c);
    drop(s);
    assert!(wait_until(10, || svc.handle.stats().pinned_bytes == 0));
}

#[test]
fn the_addresses_are_checked_against_an_independent_reading_after_rewrite() {
    // After the rewrite the file's pages have new frames: the test reads
    // them itself and checks the service would have described the old ones.
    let svc = start(Policy::default(), Limits::default());
    let ps = page();
    let len = PAGES * ps;
    let fd = memfd(len);
    let mut c = ServiceClient::connect(&svc.socket).unwrap();
    let (h, old) = c.prepare(fd.as_fd(), 0, len).unwrap();
    punch(&fd, 0, len);
    let m = unimem::mapping::Mapping::shared(&fd, 0, len as usize).unwrap();
    m.advise(unimem::mapping::Advice::PopulateWrite).unwrap();
    let now = stable_addresses(std::process::id(), m.addr().0, len);
    let old: Vec<Option<u64>> = (0..PAGES)
        .map(|i| old.lookup(i * ps).map(|x| x.get()))
        .collect();
    assert!(
        now.iter().zip(&old).all(|(n, o)| n != o),
        "the rewritten file kept a pinned frame: {now:x?} vs {old:x?}"
    );
    let e = c.segments(h, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SurfaceChanged, "{e}");
    // Prepared again, the new frames are what the service describes.
    let (_, fresh) = c.prepare(fd.as_fd(), 0, len).unwrap();
    let fresh: Vec<Option<u64>> = (0..PAGES)
        .map(|i| fresh.lookup(i * ps).map(|x| x.get()))
        .collect();
    assert_eq!(fresh, now);
}

#[test]
fn a_range_with_holes_is_refused_and_nothing_is_allocated() {
    let svc = start(Policy::default(), Limits::default());
    let ps = page();
    let s = handshaken(&svc);
    // Never written: all holes.
    let sparse = unsealed_memfd(64 << 20);
    rustix::fs::fcntl_add_seals(&sparse, rustix::fs::SealFlags::SHRINK).unwrap();
    let reply = exchange(&s, &prepare(0, 64 << 20), Some(sparse.as_fd()));
    assert_eq!(rule_of(&reply), Some(Rule::NotBacked));
    assert!(Rule::NotBacked
        .describe()
        .contains("write or populate the surface first"));
    assert_eq!(blocks(&sparse), 0, "the refused prepare allocated memory");
    // Written but for one page in the middle.
    let holey = memfd(PAGES * ps);
    punch(&holey, 5 * ps, ps);
    let before = blocks(&holey);
    let reply = exchange(&s, &prepare(0, PAGES * ps), Some(holey.as_fd()));
    assert_eq!(rule_of(&reply), Some(Rule::NotBacked));
    assert_eq!(blocks(&holey), before);
    // The part before the hole is fine.
    let reply = exchange(&s, &prepare(0, 5 * ps), Some(holey.as_fd()));
    assert_eq!(rule_of(&reply), None);
    assert_eq!(blocks(&holey), before);
    let st = svc.handle.stats();
    assert_eq!(st.pinned_bytes, 5 * ps, "{st:?}");
}

#[test]
fn a_surface_sealed_against_writing_is_not_resolved_writable() {
    let svc = start(Policy::default(), Limits::default());
    let ps = page();
    let s = handshaken(&svc);
    for seal in [
        rustix::fs::SealFlags::WRITE,
        rustix::fs::SealFlags::FUTURE_WRITE,
    ] {
        let fd = memfd(PAGES * ps);
        rustix::fs::fcntl_add_seals(&fd, seal).unwrap();
        // What a provider hands out: a read-only fd of it.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let ro = rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        drop(fd);
        // The holder reopens it read-write, which memfds allow (mode 0777)...
        let ro_path = format!("/proc/self/fd/{}", ro.as_raw_fd());
        let rw = rustix::fs::open(
            &ro_path,
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .expect("memfds reopen read-write");
        // ...but the seal holds: the service will not resolve it writable.
        let reply = exchange(&s, &prepare(0, PAGES * ps), Some(rw.as_fd()));
        assert_eq!(rule_of(&reply), Some(Rule::WriteSealed), "{seal:?}");
        // Nor can the holder map it writable itself.
        assert!(unimem::mapping::Mapping::shared(&rw, 0, ps as usize).is_err());
    }
    assert_eq!(svc.handle.stats().pinned_bytes, 0);
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

#[test]
fn hugetlb_surfaces_need_every_huge_page_and_report_punched_ones() {
    require_root();
    let _lock = unimem_testkit::mm_lock();
    let n: u64 = unimem_testkit::Knob::current(NR_HUGEPAGES.as_ref())
        .parse()
        .unwrap();
    let _pool = unimem_testkit::Knob::set(NR_HUGEPAGES, &(n + 8).to_string());
    let huge = unimem::system::default_huge_page_size().expect("hugetlb support");
    let len = 4 * huge;

    let svc = start(Policy::default(), Limits::default());
    let s = handshaken(&svc);
    let flags = rustix::fs::MemfdFlags::CLOEXEC
        | rustix::fs::MemfdFlags::ALLOW_SEALING
        | rustix::fs::MemfdFlags::HUGETLB;
    let fd = rustix::fs::memfd_create("unimem-huge", flags).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::SHRINK).unwrap();
    // Never written: refused, and no huge page taken from the pool.
    let free = || {
        let pools = unimem::system::huge_pools().unwrap();
        pools.iter().find(|p| p.page_size == huge).unwrap().free
    };
    let before = free();
    assert_eq!(
        rule_of(&exchange(&s, &prepare(0, len), Some(fd.as_fd()))),
        Some(Rule::NotBacked)
    );
    assert_eq!(free(), before, "the refused prepare took huge pages");
    // Written: prepared; then one huge page punched out.
    populate(&fd, len);
    let first = exchange(&s, &prepare(0, len), Some(fd.as_fd()));
    let Ok(Reply::Segments(batch)) = Reply::decode(1, &first) else {
        panic!("prepare refused: {:?}", rule_of(&first))
    };
    let checksum = Request::checksum(batch.handle.get(), 0, len);
    assert_eq!(rule_of(&exchange(&s, &checksum, None)), None);
    punch(&fd, huge, huge);
    assert_eq!(
        rule_of(&exchange(&s, &checksum, None)),
        Some(Rule::SurfaceChanged)
    );
    assert_eq!(blocks(&fd), 3 * huge / 512, "the checksum filled the hole");
}
