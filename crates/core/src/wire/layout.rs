//! The structs on the wire, field for field as in
//! `dext/include/unimem_wire.h`: `#[repr(C)]`, little-endian, alignment 1,
//! every field at its natural offset.

use super::{SEGMENTS_PER_REPLY, SERVER_VERSION_LEN};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

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
