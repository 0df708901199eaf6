//! Replies: what a resolver answers, decoded and checked (sizes, counts,
//! that segment lengths add up to the continuation) before a client uses
//! any of it.

use super::layout::*;
use super::{exact, selector, Header, WireError, SEGMENTS_PER_REPLY, SERVER_VERSION_LEN, VERSION};
use crate::addr::AddressKind;
use crate::iokit::IoReturn;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

/// What a handshake reply tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The protocol version the server chose within the client's range.
    pub version: u16,
    /// Which address space every segment this resolver returns lies in.
    pub address_kind: AddressKind,
    /// The resolver's page size in bytes; prepared offsets and lengths are
    /// multiples of it.
    pub page_size: u64,
    /// Most segments one segments reply carries.
    pub max_segments_per_reply: u32,
    /// Largest `length`, in bytes, one prepare accepts.
    pub max_prepare_bytes: u64,
    /// The server's own version string, for logs (at most 31 bytes on the
    /// wire; a longer string is cut at a character boundary).
    pub server_version: String,
}

/// One batch of segments (the reply to prepare or segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBatch {
    /// The prepared handle the segments belong to.
    pub handle: u64,
    /// Length in bytes of the whole prepared range.
    pub total_length: u64,
    /// Offset into the prepared range where the first segment starts.
    pub start: u64,
    /// Offset into the prepared range where the last segment ends: the
    /// continuation to ask for next, or `total_length` when done.
    pub next: u64,
    /// The resolver's page size in bytes.
    pub page_size: u64,
    /// Which address space the segments' addresses lie in.
    pub address_kind: AddressKind,
    /// `(address, length)` pairs covering `[start, next)` in order.
    pub segments: Vec<(u64, u64)>,
}

impl SegmentBatch {
    /// Whether this batch ends the prepared range, so no further segments
    /// request is needed.
    pub fn is_last(&self) -> bool {
        self.next == self.total_length
    }
}

/// A decoded reply.
///
/// ```
/// use unimem_core::iokit::IoReturn;
/// use unimem_core::wire::{selector, Reply, SegmentBatch};
/// use unimem_core::AddressKind;
///
/// let batch = SegmentBatch {
///     handle: 1,
///     total_length: 3 * 4096,
///     start: 0,
///     next: 3 * 4096,
///     page_size: 4096,
///     address_kind: AddressKind::Physical,
///     segments: vec![(0x10_0000, 2 * 4096), (0x40_0000, 4096)],
/// };
/// let reply = Reply::Segments { selector: selector::PREPARE, batch };
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
    Handshake(ServerInfo),
    /// Reply to prepare (`selector` PREPARE) or segments.
    Segments {
        /// [`selector::PREPARE`] or [`selector::SEGMENTS`]: which request
        /// this answers.
        selector: u16,
        /// The segments and where they lie in the prepared range.
        batch: SegmentBatch,
    },
    /// Reply to complete: the handle is gone.
    Complete {
        /// The handle that was released.
        handle: u64,
        /// Bytes that were unpinned.
        released_bytes: u64,
    },
    /// Reply to checksum.
    Checksum {
        /// The request's handle, echoed.
        handle: u64,
        /// The request's offset into the prepared range, echoed.
        offset: u64,
        /// The request's length in bytes, echoed.
        length: u64,
        /// The checksum of those bytes through the resolver's mapping.
        checksum: u64,
        /// [`crate::checksum::ALGORITHM_FNV1A64_WORDS`]; a client refuses
        /// any other.
        algorithm: u32,
    },
    /// A failure: the bare header.
    Status {
        /// The selector of the request that failed.
        selector: u16,
        /// Why, as an `IOReturn`; never [`IoReturn::SUCCESS`] on the wire.
        status: IoReturn,
        /// The OS's own code behind `status` (an errno on Linux), or 0.
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

    /// The [`selector`] of the request this reply answers.
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

    /// The message bytes: a bare header for [`Reply::Status`], otherwise
    /// the selector's reply struct. At most [`SEGMENTS_PER_REPLY`] segments
    /// of a batch fit; any beyond are dropped and the reply no longer
    /// decodes, so a resolver splits larger maps into batches itself.
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

pub(super) fn encode_batch(sel: u16, b: &SegmentBatch) -> Vec<u8> {
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
