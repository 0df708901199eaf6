//! The device checks at their edges: the last byte under a DMA mask, runs
//! ending exactly on a boundary, splits by segment size, alignment, holes
//! and values refused.

use super::*;
use crate::addr::{AddressKind, PageSize};
use crate::map::Target;

const PAGE: u64 = 4096;

fn map_of(segs: &[(u64, u64)]) -> PaMap {
    let total = segs.iter().map(|s| s.1).sum();
    let mut m = PaMap::new(AddressKind::Physical, PageSize::new(PAGE).unwrap(), total);
    for &(a, l) in segs {
        m.push(l, m.target(a)).unwrap();
    }
    m
}

fn check<'a>(v: &'a DeviceVerdict, name: &str) -> &'a Check {
    v.checks.iter().find(|c| c.constraint == name).unwrap()
}

#[test]
fn no_constraints_pass_with_one_entry_per_segment() {
    let m = map_of(&[(0x1000, PAGE), (0x9000, 2 * PAGE)]);
    let c = DeviceConstraints::default();
    assert!(!c.any());
    let v = verdict(&m, &c);
    assert!(v.ok);
    assert_eq!((v.map_segments, v.entries), (2, 2));
    assert!(v.checks.is_empty());
}

#[test]
fn dma_mask_edge_last_byte_at_the_mask_passes() {
    // 32 bits: the last reachable byte is 0xffff_ffff.
    let c = DeviceConstraints {
        dma_bits: Some(32),
        ..Default::default()
    };
    let at = map_of(&[(0x1_0000_0000 - PAGE, PAGE)]);
    assert!(verdict(&at, &c).ok);
    // One page further starts exactly past the mask.
    let past = map_of(&[(0x1_0000_0000, PAGE)]);
    let v = verdict(&past, &c);
    assert!(!v.ok);
    let d = check(&v, "dma_bits");
    assert_eq!(d.violations, 1);
    assert_eq!(
        d.first_violation,
        Some(Extent {
            offset: 0,
            address: 0x1_0000_0000,
            length: PAGE
        })
    );
    // A segment straddling the mask is one entry that reaches past it.
    let straddle = map_of(&[(0x1000, PAGE), (0x1_0000_0000 - PAGE, 2 * PAGE)]);
    let v = verdict(&straddle, &c);
    let d = check(&v, "dma_bits");
    assert_eq!(d.violations, 1);
    assert_eq!(d.first_violation.unwrap().offset, PAGE);
}

#[test]
fn dma_bits_64_reaches_the_top_of_the_address_space() {
    let c = DeviceConstraints {
        dma_bits: Some(64),
        segment_boundary: Some(1 << 20),
        ..Default::default()
    };
    // The highest segment PaMap admits ends at u64::MAX (its last byte
    // u64::MAX - 1); no boundary lies after it, and nothing overflows.
    let top = u64::MAX - 2 * PAGE + 1;
    let m = map_of(&[(top, 2 * PAGE - 1)]);
    let v = verdict(&m, &c);
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 1);
    assert_eq!(check(&v, "segment_boundary").segments_split, Some(0));
    // 63 bits: the same segment is beyond the mask.
    let c63 = DeviceConstraints {
        dma_bits: Some(63),
        ..Default::default()
    };
    assert!(!verdict(&m, &c63).ok);
    assert_eq!(mask_of(1), 1);
    assert_eq!(mask_of(64), u64::MAX);
}

#[test]
fn boundary_edges_ending_exactly_on_one_is_not_crossing() {
    let b = 64 * 1024;
    let c = DeviceConstraints {
        segment_boundary: Some(b),
        ..Default::default()
    };
    // Ends exactly on the boundary: one entry, no split.
    let exact = map_of(&[(b - 4 * PAGE, 4 * PAGE)]);
    let v = verdict(&exact, &c);
    assert_eq!(v.entries, 1);
    assert_eq!(check(&v, "segment_boundary").segments_split, Some(0));
    // One page more crosses it: two entries, split at the boundary.
    let cross = map_of(&[(b - 4 * PAGE, 5 * PAGE)]);
    let v = verdict(&cross, &c);
    assert!(v.ok);
    assert_eq!(v.entries, 2);
    let s = check(&v, "segment_boundary");
    assert_eq!(s.segments_split, Some(1));
    assert_eq!(s.first_split.unwrap().length, 5 * PAGE);
    // Starts on a boundary and spans three of them exactly.
    let three = map_of(&[(b, 3 * b)]);
    assert_eq!(verdict(&three, &c).entries, 3);
}

#[test]
fn boundary_at_the_top_of_the_address_space_does_not_overflow() {
    // The largest boundary, 2^63: the segment crosses it once.
    let c = DeviceConstraints {
        segment_boundary: Some(1 << 63),
        max_segment_size: Some(1 << 62),
        ..Default::default()
    };
    let start = (1u64 << 63) - PAGE;
    let m = map_of(&[(start, 2 * PAGE)]);
    let v = verdict(&m, &c);
    assert_eq!(v.entries, 2);
    assert_eq!(check(&v, "segment_boundary").segments_split, Some(1));
    assert_eq!(check(&v, "max_segment_size").segments_split, Some(0));
}

