//! Huge pages, read one pagemap entry per huge page.
//!
//! Pagemap gives every base page of a huge page its own entry: the head
//! page's PFN plus the page's index in it. So the entry of the first base
//! page describes the whole huge page, and reading it alone gives the same
//! map as reading all 512 (for 2 MiB pages on x86-64).
//!
//! hugetlb memory is huge throughout, by construction of hugetlbfs, so its
//! page size is enough to know where huge pages start. Shmem THP is huge
//! only where the kernel mapped a whole folio with one PMD: those runs are
//! found with the `PAGEMAP_SCAN` ioctl (Linux 6.7+, category
//! `PAGE_IS_HUGE`), and everything between them is read in full. Where the
//! ioctl is missing the whole range is read in full. Any huge-page entry
//! that is not a present, aligned head is read again in full, so an odd
//! page can only cost time, never change the map.

use super::{parallel, scan, Pagemap};
use crate::error::{Error, Result};
use unimem_core::pagemap::{Entry, PageState, ENTRY_SIZE};
use unimem_core::{PaMap, PageSize, Target, VirtAddr};

/// Huge pages per work item when several threads share the reads.
const ITEM_HUGE_PAGES: u64 = 64;

/// Resolves a hugetlb range whose huge pages are `huge` bytes.
pub fn resolve_hugetlb_into(
    pm: &Pagemap,
    map: &mut PaMap,
    va: VirtAddr,
    len: u64,
    huge: PageSize,
) -> Result<()> {
    super::check_range(pm.base_page(), va, len)?;
    if !huge.is_aligned(va.0) || !huge.is_aligned(len) {
        // Not whole huge pages: nothing to gain, read every entry.
        return pm.resolve_into(map, va, len);
    }
    resolve_heads_into(pm, map, va, len, huge)
}

/// Reads one entry per `step`-sized huge page of `[va, va + len)`, which
/// the caller knows to be huge throughout; several threads share a long
/// range.
fn resolve_heads_into(
    pm: &Pagemap,
    map: &mut PaMap,
    va: VirtAddr,
    len: u64,
    step: PageSize,
) -> Result<()> {
    let count = len.div_ceil(step.bytes());
    if parallel::workers() > 1 && count >= 4 * ITEM_HUGE_PAGES {
        let item = ITEM_HUGE_PAGES * step.bytes();
        parallel::run_items(map, va, len, item, |part, at, n, buf, origin| {
            heads_into(pm, part, at, n, step, buf, origin)
        })
    } else {
        heads_into(pm, map, va, len, step, &mut Vec::new(), 0)
    }
}

/// One entry per huge page, on this thread. Pieces are cut at multiples
/// of `step` in the address space, so a range that starts inside a huge
/// page reads that page's entry at the range start.
fn heads_into(
    pm: &Pagemap,
    map: &mut PaMap,
    va: VirtAddr,
    len: u64,
    step: PageSize,
    buf: &mut Vec<u8>,
    origin: u64,
) -> Result<()> {
    let base = pm.base_page();
    let end = va.0 + len;
    let mut at = va.0;
    while at < end {
        let next = (at | (step.bytes() - 1)).saturating_add(1).min(end);
        let n = next - at;
        let mut word = [0u8; ENTRY_SIZE as usize];
        pm.read_bytes(VirtAddr(at), &mut word)?;
        let entry = Entry(u64::from_le_bytes(word));
        // The head's frame, moved to where `at` sits in its huge page.
        let within = at & (step.bytes() - 1);
        let fits = match entry.state() {
            PageState::Present(pfn) => pfn
                .to_phys(base)
                .map(|pa| pa.0)
                .filter(|pa| (pa - (pa & !(step.bytes() - 1))) == within)
                .filter(|pa| pa.checked_add(n).is_some()),
            _ => None,
        };
        match fits {
            Some(pa) => map
                .push(n, Target::phys(pa))
                .map_err(|e| Error::new(crate::error::ErrorKind::Protocol, e.to_string()))?,
            // Not a present head: read this huge page entry by entry.
            None => pm.feed_range(map, VirtAddr(at), n, buf, origin + (at - va.0))?,
        }
        at = next;
    }
    Ok(())
}

/// Resolves a shmem range that may hold transparent huge pages.
pub fn resolve_thp_into(pm: &Pagemap, map: &mut PaMap, va: VirtAddr, len: u64) -> Result<()> {
    super::check_range(pm.base_page(), va, len)?;
    let Some(pmd) = pmd_size(pm.base_page()) else {
        return pm.resolve_into(map, va, len);
    };
    let Some(runs) = scan::huge_runs(pm.file(), va, len)? else {
        return pm.resolve_into(map, va, len);
    };
    let mut at = va.0;
    for (start, end) in runs {
        if start > at {
            pm.resolve_into(map, VirtAddr(at), start - at)?;
        }
        resolve_heads_into(pm, map, VirtAddr(start), end - start, pmd)?;
        at = end;
    }
    if at < va.0 + len {
        pm.resolve_into(map, VirtAddr(at), va.0 + len - at)?;
    }
    Ok(())
}

/// The size one PMD maps: the size of a transparent huge page.
fn pmd_size(base: PageSize) -> Option<PageSize> {
    let from_sysfs = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    // Without sysfs: a page table page holds page/8 entries.
    PageSize::new(from_sysfs.unwrap_or(base.bytes() / 8 * base.bytes()))
}
