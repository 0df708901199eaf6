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

mod bad_frames;

use crate::common::*;
use bad_frames::{hostile_frame, send_raw, Frame, Kit};
use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unimem::core::wire::{selector, Header, Reply, Request, MAX_MESSAGE, VERSION};
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
