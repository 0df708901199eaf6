//! Decoding of `/proc/PID/pagemap` entries.
//!
//! One little-endian u64 per virtual page of the base page size; the entry
//! for virtual address `va` sits at file offset `(va / page_size) * 8`.
//! Bit layout from the kernel's `Documentation/admin-guide/mm/pagemap.rst`
//! and `fs/proc/task_mmu.c` (`PM_*` constants):
//!
//! | bits  | meaning                                                     |
//! |-------|-------------------------------------------------------------|
//! | 0–54  | PFN if present; if swapped: 0–4 swap type, 5–54 swap offset |
//! | 55    | soft-dirty                                                  |
//! | 56    | page exclusively mapped (since 4.2)                         |
//! | 57    | uffd-wp write-protected (since 5.13)                        |
//! | 58    | guard region (since 6.15)                                   |
//! | 61    | file page or shared anonymous (since 3.5)                   |
//! | 62    | swapped                                                     |
//! | 63    | present                                                     |
//!
//! Since 4.2 the PFN field reads as zero unless the opener of the file had
//! CAP_SYS_ADMIN. A present page with PFN 0 is therefore "hidden", a state
//! of its own: it must never be reported as physical address 0.

use crate::addr::SegmentAddr;
use crate::addr::{PageSize, Pfn};
use crate::map::{MapError, PaMap, Target};

/// Bits 0–54: the page frame number of a present page (zero when hidden
/// from a reader without CAP_SYS_ADMIN), or the swap type (bits 0–4) and
/// swap offset (bits 5–54) of a swapped page. Kernel: `PM_PFRAME_MASK`.
pub const PFN_MASK: u64 = (1 << 55) - 1;
/// Bit 55: the page was written since its soft-dirty bit was last cleared
/// through `/proc/PID/clear_refs`. Kernel: `PM_SOFT_DIRTY`.
pub const SOFT_DIRTY: u64 = 1 << 55;
/// Bit 56: the page is mapped by this process alone (since Linux 4.2).
/// Kernel: `PM_MMAP_EXCLUSIVE`.
pub const EXCLUSIVE: u64 = 1 << 56;
/// Bit 57: the page is write-protected through userfaultfd (since Linux
/// 5.13). Kernel: `PM_UFFD_WP`.
pub const UFFD_WP: u64 = 1 << 57;
/// Bit 58: the page lies in a guard region installed with
/// `MADV_GUARD_INSTALL` (since Linux 6.15). Kernel: `PM_GUARD_REGION`.
pub const GUARD: u64 = 1 << 58;
/// Bit 61: the page is file-backed or shared anonymous memory, as memfd
/// pages are (since Linux 3.5). Kernel: `PM_FILE`.
pub const FILE_OR_SHARED: u64 = 1 << 61;
/// Bit 62: the page is in swap; [`PFN_MASK`] then holds its swap type and
/// offset. Kernel: `PM_SWAP`.
pub const SWAPPED: u64 = 1 << 62;
/// Bit 63: the page is present in RAM; [`PFN_MASK`] then holds its PFN.
/// Kernel: `PM_PRESENT`.
pub const PRESENT: u64 = 1 << 63;

/// Bytes per pagemap entry.
pub const ENTRY_SIZE: u64 = 8;

/// What one pagemap entry says about its page.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Present, with the frame that backs it.
    Present(Pfn),
    /// Present, but the PFN field was zeroed: the reader lacks CAP_SYS_ADMIN.
    Hidden,
    /// Swapped out to `swap_type` at `offset`.
    Swapped {
        /// Index of the swap area (bits 0–4 of the entry, 0–31).
        swap_type: u8,
        /// Slot within that swap area, in pages (bits 5–54 of the entry).
        offset: u64,
    },
    /// Neither present nor swapped.
    NotPresent,
}

/// A decoded pagemap entry: the state plus the flag bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Entry(pub u64);

impl Entry {
    /// Decodes bits 63, 62 and 0–54: present (with a non-zero PFN), hidden
    /// (present with PFN 0), swapped, or not present. [`PRESENT`] wins when
    /// a corrupt word sets both it and [`SWAPPED`].
    pub fn state(self) -> PageState {
        let w = self.0;
        if w & PRESENT != 0 {
            match w & PFN_MASK {
                0 => PageState::Hidden,
                pfn => PageState::Present(Pfn(pfn)),
            }
        } else if w & SWAPPED != 0 {
            PageState::Swapped {
                swap_type: (w & 0x1f) as u8,
                offset: (w & PFN_MASK) >> 5,
            }
        } else {
            PageState::NotPresent
        }
    }

