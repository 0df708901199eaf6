//! The wire format shared by the client, the Linux resolver service and the
//! CybMemDriver DEXT (`dext/include/unimem_wire.h` is its C twin; a test
//! compiles that header and proves every size and offset agrees).
//!
//! Every message is one fixed-size, little-endian, `#[repr(C)]` struct that
//! starts with a [`Header`]. On macOS a request is the input struct of
//! `IOConnectCallStructMethod(selector)` and the reply its output struct; on
//! Linux each is one `SOCK_SEQPACKET` message, the surface's fd riding with
//! the prepare request as `SCM_RIGHTS`. A reply is either the selector's
//! reply struct or, on failure, a bare header whose `status` is a non-zero
//! `IOReturn` and whose `detail` carries the OS's own code (an errno on
//! Linux) where there is one.
//!
//! Protocol: `HANDSHAKE` first (the client checks the version); `PREPARE`
//! maps and pins `[offset, offset+length)` of the surface and returns a
//! handle and the first segments; `SEGMENTS` returns more from a
//! continuation (a byte offset into the prepared range); `COMPLETE` releases
//! the handle; `CHECKSUM` hashes a range through the resolver's own mapping.
//! A segments reply carries up to [`SEGMENTS_PER_REPLY`] segments so it fits
//! the 4096 bytes IOKit passes inband.
//!
//! Fields are zerocopy little-endian integers (alignment 1), so any byte
//! slice of the right length decodes without undefined behaviour; the layout
//! keeps every field at its natural alignment so the C header, with plain
//! `uint64_t` fields, has identical offsets.

use crate::addr::AddressKind;
use crate::iokit::IoReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// "UNMM" as little-endian bytes.
pub const MAGIC: u32 = 0x4D4D_4E55;
/// The protocol version this build speaks.
pub const VERSION: u16 = 1;
/// Largest message either side sends: IOKit's inband struct limit.
pub const MAX_MESSAGE: usize = 4096;
/// Segments carried by one [`SegmentsReply`].
pub const SEGMENTS_PER_REPLY: usize = 252;
/// Length of the server version string field, NUL-padded.
pub const SERVER_VERSION_LEN: usize = 32;

/// Selector numbers (the `IOConnectCallStructMethod` selector on macOS).
pub mod selector {
    pub const HANDSHAKE: u16 = 0;
    pub const PREPARE: u16 = 1;
    pub const SEGMENTS: u16 = 2;
    pub const COMPLETE: u16 = 3;
    pub const CHECKSUM: u16 = 4;
    /// One past the last selector.
    pub const COUNT: u16 = 5;

    pub fn name(selector: u16) -> &'static str {
        match selector {
            HANDSHAKE => "handshake",
            PREPARE => "prepare",
            SEGMENTS => "segments",
            COMPLETE => "complete",
            CHECKSUM => "checksum",
            _ => "unknown",
        }
    }
}

macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

wire_struct! {
    /// Starts every message. 16 bytes.
    pub struct Header {
        pub magic: U32,
        pub version: U16,
        pub selector: U16,
        /// `IOReturn`; 0 in requests and in successful replies.
        pub status: U32,
        /// The OS's own error code behind `status` (errno on Linux), or 0.
        pub detail: U32,
    }
}

wire_struct! {
    /// Selector 0, request. The client offers a range of versions.
    pub struct HandshakeRequest {
        pub header: Header,
        pub min_version: U16,
        pub max_version: U16,
        pub reserved0: U32,
        pub reserved1: U64,
    }
}

wire_struct! {
    /// Selector 0, reply.
    pub struct HandshakeReply {
        pub header: Header,
        /// The version the server chose within the client's range.
        pub version: U16,
        pub reserved0: U16,
        /// [`AddressKind::to_wire`] of the addresses this resolver returns.
        pub address_kind: U32,
        /// The resolver's page size: segment lengths are multiples of it.
        pub page_size: U64,
        pub max_segments_per_reply: U32,
        pub reserved1: U32,
        /// Largest `length` one prepare accepts.
        pub max_prepare_bytes: U64,
        /// The server's version, UTF-8, NUL-padded.
        pub server_version: [u8; SERVER_VERSION_LEN],
    }
}

