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

/// Ranges one client may hold prepared at a time in the DEXT
/// (`kMaxPrepared` in `dext/portable/session.hpp`); the handshake does not
/// carry it.
pub const MAX_PREPARED_RANGES: usize = 16;

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

/// One of the consecutive ranges [`DextClient::resolve_all`] prepared: its
/// handle and where it sits in the whole (`offset` from the start of the
/// resolved memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRange {
    pub handle: u64,
    pub offset: u64,
    pub length: u64,
}

/// Memory resolved in consecutive prepared ranges, with one map over the
/// whole of it in order. Every range stays prepared (its addresses valid)
/// until [`DextClient::complete_all`] or the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DextResolved {
    pub ranges: Vec<PreparedRange>,
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

    /// Prepares the whole surface, in as many ranges as the DEXT needs, and
    /// collects its segments.
    pub fn resolve(&mut self, surface: &IoSurface) -> Result<DextResolved, AppleError> {
        self.resolve_all(surface.base_address(), surface.id(), surface.len())
    }

    /// The longest range one PREPARE may ask for: the handshake's
    /// `max_prepare_bytes` rounded down to whole pages of the DEXT's page
    /// size. A limit below one page leaves nothing to prepare.
    pub fn prepare_step(&self) -> Result<u64, AppleError> {
        let step = self.page_size.round_down(self.server.max_prepare_bytes);
        if step == 0 {
            return Err(AppleError::Mismatch(
                "the handshake's max_prepare_bytes is below one page, so no range can be prepared",
            ));
        }
        Ok(step)
    }

    /// Resolves `[0, length)` of the client memory at `client_va` in
    /// consecutive ranges of at most [`Self::prepare_step`] bytes, each
    /// prepared, paged through and appended to one map of the whole, at its
    /// offset (so runs that continue across a range boundary coalesce).
    ///
    /// Refuses, before preparing anything, memory that needs more ranges
    /// than the DEXT holds per client ([`MAX_PREPARED_RANGES`]). On any
    /// failure every range prepared so far is completed before returning.
    pub fn resolve_all(
        &mut self,
        client_va: u64,
        surface_id: u32,
        length: u64,
    ) -> Result<DextResolved, AppleError> {
        let step = self.prepare_step()?;
        if length == 0 {
            return Err(AppleError::InvalidRange(
                "nothing to resolve: the length is 0".into(),
            ));
        }
        let count = length.div_ceil(step);
        if count > MAX_PREPARED_RANGES as u64 {
            return Err(AppleError::TooManyRanges {
                length,
                step,
                max_ranges: MAX_PREPARED_RANGES,
            });
        }
        let mut map = PaMap::new(self.server.address_kind, self.page_size, length);
        let mut ranges: Vec<PreparedRange> = Vec::with_capacity(count as usize);
        let mut offset = 0;
        while offset < length {
            let len = step.min(length - offset);
            let result = self
                .prepare(client_va, surface_id, offset, len)
                .and_then(|first| {
                    let handle = first.handle;
                    ranges.push(PreparedRange {
                        handle,
                        offset,
                        length: len,
                    });
                    self.collect(first, offset, len, &mut map)
                });
            if let Err(e) = result {
                let _ = self.complete_all(&ranges);
                return Err(e);
            }
            offset += len;
        }
        Ok(DextResolved { ranges, map })
    }

    /// Completes every range, even after one fails; returns the first
    /// failure.
    pub fn complete_all(&mut self, ranges: &[PreparedRange]) -> Result<(), AppleError> {
        let mut first_error = None;
        for r in ranges {
            if let Err(e) = self.complete(r.handle) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
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
        let mut map = PaMap::new(self.server.address_kind, self.page_size, length);
        match self.collect(first, 0, length, &mut map) {
            Ok(()) => Ok(DextPrepared { handle, map }),
            Err(e) => {
                let _ = self.complete(handle);
                Err(e)
            }
        }
    }

    /// Pages through the segments of the prepared range `first` opened
    /// (`length` bytes) and appends them to `map` at `base` on.
    fn collect(
        &mut self,
        first: SegmentBatch,
        base: u64,
        length: u64,
        map: &mut PaMap,
    ) -> Result<(), AppleError> {
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
                if len > length - offset {
                    return Err(AppleError::Mismatch(
                        "segments run past the end of the prepared range",
                    ));
                }
                map.push_at(base + offset, len, Target::Address(address))?;
                offset += len;
            }
            if offset != batch.next {
                return Err(AppleError::Mismatch(
                    "segments do not reach the reply's continuation",
                ));
            }
            if batch.is_last() {
                return Ok(());
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

    /// The transport, for tests to inspect what the other side saw.
    #[cfg(test)]
    pub(crate) fn transport(&self) -> &T {
        &self.transport
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

    /// Answers like the DEXT would, from a fixed page table: the surface's
    /// page `i` is at `pages[i]`. It checks a prepare as the DEXT does
    /// (page-aligned, within its limit, a free slot) and keeps each
    /// prepared range until it is completed.
    pub(crate) struct FakeDext {
        pages: Vec<u64>,
        page: u64,
        /// `max_prepare_bytes` the handshake announces.
        pub(crate) max_prepare: u64,
        /// Ranges held prepared at most (the DEXT's slots).
        pub(crate) max_ranges: usize,
        /// Fails the prepare with this index (0 = the first) with the code.
        pub(crate) fail_prepare: Option<(usize, IoReturn)>,
        /// Answers every checksum with this error.
        pub(crate) fail_checksum: Option<IoReturn>,
        /// Prepares received, including refused ones.
        pub(crate) prepares: usize,
        /// Handles completed, in order.
        pub(crate) completed: Vec<u64>,
        /// Held ranges: (handle, offset into the surface, length).
        pub(crate) live: Vec<(u64, u64, u64)>,
        next_handle: u64,
    }

    impl Transport for FakeDext {
        fn call(&mut self, sel: u16, input: &[u8], output: &mut [u8]) -> Result<usize, IoReturn> {
            let reply = match Request::decode(input).map_err(|_| IoReturn::BAD_ARGUMENT)? {
                Request::Handshake { .. } => Reply::Handshake(ServerInfo {
                    version: wire::VERSION,
                    address_kind: AddressKind::DmaUnresolved,
                    page_size: self.page,
                    max_segments_per_reply: wire::SEGMENTS_PER_REPLY as u32,
                    max_prepare_bytes: self.max_prepare,
                    server_version: "fake".into(),
                }),
                Request::Prepare { offset, length, .. } => self.prepare(sel, offset, length),
                Request::Segments {
                    handle,
                    continuation,
                } => match self.find(handle) {
                    Some(range) => self.batch(sel, range, continuation),
                    None => Reply::error(sel, IoReturn::NOT_FOUND, 0),
                },
                Request::Complete { handle } => match self.find(handle) {
                    Some((_, _, length)) => {
                        self.live.retain(|r| r.0 != handle);
                        self.completed.push(handle);
                        Reply::Complete {
                            handle,
                            released_bytes: length,
                        }
                    }
                    None => Reply::error(sel, IoReturn::NOT_FOUND, 0),
                },
                Request::Checksum { .. } if self.fail_checksum.is_some() => {
                    Reply::error(sel, self.fail_checksum.unwrap(), 0)
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
            let segments: Vec<(u64, u64)> = self.pages[first..last]
                .iter()
                .take(2)
                .map(|&a| (a, self.page))
                .collect();
            let next = from + segments.len() as u64 * self.page;
            Reply::Segments {
                selector: sel,
                batch: SegmentBatch {
                    handle,
                    total_length: length,
                    start: from,
                    next,
                    page_size: self.page,
                    address_kind: AddressKind::DmaUnresolved,
                    segments,
                },
            }
        }
    }

    /// `pages` pages at consecutive addresses from `base`.
    pub(crate) fn run(base: u64, pages: u64) -> Vec<u64> {
        (0..pages).map(|i| base + i * PAGE).collect()
    }

    pub(crate) fn fake_with(pages: Vec<u64>, max_prepare: u64) -> FakeDext {
        FakeDext {
            pages,
            page: PAGE,
            max_prepare,
            max_ranges: MAX_PREPARED_RANGES,
            fail_prepare: None,
            fail_checksum: None,
            prepares: 0,
            completed: vec![],
            live: vec![],
            next_handle: 7,
        }
    }

    pub(crate) fn fake() -> FakeDext {
        fake_with(vec![0x10000, 0x30000, 0x34000, 0x90000, 0x20000], 1 << 30)
    }

    const PAGE: u64 = 16384;

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
        f.fail_prepare = Some((0, IoReturn::CANNOT_WIRE));
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

    #[test]
    fn a_large_surface_is_split_into_ranges_that_form_one_map() {
        // Ranges of two pages: [0, 2), [2, 4), [4, 5). Pages 0-2 continue
        // across the first boundary and pages 3-4 across the second, so
        // each run is one extent of the whole map.
        let mut pages = run(0x10000, 3);
        pages.extend(run(0x80000, 2));
        let mut c = DextClient::with_transport(fake_with(pages, 2 * PAGE)).unwrap();
        let r = c.resolve_all(0x1_0000_0000, 1, 5 * PAGE).unwrap();
        assert_eq!(
            r.ranges,
            vec![
                PreparedRange {
                    handle: 7,
                    offset: 0,
                    length: 2 * PAGE
                },
                PreparedRange {
                    handle: 8,
                    offset: 2 * PAGE,
                    length: 2 * PAGE
                },
                PreparedRange {
                    handle: 9,
                    offset: 4 * PAGE,
                    length: PAGE
                },
            ]
        );
        assert_eq!(r.map.total_length(), 5 * PAGE);
        assert_eq!(r.map.coverage(), unimem_core::Coverage::Full);
        let extents: Vec<_> = r
            .map
            .segments()
            .iter()
            .map(|s| (s.offset, s.length, s.address()))
            .collect();
        assert_eq!(
            extents,
            vec![
                (0, 3 * PAGE, Some(0x10000)),
                (3 * PAGE, 2 * PAGE, Some(0x80000)),
            ]
        );
        assert_eq!(r.map.lookup(4 * PAGE + 8), Some(0x80000 + PAGE + 8));
        // Every range stays prepared until completed.
        assert_eq!(c.transport().live.len(), 3);
        assert!(c.transport().completed.is_empty());
        c.complete_all(&r.ranges).unwrap();
        assert_eq!(c.transport().completed, vec![7, 8, 9]);
        assert!(c.transport().live.is_empty());
    }

    #[test]
    fn ranges_whose_addresses_do_not_continue_stay_apart() {
        let pages = vec![0x40000, 0x10000, 0x14000, 0x90000];
        let mut c = DextClient::with_transport(fake_with(pages, PAGE)).unwrap();
        let r = c.resolve_all(0x1_0000_0000, 1, 4 * PAGE).unwrap();
        assert_eq!(r.ranges.len(), 4);
        let offsets: Vec<u64> = r.ranges.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, PAGE, 2 * PAGE, 3 * PAGE]);
        // 0x10000 and 0x14000 continue each other across a boundary.
        assert_eq!(r.map.segments().len(), 3);
        assert_eq!(r.map.lookup(2 * PAGE), Some(0x14000));
        c.complete_all(&r.ranges).unwrap();
    }

    #[test]
    fn a_failure_on_the_second_prepare_completes_the_first() {
        let mut f = fake_with(run(0x10000, 4), 2 * PAGE);
        f.fail_prepare = Some((1, IoReturn::CANNOT_WIRE));
        let mut c = DextClient::with_transport(f).unwrap();
        let e = c.resolve_all(0x1_0000_0000, 1, 4 * PAGE).unwrap_err();
        assert!(matches!(
            e,
            AppleError::PrepareFailed {
                status: IoReturn::CANNOT_WIRE
            }
        ));
        assert_eq!(c.transport().prepares, 2);
        assert_eq!(c.transport().completed, vec![7]);
        assert!(c.transport().live.is_empty());
    }

    #[test]
    fn a_surface_needing_more_ranges_than_the_dext_holds_is_refused_up_front() {
        let pages = MAX_PREPARED_RANGES as u64 + 1;
        let mut c = DextClient::with_transport(fake_with(run(0x10000, pages), PAGE)).unwrap();
        let e = c.resolve_all(0x1_0000_0000, 1, pages * PAGE).unwrap_err();
        assert!(matches!(
            e,
            AppleError::TooManyRanges {
                max_ranges: MAX_PREPARED_RANGES,
                ..
            }
        ));
        let msg = e.to_string();
        assert!(msg.contains("at most 16 prepared ranges"), "{msg}");
        assert!(
            msg.contains(&format!("at most {} bytes", 16 * PAGE)),
            "{msg}"
        );
        assert_eq!(c.transport().prepares, 0);

        // Exactly as many ranges as the DEXT holds is fine.
        let pages = MAX_PREPARED_RANGES as u64;
        let mut c = DextClient::with_transport(fake_with(run(0x10000, pages), PAGE)).unwrap();
        let r = c.resolve_all(0x1_0000_0000, 1, pages * PAGE).unwrap();
        assert_eq!(r.ranges.len(), MAX_PREPARED_RANGES);
        assert_eq!(r.map.segments().len(), 1);
        c.complete_all(&r.ranges).unwrap();
        assert_eq!(c.transport().completed.len(), MAX_PREPARED_RANGES);
    }

    #[test]
    fn a_limit_off_the_page_grid_is_rounded_down() {
        // 2.5 pages → ranges of 2 pages (the DEXT refuses partial pages).
        let mut c =
            DextClient::with_transport(fake_with(run(0x10000, 5), 2 * PAGE + PAGE / 2)).unwrap();
        assert_eq!(c.prepare_step().unwrap(), 2 * PAGE);
        let r = c.resolve_all(0x1_0000_0000, 1, 5 * PAGE).unwrap();
        let lengths: Vec<u64> = r.ranges.iter().map(|r| r.length).collect();
        assert_eq!(lengths, vec![2 * PAGE, 2 * PAGE, PAGE]);
        assert_eq!(r.map.segments().len(), 1);
        c.complete_all(&r.ranges).unwrap();
    }

    #[test]
    fn a_limit_below_one_page_is_refused() {
        for limit in [0, PAGE - 1] {
            let mut c = DextClient::with_transport(fake_with(run(0x10000, 2), limit)).unwrap();
            let e = c.resolve_all(0x1_0000_0000, 1, 2 * PAGE).unwrap_err();
            assert!(matches!(e, AppleError::Mismatch(_)), "{e}");
            assert!(e.to_string().contains("below one page"));
            assert_eq!(c.transport().prepares, 0);
        }
    }

    #[test]
    fn nothing_is_prepared_for_a_zero_length() {
        let mut c = DextClient::with_transport(fake()).unwrap();
        assert!(matches!(
            c.resolve_all(0x1_0000_0000, 1, 0),
            Err(AppleError::InvalidRange(_))
        ));
        assert_eq!(c.transport().prepares, 0);
    }
}