#[test]
fn max_segment_size_splits_and_the_count_is_checked() {
    let c = DeviceConstraints {
        max_segment_size: Some(64 * 1024),
        max_segments: Some(4),
        ..Default::default()
    };
    // 256 KiB contiguous: exactly 4 entries of 64 KiB — passes.
    let m = map_of(&[(0x10_0000, 256 * 1024)]);
    let v = verdict(&m, &c);
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 4);
    assert_eq!(check(&v, "max_segment_size").segments_split, Some(1));
    // One page more: 5 entries, the fifth is past the limit.
    let m = map_of(&[(0x10_0000, 256 * 1024 + PAGE)]);
    let v = verdict(&m, &c);
    assert!(!v.ok);
    let n = check(&v, "max_segments");
    assert_eq!(n.violations, 1);
    assert_eq!(
        n.first_violation,
        Some(Extent {
            offset: 256 * 1024,
            address: 0x10_0000 + 256 * 1024,
            length: PAGE
        })
    );
    // A max size that is not a multiple of the page (65535) still
    // covers every byte exactly once.
    let c = DeviceConstraints {
        max_segment_size: Some(65535),
        ..Default::default()
    };
    let v = verdict(&map_of(&[(0, 65536)]), &c);
    assert_eq!(v.entries, 2);
}

#[test]
fn alignment_is_checked_on_split_entries() {
    let c = DeviceConstraints {
        align: Some(8192),
        ..Default::default()
    };
    let m = map_of(&[(0x2000, PAGE), (0x5000, PAGE), (0x8000, PAGE)]);
    let v = verdict(&m, &c);
    let a = check(&v, "align");
    assert_eq!(a.violations, 1);
    assert_eq!(a.first_violation.unwrap().address, 0x5000);
    // A max size that is not a multiple of the alignment makes the
    // second entry of an aligned segment unaligned.
    let c = DeviceConstraints {
        align: Some(8192),
        max_segment_size: Some(3 * PAGE),
        ..Default::default()
    };
    let v = verdict(&map_of(&[(0x10000, 6 * PAGE)]), &c);
    assert_eq!(v.entries, 2);
    assert_eq!(check(&v, "align").violations, 1);
    assert_eq!(check(&v, "align").first_violation.unwrap().address, 0x13000);
}

#[test]
fn the_table_block_names_each_check_and_the_first_violation() {
    let c = DeviceConstraints {
        dma_bits: Some(32),
        max_segment_size: Some(64 * 1024),
        max_segments: Some(2),
        ..Default::default()
    };
    let m = map_of(&[(0x1_0000_0000, 128 * 1024 + PAGE)]);
    let text = render_verdict(&verdict(&m, &c));
    assert!(
        text.starts_with(
            "[-] Device constraints VIOLATED: 3 scatter-gather entries from 1 address segments\n"
        ),
        "{text}"
    );
    assert!(text.contains("    [-] DMA mask 32 bits: 3 entries reach above 0xffffffff\n        first: offset 0x0, address 0x100000000, 65536 bytes\n"), "{text}");
    assert!(
        text.contains("    [+] max segment size 64 KiB: 1 address segments split to fit\n"),
        "{text}"
    );
    assert!(text.contains("    [-] max segments 2: the list has 3 entries, 1 too many\n        first: offset 0x20000, address 0x100020000, 4096 bytes\n"), "{text}");
}

#[test]
fn holes_make_no_entries() {
    let mut m = PaMap::new(
        AddressKind::Physical,
        PageSize::new(PAGE).unwrap(),
        3 * PAGE,
    );
    m.push(PAGE, Target::phys(0x1000)).unwrap();
    m.push(PAGE, Target::NotPresent).unwrap();
    m.push(PAGE, Target::phys(0x9000)).unwrap();
    let c = DeviceConstraints {
        max_segments: Some(2),
        ..Default::default()
    };
    let v = verdict(&m, &c);
    assert!(v.ok);
    assert_eq!((v.map_segments, v.entries), (2, 2));
}

#[test]
fn bad_values_are_refused() {
    let v = |c: DeviceConstraints| c.validate(PAGE);
    assert_eq!(
        v(DeviceConstraints {
            dma_bits: Some(0),
            ..Default::default()
        }),
        Err(ConstraintError::DmaBits(0))
    );
    assert!(v(DeviceConstraints {
        dma_bits: Some(65),
        ..Default::default()
    })
    .is_err());
    assert!(v(DeviceConstraints {
        dma_bits: Some(64),
        ..Default::default()
    })
    .is_ok());
    assert!(matches!(
        v(DeviceConstraints {
            segment_boundary: Some(3 * PAGE),
            ..Default::default()
        }),
        Err(ConstraintError::NotPowerOfTwo { .. })
    ));
    assert!(matches!(
        v(DeviceConstraints {
            align: Some(0),
            ..Default::default()
        }),
        Err(ConstraintError::NotPowerOfTwo { .. })
    ));
    assert!(matches!(
        v(DeviceConstraints {
            max_segment_size: Some(512),
            ..Default::default()
        }),
        Err(ConstraintError::BelowPage { .. })
    ));
    assert_eq!(
        v(DeviceConstraints {
            max_segments: Some(0),
            ..Default::default()
        }),
        Err(ConstraintError::NoSegments)
    );
    // Alignment finer than a page is legitimate.
    assert!(v(DeviceConstraints {
        align: Some(512),
        ..Default::default()
    })
    .is_ok());
}