    /// Bit 55, [`SOFT_DIRTY`]: written since soft-dirty bits were cleared.
    pub fn soft_dirty(self) -> bool {
        self.0 & SOFT_DIRTY != 0
    }
    /// Bit 56, [`EXCLUSIVE`]: mapped by this process alone.
    pub fn exclusive(self) -> bool {
        self.0 & EXCLUSIVE != 0
    }
    /// Bit 57, [`UFFD_WP`]: write-protected through userfaultfd.
    pub fn uffd_wp(self) -> bool {
        self.0 & UFFD_WP != 0
    }
    /// Bit 58, [`GUARD`]: inside a guard region.
    pub fn guard(self) -> bool {
        self.0 & GUARD != 0
    }
    /// Bit 61, [`FILE_OR_SHARED`]: file-backed or shared anonymous.
    pub fn file_or_shared(self) -> bool {
        self.0 & FILE_OR_SHARED != 0
    }
}

/// Why feeding entries into a map stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// A present page's PFN read as zero: the pagemap file was opened
    /// without CAP_SYS_ADMIN.
    #[error("the PFN of the present page at buffer offset {offset:#x} is hidden (reader lacks CAP_SYS_ADMIN)")]
    Hidden {
        /// Byte offset of that page from the start of the map's buffer.
        offset: u64,
    },
    /// A PFN whose physical address (PFN × page size) exceeds 64 bits;
    /// only a corrupt word can carry one.
    #[error("PFN {pfn:#x} at buffer offset {offset:#x} does not fit a 64-bit address")]
    BadPfn {
        /// Byte offset of that page from the start of the map's buffer.
        offset: u64,
        /// The PFN as read from bits 0–54.
        pfn: u64,
    },
    /// The map refused an extent: more entries than the buffer has pages,
    /// or an extent whose end address would wrap.
    #[error(transparent)]
    Map(#[from] MapError),
}

/// Appends one base page per entry to `map`, starting where it ends.
///
/// `base` is the page size pagemap is indexed in (the system's base page
/// size, even for huge pages: each base page of a huge page has its own
/// entry, with consecutive PFNs, so they coalesce). Hidden PFNs stop the
/// feed with an error rather than produce address 0.
pub fn feed(map: &mut PaMap, base: PageSize, entries: &[u64]) -> Result<(), FeedError> {
    feed_words(map, base, entries.iter().copied())
}

/// [`feed`] over any sequence of entries, e.g. decoded straight from the
/// bytes of a `pread`.
///
/// Pages whose addresses continue each other are gathered into a run and
/// pushed at once: the map ends up exactly as if each page had been pushed
/// alone (a push coalesces with the extent before it), at one push per
/// physically contiguous run instead of one per page. Before any error the
/// pending run is pushed, so the map holds every page before the bad one.
pub fn feed_words(
    map: &mut PaMap,
    base: PageSize,
    entries: impl IntoIterator<Item = u64>,
) -> Result<(), FeedError> {
    let page = base.bytes();
    let total = map.total_length();
    let mut offset = map.filled_to();
    // The pages gathered but not pushed yet: their target and length.
    let mut run: Option<(Target, u64)> = None;
    for w in entries {
        // The common case first: a whole present page that continues the
        // pending run. It extends the run exactly as the general path
        // below would.
        if let Some((Target::Address(a), l)) = &mut run {
            let pfn = w & PFN_MASK;
            if w & PRESENT != 0 && pfn != 0 && total - offset.min(total) >= page {
                if let (Some(next), Some(pa)) = (a.checked_add(*l), pfn.checked_mul(page)) {
                    if pa == next.get() && pa.checked_add(page).is_some() {
                        *l += page;
                        offset += page;
                        continue;
                    }
                }
            }
        }
        let len = page.min(total - offset.min(total));
        let target = match Entry(w).state() {
            PageState::Present(pfn) => match pfn.to_phys(base) {
                Some(pa) => Target::Address(SegmentAddr::Phys(pa)),
                None => {
                    flush(map, run)?;
                    return Err(FeedError::BadPfn { offset, pfn: pfn.0 });
                }
            },
            PageState::Hidden => {
                flush(map, run)?;
                return Err(FeedError::Hidden { offset });
            }
            PageState::Swapped { .. } => Target::Swapped,
            PageState::NotPresent => Target::NotPresent,
        };
        let extends = match (&run, target) {
            // A short (last) page, or one whose end would wrap, is pushed on
            // its own below so its error names its own offset.
            _ if len != page => false,
            (Some((Target::Address(a), l)), Target::Address(b)) => {
                a.checked_add(*l) == Some(b) && b.checked_add(page).is_some()
            }
            (Some((t, _)), t2) => *t == t2 && !matches!(t2, Target::Address(_)),
            (None, _) => false,
        };
        if extends {
            if let Some((_, l)) = &mut run {
                *l += page;
            }
        } else {
            flush(map, run.take())?;
            let whole = len == page && target_fits(target, page);
            if whole {
                run = Some((target, page));
            } else {
                map.push(len, target)?;
            }
        }
        offset += len;
    }
    flush(map, run)
}

