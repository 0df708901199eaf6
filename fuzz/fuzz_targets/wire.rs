//! Fuzzes the wire format: `Request::decode` and `Reply::decode` for every
//! selector on arbitrary bytes, and encode∘decode round trips of values
//! built from the input.
//!
//! Invariants: decoding never panics; a request that decodes re-encodes to
//! exactly its bytes (it is its wire struct); a reply that decodes
//! re-encodes to its bytes, except that a segments reply's entries past its
//! count come back zeroed, and decodes again to itself; a decoded segments
//! reply covers exactly `[start, next)`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::{
    selector, ChecksumReply, CompleteReply, HandshakeReply, Reply, Request, SegmentsReply,
    MAX_MESSAGE, SEGMENTS_PER_REPLY, U32,
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

/// The offset of a segments reply's first entry.
const SEGMENTS_AT: usize = 64;

/// Arbitrary bytes through every decoder.
fn raw(data: &[u8]) {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(
            r.as_bytes(),
            data,
            "request {r:?} does not re-encode to its bytes"
        );
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
    for sel in 0..=selector::COUNT + 1 {
        if let Ok(r) = Reply::decode(sel, data) {
            let enc = r.encode();
            match &r {
                Reply::Segments(b) => {
                    let used = SEGMENTS_AT + 16 * b.valid_segments().len();
                    assert_eq!(enc[..used], data[..used], "{r:?} changed in its bytes");
                    assert!(enc[used..].iter().all(|&x| x == 0), "stale entries kept");
                }
                _ => assert_eq!(enc, data, "reply {r:?} does not re-encode to its bytes"),
            }
            check_reply(sel, &r);
        }
    }
}

fn check_reply(sel: u16, r: &Reply) {
    assert_eq!(r.selector(), sel);
    if let Reply::Segments(batch) = r {
        let (start, next) = (batch.start.get(), batch.next.get());
        assert!(batch.valid_segments().len() <= SEGMENTS_PER_REPLY);
        assert!(start <= next && next <= batch.total_length.get());
        let sum: u64 = batch.valid_segments().iter().map(|s| s.length.get()).sum();
        assert_eq!(sum, next - start);
        assert!(batch.address_kind().is_some());
    }
    let enc = r.encode();
    assert!(enc.len() <= MAX_MESSAGE);
    let again = Reply::decode(sel, &enc)
        .unwrap_or_else(|e| panic!("{r:?} encodes to bytes that do not decode: {e}"));
    assert_eq!(r, &again);
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
                let r = Request::handshake(min_version, max_version);
                let d = Request::decode(&r.encode());
                if min_version <= max_version {
                    assert_eq!(d, Ok(r));
                } else {
                    assert!(d.is_err(), "inverted version range accepted");
                }
            }
            1 => {
                let r = Request::prepare(
                    u.arbitrary()?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                );
                assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            2 => {
                let r = Request::segments(u.arbitrary()?, u.arbitrary()?);
                assert_eq!(Request::decode(&r.encode()), Ok(r));
                let r = Request::complete(u.arbitrary()?);
                assert_eq!(Request::decode(&r.encode()), Ok(r));
                let r = Request::checksum(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
                assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            3 => {
                let sel = *u.choose(&[selector::PREPARE, selector::SEGMENTS])?;
                let start: u64 = u.arbitrary()?;
                let slack: u16 = u.arbitrary()?;
                let mut b =
                    SegmentsReply::new(sel, u.arbitrary()?, 0, start, u.arbitrary()?, kind(u)?);
                let n = u.int_in_range(0..=SEGMENTS_PER_REPLY + 4)?;
                let mut pushed = Vec::new();
                for _ in 0..n {
                    let (a, l): (u64, u64) = (u.arbitrary()?, u.arbitrary()?);
                    let before = b.next.get();
                    if b.push(a, l) {
                        assert_eq!(b.next.get(), before + l);
                        pushed.push((a, l));
                    } else {
                        assert!(
                            pushed.len() == SEGMENTS_PER_REPLY || before.checked_add(l).is_none()
                        );
                    }
                }
                b.total_length = b.next.get().saturating_add(slack.into()).into();
                let got: Vec<(u64, u64)> = b
                    .valid_segments()
                    .iter()
                    .map(|s| (s.address.get(), s.length.get()))
                    .collect();
                assert_eq!(got, pushed);
                let r = Reply::Segments(b);
                // What decodes is what was built; what is refused breaks a
                // rule the decoder states (a zero length, a wrapping run).
                match Reply::decode(sel, &r.encode()) {
                    Ok(d) => {
                        assert_eq!(d, r);
                        check_reply(sel, &d);
                    }
                    Err(_) => assert!(
                        pushed
                            .iter()
                            .any(|&(a, l)| l == 0 || a.checked_add(l).is_none()),
                        "a well-formed segments reply was refused"
                    ),
                }
            }
            4 => {
                let server_version = u.arbitrary::<String>()?.replace('\0', "");
                let h = HandshakeReply::new(
                    kind(u)?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                    &server_version,
                );
                let v = h.server_version();
                assert!(
                    server_version.starts_with(&v) && v.len() < 32,
                    "server version {server_version:?} came back as {v:?}"
                );
                check_reply(selector::HANDSHAKE, &Reply::Handshake(h));
            }
            5 => {
                let r = Reply::Complete(CompleteReply::new(u.arbitrary()?, u.arbitrary()?));
                check_reply(selector::COMPLETE, &r);
                let mut c = ChecksumReply::new(
                    u.arbitrary()?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                    u.arbitrary()?,
                );
                c.algorithm = U32::new(u.arbitrary()?);
                check_reply(selector::CHECKSUM, &Reply::Checksum(c));
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
