//! Pinned through the service, a 256 MiB memfd keeps every physical address
//! across `echo 1 > /proc/sys/vm/compact_memory` after memory has been
//! fragmented, while an unpinned twin allocated the same way does move.
//!
//! One test in its own binary, holding a machine-wide file lock, because
//! compaction affects every process: tests elsewhere that compact or change
//! memory sysctls take the same lock. Nothing is changed that needs
//! restoring: `compact_memory` is a trigger, not a setting.

use crate::common::*;
use std::os::fd::OwnedFd;
use unimem::mapping::Mapping;
use unimem::resolve::service::ServiceClient;
use unimem::service::{Limits, Policy};

const MIB: u64 = 1 << 20;
use unimem_testkit::{mm_lock, Knob};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

fn memfd_mapping(len: u64) -> (OwnedFd, Mapping) {
    let fd = unsealed_memfd(len);
    rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::SHRINK).unwrap();
    let m = Mapping::shared(&fd, 0, len as usize).unwrap();
    (fd, m)
}

fn moved(a: &[Option<u64>], b: &[Option<u64>]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[test]
fn pinned_pages_keep_their_addresses_across_compaction() {
    require_root();
    let _lock = mm_lock();

    let svc = start(Policy::default(), Limits::default());
    let len = 256 * MIB;
    let page = rustix::param::page_size();
    let pages = len as usize / page;
    let pid = std::process::id();
    let mut unpinned_moved = Vec::new();

    for round in 1..=5 {
        // Fragment: fault the two buffers' pages interleaved with a filler
        // four times their size, then free the filler.
        let (pinned_fd, mut pinned) = memfd_mapping(len);
        let (_free_fd, mut free) = memfd_mapping(len);
        let (filler_fd, mut filler) = memfd_mapping(4 * len);
        {
            let (p, f, fl) = (
                pinned.as_mut_slice(),
                free.as_mut_slice(),
                filler.as_mut_slice(),
            );
            for i in 0..pages {
                p[i * page] = i as u8;
                f[i * page] = i as u8;
                for j in 0..4 {
                    fl[(4 * i + j) * page] = 1;
                }
            }
        }
        // Free every other 64 KiB of the filler: free memory in small
        // holes between the buffers' pages, which compaction fills.
        drop(filler);
        let chunk = 64 * 1024;
        for off in (0..4 * len).step_by(2 * chunk as usize) {
            let flags =
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
            rustix::fs::fallocate(&filler_fd, flags, off, chunk).unwrap();
        }

        let mut client = ServiceClient::connect(&svc.socket).unwrap();
        let (handle, map) = client
            .prepare(std::os::fd::AsFd::as_fd(&pinned_fd), 0, len)
            .unwrap();
        let sum = unimem::core::checksum::checksum(pinned.as_slice());

        let pinned_before = stable_addresses(pid, pinned.addr().0, len);
        for (i, a) in pinned_before.iter().enumerate() {
            assert_eq!(
                map.lookup((i * page) as u64).map(|x| x.get()),
                *a,
                "service map vs pagemap at page {i}"
            );
        }
        let free_before = stable_addresses(pid, free.addr().0, len);
        std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
        let pinned_after = physical_addresses(pid, pinned.addr().0, len);
        let free_after = physical_addresses(pid, free.addr().0, len);

        let n_pinned = moved(&pinned_before, &pinned_after);
        let n_free = moved(&free_before, &free_after);
        eprintln!(
            "round {round}: compaction moved {n_pinned} of {pages} pinned pages and {n_free} of \
             {pages} unpinned pages"
        );
        assert_eq!(n_pinned, 0, "pinned pages moved during compaction");
        assert_eq!(
            client.checksum(handle, 0, len).unwrap(),
            sum,
            "data changed"
        );
        assert_eq!(client.complete(handle).unwrap(), len);
        unpinned_moved.push(n_free);
        if n_free > 0 {
            break;
        }
    }
    assert!(
        unpinned_moved.iter().any(|&n| n > 0),
        "compaction moved no unpinned page in {} rounds ({unpinned_moved:?}), so this run shows \
         nothing about the pin: the machine could not be fragmented enough",
        unpinned_moved.len()
    );
}

#[test]
fn hugetlb_surfaces_resolve_in_huge_pages() {
    require_root();
    let _lock = mm_lock();
    let n: u64 = Knob::current(NR_HUGEPAGES.as_ref()).parse().unwrap();
    let _pool = Knob::set(NR_HUGEPAGES, &(n + 8).to_string());

    let svc = start(Policy::default(), Limits::default());
    let mut r = unimem::resolve::ServiceResolver::connect(&svc.socket).unwrap();
    let huge = unimem::system::default_huge_page_size().expect("hugetlb support");
    let out = unimem::probe::probe(
        4 * huge,
        unimem::surface::Backing::Hugetlb,
        1,
        &mut r,
        |_| {},
    )
    .unwrap();
    assert!(out.verified());
    let map = &out.prepared.map;
    assert_eq!(
        map.page_size().bytes(),
        huge,
        "the service must report the huge page size"
    );
    for s in map.address_segments() {
        let a = s.address().unwrap().get();
        assert!(
            a % huge == 0 && s.length % huge == 0,
            "segment {s:?} not huge-page aligned"
        );
    }
    let own = stable_addresses(std::process::id(), out.surface.addr().0, out.surface.len());
    let page = rustix::param::page_size();
    for (i, a) in own.iter().enumerate() {
        assert_eq!(
            map.lookup((i * page) as u64).map(|x| x.get()),
            *a,
            "page {i}"
        );
    }
    drop(out);
    assert_eq!(svc.handle.stats().pinned_bytes, 0);
}
