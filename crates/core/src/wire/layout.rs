//! The structs on the wire, field for field as in
//! `dext/include/unimem_wire.h`: `#[repr(C)]`, little-endian, alignment 1,
//! every field at its natural offset.

use super::{SEGMENTS_PER_REPLY, SERVER_VERSION_LEN};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        wire_struct!($(#[$m])* #[derive(Debug)] pub struct $name nodebug { $($(#[$fm])* pub $f: $t,)* });
    };
    ($(#[$m:meta])* pub struct $name:ident nodebug { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

wire_struct! {
    /// Starts every message. 16 bytes. Its `Debug` names the selector and
    /// the status.
    pub struct Header nodebug {
        /// [`MAGIC`](super::MAGIC); anything else is refused.
        pub magic: U32,
        /// The sender's protocol version. A handshake request may carry any;
        /// every later message carries the negotiated one.
        pub version: U16,
        /// Which operation this message requests or answers (see
        /// [`selector`](super::selector)).
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
        /// The header, selector 0; status and detail 0.
        pub header: Header,
        /// Oldest version the client speaks.
        pub min_version: U16,
        /// Newest version the client speaks; not below `min_version`.
        pub max_version: U16,
        /// Must be 0.
        pub reserved0: U32,
        /// Must be 0.
        pub reserved1: U64,
    }
}

wire_struct! {
    /// Selector 0, reply. Its `Debug` shows the server version as text.
    pub struct HandshakeReply nodebug {
        /// The header, selector 0; status 0 (a failure is a bare header).
        pub header: Header,
        /// The version the server chose within the client's range.
        pub version: U16,
        /// Must be 0.
        pub reserved0: U16,
        /// [`AddressKind::to_wire`](crate::addr::AddressKind::to_wire) of
        /// the addresses this resolver returns.
        pub address_kind: U32,
        /// The resolver's page size: segment lengths are multiples of it.
        pub page_size: U64,
        /// Most segments one segments reply carries; at most
        /// [`SEGMENTS_PER_REPLY`].
        pub max_segments_per_reply: U32,
        /// Must be 0.
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
        /// The header, selector 1; status and detail 0.
        pub header: Header,
        /// Byte offset of the range from the start of the surface; a
        /// multiple of the page size.
        pub offset: U64,
        /// Bytes to prepare: a non-zero multiple of the page size, at most
        /// the handshake's `max_prepare_bytes`.
        pub length: U64,
        /// The surface's base virtual address in the client (macOS); 0 on
        /// Linux.
        pub client_va: U64,
        /// The IOSurface id (macOS), for logs only; 0 on Linux.
        pub surface_id: U32,
        /// No options are defined: must be 0.
        pub options: U32,
    }
}

wire_struct! {
    /// Selector 2, request: segments from `continuation` (a byte offset into
    /// the prepared range) on.
    pub struct SegmentsRequest {
        /// The header, selector 2; status and detail 0.
        pub header: Header,
        /// The handle a prepare reply returned on this connection.
        pub handle: U64,
        /// Byte offset into the prepared range to resume at: the `next` of
        /// the previous reply.
        pub continuation: U64,
    }
}

wire_struct! {
    /// Selector 3, request: release a prepared handle.
    pub struct CompleteRequest {
        /// The header, selector 3; status and detail 0.
        pub header: Header,
        /// The handle to release; it is invalid afterwards.
        pub handle: U64,
        /// Must be 0.
        pub reserved: U64,
    }
}

wire_struct! {
    /// Selector 4, request: checksum `[offset, offset + length)` of the
    /// prepared range (offsets relative to the prepared range; multiples of 8).
    pub struct ChecksumRequest {
        /// The header, selector 4; status and detail 0.
        pub header: Header,
        /// The prepared handle whose range is hashed.
        pub handle: U64,
        /// Byte offset from the start of the prepared range; a multiple of 8.
        pub offset: U64,
        /// Bytes to hash; a multiple of 8, within the prepared range.
        pub length: U64,
        /// Must be 0.
        pub reserved: U64,
    }
}

wire_struct! {
    /// One run of contiguous device-visible addresses.
    pub struct WireSegment {
        /// First address of the run, of the reply's `address_kind`.
        pub address: U64,
        /// Length of the run in bytes; never 0.
        pub length: U64,
    }
}

wire_struct! {
    /// Reply to selectors 1 and 2: exactly 4096 bytes. Its `Debug` shows
    /// the valid entries only.
    pub struct SegmentsReply nodebug {
        /// The header, selector 1 or 2; status 0 (a failure is a bare header).
        pub header: Header,
        /// The prepared handle; pass it to segments, checksum and complete.
        pub handle: U64,
        /// Length of the whole prepared range.
        pub total_length: U64,
        /// Offset into the prepared range where `segments[0]` starts.
        pub start: U64,
        /// Continuation for the next `SEGMENTS` call; equals `total_length`
        /// when this reply carries the last segment.
        pub next: U64,
        /// The resolver's page size in bytes, as in the handshake.
        pub page_size: U64,
        /// [`AddressKind::to_wire`](crate::addr::AddressKind::to_wire) of
        /// the segments' addresses.
        pub address_kind: U32,
        /// Valid entries in `segments`; they cover `[start, next)` in order.
        pub count: U32,
        /// The runs; entries from `count` on are zero and ignored.
        pub segments: [WireSegment; SEGMENTS_PER_REPLY],
    }
}

wire_struct! {
    /// Reply to selector 3.
    pub struct CompleteReply {
        /// The header, selector 3; status 0 (a failure is a bare header).
        pub header: Header,
        /// The handle that was released, echoed.
        pub handle: U64,
        /// Bytes that were unpinned.
        pub released_bytes: U64,
    }
}

wire_struct! {
    /// Reply to selector 4.
    pub struct ChecksumReply {
        /// The header, selector 4; status 0 (a failure is a bare header).
        pub header: Header,
        /// The request's handle, echoed.
        pub handle: U64,
        /// The request's offset into the prepared range, echoed.
        pub offset: U64,
        /// The request's length in bytes, echoed.
        pub length: U64,
        /// The checksum of those bytes as the resolver's mapping sees them.
        pub checksum: U64,
        /// [`crate::checksum::ALGORITHM_FNV1A64_WORDS`].
        pub algorithm: U32,
        /// Must be 0.
        pub reserved: U32,
    }
}
