//! Hostile clients against a live service: many connections sending random
//! and structured-bad frames — truncated, oversized, wrong version, unknown
//! selectors, bogus handles (including other connections' handles), the
//! wrong fds, too many fds, no fd, ranges past the surface and past u64 —
//! interleaved with well-formed clients that must all keep succeeding.
//!
//! Every reply a hostile client gets is checked: it is one well-formed
//! message for its request, and nothing succeeds that should not (no
//! prepare without exactly one read-write memfd of the client's, no
//! segments, checksum or complete for a handle the connection was not
//! given). Bounded by a frame count and a wall-clock budget; at the end the
//! service holds nothing and has no more fds than before.

use crate::common::*;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use std::collections::HashSet;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unimem::core::wire::{self, selector, Header, Reply, Request, MAX_MESSAGE, VERSION};
use unimem::probe::probe;
use unimem::resolve::ServiceResolver;
use unimem::service::frame;
use unimem::service::rule::Rule;
use unimem::service::{Limits, Policy};
use unimem::surface::Backing;

const MIB: u64 = 1 << 20;
const HOSTILE_THREADS: u64 = 8;
const GOOD_THREADS: u64 = 3;
/// Frames each hostile thread sends at most.
const FRAMES_PER_THREAD: u64 = 12_500;
/// Connections held open and silent throughout: with the hostile ones (two
/// each, counting a closed one the service has not reaped yet, and one
/// passed as an fd) and the good ones, close to the cap of 64.
const SILENT: usize = 32;
/// And the time it may take.
const BUDGET_SECS: u64 = 60;

/// Fds a hostile client may attach.
struct Kit {
    page: u64,
    /// Its own read-write memfd of 16 pages (a prepare of it may succeed).
    own: OwnedFd,
    ro: OwnedFd,
    opath: OwnedFd,
    pipe: (OwnedFd, OwnedFd),
    null: OwnedFd,
    sock: OwnedFd,
}

impl Kit {
    fn new(socket: &Path) -> Kit {
        use rustix::fs::{Mode, OFlags};
        let page = rustix::param::page_size() as u64;
        let own = memfd(16 * page);
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&own));
        Kit {
            page,
            ro: rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap(),
            opath: rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap(),
            own,
            pipe: rustix::pipe::pipe().unwrap(),
            null: rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .unwrap(),
            sock: raw_connect(socket),
        }
    }

    /// Fd choices: index 0 is the only one a prepare may succeed with.
    fn fds(&self) -> [BorrowedFd<'_>; 6] {
        [
            self.own.as_fd(),
            self.ro.as_fd(),
            self.opath.as_fd(),
            self.pipe.0.as_fd(),
            self.null.as_fd(),
            self.sock.as_fd(),
        ]
    }
}

/// `sendmsg` with any number of fds (the library's sender caps them).
fn send_raw(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> rustix::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(16))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map(|_| ())
}

fn edgy(rng: &mut Rng, page: u64) -> u64 {
    match rng.below(7) {
        0 => 0,
        1 => rng.below(24) * page,
        2 => rng.below(24) * page + 1 + rng.below(page - 1),
        3 => u64::MAX - rng.below(3 * page),
        4 => 1 << rng.below(64),
        5 => rng.below(6),
        _ => rng.next(),
    }
}

/// What a hostile frame was meant to be.
struct Frame {
    bytes: Vec<u8>,
    /// Indices into [`Kit::fds`], repeats allowed.
    fds: Vec<usize>,
}

