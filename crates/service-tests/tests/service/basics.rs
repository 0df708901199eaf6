//! The resolver service end to end: a real service in this process, real
//! clients (this process, child processes under other uids, raw sockets
//! sending malformed frames). Needs root; fails with a clear message if not.

use crate::common::*;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use unimem::core::iokit::IoReturn;
use unimem::core::pattern::Pattern;
use unimem::core::wire::{self, selector, Header, Request};
use unimem::probe::probe;
use unimem::resolve::service::{server_info, ServiceClient};
use unimem::resolve::{Resolver, ServiceResolver};
use unimem::service::frame;
use unimem::service::rule::Rule;
use unimem::service::{Limits, Policy};
use unimem::surface::{Backing, Surface};
use unimem::ErrorKind;

const MIB: u64 = 1 << 20;
const NOBODY: u32 = 65534;
const NOT_ADMITTED: u32 = 65533;

/// The map the service returned equals an independent pagemap reading of
/// our own mapping of the same memfd, page by page.
fn assert_map_matches(pid: u32, va: u64, map: &unimem::core::PaMap) {
    let page = rustix::param::page_size() as u64;
    let own = stable_addresses(pid, va, map.total_length());
    for (i, addr) in own.iter().enumerate() {
        let off = i as u64 * page;
        assert_eq!(
            map.lookup(off).map(|x| x.get()),
            *addr,
            "page {i} (offset {off:#x}): service says {:?}, pagemap of pid {pid} says {addr:?}",
            map.lookup(off)
        );
    }
}

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
fn unprivileged_client_gets_addresses_matching_independent_pagemap() {
    let svc = start(
        Policy {
            allow_uids: vec![NOBODY],
            allow_gids: vec![],
            admin_gids: vec![],
        },
        Limits::default(),
    );
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
    let svc = start(
        Policy {
            allow_uids: vec![NOBODY],
            allow_gids: vec![],
            admin_gids: vec![],
        },
        Limits::default(),
    );
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

/// Sends raw bytes (and fds), returns the reply's header and length.
fn raw_call(s: &OwnedFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> (Header, usize) {
    frame::send(s.as_fd(), bytes, fds).unwrap();
    let mut buf = [0u8; wire::MAX_MESSAGE + 1];
    let f = frame::recv(s.as_fd(), &mut buf)
        .unwrap()
        .expect("the service closed the connection");
    (Header::parse(&buf[..f.len]).unwrap(), f.len)
}

fn expect_error(
    s: &OwnedFd,
    what: &str,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    status: IoReturn,
    rule: Option<Rule>,
) {
    let (h, len) = raw_call(s, bytes, fds);
    assert_eq!(
        h.status(),
        status,
        "{what}: wrong status (detail {:#x})",
        h.detail.get()
    );
    assert_eq!(len, 16, "{what}: an error reply is a bare header");
    if let Some(rule) = rule {
        assert_eq!(
            Rule::from_detail(h.detail.get()),
            Some(rule),
            "{what}: wrong rule"
        );
    }
}

#[test]
fn every_malformed_frame_gets_an_error_and_the_service_stays_up() {
    // Every refusal in a row on one connection: the limit that would close
    // it is tested in service_availability.rs.
    let limits = Limits {
        max_refusals: 1000,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let s = raw_connect(&svc.socket);
    let none: &[BorrowedFd<'_>] = &[];
    let ps = rustix::param::page_size() as u64;
    let prepare = |offset, length| Request::prepare(offset, length, 0, 0).encode();

    expect_error(
        &s,
        "before handshake",
        &Request::complete(1).encode(),
        none,
        IoReturn::NOT_READY,
        Some(Rule::HandshakeFirst),
    );
    let hs = Request::handshake(2, 3).encode();
    expect_error(
        &s,
        "no common version",
        &hs,
        none,
        IoReturn::UNSUPPORTED,
        None,
    );
    let hs = Request::handshake(1, 1).encode();
    assert!(raw_call(&s, &hs, none).0.status().is_success());

    let good = Request::complete(1).encode();
    expect_error(
        &s,
        "truncated header",
        &good[..10],
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Malformed),
    );
    expect_error(
        &s,
        "truncated prepare",
        &prepare(0, ps)[..20],
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Malformed),
    );
    let mut long = good.clone();
    long.push(0);
    expect_error(
        &s,
        "one byte too long",
        &long,
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Malformed),
    );
    let mut huge = good.clone();
    huge.resize(5000, 0xAB);
    expect_error(
        &s,
        "oversized",
        &huge,
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Oversized),
    );
    let mut v = good.clone();
    v[4] = 9;
    expect_error(
        &s,
        "wrong version",
        &v,
        none,
        IoReturn::UNSUPPORTED,
        Some(Rule::Malformed),
    );
    let mut sel = good.clone();
    sel[6] = 77;
    expect_error(
        &s,
        "unknown selector",
        &sel,
        none,
        IoReturn::UNSUPPORTED,
        Some(Rule::Malformed),
    );
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    expect_error(
        &s,
        "bad magic",
        &magic,
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Malformed),
    );
    let mut status = good.clone();
    status[8] = 1;
    expect_error(
        &s,
        "status set in a request",
        &status,
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Malformed),
    );

    for (what, req) in [
        ("bogus handle: segments", Request::segments(777, 0)),
        ("bogus handle: complete", Request::complete(777)),
        ("bogus handle: checksum", Request::checksum(777, 0, 8)),
    ] {
        expect_error(
            &s,
            what,
            &req.encode(),
            none,
            IoReturn::NOT_FOUND,
            Some(Rule::UnknownHandle),
        );
    }

    // Wrong fd kinds: a pipe, a socket, a character device, a file on a
    // disk file system.
    let (pr, _pw) = rustix::pipe::pipe().unwrap();
    expect_error(
        &s,
        "pipe fd",
        &prepare(0, ps),
        &[pr.as_fd()],
        IoReturn::UNSUPPORTED,
        Some(Rule::FdKind),
    );
    let sock = raw_connect(&svc.socket);
    expect_error(
        &s,
        "socket fd",
        &prepare(0, ps),
        &[sock.as_fd()],
        IoReturn::UNSUPPORTED,
        Some(Rule::FdKind),
    );
    drop(sock);
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    expect_error(
        &s,
        "char device fd",
        &prepare(0, ps),
        &[null.as_fd()],
        IoReturn::UNSUPPORTED,
        Some(Rule::FdKind),
    );
    let disk_path = std::env::current_exe().unwrap().with_extension("fdkind");
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&disk_path)
        .unwrap();
    disk.set_len(ps).unwrap();
    let magic = unimem::service::fs_magic(&disk).unwrap();
    assert!(
        magic != unimem::service::TMPFS_MAGIC,
        "{} is on tmpfs; the test needs a disk file",
        disk_path.display()
    );
    expect_error(
        &s,
        "disk file fd",
        &prepare(0, ps),
        &[disk.as_fd()],
        IoReturn::UNSUPPORTED,
        Some(Rule::FdKind),
    );
    let _ = std::fs::remove_file(&disk_path);

    let m = memfd(4 * ps);
    let ro = std::fs::File::open(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&m)
    ))
    .unwrap();
    expect_error(
        &s,
        "read-only fd",
        &prepare(0, ps),
        &[ro.as_fd()],
        IoReturn::NOT_PERMITTED,
        Some(Rule::FdAccess),
    );
    expect_error(
        &s,
        "missing fd",
        &prepare(0, ps),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::MissingFd),
    );
    let m2 = memfd(ps);
    expect_error(
        &s,
        "two fds",
        &prepare(0, ps),
        &[m.as_fd(), m2.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ExtraFds),
    );
    let many = [
        m.as_fd(),
        m.as_fd(),
        m.as_fd(),
        m.as_fd(),
        m2.as_fd(),
        m2.as_fd(),
    ];
    let r = frame::send(s.as_fd(), &prepare(0, ps), &many);
    if r.is_ok() {
        let mut buf = [0u8; wire::MAX_MESSAGE + 1];
        let f = frame::recv(s.as_fd(), &mut buf).unwrap().unwrap();
        let h = Header::parse(&buf[..f.len]).unwrap();
        assert_eq!(
            Rule::from_detail(h.detail.get()),
            Some(Rule::ExtraFds),
            "six fds"
        );
    }
    expect_error(
        &s,
        "fd with segments",
        &Request::segments(1, 0).encode(),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ExtraFds),
    );
    expect_error(
        &s,
        "length past the surface",
        &prepare(0, 5 * ps),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Range),
    );
    expect_error(
        &s,
        "offset past the surface",
        &prepare(4 * ps, ps),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Range),
    );
    expect_error(
        &s,
        "range wraps",
        &prepare(ps, u64::MAX - ps + 1),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Range),
    );
    expect_error(
        &s,
        "zero length",
        &prepare(0, 0),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Range),
    );
    expect_error(
        &s,
        "unaligned offset",
        &prepare(1, ps),
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Alignment),
    );
    let va = Request::prepare(0, ps, 0x1000, 0).encode();
    expect_error(
        &s,
        "client_va on Linux",
        &va,
        &[m.as_fd()],
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ClientVa),
    );

    // A real prepare on the same connection, then bad uses of its handle.
    let (h, len) = raw_call(&s, &prepare(0, 4 * ps), &[m.as_fd()]);
    assert!(
        h.status().is_success(),
        "valid prepare after all that: {:?}",
        h.status()
    );
    assert_eq!(len, wire::MAX_MESSAGE);
    let seg = |c| Request::segments(1, c).encode();
    expect_error(
        &s,
        "continuation past the end",
        &seg(8 * ps),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Continuation),
    );
    expect_error(
        &s,
        "unaligned continuation",
        &seg(3),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::Continuation),
    );
    let ck = |o, l| Request::checksum(1, o, l).encode();
    expect_error(
        &s,
        "checksum past the end",
        &ck(0, 5 * ps),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ChecksumRange),
    );
    expect_error(
        &s,
        "checksum not in words",
        &ck(4, 8),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ChecksumRange),
    );
    expect_error(
        &s,
        "empty checksum",
        &ck(0, 0),
        none,
        IoReturn::BAD_ARGUMENT,
        Some(Rule::ChecksumRange),
    );
    assert!(raw_call(&s, &ck(0, 4 * ps), none).0.status().is_success());
    // The sealed file cannot shrink; the client punches its pages out
    // instead: the service says the surface changed, never dies of SIGBUS
    // and never sums pages it would have to fault in.
    assert_eq!(rustix::fs::ftruncate(&m, 0), Err(rustix::io::Errno::PERM));
    rustix::fs::fallocate(
        &m,
        rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
        0,
        4 * ps,
    )
    .unwrap();
    expect_error(
        &s,
        "checksum after a punched hole",
        &ck(0, 4 * ps),
        none,
        IoReturn::NOT_READY,
        Some(Rule::SurfaceChanged),
    );
    assert_eq!(
        rustix::fs::fstat(&m).unwrap().st_blocks,
        0,
        "the checksum filled the punched hole"
    );
    assert!(raw_call(&s, &Request::complete(1).encode(), none)
        .0
        .status()
        .is_success());
    expect_error(
        &s,
        "complete twice",
        &Request::complete(1).encode(),
        none,
        IoReturn::NOT_FOUND,
        Some(Rule::UnknownHandle),
    );

    // A zero-length frame ends the connection (it reads as end of stream).
    frame::send(s.as_fd(), &[], none).unwrap();
    drop(s);

    // The service is still up for the next client.
    let mut r = ServiceResolver::connect(&svc.socket).unwrap();
    let out = probe(4 * MIB, Backing::Memfd, 7, &mut r, |_| {}).unwrap();
    assert!(out.verified());
    drop(out);
    assert!(wait_until(5, || {
        let st = svc.handle.stats();
        st.connections == 1 && st.mappings == 0
    }));
    let st = svc.handle.stats();
    assert_eq!(
        (st.pinned_bytes, st.mappings, st.handles),
        (0, 0, 0),
        "{st:?}"
    );
    assert!(st.refused >= 30, "every refusal is counted: {st:?}");
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
