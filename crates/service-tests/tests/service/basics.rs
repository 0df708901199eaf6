//! Connection basics: a probe through the service matches this process's
//! own pagemap and is released on drop; a missing or stale socket, sixteen
//! clients at once, the limits, a second service on a live socket, the
//! checksum of the client's bytes, a stalled client beside a served one.

use crate::common::*;
use unimem::core::pattern::Pattern;
use unimem::core::wire::{self, selector, Request};
use unimem::probe::probe;
use unimem::resolve::service::{server_info, ServiceClient};
use unimem::resolve::{Resolver, ServiceResolver};
use unimem::service::{Limits, Policy};
use unimem::surface::{Backing, Surface};
use unimem::ErrorKind;

const MIB: u64 = 1 << 20;

#[test]
fn probe_through_service_matches_pagemap_and_releases_on_drop() {
    let svc = start(Policy::default(), Limits::default());
    let mut resolver = ServiceResolver::connect(&svc.socket).unwrap();
    assert_eq!(resolver.name(), "service");
    let out = probe(16 * MIB, Backing::Memfd, 0x5eed, &mut resolver, |_| {}).unwrap();
    assert!(
        out.verified(),
        "coverage, pattern or checksums failed: {:?}",
        out.checksums
    );
    assert!(out.prepared.pinned);
    assert_eq!(out.checksums.len(), 1);
    assert_eq!(out.checksums[0].length, 16 * MIB);
    assert_map_matches(std::process::id(), out.surface.addr().0, &out.prepared.map);
    let s = svc.handle.stats();
    assert_eq!((s.pinned_bytes, s.mappings, s.handles), (16 * MIB, 1, 1));
    drop(out);
    // Complete unpins before it replies; the service unmaps right after.
    let s = svc.handle.stats();
    assert_eq!(
        (s.pinned_bytes, s.handles),
        (0, 0),
        "complete on drop: {s:?}"
    );
    assert!(
        wait_until(5, || svc.handle.stats().mappings == 0),
        "the completed range was never unmapped: {:?}",
        svc.handle.stats()
    );
    let info = server_info(&svc.socket, 0).unwrap();
    assert_eq!(info.version, wire::VERSION);
    assert_eq!(info.max_prepare_bytes, Limits::default().max_prepare_bytes);
}

#[test]
fn missing_service_is_resolver_not_found_and_says_how_to_start_it() {
    let dir = TempDir::new("nosvc");
    let e = ServiceResolver::connect(&dir.0.join("none.sock")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResolverNotFound);
    assert!(e.message().contains("unimem serve"), "{e}");
    // A stale socket file nobody listens on.
    let stale = dir.0.join("stale.sock");
    let l = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    )
    .unwrap();
    rustix::net::bind(&l, &rustix::net::SocketAddrUnix::new(&stale).unwrap()).unwrap();
    drop(l);
    let e = ServiceResolver::connect(&stale).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResolverNotFound, "{e}");
}

#[test]
fn sixteen_concurrent_clients_succeed() {
    let svc = start(Policy::default(), Limits::default());
    let socket = svc.socket.clone();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut r = ServiceResolver::connect(&socket).unwrap();
                let out = probe(8 * MIB, Backing::Memfd, 100 + i, &mut r, |_| {}).unwrap();
                assert!(out.verified(), "client {i} did not verify");
                assert_map_matches(std::process::id(), out.surface.addr().0, &out.prepared.map);
                out
            })
        })
        .collect();
    let outs: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("a client failed"))
        .collect();
    let st = svc.handle.stats();
    assert_eq!(st.pinned_bytes, 16 * 8 * MIB);
    assert_eq!(st.connections, 16);
    drop(outs);
    assert_eq!(svc.handle.stats().pinned_bytes, 0);
}

