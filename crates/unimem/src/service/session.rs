//! One connection's request handling without a socket, for fuzzing and
//! tests that drive the state machine directly.
//!
//! A [`Session`] is exactly what a connection thread runs — the same checks,
//! the same handle table, the same counters, the same pins — minus the
//! socket: a frame goes in as bytes plus the fds that would have ridden
//! with it, and the reply comes out as bytes. [`Session::check`] states the
//! invariants that must hold between any two frames, and [`Session::close`]
//! releases everything the way a closed connection does, so a harness can
//! check that nothing outlives it. Nothing here is needed to run the
//! service; it exists so the service's own code, not a copy, is fuzzed.

use super::conn::Conn;
use super::frame::{Frame, FrameBuf, MAX_FDS};
use super::{Config, Limits, Shared, Stats};
use crate::error::Result;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use unimem_core::wire::MAX_MESSAGE;

/// A connection's state machine, driven in-process.
pub struct Session {
    conn: Conn,
    buf: Box<FrameBuf>,
}

impl Session {
    /// A fresh, silent connection under `limits`, as if just admitted.
    pub fn new(limits: Limits) -> Result<Session> {
        let mut config = Config::new("");
        config.limits = limits;
        config.quiet = true;
        let shared = Shared::new(config)?;
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        // An ordinary user, so the per-uid limits apply.
        let uid = 1000;
        shared.user_connect(uid, false);
        Ok(Session {
            conn: Conn::new(shared, 0, "session".into(), uid, false),
            buf: Box::new([0; MAX_MESSAGE + 1]),
        })
    }

    /// Handles one message of `bytes` carrying `fds`, as the socket would
    /// deliver it: bytes past [`MAX_MESSAGE`] mark it oversized and are not
    /// seen, fds past [`MAX_FDS`] are dropped and mark it truncated.
    /// Returns the reply's bytes.
    pub fn request(&mut self, bytes: &[u8], mut fds: Vec<OwnedFd>) -> Vec<u8> {
        let len = bytes.len().min(self.buf.len());
        self.buf[..len].copy_from_slice(&bytes[..len]);
        let fds_truncated = fds.len() > MAX_FDS;
        fds.truncate(MAX_FDS);
        let frame = Frame {
            len,
            oversized: bytes.len() > MAX_MESSAGE,
            fds,
            fds_truncated,
        };
        let reply = self.conn.handle(frame, &self.buf);
        self.conn.after_reply();
        reply.encode()
    }

    /// The service-wide counters (this session is the only connection).
    pub fn stats(&self) -> Stats {
        self.conn.shared.counters.snapshot()
    }

