//! Clients under other uids, in their own processes: one the policy admits
//! gets addresses that match root's own reading of its pagemap, and keeps
//! them pinned until it lets go; one it does not admit is refused, and
//! told it was the policy.

use crate::common::*;
use unimem::service::Limits;

const NOBODY: u32 = 65534;
const NOT_ADMITTED: u32 = 65533;

#[test]
fn unprivileged_client_gets_addresses_matching_independent_pagemap() {
    let svc = start(admitting(NOBODY), Limits::default());
    let mut c = child_client(Role::Probe, Some(NOBODY), &[socket_env(&svc.socket)]);
    assert_eq!(c.line().as_deref(), Some(format!("uid {NOBODY}").as_str()));
    let connected = c.line().unwrap();
    assert_eq!(
        connected, "connected",
        "the unprivileged child could not connect"
    );
    let head = c.line().unwrap();
    assert!(!head.starts_with("ERR"), "child failed: {head}");
    let f: Vec<&str> = head.split(' ').collect();
    let (va, len): (u64, u64) = (f[1].parse().unwrap(), f[3].parse().unwrap());
    assert_eq!(f[5], "true", "the child's probe did not verify");
    let mut map = unimem::core::PaMap::new(
        unimem::core::AddressKind::Physical,
        unimem::core::PageSize::new(rustix::param::page_size() as u64).unwrap(),
        len,
    );
    loop {
        let l = c.line().expect("child ended early");
        if l == "READY" {
            break;
        }
        let p: Vec<u64> = l.split(' ').skip(1).map(|x| x.parse().unwrap()).collect();
        map.push_at(p[0], p[1], unimem::core::Target::phys(p[2]))
            .unwrap();
    }
    // The child cannot see PFNs itself (pagemap hides them from uid 65534),
    // so the reference is root reading the child's pagemap.
    let pid = c.child.id();
    let before = stable_addresses(pid, va, len);
    assert!(
        before.iter().all(Option::is_some),
        "child's pages not all present"
    );
    assert_map_matches(pid, va, &map);
    assert_eq!(
        stable_addresses(pid, va, len),
        before,
        "pinned pages moved during the test"
    );
    assert_eq!(svc.handle.stats().pinned_bytes, len);
    assert!(c.finish().success());
    assert!(wait_until(5, || svc.handle.stats().connections == 0));
    assert_eq!(svc.handle.stats().pinned_bytes, 0);
}

#[test]
fn uid_the_policy_does_not_admit_gets_permission_denied() {
    let svc = start(admitting(NOBODY), Limits::default());
    let mut c = child_client(Role::Probe, Some(NOT_ADMITTED), &[socket_env(&svc.socket)]);
    assert_eq!(
        c.line().as_deref(),
        Some(format!("uid {NOT_ADMITTED}").as_str())
    );
    let l = c.line().unwrap();
    assert!(
        l.starts_with("ERR PermissionDenied"),
        "expected permission denied, got: {l}"
    );
    assert!(l.contains("policy"), "the refusal must name the rule: {l}");
    assert!(c.finish().success());
    assert!(svc.handle.stats().refused >= 1);
    assert_eq!(svc.handle.stats().connections, 0);
}
