//! The client of the CybMemDriver DEXT: finds its service by name, opens a
//! connection, checks the protocol version first, then resolves ranges of
//! the client's locked IOSurface with prepare / segments / complete, and
//! asks for checksums the DEXT computes through its own mapping.
//!
//! Every request and reply is a `unimem_core::wire` struct sent with
//! `IOConnectCallStructMethod(selector)`; replies are decoded and checked
//! before anything in them is used. The addresses carry the kind the DEXT
//! reports in its handshake: a DEXT whose DMA commands have no IOMMU parent
//! reports `DmaUnresolved`, never `Physical`.
//!
//! The connection goes through [`Transport`], so the protocol logic here is
//! independent of IOKit and can be driven by a test double.

use unimem_core::addr::{AddressKind, PageSize};
use unimem_core::checksum::ALGORITHM_FNV1A64_WORDS;
use unimem_core::iokit::IoReturn;
use unimem_core::map::{PaMap, Target};
use unimem_core::wire::{self, Reply, Request, SegmentBatch, ServerInfo};

use super::error::AppleError;
use super::ffi;
use super::iosurface::IoSurface;

/// `IOServiceOpen` type the DEXT's `NewUserClient` accepts.
pub const USER_CLIENT_TYPE: u32 = 0;

/// One round trip: the request bytes in, the reply bytes out.
pub trait Transport {
    /// Sends `input` with `selector`; returns how many bytes of `output`
    /// the reply filled, or the IOReturn of a call that failed outright.
    fn call(&mut self, selector: u16, input: &[u8], output: &mut [u8]) -> Result<usize, IoReturn>;
}

impl Transport for ffi::Connection {
    fn call(&mut self, selector: u16, input: &[u8], output: &mut [u8]) -> Result<usize, IoReturn> {
        self.call_struct(u32::from(selector), input, output)
    }
}

/// A range the DEXT holds prepared: its handle and its address map. The
/// addresses stay valid until [`DextClient::complete`] or the connection
/// closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DextPrepared {
    pub handle: u64,
    pub map: PaMap,
}

/// A connection to CybMemDriver, handshake done.
pub struct DextClient<T: Transport = ffi::Connection> {
    transport: T,
    server: ServerInfo,
    page_size: PageSize,
}

impl DextClient<ffi::Connection> {
    /// Finds the DEXT's service by name (`IOServiceNameMatching`: the
    /// service's class is IOUserService, so matching by class cannot find
    /// it), opens a connection and checks the version.
    pub fn open() -> Result<Self, AppleError> {
        let service = ffi::Service::matching_name(c"CybMemDriver").ok_or(AppleError::NotLoaded)?;
        let connection = service
            .open(USER_CLIENT_TYPE)
            .map_err(AppleError::from_open)?;
        Self::with_transport(connection)
    }
}

impl<T: Transport> DextClient<T> {
    /// Handshakes over `transport` and keeps what the DEXT reports.
    pub fn with_transport(mut transport: T) -> Result<Self, AppleError> {
        let reply = call(
            &mut transport,
            &Request::Handshake {
                min_version: wire::VERSION,
                max_version: wire::VERSION,
            },
        )?;
        let Reply::Handshake(server) = reply else {
            return Err(AppleError::Mismatch(
                "handshake answered with another reply",
            ));
        };
        if server.version != wire::VERSION {
            return Err(AppleError::Version {
                server: server.version,
                client: wire::VERSION,
            });
        }
        let page_size = PageSize::new(server.page_size).ok_or(AppleError::Mismatch(
            "handshake page size is not a power of two",
        ))?;
        if server.max_segments_per_reply as usize > wire::SEGMENTS_PER_REPLY {
            return Err(AppleError::Mismatch(
                "handshake promises more segments than a reply holds",
            ));
        }
        Ok(DextClient {
            transport,
            server,
            page_size,
        })
    }

    /// What the DEXT said about itself.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The kind of address the DEXT's DMA commands produce.
    pub fn address_kind(&self) -> AddressKind {
        self.server.address_kind
    }

    /// Prepares the whole surface and collects its segments.
    pub fn resolve(&mut self, surface: &IoSurface) -> Result<DextPrepared, AppleError> {
        self.resolve_range(surface.base_address(), surface.id(), 0, surface.len())
    }