wire_struct! {
    /// Selector 1, request: resolve and pin `[offset, offset + length)` of
    /// the surface. On Linux the surface is the fd passed with the message
    /// and `client_va` is 0; on macOS it is the client's locked IOSurface at
    /// `client_va` (`surface_id` is for logs).
    pub struct PrepareRequest {
        pub header: Header,
        pub offset: U64,
        pub length: U64,
        pub client_va: U64,
        pub surface_id: U32,
        /// No options are defined: must be 0.
        pub options: U32,
    }
}

wire_struct! {
    /// Selector 2, request: segments from `continuation` (a byte offset into
    /// the prepared range) on.
    pub struct SegmentsRequest {
        pub header: Header,
        pub handle: U64,
        pub continuation: U64,
    }
}

wire_struct! {
    /// Selector 3, request: release a prepared handle.
    pub struct CompleteRequest {
        pub header: Header,
        pub handle: U64,
        pub reserved: U64,
    }
}

wire_struct! {
    /// Selector 4, request: checksum `[offset, offset + length)` of the
    /// prepared range (offsets relative to the prepared range; multiples of 8).
    pub struct ChecksumRequest {
        pub header: Header,
        pub handle: U64,
        pub offset: U64,
        pub length: U64,
        pub reserved: U64,
    }
}

wire_struct! {
    /// One run of contiguous device-visible addresses.
    pub struct WireSegment {
        pub address: U64,
        pub length: U64,
    }
}

wire_struct! {
    /// Reply to selectors 1 and 2: exactly 4096 bytes.
    pub struct SegmentsReply {
        pub header: Header,
        pub handle: U64,
        /// Length of the whole prepared range.
        pub total_length: U64,
        /// Offset into the prepared range where `segments[0]` starts.
        pub start: U64,
        /// Continuation for the next `SEGMENTS` call; equals `total_length`
        /// when this reply carries the last segment.
        pub next: U64,
        pub page_size: U64,
        pub address_kind: U32,
        /// Valid entries in `segments`; they cover `[start, next)` in order.
        pub count: U32,
        pub segments: [WireSegment; SEGMENTS_PER_REPLY],
    }
}

wire_struct! {
    /// Reply to selector 3.
    pub struct CompleteReply {
        pub header: Header,
        pub handle: U64,
        /// Bytes that were unpinned.
        pub released_bytes: U64,
    }
}

wire_struct! {
    /// Reply to selector 4.
    pub struct ChecksumReply {
        pub header: Header,
        pub handle: U64,
        pub offset: U64,
        pub length: U64,
        pub checksum: U64,
        /// [`crate::checksum::ALGORITHM_FNV1A64_WORDS`].
        pub algorithm: U32,
        pub reserved: U32,
    }
}

/// Size of the request struct for `selector`.
pub fn request_size(selector: u16) -> Option<usize> {
    Some(match selector {
        selector::HANDSHAKE => size_of::<HandshakeRequest>(),
        selector::PREPARE => size_of::<PrepareRequest>(),
        selector::SEGMENTS => size_of::<SegmentsRequest>(),
        selector::COMPLETE => size_of::<CompleteRequest>(),
        selector::CHECKSUM => size_of::<ChecksumRequest>(),
        _ => return None,
    })
}

/// Size of the successful reply struct for `selector`.
pub fn reply_size(selector: u16) -> Option<usize> {
    Some(match selector {
        selector::HANDSHAKE => size_of::<HandshakeReply>(),
        selector::PREPARE | selector::SEGMENTS => size_of::<SegmentsReply>(),
        selector::COMPLETE => size_of::<CompleteReply>(),
        selector::CHECKSUM => size_of::<ChecksumReply>(),
        _ => return None,
    })
}

