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

    /// The page size a range comes in, from its first reply: a power of two
    /// and a multiple of the handshake's (a surface of huge pages comes in
    /// huge pages).
    fn range_page_size(&self, first: &SegmentsReply) -> Result<PageSize> {
        PageSize::new(first.page_size.get())
            .filter(|p| p.bytes() >= self.page_size.bytes())
            .ok_or_else(|| {
                protocol(format!(
                    "{}'s segments come in pages of {} bytes, which is not a power of two of at \
                     least its handshake's {} bytes",
                    self.transport.peer(),
                    first.page_size,
                    self.page_size.bytes()
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

    /// Pages through the segments of the range `first` opened (`length`
    /// bytes, handle `handle`), appending them to `map` at `base` on.
    fn collect(
        &mut self,
        first: Box<SegmentsReply>,
        handle: u64,
        length: u64,
        base: u64,
        map: &mut PaMap,
    ) -> Result<()> {
        let mut batch = first;
        let mut expected_start = 0;
        loop {
            self.check_batch(&batch, handle, length, expected_start, map.page_size())?;
            let mut offset = batch.start.get();
            for segment in batch.segments() {
                let (address, len) = (segment.address.get(), segment.length.get());
                // Page frame 0 never backs user memory, and no IOMMU hands
                // out IOVA 0 for a mapping: 0 is a peer that could not see
                // the addresses, never a real segment.
                if address == 0 {
                    return Err(protocol(format!(
                        "{} sent address 0 for offset {offset:#x}: it cannot see the addresses",
                        self.transport.peer()
                    )));
                }
                if len > length - offset {
                    return Err(protocol(format!(
                        "{}'s segment at offset {offset:#x} runs past the end of the prepared \
                         range ({length:#x})",
                        self.transport.peer()
                    )));
                }
                map.push_at(base + offset, len, map.target(address))
                    .map_err(|e| {
                        protocol(format!("bad segment from {}: {e}", self.transport.peer()))
                    })?;
                offset += len;
            }
            let next = batch.next.get();
            if offset != next {
                return Err(protocol(format!(
                    "{}'s segments end at {offset:#x}, not at the continuation {:#x} it announced",
                    self.transport.peer(),
                    next
                )));
            }
            if batch.is_last() {
                return Ok(());
            }
            if batch.next == batch.start {
                return Err(protocol(format!(
                    "{} sent an empty segments reply before the end",
                    self.transport.peer()
                )));
            }
            expected_start = next;
            batch = self.segments(handle, next)?;
        }
    }

    /// Whether `b` is the next batch of the range asked for.
    fn check_batch(
        &self,
        b: &SegmentsReply,
        handle: u64,
        length: u64,
        expected_start: u64,
        page: PageSize,
    ) -> Result<()> {
        let peer = self.transport.peer();
        if b.handle.get() != handle || b.total_length.get() != length {
            return Err(protocol(format!(
                "{peer} answered for another range (handle {}, {} bytes; asked for handle \
                 {handle}, {length} bytes)",
                b.handle, b.total_length
            )));
        }
        if b.start.get() != expected_start {
            return Err(protocol(format!(
                "{peer}'s segments start at {:#x}, not at {expected_start:#x}",
                b.start
            )));
        }
        if b.next.get() > length || b.next.get() < b.start.get() {
            return Err(protocol(format!(
                "{peer}'s continuation {:#x} is outside the range",
                b.next
            )));
        }
        if b.address_kind() != Some(self.address_kind) {
            return Err(protocol(format!(
                "{peer}'s segments are {} addresses, but its handshake said {}",
                b.address_kind().map_or("unknown", AddressKind::name),
                self.address_kind.name()
            )));
        }
        if b.page_size.get() != page.bytes() {
            return Err(protocol(format!(
                "{peer}'s segments come in pages of {} bytes, but the range's first reply said {}",
                b.page_size,
                page.bytes()
            )));
        }
        Ok(())
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
pub(crate) mod tests {
    use super::*;
    use unimem_core::iokit::IoReturn;
    use unimem_core::wire::{ChecksumReply, CompleteReply};
    use unimem_core::wire::{U32, U64};

    pub(crate) const PAGE: u64 = 16384;

    /// Answers like a resolver would, from a fixed page table: page `i` of
    /// the surface is at `pages[i]`. Every reply goes through its bytes, as
    /// on a real transport. Fields let a test break one thing at a time.
    pub(crate) struct FakePeer {
        pages: Vec<u64>,
        pub(crate) page: u64,
        pub(crate) max_prepare: u64,
        pub(crate) max_ranges: usize,
        pub(crate) kind: AddressKind,
        /// Fails the prepare with this index (0 = the first) with the code.
        pub(crate) fail_prepare: Option<(usize, IoReturn)>,
        /// Answers every checksum with this error.
        pub(crate) fail_checksum: Option<IoReturn>,
        /// Rewrites each segments reply but the first before it is sent.
        pub(crate) tamper: Option<fn(&mut SegmentsReply)>,
        /// Answers complete with this handle instead of the one asked for.
        pub(crate) complete_as: Option<u64>,
        /// The page size segments replies carry, when it is not the
        /// handshake's (a surface of huge pages).
        pub(crate) range_page: Option<u64>,
        pub(crate) prepares: usize,
        pub(crate) completed: Vec<u64>,
        pub(crate) live: Vec<(u64, u64, u64)>,
        next_handle: u64,
    }

    impl Transport for FakePeer {
        fn peer(&self) -> &'static str {
            "the fake"
        }

        fn call(&mut self, request: &Request, _fd: Option<BorrowedFd<'_>>) -> Result<Reply> {
            let sel = request.selector();
            let reply = self.answer(request);
            let decoded = Reply::decode(sel, &reply.encode())
                .map_err(|e| protocol(format!("bad reply from the fake: {e}")))?;
            match decoded {
                Reply::Status(h) => Err(Error::new(
                    if sel == selector::PREPARE {
                        ErrorKind::PrepareFailed
                    } else {
                        ErrorKind::Protocol
                    },
                    format!("the fake refused {}: {:?}", selector::name(sel), h.status()),
                )),
                r => Ok(r),
            }
        }
    }

    impl FakePeer {
        /// The reply a resolver would send, error replies included.
        pub(crate) fn answer(&mut self, request: &Request) -> Reply {
            let sel = request.selector();
            match request {
                Request::Handshake(_) => Reply::Handshake(HandshakeReply::new(
                    self.kind,
                    self.page,
                    wire::SEGMENTS_PER_REPLY as u32,
                    self.max_prepare,
                    "fake",
                )),
                Request::Prepare(r) => self.prepare(sel, r.offset.get(), r.length.get()),
                Request::Segments(r) => match self.find(r.handle.get()) {
                    Some(range) => self.batch(sel, range, r.continuation.get()),
                    None => Reply::error(sel, IoReturn::NOT_FOUND, 0),
                },
                Request::Complete(r) => {
                    let handle = r.handle.get();
                    match self.find(handle) {
                        Some((_, _, length)) => {
                            self.live.retain(|r| r.0 != handle);
                            self.completed.push(handle);
                            Reply::Complete(CompleteReply::new(
                                self.complete_as.unwrap_or(handle),
                                length,
                            ))
                        }
                        None => Reply::error(sel, IoReturn::NOT_FOUND, 0),
                    }
                }
                Request::Checksum(r) => match self.fail_checksum {
                    Some(status) => Reply::error(sel, status, 0),
                    None => Reply::Checksum(ChecksumReply::new(
                        r.handle.get(),
                        r.offset.get(),
                        r.length.get(),
                        0xfeed,
                    )),
                },
            }
        }

        fn find(&self, handle: u64) -> Option<(u64, u64, u64)> {
            self.live.iter().copied().find(|r| r.0 == handle)
        }

        fn prepare(&mut self, sel: u16, offset: u64, length: u64) -> Reply {
            let index = self.prepares;
            self.prepares += 1;
            if let Some((at, status)) = self.fail_prepare {
                if at == index {
                    return Reply::error(sel, status, 0);
                }
            }
            let total = self.pages.len() as u64 * self.page;
            if length == 0
                || length > self.max_prepare
                || !offset.is_multiple_of(self.page)
                || !length.is_multiple_of(self.page)
                || offset + length > total
            {
                return Reply::error(sel, IoReturn::BAD_ARGUMENT, 0);
            }
            if self.live.len() >= self.max_ranges {
                return Reply::error(sel, IoReturn::NO_RESOURCES, 0);
            }
            let range = (self.next_handle, offset, length);
            self.next_handle += 1;
            self.live.push(range);
            self.batch(sel, range, 0)
        }

        fn batch(&self, sel: u16, (handle, base, length): (u64, u64, u64), from: u64) -> Reply {
            // Two segments per reply, so paging is exercised.
            let first = ((base + from) / self.page) as usize;
            let last = ((base + length) / self.page) as usize;
            let mut batch = SegmentsReply::new(
                sel,
                handle,
                length,
                from,
                self.range_page.unwrap_or(self.page),
                self.kind,
            );
            for &address in self.pages[first..last].iter().take(2) {
                assert!(batch.push(address, self.page));
            }
            // The first reply stays honest, so the client knows the handle
            // it must complete when a later one breaks a promise.
            if let (Some(tamper), true) = (self.tamper, from > 0) {
                tamper(&mut batch);
            }
            Reply::Segments(batch)
        }
    }

    /// `pages` pages at consecutive addresses from `base`.
    pub(crate) fn run(base: u64, pages: u64) -> Vec<u64> {
        (0..pages).map(|i| base + i * PAGE).collect()
    }

    pub(crate) fn fake_with(pages: Vec<u64>, max_prepare: u64) -> FakePeer {
        FakePeer {
            pages,
            page: PAGE,
            max_prepare,
            max_ranges: 16,
            kind: AddressKind::DmaUnresolved,
            fail_prepare: None,
            fail_checksum: None,
            tamper: None,
            complete_as: None,
            range_page: None,
            prepares: 0,
            completed: vec![],
            live: vec![],
            next_handle: 7,
        }
    }

    pub(crate) fn fake() -> FakePeer {
        fake_with(vec![0x10000, 0x30000, 0x34000, 0x90000, 0x20000], 1 << 30)
    }

    const VA: u64 = 0x1_0000_0000;

    fn surface() -> SurfaceRef<'static> {
        SurfaceRef::client_memory(VA, 1)
    }

    #[test]
    fn resolves_across_replies_and_keeps_the_address_kind() {
        let mut c = ProtocolClient::handshake(fake()).unwrap();
        assert_eq!(c.address_kind(), AddressKind::DmaUnresolved);
        let p = c.prepare_range(&surface(), 0, 5 * PAGE).unwrap();
        assert_eq!(p.handle, 7);
        assert_eq!(p.map.kind(), AddressKind::DmaUnresolved);
        assert_eq!(p.map.mapped_bytes(), 5 * PAGE);
        assert_eq!(p.map.lookup(0).map(|a| a.get()), Some(0x10000));
        assert_eq!(p.map.lookup(2 * PAGE + 5).map(|a| a.get()), Some(0x34005));
        assert_eq!(c.checksum(7, 0, 64).unwrap(), 0xfeed);
        assert_eq!(c.complete(7).unwrap(), 5 * PAGE);
    }

    #[test]
    fn a_failed_prepare_carries_the_peers_refusal() {
        let mut f = fake();
        f.fail_prepare = Some((0, IoReturn::CANNOT_WIRE));
        let mut c = ProtocolClient::handshake(f).unwrap();
        let e = c.prepare_range(&surface(), 0, PAGE).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PrepareFailed);
        assert!(e.to_string().contains("0xe00002de"), "{e}");
    }

    #[test]
    fn a_zero_length_is_not_sent() {
        let mut c = ProtocolClient::handshake(fake()).unwrap();
        let e = c.prepare_range(&surface(), 0, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let e = c.resolve_all(&surface(), 0, 16).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(c.transport().prepares, 0);
    }

    /// Each tampering breaks one promise of a segments reply; each must be
    /// refused, and the range completed so nothing stays pinned.
    #[test]
    fn replies_that_break_a_promise_are_refused_and_the_range_completed() {
        type Tamper = fn(&mut SegmentsReply);
        fn add(field: &mut U64, n: u64) {
            *field = U64::new(field.get() + n);
        }
        let cases: [(Tamper, &str); 9] = [
            (|b| b.segments[0].address = U64::ZERO, "address 0"),
            (|b| add(&mut b.handle, 1), "another range"),
            (|b| add(&mut b.total_length, PAGE), "another range"),
            (
                |b| {
                    add(&mut b.start, PAGE);
                    add(&mut b.next, PAGE);
                },
                "start at",
            ),
            (
                |b| b.address_kind = AddressKind::Physical.to_wire().into(),
                "handshake said",
            ),
            (
                |b| add(&mut b.page_size, PAGE),
                "the range's first reply said",
            ),
            // The wire decoder already refuses lengths that do not add up.
            (|b| add(&mut b.next, PAGE), "add up"),
            (|b| b.segments[0].length = U64::new(4 * PAGE), "add up"),
            (
                |b| {
                    b.count = U32::ZERO;
                    b.next = b.start;
                },
                "empty segments reply",
            ),
        ];
        for (i, (tamper, says)) in cases.into_iter().enumerate() {
            let mut f = fake();
            f.tamper = Some(tamper);
            let mut c = ProtocolClient::handshake(f).unwrap();
            let e = c.prepare_range(&surface(), 0, 5 * PAGE).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "case {i}: {e}");
            assert!(e.to_string().contains(says), "case {i}: {e}");
            assert!(c.transport().live.is_empty(), "case {i}: left prepared");
        }
    }

    #[test]
    fn a_range_of_huge_pages_keeps_its_page_size_and_nonsense_is_refused() {
        let mut f = fake();
        f.range_page = Some(2 * PAGE);
        let mut c = ProtocolClient::handshake(f).unwrap();
        let p = c.prepare_range(&surface(), 0, 4 * PAGE).unwrap();
        assert_eq!(p.map.page_size().bytes(), 2 * PAGE);
        for bad in [3 * PAGE, PAGE / 2] {
            let mut f = fake();
            f.range_page = Some(bad);
            let mut c = ProtocolClient::handshake(f).unwrap();
            let e = c.prepare_range(&surface(), 0, 4 * PAGE).unwrap_err();
            assert!(
                e.to_string().contains("not a power of two of at least"),
                "{e}"
            );
            assert!(c.transport().live.is_empty(), "left prepared");
        }
    }

    #[test]
    fn a_complete_for_another_handle_is_refused() {
        let mut f = fake();
        f.complete_as = Some(99);
        let mut c = ProtocolClient::handshake(f).unwrap();
        let p = c.prepare_range(&surface(), 0, PAGE).unwrap();
        let e = c.complete(p.handle).unwrap_err();
        assert!(e.to_string().contains("completed handle 99"), "{e}");
    }

    #[test]
    fn a_handshake_that_breaks_a_promise_is_refused() {
        let mut f = fake();
        f.page = 3 * 4096;
        let e = ProtocolClient::handshake(f).unwrap_err();
        assert!(e.to_string().contains("not a power of two"), "{e}");
    }

    #[test]
    fn a_large_surface_is_split_into_ranges_that_form_one_map() {
        // Ranges of two pages: [0, 2), [2, 4), [4, 5). Pages 0-2 continue
        // across the first border and pages 3-4 across the second, so each
        // run is one extent of the whole map.
        let mut pages = run(0x10000, 3);
        pages.extend(run(0x80000, 2));
        let mut c = ProtocolClient::handshake(fake_with(pages, 2 * PAGE)).unwrap();
        let r = c.resolve_all(&surface(), 5 * PAGE, 16).unwrap();
        let spans: Vec<(u64, u64, u64)> = r
            .ranges
            .iter()
            .map(|r| (r.handle, r.offset, r.length))
            .collect();
        assert_eq!(
            spans,
            vec![
                (7, 0, 2 * PAGE),
                (8, 2 * PAGE, 2 * PAGE),
                (9, 4 * PAGE, PAGE)
            ]
        );
        assert_eq!(r.map.coverage(), unimem_core::Coverage::Full);
        let extents: Vec<_> = r
            .map
            .segments()
            .iter()
            .map(|s| (s.offset, s.length, s.address().map(|a| a.get())))
            .collect();
        assert_eq!(
            extents,
            vec![
                (0, 3 * PAGE, Some(0x10000)),
                (3 * PAGE, 2 * PAGE, Some(0x80000)),
            ]
        );
        assert_eq!(c.transport().live.len(), 3);
        c.complete_all(&r.ranges).unwrap();
        assert_eq!(c.transport().completed, vec![7, 8, 9]);
    }

    #[test]
    fn a_failure_on_the_second_prepare_completes_the_first() {
        let mut f = fake_with(run(0x10000, 4), 2 * PAGE);
        f.fail_prepare = Some((1, IoReturn::CANNOT_WIRE));
        let mut c = ProtocolClient::handshake(f).unwrap();
        let e = c.resolve_all(&surface(), 4 * PAGE, 16).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PrepareFailed);
        assert_eq!(c.transport().prepares, 2);
        assert_eq!(c.transport().completed, vec![7]);
        assert!(c.transport().live.is_empty());
    }

    #[test]
    fn more_ranges_than_the_peer_holds_are_refused_up_front() {
        let mut c = ProtocolClient::handshake(fake_with(run(0x10000, 17), PAGE)).unwrap();
        let e = c.resolve_all(&surface(), 17 * PAGE, 16).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("at most 16 prepared ranges"), "{msg}");
        assert!(
            msg.contains(&format!("at most {} bytes", 16 * PAGE)),
            "{msg}"
        );
        assert_eq!(c.transport().prepares, 0);
        let r = c.resolve_all(&surface(), 16 * PAGE, 16).unwrap();
        assert_eq!(r.ranges.len(), 16);
        assert_eq!(r.map.segments().len(), 1);
    }

    #[test]
    fn a_limit_off_the_page_grid_is_rounded_down_and_below_a_page_refused() {
        let c = ProtocolClient::handshake(fake_with(run(0x10000, 5), 2 * PAGE + PAGE / 2)).unwrap();
        assert_eq!(c.prepare_step().unwrap(), 2 * PAGE);
        for limit in [0, PAGE - 1] {
            let mut c = ProtocolClient::handshake(fake_with(run(0x10000, 2), limit)).unwrap();
            let e = c.resolve_all(&surface(), 2 * PAGE, 16).unwrap_err();
            assert!(e.to_string().contains("below one page"), "{e}");
            assert_eq!(c.transport().prepares, 0);
        }
    }
}
