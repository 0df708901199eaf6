//! One connection's pin ring: every prepare takes slots of its buffer table
//! and every complete gives them back, so a connection may prepare and
//! complete far more ranges than its table holds, and the kernel's count of
//! pinned pages comes back to where it was.

use crate::common::*;
use unimem::service::{Limits, Policy};
use unimem::surface::{Backing, Surface};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[test]
fn a_connection_reuses_its_pin_slots_and_leaves_no_pin_behind() {
    let _alone = alone();
    // Two handles and 2 GiB per connection: a table of 2 + 2 slots. A range
    // just over 1 GiB takes two of them.
    let limits = Limits {
        max_handles: 2,
        max_connection_bytes: 2 * GIB,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let base = Baseline::now();
    let big = Surface::create(GIB + 2 * MIB, Backing::Memfd).unwrap();
    let small = Surface::create(4 * MIB, Backing::Memfd).unwrap();
    let mut c = unimem::resolve::service::ServiceClient::connect(&svc.socket).unwrap();
    let mut slots_used = 0u64;
    for round in 0..3 {
        let big_len = GIB + MIB;
        let (hb, map) = c.prepare(big.fd(), MIB, big_len).unwrap();
        assert_map_matches(std::process::id(), big.addr().0 + MIB, &map);
        let (hs, map) = c.prepare(small.fd(), 0, small.len()).unwrap();
        assert_map_matches(std::process::id(), small.addr().0, &map);
        slots_used += 3;
        assert!(
            vm_pin_kb() >= base.pin_kb + (big_len + small.len()) / 1024,
            "round {round}: VmPin {} KiB does not count the pinned ranges ({} before)",
            vm_pin_kb(),
            base.pin_kb
        );
        c.complete(hb).unwrap();
        c.complete(hs).unwrap();
        assert_eq!(svc.handle.stats().pinned_bytes, 0, "round {round}");
    }
    // Small ranges, two held at a time, many times over the table's size.
    for i in 0..100u64 {
        let off = (i % 4) * MIB;
        let (h1, map) = c.prepare(small.fd(), off, MIB).unwrap();
        assert_map_matches(std::process::id(), small.addr().0 + off, &map);
        let (h2, _) = c.prepare(small.fd(), 0, small.len()).unwrap();
        slots_used += 2;
        c.complete(h2).unwrap();
        c.complete(h1).unwrap();
    }
    assert!(slots_used > 100, "the test used only {slots_used} slots");
    assert_eq!(
        vm_pin_kb(),
        base.pin_kb,
        "VmPin did not come back after every range was completed"
    );
    drop((c, big, small));
    assert_nothing_held(&svc.handle, base, "after the connection closed");
}
