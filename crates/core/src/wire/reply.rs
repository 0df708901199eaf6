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
