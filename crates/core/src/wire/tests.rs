//! The wire format against its own encoder and against hand-laid bytes.

use super::*;
use crate::addr::AddressKind;
use core::mem::offset_of;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromZeros, IntoBytes};

#[test]
fn sizes_are_pinned() {
    assert_eq!(size_of::<Header>(), 16);
    assert_eq!(size_of::<HandshakeRequest>(), 32);
    assert_eq!(size_of::<HandshakeReply>(), 80);
    assert_eq!(size_of::<PrepareRequest>(), 48);
    assert_eq!(size_of::<SegmentsRequest>(), 32);
    assert_eq!(size_of::<CompleteRequest>(), 32);
    assert_eq!(size_of::<ChecksumRequest>(), 48);
    assert_eq!(size_of::<WireSegment>(), 16);
    assert_eq!(size_of::<SegmentsReply>(), MAX_MESSAGE);
    assert_eq!(size_of::<CompleteReply>(), 32);
    assert_eq!(size_of::<ChecksumReply>(), 56);
    assert_eq!(offset_of!(SegmentsReply, segments), 64);
    assert_eq!(offset_of!(HandshakeReply, server_version), 48);
}

#[test]
fn every_field_is_naturally_aligned() {
    // The C header uses plain uint64_t/uint32_t fields; its offsets match
    // ours only if ours are naturally aligned.
    assert_eq!(offset_of!(HandshakeReply, page_size) % 8, 0);
    assert_eq!(offset_of!(HandshakeReply, max_prepare_bytes) % 8, 0);
    assert_eq!(offset_of!(PrepareRequest, surface_id) % 4, 0);
    assert_eq!(offset_of!(SegmentsReply, address_kind) % 4, 0);
    assert_eq!(offset_of!(ChecksumReply, algorithm) % 4, 0);
}

#[test]
fn requests_round_trip() {
    let reqs = [
        Request::handshake(1, 3),
        Request::prepare(4096, 1 << 30, 0, 7),
        Request::segments(9, 4096 * 252),
        Request::complete(9),
        Request::checksum(9, 0, 65536),
    ];
    for (sel, r) in reqs.into_iter().enumerate() {
        assert_eq!(usize::from(r.selector()), sel);
        let bytes = r.encode();
        assert_eq!(bytes.len(), request_size(r.selector()).unwrap());
        assert_eq!(Request::decode(&bytes), Ok(r));
    }
}

#[test]
fn constructors_lay_out_the_fields_the_header_names() {
    // Hand-laid bytes of a checksum request: header, then handle, offset,
    // length and a zero reserved word, little-endian.
    let mut want = Vec::new();
    want.extend_from_slice(&MAGIC.to_le_bytes());
    want.extend_from_slice(&VERSION.to_le_bytes());
    want.extend_from_slice(&selector::CHECKSUM.to_le_bytes());
    want.extend_from_slice(&[0; 8]);
    for word in [9u64, 0x40, 0x1000, 0] {
        want.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(Request::checksum(9, 0x40, 0x1000).as_bytes(), &want[..]);
    let Ok(Request::Checksum(c)) = Request::decode(&want) else {
        panic!("hand-laid checksum request refused");
    };
    assert_eq!(
        (c.handle.get(), c.offset.get(), c.length.get()),
        (9, 0x40, 0x1000)
    );
}

#[test]
fn malformed_requests_are_rejected() {
    let good = Request::complete(1).encode();
    assert_eq!(Request::decode(&good[..10]), Err(WireError::Truncated(10)));
    assert!(matches!(
        Request::decode(&good[..20]),
        Err(WireError::BadLength { got: 20, .. })
    ));
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        Request::decode(&long),
        Err(WireError::BadLength {
            got: 33,
            expected: 32,
            ..
        })
    ));
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(matches!(Request::decode(&bad), Err(WireError::BadMagic(_))));
    let mut v = good.clone();
    v[4] = 2;
    assert_eq!(Request::decode(&v), Err(WireError::BadVersion { got: 2 }));
    let mut s = good.clone();
    s[6] = 9;
    assert_eq!(Request::decode(&s), Err(WireError::UnknownSelector(9)));
    let mut r = good.clone();
    r[24] = 1;
    assert_eq!(
        Request::decode(&r),
        Err(WireError::Reserved("complete.reserved"))
    );
    let mut st = good;
    st[8] = 1;
    assert!(matches!(Request::decode(&st), Err(WireError::Reserved(_))));
}

#[test]
fn handshake_accepts_other_versions_to_negotiate() {
    let mut h = Request::handshake(2, 5).encode();
    h[4] = 5;
    let Ok(Request::Handshake(d)) = Request::decode(&h) else {
        panic!("a handshake of another version was refused");
    };
    assert_eq!((d.min_version.get(), d.max_version.get()), (2, 5));
    // The header is kept as sent, so the request re-encodes to its bytes.
    assert_eq!(d.header.version.get(), 5);
    assert_eq!(Request::Handshake(d).encode(), h);
    let inverted = Request::handshake(5, 2).encode();
    assert!(matches!(
        Request::decode(&inverted),
        Err(WireError::Invalid(_))
    ));
}

fn batch(segments: &[(u64, u64)]) -> Box<SegmentsReply> {
    let len: u64 = segments.iter().map(|s| s.1).sum();
    let mut b = SegmentsReply::new(
        selector::SEGMENTS,
        3,
        len + 4096,
        0,
        4096,
        AddressKind::Physical,
    );
    for &(a, l) in segments {
        assert!(b.push(a, l));
    }
    b
}