/// Why a message did not decode. Each maps to the status an error reply
/// carries ([`WireError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {0} bytes is shorter than the 16-byte header")]
    Truncated(usize),
    #[error("bad magic {0:#010x} (expected {MAGIC:#010x}): not a unimem message")]
    BadMagic(u32),
    #[error("protocol version {got} is not supported (this side speaks {VERSION})")]
    BadVersion { got: u16 },
    #[error("unknown selector {0}")]
    UnknownSelector(u16),
    #[error("{name} message is {got} bytes, expected {expected}")]
    BadLength {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("reply is for selector {got}, expected {expected}")]
    WrongSelector { got: u16, expected: u16 },
    #[error("reserved field {0} is not zero")]
    Reserved(&'static str),
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

impl WireError {
    /// The `IOReturn` an error reply carries for this failure.
    pub fn status(&self) -> IoReturn {
        match self {
            WireError::BadVersion { .. } | WireError::UnknownSelector(_) => IoReturn::UNSUPPORTED,
            _ => IoReturn::BAD_ARGUMENT,
        }
    }
}

impl Header {
    pub fn new(selector: u16, status: IoReturn, detail: u32) -> Self {
        Header {
            magic: U32::new(MAGIC),
            version: U16::new(VERSION),
            selector: U16::new(selector),
            status: U32::new(status.bits()),
            detail: U32::new(detail),
        }
    }

    pub fn status(&self) -> IoReturn {
        IoReturn::from_bits(self.status.get())
    }

    /// Reads and checks the header at the start of `message`: size and magic.
    pub fn parse(message: &[u8]) -> Result<Header, WireError> {
        let (header, _) =
            Header::read_from_prefix(message).map_err(|_| WireError::Truncated(message.len()))?;
        if header.magic.get() != MAGIC {
            return Err(WireError::BadMagic(header.magic.get()));
        }
        Ok(header)
    }
}

/// A decoded request, in native integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Handshake {
        min_version: u16,
        max_version: u16,
    },
    Prepare {
        offset: u64,
        length: u64,
        client_va: u64,
        surface_id: u32,
    },
    Segments {
        handle: u64,
        continuation: u64,
    },
    Complete {
        handle: u64,
    },
    Checksum {
        handle: u64,
        offset: u64,
        length: u64,
    },
}

fn exact<T: FromBytes + KnownLayout + Immutable>(
    message: &[u8],
    selector: u16,
) -> Result<T, WireError> {
    T::read_from_bytes(message).map_err(|_| WireError::BadLength {
        name: selector::name(selector),
        got: message.len(),
        expected: size_of::<T>(),
    })
}

fn zero(value: u64, name: &'static str) -> Result<(), WireError> {
    if value == 0 {
        Ok(())
    } else {
        Err(WireError::Reserved(name))
    }
}

impl Request {
    pub fn selector(&self) -> u16 {
        match self {
            Request::Handshake { .. } => selector::HANDSHAKE,
            Request::Prepare { .. } => selector::PREPARE,
            Request::Segments { .. } => selector::SEGMENTS,
            Request::Complete { .. } => selector::COMPLETE,
            Request::Checksum { .. } => selector::CHECKSUM,
        }
    }

