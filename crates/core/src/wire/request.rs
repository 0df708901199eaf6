//! Requests: what a client asks, decoded into native integers and checked
//! (header, exact size, version, reserved fields) before a resolver sees
//! them.

use super::layout::*;
use super::{exact, selector, zero, Header, WireError, VERSION};
use crate::iokit::IoReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

/// A decoded request, in native integers. Each variant is one selector's
/// request struct (such as [`PrepareRequest`]) without its header and
/// reserved fields, which [`Request::encode`] fills in and
/// [`Request::decode`] checks.
///
/// ```
/// use unimem_core::wire::{selector, Request, WireError};
///
/// let request = Request::Prepare { offset: 0, length: 1 << 20, client_va: 0, surface_id: 0 };
/// let bytes = request.encode();
/// assert_eq!(bytes.len(), unimem_core::wire::request_size(selector::PREPARE).unwrap());
/// assert_eq!(Request::decode(&bytes), Ok(request));
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
    Handshake {
        /// Oldest version the client speaks.
        min_version: u16,
        /// Newest version the client speaks; not below `min_version`.
        max_version: u16,
    },
    /// Selector 1: resolve and pin `[offset, offset + length)` of the
    /// surface (see [`PrepareRequest`]).
    Prepare {
        /// Byte offset from the start of the surface; page-aligned.
        offset: u64,
        /// Bytes to prepare; non-zero and page-aligned.
        length: u64,
        /// The surface's base virtual address in the client (macOS); 0 on
        /// Linux, where the surface travels as an fd.
        client_va: u64,
        /// The IOSurface id (macOS), for logs; 0 on Linux.
        surface_id: u32,
    },
    /// Selector 2: more segments of a prepared handle.
    Segments {
        /// A handle a prepare reply returned on this connection.
        handle: u64,
        /// Byte offset into the prepared range: the previous reply's `next`.
        continuation: u64,
    },
    /// Selector 3: release a prepared handle.
    Complete {
        /// The handle to release.
        handle: u64,
    },
    /// Selector 4: checksum part of a prepared range.
    Checksum {
        /// The prepared handle.
        handle: u64,
        /// Byte offset from the start of the prepared range; a multiple of 8.
        offset: u64,
        /// Bytes to hash; a multiple of 8.
        length: u64,
    },
}

impl Request {
    /// The [`selector`] number this request travels under.
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

    /// The message bytes: the selector's struct with a header of this
    /// build's version and zeroed reserved fields. Values are sent as they
    /// are; checking them is the resolver's part.
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