    /// Prepares `[offset, offset + length)` of the client memory at
    /// `client_va`, then pages through every segment. On any failure after
    /// the prepare succeeded, the handle is completed before returning.
    pub fn resolve_range(
        &mut self,
        client_va: u64,
        surface_id: u32,
        offset: u64,
        length: u64,
    ) -> Result<DextPrepared, AppleError> {
        let first = self.prepare(client_va, surface_id, offset, length)?;
        let handle = first.handle;
        match self.collect(first, length) {
            Ok(map) => Ok(DextPrepared { handle, map }),
            Err(e) => {
                let _ = self.complete(handle);
                Err(e)
            }
        }
    }

    fn collect(&mut self, first: SegmentBatch, length: u64) -> Result<PaMap, AppleError> {
        let mut map = PaMap::new(self.server.address_kind, self.page_size, length);
        let handle = first.handle;
        let mut batch = first;
        let mut expected_start = 0;
        loop {
            if batch.handle != handle || batch.total_length != length {
                return Err(AppleError::Mismatch("segments reply for another range"));
            }
            if batch.start != expected_start {
                return Err(AppleError::Mismatch("segments reply starts elsewhere"));
            }
            if batch.address_kind != self.server.address_kind {
                return Err(AppleError::Mismatch(
                    "segments carry another address kind than the handshake",
                ));
            }
            let mut offset = batch.start;
            for &(address, len) in &batch.segments {
                map.push_at(offset, len, Target::Address(address))?;
                offset += len;
            }
            if batch.is_last() {
                return Ok(map);
            }
            if batch.next == batch.start {
                return Err(AppleError::Mismatch("segments reply made no progress"));
            }
            expected_start = batch.next;
            batch = self.segments(handle, batch.next)?;
        }
    }

    /// PREPARE: pins the range in the DEXT; returns the first segments.
    pub fn prepare(
        &mut self,
        client_va: u64,
        surface_id: u32,
        offset: u64,
        length: u64,
    ) -> Result<SegmentBatch, AppleError> {
        if length == 0 || length > self.server.max_prepare_bytes {
            return Err(AppleError::InvalidRange(format!(
                "length {length} is outside 1..={} that the DEXT accepts",
                self.server.max_prepare_bytes
            )));
        }
        let reply = self.call(&Request::Prepare {
            offset,
            length,
            client_va,
            surface_id,
        })?;
        match reply {
            Reply::Segments { batch, .. } => Ok(batch),
            _ => Err(AppleError::Mismatch("prepare answered with another reply")),
        }
    }

    /// SEGMENTS: the segments from `continuation` on.
    pub fn segments(&mut self, handle: u64, continuation: u64) -> Result<SegmentBatch, AppleError> {
        match self.call(&Request::Segments {
            handle,
            continuation,
        })? {
            Reply::Segments { batch, .. } => Ok(batch),
            _ => Err(AppleError::Mismatch("segments answered with another reply")),
        }
    }

    /// COMPLETE: releases a prepared range; returns the bytes unpinned.
    pub fn complete(&mut self, handle: u64) -> Result<u64, AppleError> {
        match self.call(&Request::Complete { handle })? {
            Reply::Complete {
                handle: h,
                released_bytes,
            } if h == handle => Ok(released_bytes),
            _ => Err(AppleError::Mismatch("complete answered for another handle")),
        }
    }

    /// CHECKSUM: FNV-1a words over `[offset, offset + length)` of the
    /// prepared range, computed by the DEXT through its own mapping.
    pub fn checksum(&mut self, handle: u64, offset: u64, length: u64) -> Result<u64, AppleError> {
        match self.call(&Request::Checksum {
            handle,
            offset,
            length,
        })? {
            Reply::Checksum {
                handle: h,
                offset: o,
                length: l,
                checksum,
                algorithm,
            } if h == handle && o == offset && l == length => {
                if algorithm != ALGORITHM_FNV1A64_WORDS {
                    return Err(AppleError::Mismatch("checksum with an unknown algorithm"));
                }
                Ok(checksum)
            }
            _ => Err(AppleError::Mismatch("checksum answered for another range")),
        }
    }

    fn call(&mut self, request: &Request) -> Result<Reply, AppleError> {
        call(&mut self.transport, request)
    }
}

