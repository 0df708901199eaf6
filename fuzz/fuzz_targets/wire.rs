//! Fuzzes the wire format: `Request::decode` and `Reply::decode` for every
//! selector on arbitrary bytes, and encode∘decode round trips of values
//! built from the input.
//!
//! Invariants: decoding never panics; a request that decodes re-encodes to
//! the same bytes (a handshake's header version aside, which it
//! negotiates); a reply that decodes re-encodes to at most 4096 bytes that
//! decode to the same reply (a handshake's server version may only get
//! shorter), and decoding is idempotent from there; a decoded segments
//! batch covers exactly `[start, next)`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::{
    selector, Reply, Request, SegmentBatch, ServerInfo, MAX_MESSAGE, SEGMENTS_PER_REPLY, VERSION,
};
use unimem_core::AddressKind;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => {
            let _ = structured(&mut Unstructured::new(rest));
        }
        _ => raw(data),
    }
});

/// Arbitrary bytes through every decoder.
fn raw(data: &[u8]) {
    if let Ok(r) = Request::decode(data) {
        let enc = r.encode();
        let mut expect = data.to_vec();
        if r.selector() == selector::HANDSHAKE {
            expect[4..6].copy_from_slice(&VERSION.to_le_bytes());
        }
        assert_eq!(enc, expect, "request {r:?} does not re-encode to its bytes");
        assert_eq!(Request::decode(&enc), Ok(r));
    }
    for sel in 0..=selector::COUNT + 1 {
        if let Ok(r) = Reply::decode(sel, data) {
            check_reply(sel, &r);
        }
    }
}

fn check_reply(sel: u16, r: &Reply) {
    assert_eq!(r.selector(), sel);
    if let Reply::Segments { batch, .. } = r {
        assert!(batch.segments.len() <= SEGMENTS_PER_REPLY);
        assert!(batch.start <= batch.next && batch.next <= batch.total_length);
        let sum: u64 = batch.segments.iter().map(|s| s.1).sum();
        assert_eq!(sum, batch.next - batch.start);
    }
    let enc = r.encode();
    assert!(enc.len() <= MAX_MESSAGE);
    let again = Reply::decode(sel, &enc)
        .unwrap_or_else(|e| panic!("{r:?} encodes to bytes that do not decode: {e}"));
    match (r, &again) {
        (Reply::Handshake(a), Reply::Handshake(b)) => {
            assert!(
                a.server_version.starts_with(&b.server_version),
                "server version {:?} came back as {:?}",
                a.server_version,
                b.server_version
            );
            let mut a = a.clone();
            a.server_version = b.server_version.clone();
            assert_eq!(&a, b);
        }
        _ => assert_eq!(r, &again),
    }
    assert_eq!(Reply::decode(sel, &again.encode()).as_ref(), Ok(&again));
}

fn kind(u: &mut Unstructured<'_>) -> Result<AddressKind> {
    Ok(*u.choose(&[AddressKind::Physical, AddressKind::Iova])?)
}

/// Values built from the input: whatever encodes must decode to itself.
fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    while !u.is_empty() {
        match u.int_in_range(0..=6u8)? {
            0 => {
                let (min_version, max_version) = (u.arbitrary()?, u.arbitrary()?);
                let r = Request::Handshake {
                    min_version,
                    max_version,
                };
                let d = Request::decode(&r.encode());
                if min_version <= max_version {
                    assert_eq!(d, Ok(r));
                } else {
                    assert!(d.is_err(), "inverted version range accepted");
                }
            }
            1 => {
                let r = Request::Prepare {
                    offset: u.arbitrary()?,
                    length: u.arbitrary()?,
                    client_va: u.arbitrary()?,
                    surface_id: u.arbitrary()?,
                };
                assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            2 => {
                let r = Request::Segments {
                    handle: u.arbitrary()?,
                    continuation: u.arbitrary()?,
                };
                assert_eq!(Request::decode(&r.encode()), Ok(r));
                let r = Request::Complete {
                    handle: u.arbitrary()?,
                };
                assert_eq!(Request::decode(&r.encode()), Ok(r));
                let r = Request::Checksum {
                    handle: u.arbitrary()?,
                    offset: u.arbitrary()?,
                    length: u.arbitrary()?,
                };
                assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            3 => {
                let n = u.int_in_range(0..=SEGMENTS_PER_REPLY + 4)?;
                let mut segments = Vec::with_capacity(n);
                for _ in 0..n {
                    segments.push((u.arbitrary()?, u.arbitrary()?));
                }
                let start: u64 = u.arbitrary()?;
                let covered = segments
                    .iter()
                    .take(SEGMENTS_PER_REPLY)
                    .try_fold(0u64, |a, s: &(u64, u64)| a.checked_add(s.1));
                let next = covered.and_then(|c| start.checked_add(c)).unwrap_or(0);
                let batch = SegmentBatch {
                    handle: u.arbitrary()?,
                    total_length: next.saturating_add(u.arbitrary::<u16>()?.into()),
                    start,
                    next,
                    page_size: u.arbitrary()?,
                    address_kind: kind(u)?,
                    segments,
                };
                let sel = *u.choose(&[selector::PREPARE, selector::SEGMENTS])?;
                let r = Reply::Segments {
                    selector: sel,
                    batch: batch.clone(),
                };
                // Whatever decodes is what was sent, cut to one reply.
                if let Ok(d) = Reply::decode(sel, &r.encode()) {
                    let mut cut = batch;
                    cut.segments.truncate(SEGMENTS_PER_REPLY);
                    assert_eq!(
                        d,
                        Reply::Segments {
                            selector: sel,
                            batch: cut
                        }
                    );
                    check_reply(sel, &d);
                }
            }
            4 => {
                let r = Reply::Handshake(ServerInfo {
                    version: u.arbitrary()?,
                    address_kind: kind(u)?,
                    page_size: u.arbitrary()?,
                    max_segments_per_reply: u.arbitrary()?,
                    max_prepare_bytes: u.arbitrary()?,
                    server_version: u.arbitrary::<String>()?.replace('\0', ""),
                });
                check_reply(selector::HANDSHAKE, &r);
            }
            5 => {
                let r = Reply::Complete {
                    handle: u.arbitrary()?,
                    released_bytes: u.arbitrary()?,
                };
                check_reply(selector::COMPLETE, &r);
                let r = Reply::Checksum {
                    handle: u.arbitrary()?,
                    offset: u.arbitrary()?,
                    length: u.arbitrary()?,
                    checksum: u.arbitrary()?,
                    algorithm: u.arbitrary()?,
                };
                check_reply(selector::CHECKSUM, &r);
            }
            _ => {
                let sel = u.int_in_range(0..=selector::COUNT + 1)?;
                let status = IoReturn::from_bits(u.arbitrary::<u32>()? | 1);
                let r = Reply::error(sel, status, u.arbitrary()?);
                check_reply(sel, &r);
            }
        }
    }
    Ok(())
}
