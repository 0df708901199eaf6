//! The address map: coalescing, holes and gaps, address kinds kept apart,
//! untrusted segments and appending one map to another.

use super::*;

#[test]
fn a_map_refuses_addresses_of_another_space() {
    let page = PageSize::new(4096).unwrap();
    let mut dma = PaMap::new(AddressKind::DmaUnresolved, page, 2 * 4096);
    let e = dma.push(4096, Target::phys(0x1000)).unwrap_err();
    assert!(matches!(e, MapError::WrongKind { offset: 0, .. }), "{e}");
    dma.push(4096, Target::dma(0x1000)).unwrap();
    dma.push(4096, dma.target(0x2000)).unwrap();
    assert_eq!(
        dma.lookup(4096 + 8),
        Some(SegmentAddr::Dma(DmaAddr(0x2008)))
    );
    assert_eq!(dma.lookup(0).and_then(SegmentAddr::phys), None);
    let mut phys = PaMap::new(AddressKind::Physical, page, 4096);
    assert!(phys.push(4096, Target::dma(0x1000)).is_err());
    phys.push(4096, phys.target(0x1000)).unwrap();
    assert_eq!(
        phys.lookup(0).and_then(SegmentAddr::phys),
        Some(PhysAddr(0x1000))
    );
}

fn map(total: u64) -> PaMap {
    PaMap::new(AddressKind::Physical, PageSize::new(4096).unwrap(), total)
}

#[test]
fn contiguous_pages_coalesce() {
    let mut m = map(4 * 4096);
    for a in [0x1000, 0x2000, 0x3000, 0x9000] {
        m.push(4096, m.target(a)).unwrap();
    }
    assert_eq!(m.segments().len(), 2);
    assert_eq!(
        m.segments()[0],
        Segment {
            offset: 0,
            length: 3 * 4096,
            target: Target::phys(0x1000)
        }
    );
    assert_eq!(m.segments()[1].offset, 3 * 4096);
    assert_eq!(m.coverage(), Coverage::Full);
    assert_eq!(m.lookup(4096 + 5).map(|a| a.get()), Some(0x2005));
    assert_eq!(m.lookup(3 * 4096).map(|a| a.get()), Some(0x9000));
    assert_eq!(m.lookup(4 * 4096).map(|a| a.get()), None);
}

#[test]
fn descending_pages_do_not_coalesce() {
    let mut m = map(2 * 4096);
    m.push(4096, Target::phys(0x2000)).unwrap();
    m.push(4096, Target::phys(0x1000)).unwrap();
    assert_eq!(m.segments().len(), 2);
}

#[test]
fn holes_coalesce_by_kind_and_report_as_gaps() {
    let mut m = map(5 * 4096);
    m.push(4096, Target::phys(0x1000)).unwrap();
    m.push(4096, Target::NotPresent).unwrap();
    m.push(4096, Target::NotPresent).unwrap();
    m.push(4096, Target::Swapped).unwrap();
    m.push(4096, Target::phys(0x2000)).unwrap();
    assert_eq!(m.segments().len(), 4);
    assert_eq!(m.address_segment_count(), 2);
    assert_eq!(
        m.coverage(),
        Coverage::Gap {
            offset: 4096,
            length: 8192,
            reason: "not present",
            mapped: 8192
        }
    );
    assert_eq!(m.lookup(4096).map(|a| a.get()), None);
    // The page after the hole is not contiguous with the one before it
    // in buffer order, even though its address continues it.
    assert_eq!(m.lookup(4 * 4096).map(|a| a.get()), Some(0x2000));
}

#[test]
fn short_map_is_a_gap() {
    let mut m = map(3 * 4096);
    m.push(4096, Target::phys(0x1000)).unwrap();
    assert_eq!(
        m.coverage(),
        Coverage::Gap {
            offset: 4096,
            length: 8192,
            reason: "missing",
            mapped: 4096
        }
    );
}

#[test]
fn untrusted_segments_are_checked() {
    let mut m = map(2 * 4096);
    assert_eq!(
        m.push_at(4096, 4096, Target::phys(0)),
        Err(MapError::OutOfOrder {
            offset: 4096,
            expected: 0
        })
    );
    assert_eq!(
        m.push_at(0, 0, Target::phys(0)),
        Err(MapError::Empty { offset: 0 })
    );
    assert_eq!(
        m.push_at(0, 3 * 4096, Target::phys(0)),
        Err(MapError::PastEnd {
            offset: 0,
            total: 8192
        })
    );
    assert_eq!(
        m.push_at(0, u64::MAX, Target::phys(0)),
        Err(MapError::PastEnd {
            offset: 0,
            total: 8192
        })
    );
    assert_eq!(
        m.push_at(0, 4096, Target::phys(u64::MAX - 10)),
        Err(MapError::AddressOverflow { offset: 0 })
    );
    assert!(m.segments().is_empty());
}

#[test]
fn append_equals_pushing_each_extent() {
    let parts = [
        vec![(4096, Target::phys(0x1000)), (8192, Target::phys(0x9000))],
        vec![(4096, Target::phys(0xb000)), (4096, Target::NotPresent)],
        vec![(4096, Target::NotPresent), (4096, Target::phys(0x2000))],
    ];
    let mut pushed = map(9 * 4096);
    let mut appended = map(9 * 4096);
    for p in &parts {
        let mut part = map(p.iter().map(|e| e.0).sum());
        for &(l, t) in p {
            part.push(l, t).unwrap();
            pushed.push(l, t).unwrap();
        }
        appended.append(&part).unwrap();
    }
    assert_eq!(appended, pushed);
    // 0x9000 + 8192 = 0xb000: the border run coalesced.
    assert_eq!(appended.segments()[1].length, 3 * 4096);
    let mut small = map(4096);
    let mut part = map(2 * 4096);
    part.push(2 * 4096, Target::phys(0)).unwrap();
    assert!(small.append(&part).is_err());
}
