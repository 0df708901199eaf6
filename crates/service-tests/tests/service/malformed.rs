//! Malformed requests: every frame no client would send (cut short, too
//! long, of another version or selector, with the wrong fds, ranges or
//! handles) gets an error reply that names its rule, and the service stays
//! up for the next client. One test, over 400 lines: it meets the refusals
//! in a row on one connection, in the order a connection can meet them, so
//! that the service's count of refusals at the end covers every one.

use crate::common::*;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use unimem::core::iokit::IoReturn;
use unimem::core::wire::{self, Header, Request};
use unimem::probe::probe;
use unimem::resolve::ServiceResolver;
use unimem::service::frame;
use unimem::service::rule::Rule;
use unimem::service::{Limits, Policy};
use unimem::surface::Backing;

const MIB: u64 = 1 << 20;

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
    // it is tested in availability.rs.
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
