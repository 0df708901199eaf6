//! The wire format against its own encoder and against hand-laid bytes.

use super::reply::encode_batch;
use super::*;
use crate::addr::AddressKind;
use core::mem::offset_of;

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
        Request::Handshake {
            min_version: 1,
            max_version: 3,
        },
        Request::Prepare {
            offset: 4096,
            length: 1 << 30,
            client_va: 0,
            surface_id: 7,
        },
        Request::Segments {
            handle: 9,
            continuation: 4096 * 252,
        },
        Request::Complete { handle: 9 },
        Request::Checksum {
            handle: 9,
            offset: 0,
            length: 65536,
        },
    ];
    for r in reqs {
        let bytes = r.encode();
        assert_eq!(bytes.len(), request_size(r.selector()).unwrap());
        assert_eq!(Request::decode(&bytes), Ok(r));
    }
}

#[test]
fn malformed_requests_are_rejected() {
    let good = Request::Complete { handle: 1 }.encode();
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
    let mut h = Request::Handshake {
        min_version: 2,
        max_version: 5,
    }
    .encode();
    h[4] = 5;
    assert_eq!(
        Request::decode(&h),
        Ok(Request::Handshake {
            min_version: 2,
            max_version: 5
        })
    );
    let inverted = Request::Handshake {
        min_version: 5,
        max_version: 2,
    }
    .encode();
    assert!(matches!(
        Request::decode(&inverted),
        Err(WireError::Invalid(_))
    ));
}

fn batch(segments: Vec<(u64, u64)>) -> SegmentBatch {
    let len: u64 = segments.iter().map(|s| s.1).sum();
    SegmentBatch {
        handle: 3,
        total_length: len + 4096,
        start: 0,
        next: len,
        page_size: 4096,
        address_kind: AddressKind::Physical,
        segments,
    }
}

#[test]
fn replies_round_trip() {
    let replies = [
        Reply::Handshake(ServerInfo {
            version: 1,
            address_kind: AddressKind::Iova,
            page_size: 16384,
            max_segments_per_reply: SEGMENTS_PER_REPLY as u32,
            max_prepare_bytes: 1 << 40,
            server_version: "unimem 0.1.0".into(),
        }),
        Reply::Segments {
            selector: selector::PREPARE,
            batch: batch(vec![(0x1000, 8192), (0x9000, 4096)]),
        },
        Reply::Complete {
            handle: 3,
            released_bytes: 12288,
        },
        Reply::Checksum {
            handle: 3,
            offset: 0,
            length: 4096,
            checksum: 0xdead,
            algorithm: 1,
        },
        Reply::error(selector::PREPARE, IoReturn::NOT_PERMITTED, 1),
    ];
    for r in replies {
        let bytes = r.encode();
        assert!(bytes.len() <= MAX_MESSAGE);
        assert_eq!(Reply::decode(r.selector(), &bytes), Ok(r));
    }
}

#[test]
fn untrusted_segment_replies_are_checked() {
    let enc = |b: &SegmentBatch| encode_batch(selector::SEGMENTS, b);
    let mut b = batch(vec![(0x1000, 4096)]);
    b.next += 4096; // lengths no longer add up
    assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
    let b = batch(vec![(u64::MAX - 100, 4096)]);
    assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
    let b = batch(vec![(0x1000, 0)]);
    assert!(Reply::decode(selector::SEGMENTS, &enc(&b)).is_err());
    let mut raw = enc(&batch(vec![(0x1000, 4096)]));
    raw[60..64].copy_from_slice(&1000u32.to_le_bytes()); // count
    assert!(Reply::decode(selector::SEGMENTS, &raw).is_err());
    let raw = enc(&batch(vec![(0x1000, 4096)]));
    assert!(matches!(
        Reply::decode(selector::PREPARE, &raw),
        Err(WireError::WrongSelector {
            got: 2,
            expected: 1
        })
    ));
}

#[test]
fn error_replies_are_bare_headers() {
    let bytes = Reply::error(selector::COMPLETE, IoReturn::NOT_FOUND, 0).encode();
    assert_eq!(bytes.len(), 16);
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 16]);
    assert!(Reply::decode(selector::COMPLETE, &padded).is_err());
}