/// One request → one checked reply; an error reply becomes an error.
fn call<T: Transport>(transport: &mut T, request: &Request) -> Result<Reply, AppleError> {
    let sel = request.selector();
    let input = request.encode();
    let mut output = vec![0u8; wire::reply_size(sel).unwrap_or(wire::MAX_MESSAGE)];
    let n = transport
        .call(sel, &input, &mut output)
        .map_err(|status| AppleError::from_call(sel, status))?;
    match Reply::decode(sel, &output[..n])? {
        Reply::Status { status, .. } => Err(AppleError::from_reply(sel, status)),
        reply => Ok(reply),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Answers like the DEXT would, from a fixed page table.
    pub(crate) struct FakeDext {
        pages: Vec<u64>,
        page: u64,
        fail_prepare: Option<IoReturn>,
        completed: Vec<u64>,
    }

    impl Transport for FakeDext {
        fn call(&mut self, sel: u16, input: &[u8], output: &mut [u8]) -> Result<usize, IoReturn> {
            let reply = match Request::decode(input).map_err(|_| IoReturn::BAD_ARGUMENT)? {
                Request::Handshake { .. } => Reply::Handshake(ServerInfo {
                    version: wire::VERSION,
                    address_kind: AddressKind::DmaUnresolved,
                    page_size: self.page,
                    max_segments_per_reply: wire::SEGMENTS_PER_REPLY as u32,
                    max_prepare_bytes: 1 << 30,
                    server_version: "fake".into(),
                }),
                Request::Prepare { .. } if self.fail_prepare.is_some() => {
                    Reply::error(sel, self.fail_prepare.unwrap(), 0)
                }
                Request::Prepare { length, .. } => self.batch(sel, length, 0),
                Request::Segments { continuation, .. } => {
                    let total = self.pages.len() as u64 * self.page;
                    self.batch(sel, total, continuation)
                }
                Request::Complete { handle } => {
                    self.completed.push(handle);
                    Reply::Complete {
                        handle,
                        released_bytes: self.pages.len() as u64 * self.page,
                    }
                }
                Request::Checksum {
                    handle,
                    offset,
                    length,
                } => Reply::Checksum {
                    handle,
                    offset,
                    length,
                    checksum: 0xfeed,
                    algorithm: ALGORITHM_FNV1A64_WORDS,
                },
            };
            let bytes = reply.encode();
            output[..bytes.len()].copy_from_slice(&bytes);
            Ok(bytes.len())
        }
    }

    impl FakeDext {
        fn batch(&self, sel: u16, total: u64, from: u64) -> Reply {
            // Two segments per reply, so paging is exercised.
            let first = (from / self.page) as usize;
            let segments: Vec<(u64, u64)> = self.pages[first..]
                .iter()
                .take(2)
                .map(|&a| (a, self.page))
                .collect();
            let next = from + segments.len() as u64 * self.page;
            Reply::Segments {
                selector: sel,
                batch: SegmentBatch {
                    handle: 7,
                    total_length: total,
                    start: from,
                    next,
                    page_size: self.page,
                    address_kind: AddressKind::DmaUnresolved,
                    segments,
                },
            }
        }
    }

    pub(crate) fn fake() -> FakeDext {
        FakeDext {
            pages: vec![0x10000, 0x30000, 0x34000, 0x90000, 0x20000],
            page: 16384,
            fail_prepare: None,
            completed: vec![],
        }
    }

    #[test]
    fn resolves_across_replies_and_keeps_the_address_kind() {
        let mut c = DextClient::with_transport(fake()).unwrap();
        assert_eq!(c.address_kind(), AddressKind::DmaUnresolved);
        let p = c.resolve_range(0x1_0000_0000, 1, 0, 5 * 16384).unwrap();
        assert_eq!(p.handle, 7);
        assert_eq!(p.map.kind(), AddressKind::DmaUnresolved);
        assert_eq!(p.map.mapped_bytes(), 5 * 16384);
        assert_eq!(p.map.lookup(0), Some(0x10000));
        assert_eq!(p.map.lookup(2 * 16384 + 5), Some(0x34005));
        assert_eq!(c.checksum(7, 0, 64).unwrap(), 0xfeed);
        assert_eq!(c.complete(7).unwrap(), 5 * 16384);
    }

    #[test]
    fn a_failed_prepare_carries_the_code() {
        let mut f = fake();
        f.fail_prepare = Some(IoReturn::CANNOT_WIRE);
        let mut c = DextClient::with_transport(f).unwrap();
        let e = c.resolve_range(0x1_0000_0000, 1, 0, 16384).unwrap_err();
        assert!(matches!(
            e,
            AppleError::PrepareFailed {
                status: IoReturn::CANNOT_WIRE
            }
        ));
        assert!(e.to_string().contains("0xe00002de"));
    }

    #[test]
    fn a_length_the_dext_refuses_is_not_sent() {
        let mut c = DextClient::with_transport(fake()).unwrap();
        assert!(matches!(
            c.prepare(0x1000, 1, 0, 0),
            Err(AppleError::InvalidRange(_))
        ));
    }
}
