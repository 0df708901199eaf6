//! A client that dies leaves nothing behind in the service: no pinned
//! pages, no mappings, no fds. It runs alone in the suite (`alone()`), so
//! no other test opens fds in this process while the fd table is counted.

use crate::common::*;
use unimem::probe::probe;
use unimem::resolve::ServiceResolver;
use unimem::service::{Limits, Policy, Stats};
use unimem::surface::Backing;
use unimem_service_tests::env;

const MIB: u64 = 1 << 20;

fn assert_clean(svc: &Running, fds: usize, pin_kb: u64, what: &str) {
    assert!(
        wait_until(10, || svc.handle.stats().connections == 0),
        "{what}: the connection did not end: {:?}",
        svc.handle.stats()
    );
    let s = svc.handle.stats();
    let expect = Stats {
        pinned_bytes: 0,
        mappings: 0,
        handles: 0,
        preparing: 0,
        connections: 0,
        ..s
    };
    assert_eq!(s, expect, "{what}: the service still holds something");
    assert_eq!(
        vm_pin_kb(),
        pin_kb,
        "{what}: the kernel still counts pinned pages (VmPin)"
    );
    assert!(
        wait_until(5, || fd_count() == fds),
        "{what}: the service holds {} fds, {fds} before",
        fd_count()
    );
}

#[test]
fn a_client_killed_mid_prepare_or_while_holding_leaves_nothing_behind() {
    let _alone = alone();
    let svc = start(Policy::default(), Limits::default());
    let fds = fd_count();
    let pin_kb = vm_pin_kb();
    let size = 512 * MIB;

    // Killed while the service is preparing its surface.
    let mut c = child_client(
        Role::PrepareAndHold,
        None,
        &[socket_env(&svc.socket), (env::SIZE, size.to_string())],
    );
    assert_eq!(c.line().as_deref(), Some("SENDING"));
    let caught = wait_until(60, || svc.handle.stats().preparing > 0);
    c.child.kill().unwrap();
    assert!(
        caught,
        "never saw the prepare in progress: {:?}",
        svc.handle.stats()
    );
    let _ = c.child.wait();
    drop(c);
    assert_clean(&svc, fds, pin_kb, "killed mid-prepare");

    // Killed while holding a prepared, pinned range.
    let mut c = child_client(
        Role::PrepareAndHold,
        None,
        &[socket_env(&svc.socket), (env::SIZE, (64 * MIB).to_string())],
    );
    assert_eq!(c.line().as_deref(), Some("SENDING"));
    assert_eq!(c.line().as_deref(), Some("READY true"));
    assert_eq!(svc.handle.stats().pinned_bytes, 64 * MIB);
    assert!(
        vm_pin_kb() >= pin_kb + 64 * 1024,
        "VmPin does not show the pin"
    );
    c.child.kill().unwrap();
    let _ = c.child.wait();
    drop(c);
    assert_clean(&svc, fds, pin_kb, "killed while holding");

    // And the service still serves.
    let mut r = ServiceResolver::connect(&svc.socket).unwrap();
    assert!(probe(4 * MIB, Backing::Memfd, 9, &mut r, |_| {})
        .unwrap()
        .verified());
}
