//! Replies: each is its selector's wire struct itself, decoded and checked
//! (sizes, counts, that segment lengths add up to the continuation) before
//! a client uses any of it.

use super::layout::*;
use super::{exact, selector, Header, WireError, SEGMENTS_PER_REPLY, SERVER_VERSION_LEN, VERSION};
use crate::addr::AddressKind;
use crate::checksum::ALGORITHM_FNV1A64_WORDS;
use crate::iokit::IoReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

impl HandshakeReply {
    /// A successful handshake reply of this build's version: what a
    /// resolver says of itself. A `server_version` longer than the field
    /// (31 bytes and a NUL) is cut at a character boundary.
    pub fn new(
        address_kind: AddressKind,
        page_size: u64,
        max_segments_per_reply: u32,
        max_prepare_bytes: u64,
        server_version: &str,
    ) -> Self {
        let mut field = [0u8; SERVER_VERSION_LEN];
        // Keep a NUL and cut at a character boundary, so the string decodes
        // as a prefix of what was given.
        let mut n = server_version.len().min(SERVER_VERSION_LEN - 1);
        while !server_version.is_char_boundary(n) {
            n -= 1;
        }
        field[..n].copy_from_slice(&server_version.as_bytes()[..n]);
        HandshakeReply {
            header: Header::new(selector::HANDSHAKE, IoReturn::SUCCESS, 0),
            version: U16::new(VERSION),
            reserved0: U16::ZERO,
            address_kind: U32::new(address_kind.to_wire()),
            page_size: U64::new(page_size),
            max_segments_per_reply: U32::new(max_segments_per_reply),
            reserved1: U32::ZERO,
            max_prepare_bytes: U64::new(max_prepare_bytes),
            server_version: field,
        }
    }

    /// The address space every segment of this resolver lies in; `None`
    /// for a value this build does not know (a decoded reply never has
    /// one).
    pub fn address_kind(&self) -> Option<AddressKind> {
        AddressKind::from_wire(self.address_kind.get())
    }

    /// The server's version string, up to its first NUL, with any invalid
    /// UTF-8 replaced.
    pub fn server_version(&self) -> String {
        let end = self
            .server_version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SERVER_VERSION_LEN);
        String::from_utf8_lossy(&self.server_version[..end]).into_owned()
    }
}

/// An `address_kind` field in `Debug` output: its name, or the number when
/// it names no kind.
struct KindName(u32);

impl std::fmt::Debug for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match AddressKind::from_wire(self.0) {
            Some(kind) => write!(f, "{}", kind.name()),
            None => write!(f, "unknown ({})", self.0),
        }
    }
}

impl std::fmt::Debug for HandshakeReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeReply")
            .field("header", &self.header)
            .field("version", &self.version.get())
            .field("address_kind", &KindName(self.address_kind.get()))
            .field("page_size", &self.page_size.get())
            .field("max_segments_per_reply", &self.max_segments_per_reply.get())
            .field("max_prepare_bytes", &self.max_prepare_bytes.get())
            .field("server_version", &self.server_version())
            .field("reserved", &(self.reserved0.get(), self.reserved1.get()))
            .finish()
    }
}

impl SegmentsReply {
    /// An empty successful reply to `selector` (PREPARE or SEGMENTS) for
    /// the range `handle` of `total_length` bytes, starting at `start`;
    /// [`SegmentsReply::push`] adds segments and moves `next` past them.
    pub fn new(
        selector: u16,
        handle: u64,
        total_length: u64,
        start: u64,
        page_size: u64,
        address_kind: AddressKind,
    ) -> Box<Self> {
        let mut r = Box::new(SegmentsReply::new_zeroed());
        r.header = Header::new(selector, IoReturn::SUCCESS, 0);
        r.handle = U64::new(handle);
        r.total_length = U64::new(total_length);
        r.start = U64::new(start);
        r.next = U64::new(start);
        r.page_size = U64::new(page_size);
        r.address_kind = U32::new(address_kind.to_wire());
        r
    }

