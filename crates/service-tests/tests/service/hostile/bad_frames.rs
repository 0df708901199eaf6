//! What a hostile client sends: frames random and structured-bad, and the
//! fds it may attach to them.

use crate::common::*;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use unimem::core::wire::{self, Request, MAX_MESSAGE, VERSION};

/// Fds a hostile client may attach.
pub(super) struct Kit {
    pub(super) page: u64,
    /// Its own read-write memfd of 16 pages (a prepare of it may succeed).
    own: OwnedFd,
    ro: OwnedFd,
    opath: OwnedFd,
    pipe: (OwnedFd, OwnedFd),
    null: OwnedFd,
    sock: OwnedFd,
}

impl Kit {
    pub(super) fn new(socket: &Path) -> Kit {
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
    pub(super) fn fds(&self) -> [BorrowedFd<'_>; 6] {
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
pub(super) fn send_raw(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> rustix::io::Result<()> {
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

/// An offset or length near an edge: zero, a page multiple, just past
/// one, near `u64::MAX`, a power of two, tiny, or anything.
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
pub(super) struct Frame {
    pub(super) bytes: Vec<u8>,
    /// Indices into [`Kit::fds`], repeats allowed.
    pub(super) fds: Vec<usize>,
}

/// A frame a hostile client sends: random bytes, a request cut short,
/// too long or with a header field broken, a prepare with the wrong fds or
/// edgy ranges, or a well-formed request with stray fds.
pub(super) fn hostile_frame(rng: &mut Rng, page: u64) -> Frame {
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
