//! One client connection: admission, then a loop of request → reply.
//!
//! Every frame is checked before it is acted on: size (oversized frames
//! are seen as truncated and never read), the fds it carries (exactly one
//! for prepare, none otherwise), the header and exact struct size
//! (`Request::decode`), the handshake having come first, and each value
//! against this connection's state and the service's limits. A failed
//! check is an error reply and a log line; the connection goes on. The
//! handle table lives on this thread's stack, so when the connection ends
//! — by complete, close, crash of the client, or shutdown — every range it
//! held is unpinned and unmapped.

use super::frame::{self, Frame, FrameBuf};
use super::prepared::PreparedRange;
use super::rule::Rule;
use super::{lock, Refusal, Shared};
use crate::pin::PinTable;
use rustix::net::sockopt::{self, Timeout};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::{
    selector, ChecksumReply, CompleteReply, HandshakeReply, Reply, Request, MAX_MESSAGE,
    SEGMENTS_PER_REPLY, VERSION,
};
use unimem_core::AddressKind;

/// A reply and a note for the log, or the refusal.
type Answer = Result<(Reply, String), Refusal>;

mod prepare;

/// The state of one connection. Also driven without a socket by
/// [`super::session::Session`].
pub(super) struct Conn {
    pub(super) shared: Arc<Shared>,
    id: u64,
    who: String,
    /// The peer's uid, and whether it is an administrator (free of the
    /// per-uid limits).
    pub(super) uid: u32,
    admin: bool,
    handshaken: bool,
    /// Whether the last request was refused, and whether as a bad frame
    /// ([`Rule::is_bad_frame`]).
    last_refused: bool,
    last_bad: bool,
    pub(super) handles: HashMap<u64, PreparedRange>,
    pub(super) next_handle: u64,
    /// Bytes prepared by this connection now.
    pub(super) bytes: u64,
    /// Completed ranges, already unpinned, unmapped once the reply to
    /// complete is on its way ([`Conn::after_reply`]).
    retired: Vec<PreparedRange>,
    /// The ring whose buffer slots pin this connection's ranges, made at
    /// the first prepare; it closes with the connection.
    pins: Option<PinTable>,
}

impl Conn {
    /// A new connection's state; `shared.counters.connections` and the
    /// uid's usage must already count it ([`Conn::finish`] uncounts it).
    pub(super) fn new(shared: Arc<Shared>, id: u64, who: String, uid: u32, admin: bool) -> Conn {
        Conn {
            shared,
            id,
            who,
            uid,
            admin,
            handshaken: false,
            last_refused: false,
            last_bad: false,
            handles: HashMap::new(),
            next_handle: 1,
            bytes: 0,
            retired: Vec::new(),
            pins: None,
        }
    }

