//! The client side of the wire protocol, once, for every resolver that
//! speaks it: the Linux service over a Unix socket and the CybMemDriver
//! DEXT over `IOConnectCallStructMethod` are two [`Transport`]s under the
//! same [`ProtocolClient`].
//!
//! The client trusts nothing it is answered. Before anything in a reply is
//! used it checks, whichever peer sent it: the handshake's version, page
//! size and reply capacity; that every segments reply belongs to the range
//! asked for (handle, total length, start), carries the handshake's address
//! kind and page size, never an address 0, and that its lengths add up to
//! exactly the continuation it announces; that a complete and a checksum
//! answer the handle (and range) asked for, with a known algorithm. A
//! failure after a prepare succeeded completes that handle before the error
//! is returned, so nothing stays pinned for a caller that saw an error.

use std::os::fd::BorrowedFd;

use unimem_core::addr::{AddressKind, PageSize};
use unimem_core::checksum::ALGORITHM_FNV1A64_WORDS;
use unimem_core::map::PaMap;
use unimem_core::wire::{self, selector, HandshakeReply, Reply, Request, SegmentsReply};

use crate::error::{Error, ErrorKind, Result};

mod paging;

/// One round trip to a resolver that speaks the wire protocol.
pub trait Transport {
    /// Who answers, for messages: "the resolver service", "the DEXT".
    fn peer(&self) -> &'static str;

    /// Sends `request` and returns the decoded reply. `fd` is the surface,
    /// for transports that pass one with a prepare (`SCM_RIGHTS`); others
    /// name the surface inside the request and ignore it. An error reply
    /// comes back as an [`Error`] that says who refused what, and why.
    fn call(&mut self, request: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Reply>;
}

/// How a prepare names the memory to resolve.
#[derive(Debug, Clone, Copy)]
pub struct SurfaceRef<'a> {
    /// The surface's fd, for a peer that receives one (the service).
    pub fd: Option<BorrowedFd<'a>>,
    /// The surface's address in the client, for a peer that maps the
    /// client's memory itself (the DEXT); 0 otherwise.
    pub client_va: u64,
    /// The IOSurface id, where there is one; 0 otherwise.
    pub surface_id: u32,
}

impl<'a> SurfaceRef<'a> {
    /// A surface passed by its fd.
    pub fn fd(fd: BorrowedFd<'a>) -> Self {
        Self {
            fd: Some(fd),
            client_va: 0,
            surface_id: 0,
        }
    }

    /// A surface named by its address in this process and its id.
    pub fn client_memory(client_va: u64, surface_id: u32) -> Self {
        Self {
            fd: None,
            client_va,
            surface_id,
        }
    }
}

/// A range the peer holds prepared: the addresses in `map` stay valid until
/// it is completed or the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedMap {
    /// The peer's handle for the range.
    pub handle: u64,
    /// The range's addresses, from offset 0 of the range.
    pub map: PaMap,
}

/// One of the consecutive ranges [`ProtocolClient::resolve_all`] prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRange {
    /// The peer's handle for the range.
    pub handle: u64,
    /// Where the range starts in the resolved memory.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u64,
}

/// Memory resolved in consecutive prepared ranges, with one map of the
/// whole in order. Every range stays prepared until completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRanges {
    /// The ranges, consecutive and in order.
    pub ranges: Vec<PreparedRange>,
    /// The map of all of them, from offset 0.
    pub map: PaMap,
}

/// A connection to a resolver that has passed the handshake.
pub struct ProtocolClient<T> {
    transport: T,
    server: HandshakeReply,
    address_kind: AddressKind,
    page_size: PageSize,
}

impl<T> std::fmt::Debug for ProtocolClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn protocol(message: String) -> Error {
    Error::new(ErrorKind::Protocol, message)
}

