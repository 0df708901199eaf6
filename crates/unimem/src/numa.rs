//! The NUMA node of each page of a range, from `move_pages(2)` with no
//! target nodes: the kernel then moves nothing and writes each page's
//! current node (or a negative errno) into the status array.
//!
//! This is the one call here that neither rustix nor the libc wrappers
//! cover (libnuma is not needed for it), so it goes through `syscall(2)`.
#![allow(unsafe_code)]

use crate::system;
use unimem_core::numa::{push_run, Node, NodeRun};
use unimem_core::VirtAddr;

/// Pages asked about per call: bounds the two arrays.
const BATCH: usize = 16 * 1024;

/// Nodes online, from `/sys/devices/system/node/online` (`0`, `0-1,3`);
/// `None` when the file is missing (a kernel without NUMA support).
pub fn nodes_online() -> Option<u32> {
    let text = std::fs::read_to_string("/sys/devices/system/node/online").ok()?;
    let mut count = 0u32;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        count += b.checked_sub(a)? + 1;
    }
    Some(count)
}

/// The nodes of the base pages of `[va, va + len)` in process `pid` (0:
/// this process), as runs of one node. A page the kernel reports no node
/// for (not present, or an error) is unknown, and so is every page when the
/// call itself is refused (no NUMA support, no permission over the process).
pub fn node_runs(pid: u32, va: VirtAddr, len: u64) -> Vec<NodeRun> {
    let page = system::page_size().bytes();
    let pages = (len / page) as usize;
    let mut out = Vec::new();
    let mut addrs: Vec<*mut libc::c_void> = Vec::with_capacity(BATCH.min(pages));
    let mut status: Vec<libc::c_int> = vec![0; BATCH.min(pages)];
    let mut done = 0usize;
    while done < pages {
        let n = BATCH.min(pages - done);
        addrs.clear();
        addrs.extend((done..done + n).map(|i| (va.0 + i as u64 * page) as *mut libc::c_void));
        status[..n].fill(-1);
        // SAFETY: move_pages reads `n` addresses from `addrs` and writes `n`
        // ints to `status`, both at least `n` long; with nodes NULL it
        // moves nothing and only reports. The addresses are looked up in
        // the target's page tables, never dereferenced here.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_pages,
                pid as libc::c_long,
                n as libc::c_ulong,
                addrs.as_ptr(),
                std::ptr::null::<libc::c_int>(),
                status.as_mut_ptr(),
                0 as libc::c_int,
            )
        };
        if rc < 0 {
            return vec![NodeRun {
                offset: 0,
                length: pages as u64 * page,
                node: Node(None),
            }];
        }
        for &s in &status[..n] {
            push_run(&mut out, page, Node(u32::try_from(s).ok()));
        }
        done += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_pages_have_an_online_node_and_absent_ones_none() {
        let page = rustix::param::page_size();
        let fd = rustix::fs::memfd_create("unimem-numa", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 8 * page as u64).unwrap();
        let mut m = crate::mapping::Mapping::shared(&fd, 0, 8 * page).unwrap();
        m.as_mut_slice()[..4 * page].fill(1);
        let runs = node_runs(0, m.addr(), 8 * page as u64);
        let online = nodes_online().expect("this kernel lists its NUMA nodes");
        let total: u64 = runs.iter().map(|r| r.length).sum();
        assert_eq!(total, 8 * page as u64);
        // The untouched half has no node: one unknown run at the end.
        let last = runs.last().unwrap();
        assert_eq!(last.node, Node(None), "{runs:?}");
        assert_eq!(last.offset, 4 * page as u64, "{runs:?}");
        for r in &runs[..runs.len() - 1] {
            let n = r.node.0.expect("a touched page has a node");
            let dir = format!("/sys/devices/system/node/node{n}");
            assert!(
                std::path::Path::new(&dir).exists(),
                "node {n} is not online"
            );
            if online == 1 {
                assert_eq!(n, 0);
            }
        }
    }
}