    /// The request loop. Only requests that are served count as activity:
    /// a client cannot keep a slot by sending junk. A connection is closed
    /// when it has not completed the handshake in time, when it held
    /// nothing and sent nothing useful for the idle timeout, or after too
    /// many bad frames in a row.
    pub(super) fn serve(&mut self, sock: &OwnedFd) {
        let mut buf: Box<FrameBuf> = Box::new([0; MAX_MESSAGE + 1]);
        let limits = self.shared.config.limits.clone();
        let accepted = Instant::now();
        let mut last_served = accepted;
        let mut bad_in_row = 0u32;
        loop {
            // When this connection must have done something by.
            let idle = limits
                .idle_timeout
                .filter(|_| self.handles.is_empty())
                .map(|d| (last_served + d, Rule::IdleTimeout));
            let handshake = (!self.handshaken)
                .then(|| (accepted + limits.handshake_timeout, Rule::HandshakeTimeout));
            // The earlier of the two; none while ranges are held after the
            // handshake: a device may be using the addresses.
            let deadline = match (idle, handshake) {
                (Some(i), Some(h)) => Some(if i.0 <= h.0 { i } else { h }),
                (i, h) => i.or(h),
            };
            if let Some((at, rule)) = deadline {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return self.close_with(sock, rule);
                }
                let left = left.max(std::time::Duration::from_millis(1));
                if let Err(e) = sockopt::set_socket_timeout(sock, Timeout::Recv, Some(left)) {
                    self.shared
                        .log(format!("{}: cannot set the receive timeout: {e}", self.who));
                    return;
                }
            } else if let Err(e) = sockopt::set_socket_timeout(sock, Timeout::Recv, None) {
                self.shared.log(format!(
                    "{}: cannot clear the receive timeout: {e}",
                    self.who
                ));
                return;
            }
            let frame = match frame::recv(sock.as_fd(), &mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                // The deadline is checked at the top of the loop.
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(e) => {
                    self.shared
                        .log(format!("{}: receive failed: {e}", self.who));
                    return;
                }
            };
            let reply = self.handle(frame, &buf);
            let sent = frame::send(sock.as_fd(), reply.as_bytes(), &[]);
            self.after_reply();
            if let Err(e) = sent {
                self.shared
                    .log(format!("{}: reply not taken ({e}); closing", self.who));
                return;
            }
            // A refusal is never activity; bad frames in a row close the
            // connection.
            if self.last_bad {
                bad_in_row += 1;
                if bad_in_row >= limits.max_refusals {
                    return self.close_with(sock, Rule::TooManyRefusals);
                }
            } else {
                bad_in_row = 0;
            }
            if !self.last_refused {
                last_served = Instant::now();
            }
        }
    }

    /// Ends the connection for `rule`, telling the client why.
    fn close_with(&mut self, sock: &OwnedFd, rule: Rule) {
        let who = &self.who;
        self.shared
            .refusals
            .note(self.uid, || format!("{who}: closed: {}", rule.describe()));
        let reply = Reply::error(selector::HANDSHAKE, rule.status(), rule.detail());
        let _ = frame::send(sock.as_fd(), reply.as_bytes(), &[]);
    }

    /// Work that may wait until a reply is sent: unmapping completed ranges.
    pub(super) fn after_reply(&mut self) {
        self.retired.clear();
    }

    /// Releases everything the connection holds.
    pub(super) fn finish(mut self) {
        self.after_reply();
        let ranges = self.handles.len();
        let released: u64 = self.handles.drain().map(|(_, r)| r.release()).sum();
        self.shared.user_disconnect(self.uid, self.bytes);
        let c = &self.shared.counters;
        c.handles.fetch_sub(ranges as u64, Ordering::SeqCst);
        lock(&self.shared.conns).remove(&self.id);
        c.connections.fetch_sub(1, Ordering::SeqCst);
        let who = &self.who;
        self.shared.connection_lines.note(self.uid, || {
            format!("{who}: closed; released {released} bytes in {ranges} ranges")
        });
    }

    /// One request → its reply.
    pub(super) fn handle(&mut self, frame: Frame, buf: &FrameBuf) -> Reply {
        let msg = &buf[..frame.len.min(MAX_MESSAGE)];
        // The selector the reply names, as far as the frame tells it.
        let guess = msg
            .get(6..8)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        let started = Instant::now();
        let result = self.dispatch(frame, msg);
        self.last_refused = result.is_err();
        self.last_bad = result
            .as_ref()
            .err()
            .and_then(|(_, r)| Rule::from_detail(r.detail))
            .is_some_and(Rule::is_bad_frame);
        match result {
            Ok((reply, note)) => {
                self.shared.debug(format!(
                    "{}: {} ok{note} ({:.1} ms)",
                    self.who,
                    selector::name(reply.selector()),
                    started.elapsed().as_secs_f64() * 1e3
                ));
                reply
            }
            Err((sel, r)) => {
                let sel = sel.unwrap_or(guess);
                self.shared.counters.refused.fetch_add(1, Ordering::SeqCst);
                let who = &self.who;
                self.shared.refusals.note(self.uid, || {
                    format!(
                        "{who}: {} refused: {} [{} detail {:#x}]",
                        selector::name(sel),
                        r.log,
                        r.status,
                        r.detail
                    )
                });
                Reply::error(sel, r.status, r.detail)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn dispatch(
        &mut self,
        mut frame: Frame,
        msg: &[u8],
    ) -> Result<(Reply, String), (Option<u16>, Refusal)> {
        if frame.oversized {
            return Err((
                None,
                Refusal::rule(Rule::Oversized, "message truncated at 4097 bytes"),
            ));
        }
        let req = Request::decode(msg).map_err(|e| {
            let detail = Rule::Malformed.detail();
            (
                None,
                Refusal {
                    status: e.status(),
                    detail,
                    log: e.to_string(),
                },
            )
        })?;
        let sel = req.selector();
        let fail = |r: Refusal| (Some(sel), r);
        let fds = frame.fds.len();
        if frame.fds_truncated || (sel == selector::PREPARE && fds > 1) {
            return Err(fail(Refusal::rule(Rule::ExtraFds, "more than one fd")));
        }
        if sel != selector::PREPARE && fds > 0 {
            return Err(fail(Refusal::rule(Rule::ExtraFds, format!("{fds} fds"))));
        }
        if !self.handshaken && sel != selector::HANDSHAKE {
            return Err(fail(Refusal::rule(
                Rule::HandshakeFirst,
                "no handshake yet",
            )));
        }
        match req {
            Request::Handshake(r) => self.on_handshake(r.min_version.get(), r.max_version.get()),
            Request::Prepare(r) => self.on_prepare(
                frame.fds.pop(),
                r.offset.get(),
                r.length.get(),
                r.client_va.get(),
            ),
            Request::Segments(r) => self.on_segments(r.handle.get(), r.continuation.get()),
            Request::Complete(r) => self.on_complete(r.handle.get()),
            Request::Checksum(r) => {
                self.on_checksum(r.handle.get(), r.offset.get(), r.length.get())
            }
        }
        .map_err(fail)
    }

    /// HANDSHAKE: agrees on the version and says what this service is.
    fn on_handshake(&mut self, min_version: u16, max_version: u16) -> Answer {
        if !(min_version..=max_version).contains(&VERSION) {
            return Err(Refusal {
                status: IoReturn::UNSUPPORTED,
                detail: 0,
                log: format!(
                    "client speaks versions {min_version}..={max_version}, \
                     the service speaks {VERSION}"
                ),
            });
        }
        self.handshaken = true;
        let info = HandshakeReply::new(
            AddressKind::Physical,
            self.shared.page_size,
            SEGMENTS_PER_REPLY as u32,
            self.shared.config.limits.max_prepare_bytes,
            concat!("unimem ", env!("CARGO_PKG_VERSION")),
        );
        Ok((Reply::Handshake(info), String::new()))
    }

    /// PREPARE: the fd that came with the request, mapped, pinned and
    /// resolved; the first segments.
    fn on_prepare(
        &mut self,
        fd: Option<OwnedFd>,
        offset: u64,
        length: u64,
        client_va: u64,
    ) -> Answer {
        let fd =
            fd.ok_or_else(|| Refusal::rule(Rule::MissingFd, "no SCM_RIGHTS fd with the request"))?;
        if client_va != 0 {
            return Err(Refusal::rule(Rule::ClientVa, format!("{client_va:#x}")));
        }
        self.prepare(fd, offset, length)
    }

    /// SEGMENTS: the next segments of a prepared range, only after the
    /// pages they describe are checked to be still the file's.
    fn on_segments(&mut self, handle: u64, continuation: u64) -> Answer {
        let range = self.range(handle)?;
        let batch = range.batch(selector::SEGMENTS, handle, continuation)?;
        let (start, next) = (batch.start.get(), batch.next.get());
        range.verify(&self.shared.pagemap, start, next - start)?;
        let note = format!(" handle {handle} from {continuation:#x}");
        Ok((Reply::Segments(batch), note))
    }

    /// COMPLETE: unpins a prepared range and forgets its handle.
    fn on_complete(&mut self, handle: u64) -> Answer {
        let mut range = self
            .handles
            .remove(&handle)
            .ok_or_else(|| Refusal::rule(Rule::UnknownHandle, format!("handle {handle}")))?;
        let len = range.len();
        let released_bytes = range.unpin();
        self.retired.push(range);
        self.bytes -= len;
        self.shared.user_release(self.uid, len);
        self.shared.counters.handles.fetch_sub(1, Ordering::SeqCst);
        Ok((
            Reply::Complete(CompleteReply::new(handle, released_bytes)),
            format!(" handle {handle}"),
        ))
    }

    /// CHECKSUM: hashes part of a prepared range through the service's own
    /// mapping, never reading a page that is no longer the file's.
    fn on_checksum(&mut self, handle: u64, offset: u64, length: u64) -> Answer {
        let range = self.range(handle)?;
        let counters = &self.shared.counters;
        counters.checksumming.fetch_add(1, Ordering::SeqCst);
        let checksum = range.checksum(&self.shared.pagemap, offset, length);
        counters.checksumming.fetch_sub(1, Ordering::SeqCst);
        Ok((
            Reply::Checksum(ChecksumReply::new(handle, offset, length, checksum?)),
            format!(" handle {handle} {offset:#x}+{length:#x}"),
        ))
    }

    fn range(&self, handle: u64) -> Result<&PreparedRange, Refusal> {
        self.handles
            .get(&handle)
            .ok_or_else(|| Refusal::rule(Rule::UnknownHandle, format!("handle {handle}")))
    }
}