#[test]
fn limits_refuse_and_name_the_rule() {
    let limits = Limits {
        max_prepare_bytes: 4 * MIB,
        max_connection_bytes: 5 * MIB,
        max_total_bytes: 64 * MIB,
        max_connections: 2,
        max_handles: 2,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let mut c = ServiceClient::connect(&svc.socket).unwrap();
    assert_eq!(c.info().max_prepare_bytes, 4 * MIB);
    let big = Surface::create(5 * MIB, Backing::Memfd).unwrap();
    let Err(e) = c.prepare(big.fd(), 0, big.len()) else {
        panic!("over the prepare limit")
    };
    assert_eq!(e.kind(), ErrorKind::Resources);
    assert!(e.message().contains("limit of bytes per prepare"), "{e}");
    let a = Surface::create(4 * MIB, Backing::Memfd).unwrap();
    let (h1, _) = c.prepare(a.fd(), 0, 2 * MIB).unwrap();
    let (_h2, _) = c.prepare(a.fd(), 2 * MIB, 2 * MIB).unwrap();
    let Err(e) = c.prepare(a.fd(), 0, MIB) else {
        panic!("over the handle limit")
    };
    assert!(e.message().contains("limit of prepared ranges"), "{e}");
    c.complete(h1).unwrap();
    let Err(e) = c.prepare(a.fd(), 0, 4 * MIB) else {
        panic!("over the connection limit")
    };
    assert!(e.message().contains("per connection"), "{e}");
    // Connections: two are served, the third is refused.
    let _c2 = ServiceClient::connect(&svc.socket).unwrap();
    let e = ServiceClient::connect(&svc.socket).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Resources);
    assert!(e.message().contains("limit of connections"), "{e}");
    drop(c);
    assert!(wait_until(5, || svc.handle.stats().connections == 1));
    assert_eq!(svc.handle.stats().pinned_bytes, 0);
}

#[test]
fn a_second_service_on_a_live_socket_is_refused() {
    let svc = start(Policy::default(), Limits::default());
    let e = unimem::service::Service::bind(unimem::service::Config::new(&svc.socket))
        .err()
        .unwrap();
    assert!(e.message().contains("already listening"), "{e}");
    // The first one still works.
    ServiceClient::connect(&svc.socket).unwrap();
}

#[test]
fn checksum_proves_the_service_reads_the_clients_bytes() {
    let svc = start(Policy::default(), Limits::default());
    let mut c = ServiceClient::connect(&svc.socket).unwrap();
    let mut s = Surface::create(2 * MIB, Backing::Memfd).unwrap();
    let p = Pattern::new(s.page_size(), 42);
    p.fill(0, s.as_mut_slice());
    let (h, _) = c.prepare(s.fd(), 0, s.len()).unwrap();
    let local = unimem::core::checksum::checksum(s.as_slice());
    assert_eq!(c.checksum(h, 0, s.len()).unwrap(), local);
    // A write after prepare is seen through the service's mapping (same pages).
    s.as_mut_slice()[4096] ^= 0xff;
    assert_ne!(c.checksum(h, 0, s.len()).unwrap(), local);
    assert_eq!(
        c.checksum(h, 4096, 4096).unwrap(),
        unimem::core::checksum::checksum(&s.as_slice()[4096..8192])
    );
    let _ = selector::CHECKSUM;
}

#[test]
fn a_stalled_client_does_not_block_others() {
    let svc = start(Policy::default(), Limits::default());
    // One client sends requests and never reads a reply, another connects
    // and never sends anything; both hold their connections open.
    let stalled = raw_connect(&svc.socket);
    let hs = Request::handshake(1, 1).encode();
    for _ in 0..64 {
        if rustix::net::send(&stalled, &hs, rustix::net::SendFlags::DONTWAIT).is_err() {
            break;
        }
    }
    let _silent = raw_connect(&svc.socket);
    let started = std::time::Instant::now();
    let mut r = ServiceResolver::connect(&svc.socket).unwrap();
    let out = probe(4 * MIB, Backing::Memfd, 11, &mut r, |_| {}).unwrap();
    assert!(out.verified());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "served too slowly"
    );
}
