//! The protocol client against a fake peer that answers from a fixed page
//! table, and breaks one promise at a time when a test asks it to.

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