    /// Decodes one request message. Checks the header, the exact size for
    /// the selector, the version (any for a handshake, which negotiates it)
    /// and that reserved fields are zero. Values (handles, ranges) are the
    /// resolver's to check against its state.
    pub fn decode(message: &[u8]) -> Result<Request, WireError> {
        let header = Header::parse(message)?;
        let sel = header.selector.get();
        if sel >= selector::COUNT {
            return Err(WireError::UnknownSelector(sel));
        }
        if sel != selector::HANDSHAKE && header.version.get() != VERSION {
            return Err(WireError::BadVersion {
                got: header.version.get(),
            });
        }
        if header.status.get() != 0 || header.detail.get() != 0 {
            return Err(WireError::Reserved("header.status/detail in a request"));
        }
        Ok(match sel {
            selector::HANDSHAKE => {
                let r: HandshakeRequest = exact(message, sel)?;
                zero(
                    u64::from(r.reserved0.get()) | r.reserved1.get(),
                    "handshake.reserved",
                )?;
                if r.min_version.get() > r.max_version.get() {
                    return Err(WireError::Invalid("handshake min_version > max_version"));
                }
                Request::Handshake {
                    min_version: r.min_version.get(),
                    max_version: r.max_version.get(),
                }
            }
            selector::PREPARE => {
                let r: PrepareRequest = exact(message, sel)?;
                zero(u64::from(r.options.get()), "prepare.options")?;
                Request::Prepare {
                    offset: r.offset.get(),
                    length: r.length.get(),
                    client_va: r.client_va.get(),
                    surface_id: r.surface_id.get(),
                }
            }
            selector::SEGMENTS => {
                let r: SegmentsRequest = exact(message, sel)?;
                Request::Segments {
                    handle: r.handle.get(),
                    continuation: r.continuation.get(),
                }
            }
            selector::COMPLETE => {
                let r: CompleteRequest = exact(message, sel)?;
                zero(r.reserved.get(), "complete.reserved")?;
                Request::Complete {
                    handle: r.handle.get(),
                }
            }
            _ => {
                let r: ChecksumRequest = exact(message, sel)?;
                zero(r.reserved.get(), "checksum.reserved")?;
                Request::Checksum {
                    handle: r.handle.get(),
                    offset: r.offset.get(),
                    length: r.length.get(),
                }
            }
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let h = Header::new(self.selector(), IoReturn::SUCCESS, 0);
        match *self {
            Request::Handshake {
                min_version,
                max_version,
            } => HandshakeRequest {
                header: h,
                min_version: U16::new(min_version),
                max_version: U16::new(max_version),
                reserved0: U32::ZERO,
                reserved1: U64::ZERO,
            }
            .as_bytes()
            .to_vec(),
            Request::Prepare {
                offset,
                length,
                client_va,
                surface_id,
            } => PrepareRequest {
                header: h,
                offset: U64::new(offset),
                length: U64::new(length),
                client_va: U64::new(client_va),
                surface_id: U32::new(surface_id),
                options: U32::ZERO,
            }
            .as_bytes()
            .to_vec(),
            Request::Segments {
                handle,
                continuation,
            } => SegmentsRequest {
                header: h,
                handle: U64::new(handle),
                continuation: U64::new(continuation),
            }
            .as_bytes()
            .to_vec(),
            Request::Complete { handle } => CompleteRequest {
                header: h,
                handle: U64::new(handle),
                reserved: U64::ZERO,
            }
            .as_bytes()
            .to_vec(),
            Request::Checksum {
                handle,
                offset,
                length,
            } => ChecksumRequest {
                header: h,
                handle: U64::new(handle),
                offset: U64::new(offset),
                length: U64::new(length),
                reserved: U64::ZERO,
            }
            .as_bytes()
            .to_vec(),
        }
    }
}

/// What a handshake reply tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: u16,
    pub address_kind: AddressKind,
    pub page_size: u64,
    pub max_segments_per_reply: u32,
    pub max_prepare_bytes: u64,
    pub server_version: String,
}

/// One batch of segments (the reply to prepare or segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBatch {
    pub handle: u64,
    pub total_length: u64,
    pub start: u64,
    pub next: u64,
    pub page_size: u64,
    pub address_kind: AddressKind,
    /// `(address, length)` pairs covering `[start, next)` in order.
    pub segments: Vec<(u64, u64)>,
}

impl SegmentBatch {
    pub fn is_last(&self) -> bool {
        self.next == self.total_length
    }
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Handshake(ServerInfo),
    /// Reply to prepare (`selector` PREPARE) or segments.
    Segments {
        selector: u16,
        batch: SegmentBatch,
    },
    Complete {
        handle: u64,
        released_bytes: u64,
    },
    Checksum {
        handle: u64,
        offset: u64,
        length: u64,
        checksum: u64,
        algorithm: u32,
    },
    /// A failure: the bare header.
    Status {
        selector: u16,
        status: IoReturn,
        detail: u32,
    },
}

impl Reply {
    /// The error reply for `selector`.
    pub fn error(selector: u16, status: IoReturn, detail: u32) -> Reply {
        Reply::Status {
            selector,
            status,
            detail,
        }
    }

