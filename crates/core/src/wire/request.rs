//! Requests: each is its selector's wire struct itself, header included,
//! checked (header, exact size, version, reserved fields) before a resolver
//! sees it.

use super::layout::*;
use super::{exact, selector, zero, Header, WireError, VERSION};
use crate::iokit::IoReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

/// A request: one selector's wire struct (such as [`PrepareRequest`]),
/// header and reserved fields included, so its bytes are the struct's.
/// The constructors ([`Request::prepare`] and the like) write a header of
/// this build's version and zero the reserved fields; [`Request::decode`]
/// checks both.
///
/// ```
/// use unimem_core::wire::{selector, Request, WireError};
///
/// let request = Request::prepare(0, 1 << 20, 0, 0);
/// let bytes = request.encode();
/// assert_eq!(bytes.len(), unimem_core::wire::request_size(selector::PREPARE).unwrap());
/// assert_eq!(Request::decode(&bytes), Ok(request));
/// let Request::Prepare(p) = request else { unreachable!() };
/// assert_eq!(p.length.get(), 1 << 20);
///
/// // A message cut short never decodes.
/// assert!(matches!(
///     Request::decode(&bytes[..bytes.len() - 1]),
///     Err(WireError::BadLength { .. })
/// ));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Selector 0: offer the versions the client speaks.
    Handshake(HandshakeRequest),
    /// Selector 1: resolve and pin a range of the surface.
    Prepare(PrepareRequest),
    /// Selector 2: more segments of a prepared handle.
    Segments(SegmentsRequest),
    /// Selector 3: release a prepared handle.
    Complete(CompleteRequest),
    /// Selector 4: checksum part of a prepared range.
    Checksum(ChecksumRequest),
}

/// The header every request of this build carries.
const fn request_header(selector: u16) -> Header {
    Header::new(selector, IoReturn::SUCCESS, 0)
}

impl Request {
    /// A handshake offering versions `min_version..=max_version`.
    pub const fn handshake(min_version: u16, max_version: u16) -> Request {
        Request::Handshake(HandshakeRequest {
            header: request_header(selector::HANDSHAKE),
            min_version: U16::new(min_version),
            max_version: U16::new(max_version),
            reserved0: U32::ZERO,
            reserved1: U64::ZERO,
        })
    }

    /// A prepare of `[offset, offset + length)` of the surface. `client_va`
    /// and `surface_id` name the surface on macOS; on Linux both are 0 and
    /// the surface travels as an fd.
    pub const fn prepare(offset: u64, length: u64, client_va: u64, surface_id: u32) -> Request {
        Request::Prepare(PrepareRequest {
            header: request_header(selector::PREPARE),
            offset: U64::new(offset),
            length: U64::new(length),
            client_va: U64::new(client_va),
            surface_id: U32::new(surface_id),
            options: U32::ZERO,
        })
    }

    /// The segments of `handle` from `continuation` on.
    pub const fn segments(handle: u64, continuation: u64) -> Request {
        Request::Segments(SegmentsRequest {
            header: request_header(selector::SEGMENTS),
            handle: U64::new(handle),
            continuation: U64::new(continuation),
        })
    }

    /// The release of `handle`.
    pub const fn complete(handle: u64) -> Request {
        Request::Complete(CompleteRequest {
            header: request_header(selector::COMPLETE),
            handle: U64::new(handle),
            reserved: U64::ZERO,
        })
    }

    /// A checksum of `[offset, offset + length)` of `handle`'s range.
    pub const fn checksum(handle: u64, offset: u64, length: u64) -> Request {
        Request::Checksum(ChecksumRequest {
            header: request_header(selector::CHECKSUM),
            handle: U64::new(handle),
            offset: U64::new(offset),
            length: U64::new(length),
            reserved: U64::ZERO,
        })
    }

    /// The request's header.
    pub fn header(&self) -> &Header {
        match self {
            Request::Handshake(r) => &r.header,
            Request::Prepare(r) => &r.header,
            Request::Segments(r) => &r.header,
            Request::Complete(r) => &r.header,
            Request::Checksum(r) => &r.header,
        }
    }

    /// The [`selector`] number this request travels under: its variant's.
    /// (A header built by hand that says otherwise is sent as it is, and
    /// the resolver refuses it.)
    pub fn selector(&self) -> u16 {
        match self {
            Request::Handshake(_) => selector::HANDSHAKE,
            Request::Prepare(_) => selector::PREPARE,
            Request::Segments(_) => selector::SEGMENTS,
            Request::Complete(_) => selector::COMPLETE,
            Request::Checksum(_) => selector::CHECKSUM,
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
                Request::Handshake(r)
            }
            selector::PREPARE => {
                let r: PrepareRequest = exact(message, sel)?;
                zero(u64::from(r.options.get()), "prepare.options")?;
                Request::Prepare(r)
            }
            selector::SEGMENTS => Request::Segments(exact(message, sel)?),
            selector::COMPLETE => {
                let r: CompleteRequest = exact(message, sel)?;
                zero(r.reserved.get(), "complete.reserved")?;
                Request::Complete(r)
            }
            _ => {
                let r: ChecksumRequest = exact(message, sel)?;
                zero(r.reserved.get(), "checksum.reserved")?;
                Request::Checksum(r)
            }
        })
    }

    /// The message bytes: the wire struct as it is. Values are sent as
    /// they are; checking them is the resolver's part.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Request::Handshake(r) => r.as_bytes(),
            Request::Prepare(r) => r.as_bytes(),
            Request::Segments(r) => r.as_bytes(),
            Request::Complete(r) => r.as_bytes(),
            Request::Checksum(r) => r.as_bytes(),
        }
    }

    /// [`Request::as_bytes`], copied.
    pub fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