/// Whether a page-long extent at `target` can start a run.
fn target_fits(target: Target, page: u64) -> bool {
    match target {
        Target::Address(a) => a.checked_add(page).is_some(),
        _ => true,
    }
}

fn flush(map: &mut PaMap, run: Option<(Target, u64)>) -> Result<(), FeedError> {
    if let Some((target, len)) = run {
        map.push(len, target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::AddressKind;
    use crate::map::{Coverage, Segment};

    // Words captured on a Linux 6.18 guest: a present memfd page (flags
    // FILE_OR_SHARED|PRESENT), the same read without CAP_SYS_ADMIN, a
    // never-touched page, and a synthetic swap entry (type 3, offset 0x1234).
    const PRESENT_MEMFD: u64 = 0xa000_0000_0012_3456;
    const HIDDEN_MEMFD: u64 = 0xa000_0000_0000_0000;
    const UNTOUCHED: u64 = 0;
    const SWAP_3_1234: u64 = SWAPPED | (0x1234 << 5) | 3;

    fn page() -> PageSize {
        PageSize::new(4096).unwrap()
    }

    #[test]
    fn decodes_states() {
        assert_eq!(
            Entry(PRESENT_MEMFD).state(),
            PageState::Present(Pfn(0x123456))
        );
        assert!(Entry(PRESENT_MEMFD).file_or_shared());
        assert!(!Entry(PRESENT_MEMFD).exclusive());
        assert_eq!(Entry(HIDDEN_MEMFD).state(), PageState::Hidden);
        assert_eq!(Entry(UNTOUCHED).state(), PageState::NotPresent);
        assert_eq!(
            Entry(SWAP_3_1234).state(),
            PageState::Swapped {
                swap_type: 3,
                offset: 0x1234
            }
        );
    }

    #[test]
    fn flag_bits_are_independent_of_state() {
        let w = PRESENT | EXCLUSIVE | SOFT_DIRTY | UFFD_WP | GUARD | 7;
        let e = Entry(w);
        assert_eq!(e.state(), PageState::Present(Pfn(7)));
        assert!(e.exclusive() && e.soft_dirty() && e.uffd_wp() && e.guard());
        assert!(!e.file_or_shared());
    }

    #[test]
    fn feed_coalesces_consecutive_pfns() {
        let mut m = PaMap::new(AddressKind::Physical, page(), 4 * 4096);
        let words = [
            PRESENT | 0x100,
            PRESENT | 0x101,
            PRESENT | 0x102,
            PRESENT | 0x80,
        ];
        feed(&mut m, page(), &words).unwrap();
        assert_eq!(
            m.segments(),
            &[
                Segment {
                    offset: 0,
                    length: 3 * 4096,
                    target: Target::phys(0x100000)
                },
                Segment {
                    offset: 3 * 4096,
                    length: 4096,
                    target: Target::phys(0x80000)
                },
            ]
        );
        assert_eq!(m.coverage(), Coverage::Full);
    }

    #[test]
    fn feed_refuses_hidden_pfns() {
        let mut m = PaMap::new(AddressKind::Physical, page(), 2 * 4096);
        let err = feed(&mut m, page(), &[PRESENT | 0x100, HIDDEN_MEMFD]).unwrap_err();
        assert_eq!(err, FeedError::Hidden { offset: 4096 });
    }

    #[test]
    fn feed_records_holes() {
        let mut m = PaMap::new(AddressKind::Physical, page(), 3 * 4096);
        feed(&mut m, page(), &[UNTOUCHED, SWAP_3_1234, PRESENT | 1]).unwrap();
        let t: Vec<_> = m.segments().iter().map(|s| s.target).collect();
        assert_eq!(
            t,
            [Target::NotPresent, Target::Swapped, Target::phys(0x1000)]
        );
    }

    #[test]
    fn feed_past_the_end_is_an_error() {
        let mut m = PaMap::new(AddressKind::Physical, page(), 4096);
        let err = feed(&mut m, page(), &[PRESENT | 1, PRESENT | 2]).unwrap_err();
        assert!(
            matches!(err, FeedError::Map(MapError::Empty { .. })),
            "{err:?}"
        );
    }

    /// Runs gathered by `feed` give the map that pushing page by page
    /// gives, for mixes of contiguous, descending, hole and swap entries.
    #[test]
    fn feed_equals_page_by_page_pushes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..200 {
            let n = (next() % 300) as usize + 1;
            let mut pfn = 0x1000u64;
            let words: Vec<u64> = (0..n)
                .map(|_| match next() % 10 {
                    0 => UNTOUCHED,
                    1 => SWAP_3_1234,
                    2 => {
                        pfn = next() % 0x10_0000 + 1;
                        PRESENT | pfn
                    }
                    3 => {
                        pfn = pfn.saturating_sub(1).max(1);
                        PRESENT | pfn
                    }
                    _ => {
                        pfn += 1;
                        PRESENT | pfn
                    }
                })
                .collect();
            // Some maps end mid-page, some are too short for the entries.
            let total = match case % 4 {
                0 => n as u64 * 4096 - 100,
                1 => (n as u64 / 2).max(1) * 4096,
                _ => n as u64 * 4096,
            };
            let mut fast = PaMap::new(AddressKind::Physical, page(), total);
            let got = feed(&mut fast, page(), &words);
            let mut slow = PaMap::new(AddressKind::Physical, page(), total);
            let mut want = Ok(());
            for &w in &words {
                let off = slow.filled_to();
                let len = 4096u64.min(total - off.min(total));
                let t = match Entry(w).state() {
                    PageState::Present(p) => Target::phys(p.0 * 4096),
                    PageState::Swapped { .. } => Target::Swapped,
                    PageState::NotPresent => Target::NotPresent,
                    PageState::Hidden => unreachable!(),
                };
                if let Err(e) = slow.push(len, t) {
                    want = Err(FeedError::Map(e));
                    break;
                }
            }
            assert_eq!(got, want, "case {case}");
            assert_eq!(fast, slow, "case {case}");
        }
    }

    #[test]
    fn feed_keeps_pages_before_an_error() {
        let mut m = PaMap::new(AddressKind::Physical, page(), 4 * 4096);
        let err = feed(
            &mut m,
            page(),
            &[
                PRESENT | 0x100,
                PRESENT | 0x101,
                HIDDEN_MEMFD,
                PRESENT | 0x102,
            ],
        )
        .unwrap_err();
        assert_eq!(err, FeedError::Hidden { offset: 2 * 4096 });
        assert_eq!(m.filled_to(), 2 * 4096);
        assert_eq!(m.segments().len(), 1);
        // The highest page whose end would wrap is refused at its own offset.
        let top = (u64::MAX >> 12) & PFN_MASK;
        let mut m = PaMap::new(AddressKind::Physical, page(), 3 * 4096);
        let err = feed(&mut m, page(), &[PRESENT | (top - 1), PRESENT | top]).unwrap_err();
        assert_eq!(
            err,
            FeedError::Map(MapError::AddressOverflow { offset: 4096 })
        );
        assert_eq!(m.filled_to(), 4096);
    }

    #[test]
    fn feed_rejects_pfn_overflow() {
        // A 55-bit PFN times a 4 KiB page fits; times a larger page may not.
        let big = PageSize::new(1 << 20).unwrap();
        let mut m = PaMap::new(AddressKind::Physical, big, 1 << 20);
        let err = feed(&mut m, big, &[PRESENT | PFN_MASK]).unwrap_err();
        assert_eq!(
            err,
            FeedError::BadPfn {
                offset: 0,
                pfn: PFN_MASK
            }
        );
    }
}