#[test]
fn replies_round_trip() {
    let mut prepare = batch(&[(0x1000, 8192), (0x9000, 4096)]);
    prepare.header.selector = selector::PREPARE.into();
    let replies = [
        Reply::Handshake(HandshakeReply::new(
            AddressKind::Iova,
            16384,
            SEGMENTS_PER_REPLY as u32,
            1 << 40,
            "unimem 0.1.0",
        )),
        Reply::Segments(prepare),
        Reply::Complete(CompleteReply::new(3, 12288)),
        Reply::Checksum(ChecksumReply::new(3, 0, 4096, 0xdead)),
        Reply::error(selector::PREPARE, IoReturn::NOT_PERMITTED, 1),
    ];
    for r in replies {
        let bytes = r.encode();
        assert!(bytes.len() <= MAX_MESSAGE);
        assert_eq!(Reply::decode(r.selector(), &bytes), Ok(r));
    }
}

#[test]
fn a_server_version_is_cut_at_a_character_boundary() {
    // 30 ASCII bytes and a 3-byte character: the character does not fit
    // before the NUL, so the string stops before it.
    let long = format!("{}€", "v".repeat(30));
    let h = HandshakeReply::new(AddressKind::Physical, 4096, 1, 4096, &long);
    assert_eq!(h.server_version(), "v".repeat(30));
    assert_eq!(
        HandshakeReply::new(AddressKind::Physical, 4096, 1, 4096, "unimem 1").server_version(),
        "unimem 1"
    );
}

#[test]
fn a_full_reply_takes_no_more_segments() {
    let mut b = batch(&[]);
    for i in 0..SEGMENTS_PER_REPLY as u64 {
        assert!(b.push(0x1000 + i * 0x2000, 4096));
    }
    assert!(!b.push(0x1000, 4096));
    assert_eq!(b.valid_segments().len(), SEGMENTS_PER_REPLY);
    assert_eq!(b.next.get(), SEGMENTS_PER_REPLY as u64 * 4096);
}

#[test]
fn untrusted_segment_replies_are_checked() {
    let dec = |b: &SegmentsReply| Reply::decode(selector::SEGMENTS, b.as_bytes());
    let invalid = |why: &'static str| Err(WireError::Invalid(why));
    let mut b = batch(&[(0x1000, 4096)]);
    b.next = U64::new(b.next.get() + 4096);
    assert_eq!(
        dec(&b),
        invalid("segment lengths do not add up to next - start")
    );
    assert_eq!(
        dec(&batch(&[(0x1000, 4096), (u64::MAX - 100, 4096)])),
        invalid("segment wraps the address space")
    );
    assert_eq!(
        dec(&batch(&[(0x1000, 4096), (0x3000, 0)])),
        invalid("segment of length 0")
    );
    let mut b = batch(&[(0x1000, 4096)]);
    b.count = U32::new(SEGMENTS_PER_REPLY as u32 + 1);
    assert_eq!(
        dec(&b),
        invalid("segments.count exceeds the reply's capacity")
    );
    let mut b = batch(&[(0x1000, 4096)]);
    b.count = U32::ZERO;
    assert_eq!(
        dec(&b),
        invalid("segments count disagrees with [start, next)")
    );
    let mut b = batch(&[(0x1000, 4096)]);
    b.total_length = U64::new(b.next.get() - 1);
    assert_eq!(
        dec(&b),
        invalid("segments range is not start <= next <= total_length")
    );
    let mut b = batch(&[(0x1000, 4096)]);
    b.address_kind = U32::new(0);
    assert_eq!(dec(&b), invalid("segments.address_kind"));
    // Lengths that add up to nearly 2^64 pass; a sum past it is refused.
    let mut b = batch(&[]);
    b.total_length = U64::new(u64::MAX);
    assert!(b.push(0x1000, u64::MAX / 2 - 0x1000));
    assert!(b.push(0x1000, u64::MAX / 2));
    assert!(dec(&b).is_ok());
    let mut b = batch(&[]);
    for (slot, length) in b.segments.iter_mut().zip([u64::MAX - 0x1000, 0x2000]) {
        *slot = WireSegment {
            address: U64::new(0x1000),
            length: U64::new(length),
        };
    }
    b.count = U32::new(2);
    b.next = U64::new(0x1000);
    assert_eq!(dec(&b), invalid("segment lengths overflow"));
    let b = batch(&[(0x1000, 4096)]);
    assert!(matches!(
        Reply::decode(selector::PREPARE, b.as_bytes()),
        Err(WireError::WrongSelector {
            got: 2,
            expected: 1
        })
    ));
}

#[test]
fn entries_past_the_count_are_dropped() {
    let mut b = batch(&[(0x1000, 4096)]);
    b.segments[5] = WireSegment {
        address: U64::new(0xdead_0000),
        length: U64::new(4096),
    };
    let Ok(Reply::Segments(d)) = Reply::decode(selector::SEGMENTS, b.as_bytes()) else {
        panic!("a reply with stale entries past its count was refused");
    };
    assert_eq!(d.valid_segments().len(), 1);
    assert_eq!(d.segments[5], WireSegment::new_zeroed());
    assert_eq!(d, batch(&[(0x1000, 4096)]));
}

#[test]
fn error_replies_are_bare_headers() {
    let bytes = Reply::error(selector::COMPLETE, IoReturn::NOT_FOUND, 0).encode();
    assert_eq!(bytes.len(), 16);
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 16]);
    assert!(Reply::decode(selector::COMPLETE, &padded).is_err());
}
