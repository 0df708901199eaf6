//! Pagemap words decoded, and feeding them into a map: coalescing, holes,
//! hidden PFNs and overflow refused, equal to pushing page by page.

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