impl<T: Transport> ProtocolClient<T> {
    /// Does the handshake over `transport` and checks what the peer says
    /// about itself before anything else is sent.
    pub fn handshake(mut transport: T) -> Result<Self> {
        let peer = transport.peer();
        let request = Request::handshake(wire::VERSION, wire::VERSION);
        let server = match transport.call(&request, None)? {
            Reply::Handshake(info) => info,
            other => return Err(unexpected(peer, &other)),
        };
        if server.version.get() != wire::VERSION {
            return Err(protocol(format!(
                "{peer} speaks protocol version {}, this client {}: update one of them so both \
                 come from the same release",
                server.version,
                wire::VERSION
            )));
        }
        let address_kind = server.address_kind().ok_or_else(|| {
            protocol(format!(
                "{peer} announced address kind {}, which this client does not know",
                server.address_kind
            ))
        })?;
        let page_size = PageSize::new(server.page_size.get()).ok_or_else(|| {
            protocol(format!(
                "{peer} announced a page size of {}, which is not a power of two",
                server.page_size
            ))
        })?;
        if server.max_segments_per_reply.get() as usize > wire::SEGMENTS_PER_REPLY {
            return Err(protocol(format!(
                "{peer} promises {} segments per reply, more than a reply holds ({})",
                server.max_segments_per_reply,
                wire::SEGMENTS_PER_REPLY
            )));
        }
        Ok(Self {
            transport,
            server,
            address_kind,
            page_size,
        })
    }

    /// What the peer said in the handshake.
    pub fn server(&self) -> &HandshakeReply {
        &self.server
    }

    /// The kind of address the peer resolves to.
    pub fn address_kind(&self) -> AddressKind {
        self.address_kind
    }

    /// The peer's page size.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The longest range one prepare may ask for: the handshake's
    /// `max_prepare_bytes` rounded down to whole pages. A limit below one
    /// page leaves nothing to prepare.
    pub fn prepare_step(&self) -> Result<u64> {
        let step = self
            .page_size
            .round_down(self.server.max_prepare_bytes.get());
        if step == 0 {
            return Err(protocol(format!(
                "{}'s max_prepare_bytes ({}) is below one page, so no range can be prepared",
                self.transport.peer(),
                self.server.max_prepare_bytes
            )));
        }
        Ok(step)
    }