    /// Appends a segment and moves `next` past it; `false` (and nothing
    /// changed) when the reply is full or `next` would overflow. Values are
    /// not judged here: a zero length, a run that wraps the address space or
    /// a `next` past `total_length` makes a reply [`Reply::decode`] refuses.
    pub fn push(&mut self, address: u64, length: u64) -> bool {
        let count = self.count.get() as usize;
        let Some(next) = self.next.get().checked_add(length) else {
            return false;
        };
        let Some(slot) = self.segments.get_mut(count) else {
            return false;
        };
        *slot = WireSegment {
            address: U64::new(address),
            length: U64::new(length),
        };
        self.count = U32::new(count as u32 + 1);
        self.next = U64::new(next);
        true
    }

    /// The valid entries: the first `count`, at most the reply's capacity.
    /// (The `segments` field is all [`SEGMENTS_PER_REPLY`] slots, the
    /// unused ones zero.)
    pub fn valid_segments(&self) -> &[WireSegment] {
        let count = (self.count.get() as usize).min(SEGMENTS_PER_REPLY);
        &self.segments[..count]
    }

    /// The address space of the segments; `None` for a value this build
    /// does not know (a decoded reply never has one).
    pub fn address_kind(&self) -> Option<AddressKind> {
        AddressKind::from_wire(self.address_kind.get())
    }

    /// Whether this reply ends the prepared range, so no further segments
    /// request is needed.
    pub fn is_last(&self) -> bool {
        self.next == self.total_length
    }

    /// Checks what a client must not take on trust, and zeroes the entries
    /// from `count` on, which carry nothing.
    fn check(&mut self) -> Result<(), WireError> {
        let count = self.count.get() as usize;
        if count > SEGMENTS_PER_REPLY {
            return Err(WireError::Invalid(
                "segments.count exceeds the reply's capacity",
            ));
        }
        let (start, next, total) = (self.start.get(), self.next.get(), self.total_length.get());
        if start > next || next > total {
            return Err(WireError::Invalid(
                "segments range is not start <= next <= total_length",
            ));
        }
        if (count == 0) != (start == next) {
            return Err(WireError::Invalid(
                "segments count disagrees with [start, next)",
            ));
        }
        if self.address_kind().is_none() {
            return Err(WireError::Invalid("segments.address_kind"));
        }
        let mut covered: u64 = 0;
        for s in self.valid_segments() {
            let (a, l) = (s.address.get(), s.length.get());
            if l == 0 {
                return Err(WireError::Invalid("segment of length 0"));
            }
            if a.checked_add(l).is_none() {
                return Err(WireError::Invalid("segment wraps the address space"));
            }
            covered = covered
                .checked_add(l)
                .ok_or(WireError::Invalid("segment lengths overflow"))?;
        }
        if covered != next - start {
            return Err(WireError::Invalid(
                "segment lengths do not add up to next - start",
            ));
        }
        self.segments[count..].fill(WireSegment::new_zeroed());
        Ok(())
    }
}

impl std::fmt::Debug for SegmentsReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentsReply")
            .field("header", &self.header)
            .field("handle", &self.handle.get())
            .field("total_length", &self.total_length.get())
            .field("start", &self.start.get())
            .field("next", &self.next.get())
            .field("page_size", &self.page_size.get())
            .field("address_kind", &KindName(self.address_kind.get()))
            .field("count", &self.count.get())
            .field("segments", &self.valid_segments())
            .finish()
    }
}

impl CompleteReply {
    /// A successful complete reply: `handle` is gone, `released_bytes`
    /// unpinned.
    pub fn new(handle: u64, released_bytes: u64) -> Self {
        CompleteReply {
            header: Header::new(selector::COMPLETE, IoReturn::SUCCESS, 0),
            handle: U64::new(handle),
            released_bytes: U64::new(released_bytes),
        }
    }
}

impl ChecksumReply {
    /// A successful checksum reply echoing the request's `handle`,
    /// `offset` and `length`, with FNV-1a words as the algorithm.
    pub fn new(handle: u64, offset: u64, length: u64, checksum: u64) -> Self {
        ChecksumReply {
            header: Header::new(selector::CHECKSUM, IoReturn::SUCCESS, 0),
            handle: U64::new(handle),
            offset: U64::new(offset),
            length: U64::new(length),
            checksum: U64::new(checksum),
            algorithm: U32::new(ALGORITHM_FNV1A64_WORDS),
            reserved: U32::ZERO,
        }
    }
}