fn hostile_frame(rng: &mut Rng, page: u64) -> Frame {
    let req = |rng: &mut Rng| -> Request {
        match rng.below(5) {
            0 => Request::handshake(rng.below(3) as u16, rng.below(3) as u16 + 1),
            1 => Request::prepare(
                edgy(rng, page),
                edgy(rng, page),
                if rng.chance(8) { rng.next() } else { 0 },
                rng.next() as u32,
            ),
            2 => Request::segments(
                if rng.chance(2) {
                    rng.below(40)
                } else {
                    rng.next()
                },
                edgy(rng, page),
            ),
            3 => Request::complete(if rng.chance(2) {
                rng.below(40)
            } else {
                rng.next()
            }),
            _ => Request::checksum(
                if rng.chance(2) {
                    rng.below(40)
                } else {
                    rng.next()
                },
                edgy(rng, page),
                edgy(rng, page),
            ),
        }
    };
    let mut fds = Vec::new();
    let mut bytes = match rng.below(10) {
        // Random bytes, sometimes with a valid header in front.
        0 => {
            let cap = if rng.chance(4) { 9000 } else { 80 };
            let n = rng.below(cap) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if rng.chance(2) && n >= 16 {
                b[..4].copy_from_slice(&wire::MAGIC.to_le_bytes());
                b[4..6].copy_from_slice(&VERSION.to_le_bytes());
                b[6..8].copy_from_slice(&(rng.below(7) as u16).to_le_bytes());
            }
            b
        }
        // Truncated.
        1 => {
            let mut b = req(rng).encode();
            b.truncate(rng.below(b.len() as u64) as usize);
            b
        }
        // Oversized.
        2 => {
            let mut b = req(rng).encode();
            b.resize(MAX_MESSAGE + 1 + rng.below(60_000) as usize, 0);
            b
        }
        // Wrong version, unknown selector, bad magic, status or reserved set.
        3 => {
            let mut b = req(rng).encode();
            match rng.below(4) {
                0 => b[4..6].copy_from_slice(&(2 + rng.below(100) as u16).to_le_bytes()),
                1 => b[6..8].copy_from_slice(&(5 + rng.below(1000) as u16).to_le_bytes()),
                2 => b[rng.below(4) as usize] ^= 0x40,
                _ => {
                    let i = 8 + rng.below(b.len() as u64 - 8) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
            }
            b
        }
        // A prepare with the wrong fds: none, a wrong kind, too many.
        4 | 5 => {
            let b =
                Request::prepare(rng.below(20) * page, (1 + rng.below(20)) * page, 0, 0).encode();
            match rng.below(3) {
                0 => {}
                1 => fds.push(1 + rng.below(5) as usize),
                _ => {
                    for _ in 0..2 + rng.below(10) {
                        fds.push(rng.below(6) as usize);
                    }
                }
            }
            b
        }
        // Its own memfd with edgy ranges (past the surface, past u64).
        6 | 7 => {
            fds.push(0);
            Request::prepare(edgy(rng, page), edgy(rng, page), 0, 0).encode()
        }
        // Anything well-formed, with stray fds now and then.
        _ => {
            if rng.chance(6) {
                fds.push(rng.below(6) as usize);
            }
            req(rng).encode()
        }
    };
    if rng.chance(50) {
        bytes.clear();
    }
    Frame { bytes, fds }
}

/// Counts of what the hostile clients did.
#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    granted: AtomicU64,
    abandoned: AtomicU64,
    /// Connections the service closed after too many refusals in a row.
    closed: AtomicU64,
}

/// The service's default number of refusals in a row that close a
/// connection.
const MAX_REFUSALS: u32 = 16;

/// Whether `reply` is the notice of a connection closed for refusals.
fn is_closing_notice(reply: &[u8]) -> bool {
    Header::parse(reply).is_ok_and(|h| {
        !h.status().is_success() && Rule::from_detail(h.detail.get()) == Some(Rule::TooManyRefusals)
    })
}