    /// Handles held now, with their lengths.
    pub fn held(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = self
            .conn
            .handles
            .iter()
            .map(|(&h, r)| (h, r.len()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The invariants between two frames: the counters agree with the
    /// handle table, nothing is mid-request, and every limit holds.
    pub fn check(&self) -> std::result::Result<(), String> {
        let s = self.stats();
        let c = &self.conn;
        let limits = &c.shared.config.limits;
        let held = c.handles.len() as u64;
        let sum: u64 = c.handles.values().map(|r| r.len()).sum();
        let reserved = c.shared.counters.reserved_bytes.load(Ordering::SeqCst);
        let fail = |what: &str| Err(format!("{what}: {s:?}, {held} handles, {sum} bytes held"));
        if s.handles != held || s.mappings != held {
            return fail("handle or mapping count disagrees with the handle table");
        }
        if s.pinned_bytes != sum || c.bytes != sum || reserved != sum {
            return fail("pinned, reserved or connection bytes disagree with the handles");
        }
        let user = super::lock(&c.shared.users).get(&c.uid).copied();
        if user.map(|u| (u.connections, u.bytes)) != Some((1, sum)) {
            return fail("the uid's connections or bytes disagree with the handles");
        }
        if sum > limits.max_user_bytes {
            return fail("the per-user limit of bytes does not hold");
        }
        if s.preparing != 0 || s.checksumming != 0 || s.connections != 1 {
            return fail("a request is still counted as in progress");
        }
        if c.bytes > limits.max_connection_bytes
            || sum > limits.max_total_bytes
            || c.handles.len() > limits.max_handles
            || c.handles
                .values()
                .any(|r| r.len() > limits.max_prepare_bytes)
        {
            return fail("a limit does not hold");
        }
        if c.handles.keys().any(|&h| h == 0 || h >= c.next_handle) {
            return fail("a handle was never handed out");
        }
        Ok(())
    }

    /// Ends the connection the way a closed socket does; returns the
    /// counters afterwards (all zero unless something leaked).
    pub fn close(self) -> Stats {
        let shared = Arc::clone(&self.conn.shared);
        self.conn.finish();
        shared.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::rule::Rule;
    use unimem_core::wire::{Header, Reply, Request, VERSION};

    /// A sealed memfd with every page written, as the service takes it.
    fn memfd(len: u64) -> OwnedFd {
        let flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create("session-test", flags).unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::SHRINK).unwrap();
        let m = crate::mapping::Mapping::shared(&fd, 0, len as usize).unwrap();
        m.advise(crate::mapping::Advice::PopulateWrite).unwrap();
        fd
    }

    fn rule(reply: &[u8]) -> Option<Rule> {
        let h = Header::parse(reply).unwrap();
        assert!(!h.status().is_success(), "expected a refusal");
        Rule::from_detail(h.detail.get())
    }

    #[test]
    fn a_session_runs_the_protocol_and_closes_clean() {
        let _serial = crate::pin::serial_pin_test();
        let page = crate::system::page_size().bytes();
        let limits = Limits {
            max_prepare_bytes: 4 * page,
            max_connection_bytes: 6 * page,
            max_handles: 2,
            ..Limits::default()
        };
        let mut s = Session::new(limits).unwrap();
        let fd = memfd(8 * page);
        let prep = |o, l| Request::prepare(o, l, 0, 0).encode();
        let dup = |fd: &OwnedFd| vec![fd.try_clone().unwrap()];
        assert_eq!(
            rule(&s.request(&prep(0, page), dup(&fd))),
            Some(Rule::HandshakeFirst)
        );
        let hs = Request::handshake(VERSION, VERSION);
        assert!(matches!(
            Reply::decode(0, &s.request(&hs.encode(), vec![])),
            Ok(Reply::Handshake(_))
        ));
        assert_eq!(
            rule(&s.request(&prep(0, 5 * page), dup(&fd))),
            Some(Rule::PrepareBytes)
        );
        let r = s.request(&prep(0, 4 * page), dup(&fd));
        if !crate::pagemap::can_see_pfns().unwrap_or(false) {
            // Without CAP_SYS_ADMIN the service cannot read addresses.
            assert!(!Header::parse(&r).unwrap().status().is_success());
            s.check().unwrap();
            return;
        }
        let Ok(Reply::Segments(batch)) = Reply::decode(1, &r) else {
            panic!("prepare refused: {:?}", Header::parse(&r))
        };
        assert_eq!(s.held(), vec![(batch.handle.get(), 4 * page)]);
        s.check().unwrap();
        assert_eq!(
            rule(&s.request(&prep(4 * page, 4 * page), dup(&fd))),
            Some(Rule::ConnectionBytes)
        );
        let _ = s.request(&prep(4 * page, page), dup(&fd));
        assert_eq!(
            rule(&s.request(&prep(6 * page, page), dup(&fd))),
            Some(Rule::Handles)
        );
        assert_eq!(s.stats().pinned_bytes, 5 * page);
        s.check().unwrap();
        let after = s.close();
        assert_eq!(
            (
                after.pinned_bytes,
                after.mappings,
                after.handles,
                after.connections
            ),
            (0, 0, 0, 0)
        );
    }
}