/// A reply: one selector's wire struct, header included, so its bytes are
/// the struct's; a failure is the bare header.
///
/// ```
/// use unimem_core::iokit::IoReturn;
/// use unimem_core::wire::{selector, Reply, SegmentsReply};
/// use unimem_core::AddressKind;
///
/// let mut batch = SegmentsReply::new(selector::PREPARE, 1, 3 * 4096, 0, 4096, AddressKind::Physical);
/// assert!(batch.push(0x10_0000, 2 * 4096));
/// assert!(batch.push(0x40_0000, 4096));
/// assert!(batch.is_last());
/// let reply = Reply::Segments(batch);
/// assert_eq!(Reply::decode(selector::PREPARE, &reply.encode()), Ok(reply));
///
/// // A failure is a bare header carrying the status.
/// let refused = Reply::error(selector::PREPARE, IoReturn::NOT_PERMITTED, 1);
/// assert_eq!(refused.encode().len(), 16);
/// assert_eq!(Reply::decode(selector::PREPARE, &refused.encode()), Ok(refused));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Reply to the handshake.
    Handshake(HandshakeReply),
    /// Reply to prepare or segments (the header's selector says which).
    Segments(Box<SegmentsReply>),
    /// Reply to complete: the handle is gone.
    Complete(CompleteReply),
    /// Reply to checksum.
    Checksum(ChecksumReply),
    /// A failure: the bare header, whose `status` says why (never
    /// [`IoReturn::SUCCESS`] on the wire) and whose `detail` carries the
    /// OS's own code (an errno on Linux), or 0.
    Status(Header),
}

impl Reply {
    /// The error reply for `selector`.
    pub const fn error(selector: u16, status: IoReturn, detail: u32) -> Reply {
        Reply::Status(Header::new(selector, status, detail))
    }

    /// The reply's header.
    pub fn header(&self) -> &Header {
        match self {
            Reply::Handshake(r) => &r.header,
            Reply::Segments(r) => &r.header,
            Reply::Complete(r) => &r.header,
            Reply::Checksum(r) => &r.header,
            Reply::Status(h) => h,
        }
    }

    /// The [`selector`] of the request this reply answers: its variant's,
    /// or for a segments reply and a failure (which answer more than one)
    /// the header's.
    pub fn selector(&self) -> u16 {
        match self {
            Reply::Handshake(_) => selector::HANDSHAKE,
            Reply::Segments(r) => r.header.selector.get(),
            Reply::Complete(_) => selector::COMPLETE,
            Reply::Checksum(_) => selector::CHECKSUM,
            Reply::Status(h) => h.selector.get(),
        }
    }

    /// Decodes the reply to a request with selector `expected`, checking
    /// everything a client must not take on trust: sizes, counts, that
    /// segments cover exactly `[start, next)` without overflow.
    pub fn decode(expected: u16, message: &[u8]) -> Result<Reply, WireError> {
        let header = Header::parse(message)?;
        let sel = header.selector.get();
        if sel != expected {
            return Err(WireError::WrongSelector { got: sel, expected });
        }
        if header.version.get() != VERSION {
            return Err(WireError::BadVersion {
                got: header.version.get(),
            });
        }
        if !header.status().is_success() {
            if message.len() != size_of::<Header>() {
                return Err(WireError::BadLength {
                    name: "error reply",
                    got: message.len(),
                    expected: size_of::<Header>(),
                });
            }
            return Ok(Reply::Status(header));
        }
        Ok(match sel {
            selector::HANDSHAKE => {
                let r: HandshakeReply = exact(message, sel)?;
                if r.address_kind().is_none() {
                    return Err(WireError::Invalid("handshake.address_kind"));
                }
                Reply::Handshake(r)
            }
            selector::PREPARE | selector::SEGMENTS => {
                let mut r: Box<SegmentsReply> = Box::new(exact(message, sel)?);
                r.check()?;
                Reply::Segments(r)
            }
            selector::COMPLETE => Reply::Complete(exact(message, sel)?),
            selector::CHECKSUM => Reply::Checksum(exact(message, sel)?),
            other => return Err(WireError::UnknownSelector(other)),
        })
    }

    /// The message bytes: the wire struct as it is.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Reply::Handshake(r) => r.as_bytes(),
            Reply::Segments(r) => r.as_bytes(),
            Reply::Complete(r) => r.as_bytes(),
            Reply::Checksum(r) => r.as_bytes(),
            Reply::Status(h) => h.as_bytes(),
        }
    }

    /// [`Reply::as_bytes`], copied.
    pub fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