    pub fn selector(&self) -> u16 {
        match self {
            Reply::Handshake(_) => selector::HANDSHAKE,
            Reply::Segments { selector, .. } | Reply::Status { selector, .. } => *selector,
            Reply::Complete { .. } => selector::COMPLETE,
            Reply::Checksum { .. } => selector::CHECKSUM,
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
            return Ok(Reply::Status {
                selector: sel,
                status: header.status(),
                detail: header.detail.get(),
            });
        }
        Ok(match sel {
            selector::HANDSHAKE => {
                let r: HandshakeReply = exact(message, sel)?;
                let kind = AddressKind::from_wire(r.address_kind.get())
                    .ok_or(WireError::Invalid("handshake.address_kind"))?;
                let end = r
                    .server_version
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(SERVER_VERSION_LEN);
                Reply::Handshake(ServerInfo {
                    version: r.version.get(),
                    address_kind: kind,
                    page_size: r.page_size.get(),
                    max_segments_per_reply: r.max_segments_per_reply.get(),
                    max_prepare_bytes: r.max_prepare_bytes.get(),
                    server_version: String::from_utf8_lossy(&r.server_version[..end]).into_owned(),
                })
            }
            selector::PREPARE | selector::SEGMENTS => {
                let r: SegmentsReply = exact(message, sel)?;
                Reply::Segments {
                    selector: sel,
                    batch: decode_batch(&r)?,
                }
            }
            selector::COMPLETE => {
                let r: CompleteReply = exact(message, sel)?;
                Reply::Complete {
                    handle: r.handle.get(),
                    released_bytes: r.released_bytes.get(),
                }
            }
            selector::CHECKSUM => {
                let r: ChecksumReply = exact(message, sel)?;
                Reply::Checksum {
                    handle: r.handle.get(),
                    offset: r.offset.get(),
                    length: r.length.get(),
                    checksum: r.checksum.get(),
                    algorithm: r.algorithm.get(),
                }
            }
            other => return Err(WireError::UnknownSelector(other)),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let ok = |sel| Header::new(sel, IoReturn::SUCCESS, 0);
        match self {
            Reply::Status {
                selector,
                status,
                detail,
            } => Header::new(*selector, *status, *detail).as_bytes().to_vec(),
            Reply::Handshake(info) => {
                let mut server_version = [0u8; SERVER_VERSION_LEN];
                let v = info.server_version.as_bytes();
                // Keep a NUL and cut at a character boundary, so the string
                // decodes as a prefix of what was encoded.
                let mut n = v.len().min(SERVER_VERSION_LEN - 1);
                while !info.server_version.is_char_boundary(n) {
                    n -= 1;
                }
                server_version[..n].copy_from_slice(&v[..n]);
                HandshakeReply {
                    header: ok(selector::HANDSHAKE),
                    version: U16::new(info.version),
                    reserved0: U16::ZERO,
                    address_kind: U32::new(info.address_kind.to_wire()),
                    page_size: U64::new(info.page_size),
                    max_segments_per_reply: U32::new(info.max_segments_per_reply),
                    reserved1: U32::ZERO,
                    max_prepare_bytes: U64::new(info.max_prepare_bytes),
                    server_version,
                }
                .as_bytes()
                .to_vec()
            }
            Reply::Segments { selector, batch } => encode_batch(*selector, batch),
            Reply::Complete {
                handle,
                released_bytes,
            } => CompleteReply {
                header: ok(selector::COMPLETE),
                handle: U64::new(*handle),
                released_bytes: U64::new(*released_bytes),
            }
            .as_bytes()
            .to_vec(),
            Reply::Checksum {
                handle,
                offset,
                length,
                checksum,
                algorithm,
            } => ChecksumReply {
                header: ok(selector::CHECKSUM),
                handle: U64::new(*handle),
                offset: U64::new(*offset),
                length: U64::new(*length),
                checksum: U64::new(*checksum),
                algorithm: U32::new(*algorithm),
                reserved: U32::ZERO,
            }
            .as_bytes()
            .to_vec(),
        }
    }
}

fn decode_batch(r: &SegmentsReply) -> Result<SegmentBatch, WireError> {
    let count = r.count.get() as usize;
    if count > SEGMENTS_PER_REPLY {
        return Err(WireError::Invalid(
            "segments.count exceeds the reply's capacity",
        ));
    }
    let (start, next, total) = (r.start.get(), r.next.get(), r.total_length.get());
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
    let address_kind = AddressKind::from_wire(r.address_kind.get())
        .ok_or(WireError::Invalid("segments.address_kind"))?;
    let mut covered: u64 = 0;
    let mut segments = Vec::with_capacity(count);
    for s in &r.segments[..count] {
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
        segments.push((a, l));
    }
    if covered != next - start {
        return Err(WireError::Invalid(
            "segment lengths do not add up to next - start",
        ));
    }
    Ok(SegmentBatch {
        handle: r.handle.get(),
        total_length: total,
        start,
        next,
        page_size: r.page_size.get(),
        address_kind,
        segments,
    })
}

fn encode_batch(sel: u16, b: &SegmentBatch) -> Vec<u8> {
    let mut r = SegmentsReply::new_zeroed();
    r.header = Header::new(sel, IoReturn::SUCCESS, 0);
    r.handle = U64::new(b.handle);
    r.total_length = U64::new(b.total_length);
    r.start = U64::new(b.start);
    r.next = U64::new(b.next);
    r.page_size = U64::new(b.page_size);
    r.address_kind = U32::new(b.address_kind.to_wire());
    let n = b.segments.len().min(SEGMENTS_PER_REPLY);
    r.count = U32::new(n as u32);
    for (slot, &(a, l)) in r.segments.iter_mut().zip(&b.segments[..n]) {
        *slot = WireSegment {
            address: U64::new(a),
            length: U64::new(l),
        };
    }
    r.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn sizes_are_pinned() {
        assert_eq!(size_of::<Header>(), 16);
        assert_eq!(size_of::<HandshakeRequest>(), 32);
        assert_eq!(size_of::<HandshakeReply>(), 80);
        assert_eq!(size_of::<PrepareRequest>(), 48);
        assert_eq!(size_of::<SegmentsRequest>(), 32);
        assert_eq!(size_of::<CompleteRequest>(), 32);
        assert_eq!(size_of::<ChecksumRequest>(), 48);
        assert_eq!(size_of::<WireSegment>(), 16);
        assert_eq!(size_of::<SegmentsReply>(), MAX_MESSAGE);
        assert_eq!(size_of::<CompleteReply>(), 32);
        assert_eq!(size_of::<ChecksumReply>(), 56);
        assert_eq!(offset_of!(SegmentsReply, segments), 64);
        assert_eq!(offset_of!(HandshakeReply, server_version), 48);
    }

    #[test]
    fn every_field_is_naturally_aligned() {
        // The C header uses plain uint64_t/uint32_t fields; its offsets match
        // ours only if ours are naturally aligned.
        assert_eq!(offset_of!(HandshakeReply, page_size) % 8, 0);
        assert_eq!(offset_of!(HandshakeReply, max_prepare_bytes) % 8, 0);
        assert_eq!(offset_of!(PrepareRequest, surface_id) % 4, 0);
        assert_eq!(offset_of!(SegmentsReply, address_kind) % 4, 0);
        assert_eq!(offset_of!(ChecksumReply, algorithm) % 4, 0);
    }

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Handshake {
                min_version: 1,
                max_version: 3,
            },
            Request::Prepare {
                offset: 4096,
                length: 1 << 30,
                client_va: 0,
                surface_id: 7,
            },
            Request::Segments {
                handle: 9,
                continuation: 4096 * 252,
            },
            Request::Complete { handle: 9 },
            Request::Checksum {
                handle: 9,
                offset: 0,
                length: 65536,
            },
        ];
        for r in reqs {
            let bytes = r.encode();
            assert_eq!(bytes.len(), request_size(r.selector()).unwrap());
            assert_eq!(Request::decode(&bytes), Ok(r));
        }
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let good = Request::Complete { handle: 1 }.encode();
        assert_eq!(Request::decode(&good[..10]), Err(WireError::Truncated(10)));
        assert!(matches!(
            Request::decode(&good[..20]),
            Err(WireError::BadLength { got: 20, .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            Request::decode(&long),
            Err(WireError::BadLength {
                got: 33,
                expected: 32,
                ..
            })
        ));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(matches!(Request::decode(&bad), Err(WireError::BadMagic(_))));
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(Request::decode(&v), Err(WireError::BadVersion { got: 2 }));
        let mut s = good.clone();
        s[6] = 9;
        assert_eq!(Request::decode(&s), Err(WireError::UnknownSelector(9)));
        let mut r = good.clone();
        r[24] = 1;
        assert_eq!(
            Request::decode(&r),
            Err(WireError::Reserved("complete.reserved"))
        );
        let mut st = good;
        st[8] = 1;
        assert!(matches!(Request::decode(&st), Err(WireError::Reserved(_))));
    }

    #[test]
    fn handshake_accepts_other_versions_to_negotiate() {
        let mut h = Request::Handshake {
            min_version: 2,
            max_version: 5,
        }
        .encode();
        h[4] = 5;
        assert_eq!(
            Request::decode(&h),
            Ok(Request::Handshake {
                min_version: 2,
                max_version: 5
            })
        );
        let inverted = Request::Handshake {
            min_version: 5,
            max_version: 2,
        }
        .encode();
        assert!(matches!(
            Request::decode(&inverted),
            Err(WireError::Invalid(_))
        ));
    }

    fn batch(segments: Vec<(u64, u64)>) -> SegmentBatch {
        let len: u64 = segments.iter().map(|s| s.1).sum();
        SegmentBatch {
            handle: 3,
            total_length: len + 4096,
            start: 0,
            next: len,
            page_size: 4096,
            address_kind: AddressKind::Physical,
            segments,
        }
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Handshake(ServerInfo {
                version: 1,
                address_kind: AddressKind::Iova,
                page_size: 16384,
                max_segments_per_reply: SEGMENTS_PER_REPLY as u32,
                max_prepare_bytes: 1 << 40,
                server_version: "unimem 0.1.0".into(),
            }),
            Reply::Segments {
                selector: selector::PREPARE,
                batch: batch(vec![(0x1000, 8192), (0x9000, 4096)]),
            },
            Reply::Complete {
                handle: 3,
                released_bytes: 12288,
            },
            Reply::Checksum {
                handle: 3,
                offset: 0,
                length: 4096,
                checksum: 0xdead,
                algorithm: 1,
            },
            Reply::error(selector::PREPARE, IoReturn::NOT_PERMITTED, 1),
        ];
        for r in replies {
            let bytes = r.encode();
            assert!(bytes.len() <= MAX_MESSAGE);
            assert_eq!(Reply::decode(r.selector(), &bytes), Ok(r));
        }
    }

    #[test]
    fn untrusted_segment_replies_are_checked() {
        let enc = |b: &SegmentBatch| encode_batch(selector::SEGMENTS, b);
        let mut b = batch(vec![(0x1000, 4096)]);
        b.next += 4096; // lengths no longer add up
        assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
        let b = batch(vec![(u64::MAX - 100, 4096)]);
        assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
        let b = batch(vec![(0x1000, 0)]);
        assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
        let mut raw = enc(&batch(vec![(0x1000, 4096)]));
        raw[60..64].copy_from_slice(&1000u32.to_le_bytes()); // count
        assert!(Reply::decode(selector::SEGMENTS, &raw).is_err());
        let raw = enc(&batch(vec![(0x1000, 4096)]));
        assert!(matches!(
            Reply::decode(selector::PREPARE, &raw),
            Err(WireError::WrongSelector {
                got: 2,
                expected: 1
            })
        ));
    }

    #[test]
    fn error_replies_are_bare_headers() {
        let bytes = Reply::error(selector::COMPLETE, IoReturn::NOT_FOUND, 0).encode();
        assert_eq!(bytes.len(), 16);
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 16]);
        assert!(Reply::decode(selector::COMPLETE, &padded).is_err());
    }
}
