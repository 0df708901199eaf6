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
mod tests;