fn hostile(socket: &Path, seed: u64, counts: &Counts, until: Instant) {
    let mut rng = Rng(seed);
    let kit = Kit::new(socket);
    let page = kit.page;
    let mut sent = 0;
    let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
    while sent < FRAMES_PER_THREAD && Instant::now() < until {
        let sock = raw_connect(socket);
        rustix::net::sockopt::set_socket_timeout(
            &sock,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let mut mine: HashSet<u64> = HashSet::new();
        let mut refused_in_row = 0u32;
        // Most connections handshake first; some never do.
        if !rng.chance(5) {
            let hs = Request::handshake(VERSION, VERSION);
            frame::send(sock.as_fd(), &hs.encode(), &[]).unwrap();
            let f = frame::recv(sock.as_fd(), &mut buf).unwrap().unwrap();
            assert!(matches!(
                Reply::decode(selector::HANDSHAKE, &buf[..f.len]),
                Ok(Reply::Handshake(_))
            ));
        }
        for _ in 0..1 + rng.below(60) {
            let fr = hostile_frame(&mut rng, page);
            let all = kit.fds();
            let fds: Vec<BorrowedFd<'_>> = fr.fds.iter().map(|&i| all[i]).collect();
            if send_raw(sock.as_fd(), &fr.bytes, &fds).is_err() {
                break;
            }
            sent += 1;
            counts.frames.fetch_add(1, Ordering::Relaxed);
            // Sometimes walk away without reading the reply.
            if rng.chance(40) {
                counts.abandoned.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let got = match frame::recv(sock.as_fd(), &mut buf) {
                // Closed after too many refusals in a row, with our frame
                // unread: the notice saying so is read next.
                Err(rustix::io::Errno::CONNRESET) if refused_in_row >= MAX_REFUSALS => break,
                other => other,
            };
            let got = got.unwrap_or_else(|e| panic!("no reply to {:02x?}: {e}", fr.bytes));
            let Some(f) = got else {
                assert!(
                    (fr.bytes.is_empty() && fr.fds.is_empty()) || refused_in_row >= MAX_REFUSALS,
                    "the service closed the connection on {:02x?}",
                    fr.bytes
                );
                break;
            };
            assert!(!f.oversized && f.fds.is_empty());
            let reply = &buf[..f.len];
            if is_closing_notice(reply) {
                assert!(
                    refused_in_row >= MAX_REFUSALS,
                    "closed for refusals after only {refused_in_row} in a row"
                );
                counts.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            let granted = Header::parse(reply).is_ok_and(|h| h.status().is_success());
            check_reply(&fr, reply, &mut mine, page, counts);
            if !granted {
                refused_in_row += 1;
            } else {
                refused_in_row = 0;
            }
        }
    }
}

fn check_reply(fr: &Frame, reply: &[u8], mine: &mut HashSet<u64>, page: u64, counts: &Counts) {
    let h = Header::parse(reply).expect("a reply with a header");
    let req = (fr.bytes.len() <= MAX_MESSAGE)
        .then(|| Request::decode(&fr.bytes).ok())
        .flatten();
    if !h.status().is_success() {
        assert_eq!(reply.len(), 16, "an error reply is a bare header");
        let d = h.detail.get();
        assert!(
            Rule::from_detail(d).is_some() || d < 4096,
            "detail {d:#x} is neither a rule nor an errno"
        );
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.granted.fetch_add(1, Ordering::Relaxed);
    let req = req.unwrap_or_else(|| panic!("success for a malformed frame {:02x?}", fr.bytes));
    let r = Reply::decode(req.selector(), reply)
        .unwrap_or_else(|e| panic!("bad reply to {req:?}: {e}"));
    match (req, r) {
        (Request::Handshake(_), Reply::Handshake(_)) => {}
        (Request::Prepare(p), Reply::Segments(batch)) => {
            assert_eq!(fr.fds, [0], "prepare succeeded with fds {:?}", fr.fds);
            let (offset, length) = (p.offset.get(), p.length.get());
            assert!(offset + length <= 16 * page && length > 0);
            assert!(mine.insert(batch.handle.get()), "a handle given twice");
        }
        (Request::Segments(s), Reply::Segments(batch)) => {
            let handle = s.handle.get();
            assert!(
                mine.contains(&handle),
                "segments of a handle not ours: {handle}"
            );
            assert_eq!(batch.handle.get(), handle);
        }
        (Request::Checksum(c), Reply::Checksum(_)) => {
            let handle = c.handle.get();
            assert!(
                mine.contains(&handle),
                "checksum of a handle not ours: {handle}"
            );
        }
        (Request::Complete(c), Reply::Complete(_)) => {
            let handle = c.handle.get();
            assert!(
                mine.remove(&handle),
                "complete of a handle not ours: {handle}"
            );
        }
        (req, r) => panic!("{req:?} answered with {r:?}"),
    }
}

#[test]
fn hostile_clients_get_errors_and_well_formed_clients_keep_succeeding() {
    let _alone = alone();
    let svc = start(Policy::default(), Limits::default());
    let base = Baseline::now();
    // Slots taken by clients that connect and say nothing.
    let silent: Vec<OwnedFd> = (0..SILENT).map(|_| raw_connect(&svc.socket)).collect();
    assert!(wait_until(5, || svc.handle.stats().connections == SILENT as u64));
    let counts = Arc::new(Counts::default());
    let served = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(BUDGET_SECS);
    let started = Instant::now();
    let good: Vec<_> = (0..GOOD_THREADS)
        .map(|g| {
            let (socket, served, done) =
                (svc.socket.clone(), Arc::clone(&served), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut n = 0u64;
                // Keep going while the hostile clients do, at least 5 each.
                while n < 5 || (!done.load(Ordering::SeqCst) && n < 2000) {
                    let mut r = ServiceResolver::connect(&socket)
                        .unwrap_or_else(|e| panic!("good client {g}/{n}: {e}"));
                    let size = (1 + (g + n) % 4) * MIB;
                    let out = probe(size, Backing::Memfd, g * 1000 + n, &mut r, |_| {})
                        .unwrap_or_else(|e| panic!("good client {g}/{n}: {e}"));
                    assert!(out.verified(), "good client {g}/{n} did not verify");
                    n += 1;
                    served.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let bad: Vec<_> = (0..HOSTILE_THREADS)
        .map(|t| {
            let (socket, counts) = (svc.socket.clone(), Arc::clone(&counts));
            std::thread::spawn(move || hostile(&socket, 0x4057_11e0 + t, &counts, until))
        })
        .collect();
    for (t, h) in bad.into_iter().enumerate() {
        h.join()
            .unwrap_or_else(|_| panic!("hostile thread {t} found a failure"));
    }
    done.store(true, Ordering::SeqCst);
    for h in good {
        h.join().expect("a well-formed client failed");
    }
    drop(silent);
    let c = &counts;
    let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
    eprintln!(
        "hostile: {} frames on {} connections in {:.1} s ({} refused, {} granted, {} replies \
         abandoned, {} connections closed for refusals), {SILENT} silent connections held; {} \
         well-formed clients served",
        l(&c.frames),
        l(&c.connections),
        started.elapsed().as_secs_f64(),
        l(&c.refused),
        l(&c.granted),
        l(&c.abandoned),
        l(&c.closed),
        l(&served)
    );
    assert!(l(&c.frames) >= 1000, "too few frames to mean anything");
    assert!(l(&served) >= GOOD_THREADS * 5);
    let st = svc.handle.stats();
    assert!(st.refused >= l(&c.refused), "{st:?}");
    assert_nothing_held(&svc.handle, base, "after the hostile clients");
}
