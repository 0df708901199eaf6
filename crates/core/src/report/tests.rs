//! The seed's table and JSON segments against hand-written expectations.

use super::*;
use crate::addr::{AddressKind, PageSize};
use crate::pattern::Pattern;

fn seed_map() -> PaMap {
    let mut m = PaMap::new(AddressKind::Physical, PageSize::new(16384).unwrap(), 65536);
    // The seed's example: four 16 KiB pages, each its own segment
    // (pushed out of order so they do not coalesce).
    for a in [0x800100000u64, 0x800104000, 0x800108000, 0x80010c000] {
        m.push(16384, m.target(a)).unwrap();
    }
    m
}

#[test]
fn seed_block_is_reproduced_byte_for_byte() {
    // The seed's addresses are contiguous, so they coalesce into one
    // segment; render a map built from non-contiguous pages with the
    // same columns instead, and compare with the seed's layout.
    let mut m = PaMap::new(AddressKind::Physical, PageSize::new(16384).unwrap(), 65536);
    for a in [0x800100000u64, 0x800108000, 0x800104000, 0x80010c000] {
        m.push(16384, m.target(a)).unwrap();
    }
    let expected = "\
=== Physical Address Map ===
Total length:   65536 bytes
Segment count:  4

Seg#     Phys Addr       Length    Pages
--------------------------------------------------
0        0x0000800100000  16384 B      1
1        0x0000800108000  16384 B      1
2        0x0000800104000  16384 B      1
3        0x000080010c000  16384 B      1
--------------------------------------------------
Total mapped: 65536 bytes (4 pages)
";
    assert_eq!(render_map(&m, false), expected);
    let v = Pattern::new(PageSize::new(16384).unwrap(), 1).verify(0, &[]);
    assert_eq!(
        render_verification(&m, &v),
        "[+] Full surface coverage verified\n[+] Data integrity OK -- test pattern intact\n"
    );
}

#[test]
fn contiguous_seed_pages_are_one_segment() {
    let m = seed_map();
    let out = render_map(&m, false);
    assert!(out.contains("Segment count:  1\n"), "{out}");
    assert!(
        out.contains("0        0x0000800100000  65536 B      4\n"),
        "{out}"
    );
}

#[test]
fn wide_values_keep_columns_aligned() {
    let mut m = PaMap::new(AddressKind::Physical, PageSize::new(4096).unwrap(), 1 << 30);
    m.push(1 << 30, Target::phys(0x1_0000_0000_0000)).unwrap();
    let out = render_map(&m, false);
    let lines: Vec<&str> = out.lines().collect();
    let head = lines.iter().find(|l| l.starts_with("Seg#")).unwrap();
    let row = lines.iter().find(|l| l.starts_with("0 ")).unwrap();
    assert_eq!(
        head.find("Length").unwrap() + 6,
        row.find(" B").unwrap(),
        "{out}"
    );
    assert_eq!(head.len(), row.len(), "{out}");
}

#[test]
fn iova_is_never_called_physical() {
    let mut m = PaMap::new(AddressKind::Iova, PageSize::new(16384).unwrap(), 16384);
    m.push(16384, Target::dma(0x4000)).unwrap();
    let out = render_map(&m, false);
    assert!(!out.contains("Phys"), "{out}");
    assert!(out.contains("IOVA"), "{out}");
}

#[test]
fn large_maps_are_elided_with_a_summary() {
    let mut m = PaMap::new(
        AddressKind::Physical,
        PageSize::new(4096).unwrap(),
        100 * 8192,
    );
    for i in 0..100u64 {
        m.push(8192, Target::phys(0x100000 * (i + 1))).unwrap();
    }
    let out = render_map(&m, false);
    assert!(out.contains("... 68 rows not shown"), "{out}");
    assert!(out.contains("\n15       0x"), "{out}");
    assert!(!out.contains("\n16       0x"), "{out}");
    assert!(out.contains("\n84       0x"), "{out}");
    assert!(
        out.contains("Segments: 100, smallest 8 KiB, largest 8 KiB"),
        "{out}"
    );
    let all = render_map(&m, true);
    assert!(all.contains("\n50       0x") && !all.contains("rows not shown"));
    assert_eq!(summary(&m).histogram, vec![(8192, 100)]);
}

#[test]
fn holes_are_rows_of_their_own() {
    let mut m = PaMap::new(
        AddressKind::Physical,
        PageSize::new(4096).unwrap(),
        3 * 4096,
    );
    m.push(4096, Target::phys(0x1000)).unwrap();
    m.push(4096, Target::Unmapped).unwrap();
    m.push(4096, Target::phys(0x5000)).unwrap();
    let out = render_map(&m, false);
    assert!(out.contains("\n-        (unmapped)"), "{out}");
    assert!(out.contains("\n1        0x0000000005000"), "{out}");
    assert!(out.contains("Segment count:  2\n"));
    let v = Verification::empty();
    assert!(render_verification(&m, &v)
        .starts_with("[-] Coverage gap: 4096 bytes at offset 0x1000 are unmapped"));
}

#[test]
fn integrity_failures_show_bytes() {
    let p = Pattern::new(PageSize::new(4096).unwrap(), 0);
    let mut buf = vec![0u8; 8192];
    p.fill(0, &mut buf);
    buf.copy_within(0..8, 4096);
    let out = render_integrity(&p.verify(0, &buf));
    assert!(
        out.starts_with("[-] Data integrity FAILED -- 1 of 1024 words differ"),
        "{out}"
    );
    assert!(out.contains("at 0x000000001000: expected 00 00 00 00 01 00 00 00 found 00 00 00 00 00 00 00 00 (the bytes of offset 0x0)"), "{out}");
}