    /// PREPARE `[offset, offset + length)` of `surface`, then every
    /// segment. On any failure after the peer prepared the range, the
    /// handle is completed before the error is returned.
    pub fn prepare_range(
        &mut self,
        surface: &SurfaceRef<'_>,
        offset: u64,
        length: u64,
    ) -> Result<PreparedMap> {
        if length == 0 {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "nothing to prepare: the length is 0",
            ));
        }
        let request = Request::prepare(offset, length, surface.client_va, surface.surface_id);
        let first = match self.transport.call(&request, surface.fd)? {
            Reply::Segments(batch) => batch,
            other => return Err(unexpected(self.transport.peer(), &other)),
        };
        let handle = first.handle.get();
        let page = match self.range_page_size(&first) {
            Ok(page) => page,
            Err(e) => {
                let _ = self.complete(handle);
                return Err(e);
            }
        };
        let mut map = PaMap::new(self.address_kind, page, length);
        match self.collect(first, handle, length, 0, &mut map) {
            Ok(()) => Ok(PreparedMap { handle, map }),
            Err(e) => {
                let _ = self.complete(handle);
                Err(e)
            }
        }
    }

    /// Resolves `[0, length)` of `surface` in consecutive ranges of at most
    /// [`Self::prepare_step`] bytes, appended to one map at their offsets
    /// (so runs that continue across a range border coalesce). Refuses,
    /// before preparing anything, memory that needs more than `max_ranges`
    /// ranges. On any failure every range prepared so far is completed.
    pub fn resolve_all(
        &mut self,
        surface: &SurfaceRef<'_>,
        length: u64,
        max_ranges: usize,
    ) -> Result<ResolvedRanges> {
        let step = self.prepare_step()?;
        if length == 0 {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "nothing to resolve: the length is 0",
            ));
        }
        let needed = length.div_ceil(step);
        if needed > max_ranges as u64 {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "{length} bytes need {needed} prepares of at most {step} bytes, but {} holds \
                     at most {max_ranges} prepared ranges per client: ask for at most {} bytes",
                    self.transport.peer(),
                    step.saturating_mul(max_ranges as u64)
                ),
            ));
        }
        let mut whole: Option<PaMap> = None;
        let mut ranges: Vec<PreparedRange> = Vec::with_capacity(needed as usize);
        let mut offset = 0;
        while offset < length {
            let len = step.min(length - offset);
            let result = self.prepare_range(surface, offset, len).and_then(|p| {
                ranges.push(PreparedRange {
                    handle: p.handle,
                    offset,
                    length: len,
                });
                self.append_range(&mut whole, &p.map, length)
            });
            if let Err(e) = result {
                let _ = self.complete_all(&ranges);
                return Err(e);
            }
            offset += len;
        }
        let map = whole.expect("a positive length prepares at least one range");
        Ok(ResolvedRanges { ranges, map })
    }

    /// Appends the map of the next range to the map of the whole (made on
    /// the first), so runs that continue across the border coalesce. Every
    /// range of one surface must come in the same pages.
    fn append_range(&self, whole: &mut Option<PaMap>, part: &PaMap, length: u64) -> Result<()> {
        let whole = whole.get_or_insert_with(|| PaMap::new(part.kind(), part.page_size(), length));
        if part.page_size() != whole.page_size() {
            return Err(protocol(format!(
                "{}'s ranges of one surface come in pages of {} and {} bytes",
                self.transport.peer(),
                whole.page_size().bytes(),
                part.page_size().bytes()
            )));
        }
        whole.append(part).map_err(|e| {
            protocol(format!(
                "{}'s ranges do not form one map: {e}",
                self.transport.peer()
            ))
        })
    }

    /// Completes every range, even after one fails; returns the first
    /// failure.
    pub fn complete_all(&mut self, ranges: &[PreparedRange]) -> Result<()> {
        let mut first_error = None;
        for r in ranges {
            if let Err(e) = self.complete(r.handle) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// SEGMENTS: the segments of a prepared range from `continuation` on.
    pub fn segments(&mut self, handle: u64, continuation: u64) -> Result<Box<SegmentsReply>> {
        match self
            .transport
            .call(&Request::segments(handle, continuation), None)?
        {
            Reply::Segments(batch) => Ok(batch),
            other => Err(unexpected(self.transport.peer(), &other)),
        }
    }

    /// COMPLETE: releases a prepared range; returns the bytes released.
    pub fn complete(&mut self, handle: u64) -> Result<u64> {
        match self.transport.call(&Request::complete(handle), None)? {
            Reply::Complete(r) if r.handle.get() == handle => Ok(r.released_bytes.get()),
            Reply::Complete(r) => Err(protocol(format!(
                "{} completed handle {} when asked to complete {handle}",
                self.transport.peer(),
                r.handle
            ))),
            other => Err(unexpected(self.transport.peer(), &other)),
        }
    }

    /// CHECKSUM: FNV-1a words over `[offset, offset + length)` of a
    /// prepared range, computed by the peer through its own mapping.
    pub fn checksum(&mut self, handle: u64, offset: u64, length: u64) -> Result<u64> {
        let peer = self.transport.peer();
        match self
            .transport
            .call(&Request::checksum(handle, offset, length), None)?
        {
            Reply::Checksum(r) => {
                let (h, o, l) = (r.handle.get(), r.offset.get(), r.length.get());
                if (h, o, l) != (handle, offset, length) {
                    return Err(protocol(format!(
                        "{peer} answered a checksum of handle {h} [{o:#x}, +{l:#x}) when asked \
                         for handle {handle} [{offset:#x}, +{length:#x})"
                    )));
                }
                if r.algorithm.get() != ALGORITHM_FNV1A64_WORDS {
                    return Err(protocol(format!(
                        "{peer} used checksum algorithm {}, not FNV-1a words",
                        r.algorithm
                    )));
                }
                Ok(r.checksum.get())
            }
            other => Err(unexpected(peer, &other)),
        }
    }
}

fn unexpected(peer: &str, r: &Reply) -> Error {
    protocol(format!(
        "{peer} answered with an unexpected {} reply",
        selector::name(r.selector())
    ))
}

#[cfg(test)]
pub(crate) mod tests;
