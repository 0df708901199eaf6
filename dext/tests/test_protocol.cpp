// Tests of request checks, reply builders and reply packing.
#include <string.h>

#include "harness.hpp"
#include "host_alloc.hpp"
#include "protocol.hpp"
#include "requests.hpp"

using namespace unimem::dext;

namespace {

constexpr uint32_t kBad = UNIMEM_IO_RETURN_BAD_ARGUMENT;
constexpr uint32_t kUnsupported = UNIMEM_IO_RETURN_UNSUPPORTED;
const Limits kLimits = {16384, 1ull << 30};

}  // namespace

TEST(requests_that_are_well_formed_decode) {
    HandshakeArgs h;
    unimem_handshake_request hr = make_handshake(1, 3);
    CHECK_EQ(decode_handshake(&hr, sizeof(hr), &h), 0);
    CHECK_EQ(h.min_version, 1);
    CHECK_EQ(h.max_version, 3);

    PrepareArgs p;
    unimem_prepare_request pr = make_prepare(0x4000, 0x8000, 0x100000000ull, 7);
    CHECK_EQ(decode_prepare(&pr, sizeof(pr), kLimits, &p), 0);
    CHECK_EQ(p.offset, 0x4000u);
    CHECK_EQ(p.length, 0x8000u);
    CHECK_EQ(p.client_va, 0x100000000ull);
    CHECK_EQ(p.surface_id, 7u);
    CHECK_EQ(p.start_va, 0x100004000ull);

    SegmentsArgs s;
    unimem_segments_request sr = make_segments(5, 0x10000);
    CHECK_EQ(decode_segments(&sr, sizeof(sr), &s), 0);
    CHECK_EQ(s.handle, 5u);
    CHECK_EQ(s.continuation, 0x10000u);

    CompleteArgs c;
    unimem_complete_request cr = make_complete(9);
    CHECK_EQ(decode_complete(&cr, sizeof(cr), &c), 0);
    CHECK_EQ(c.handle, 9u);

    ChecksumArgs k;
    unimem_checksum_request kr = make_checksum(9, 8, 4096);
    CHECK_EQ(decode_checksum(&kr, sizeof(kr), &k), 0);
    CHECK_EQ(k.handle, 9u);
    CHECK_EQ(k.offset, 8u);
    CHECK_EQ(k.length, 4096u);
}

TEST(requests_of_the_wrong_size_are_rejected) {
    uint8_t buf[128];
    memset(buf, 0, sizeof(buf));
    unimem_complete_request cr = make_complete(1);
    memcpy(buf, &cr, sizeof(cr));
    CompleteArgs c;
    CHECK_EQ(decode_complete(buf, sizeof(cr) - 1, &c), kBad);
    CHECK_EQ(decode_complete(buf, sizeof(cr) + 1, &c), kBad);
    CHECK_EQ(decode_complete(buf, 0, &c), kBad);
    CHECK_EQ(decode_complete(nullptr, sizeof(cr), &c), kBad);
    CHECK_EQ(decode_complete(buf, sizeof(cr), &c), 0);
    // A prepare-sized message is not a complete message.
    unimem_prepare_request pr = make_prepare(0, 0x4000, 0x100000000ull, 1);
    CHECK_EQ(decode_complete(&pr, sizeof(pr), &c), kBad);
}

TEST(request_headers_are_checked) {
    CompleteArgs c;
    unimem_complete_request r = make_complete(1);
    r.header.magic ^= 1;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kBad);
    r = make_complete(1);
    r.header.selector = UNIMEM_SELECTOR_SEGMENTS;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kBad);
    r = make_complete(1);
    r.header.version = 2;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kUnsupported);
    r = make_complete(1);
    r.header.status = 1;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kBad);
    r = make_complete(1);
    r.header.detail = 1;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kBad);
    r = make_complete(1);
    r.reserved = 1;
    CHECK_EQ(decode_complete(&r, sizeof(r), &c), kBad);
}

TEST(handshake_negotiates_and_accepts_any_header_version) {
    HandshakeArgs h;
    unimem_handshake_request r = make_handshake(1, 5);
    r.header.version = 5;
    CHECK_EQ(decode_handshake(&r, sizeof(r), &h), 0);
    uint16_t v = 0;
    CHECK_EQ(negotiate_version(h, &v), 0);
    CHECK_EQ(v, UNIMEM_VERSION);
    h.min_version = 2;
    CHECK_EQ(negotiate_version(h, &v), kUnsupported);
    h.min_version = 0;
    h.max_version = 0;
    CHECK_EQ(negotiate_version(h, &v), kUnsupported);
    r = make_handshake(3, 2);
    CHECK_EQ(decode_handshake(&r, sizeof(r), &h), kBad);
    r = make_handshake(1, 1);
    r.reserved0 = 1;
    CHECK_EQ(decode_handshake(&r, sizeof(r), &h), kBad);
    r = make_handshake(1, 1);
    r.reserved1 = 1;
    CHECK_EQ(decode_handshake(&r, sizeof(r), &h), kBad);
}

TEST(prepare_ranges_are_checked) {
    PrepareArgs p;
    const uint64_t va = 0x100000000ull;
    unimem_prepare_request r = make_prepare(0, 0, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // empty
    r = make_prepare(0, kLimits.max_prepare_bytes + 0x4000, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // too long
    r = make_prepare(0, kLimits.max_prepare_bytes, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), 0);  // longest allowed
    r = make_prepare(0, 0x4000, 0, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // no address
    r = make_prepare(UINT64_MAX - 0x3fff, 0x4000, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // va + offset wraps
    r = make_prepare(0, 0x4000, 0xffffffffffffc000ull, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // end wraps to 0
    r = make_prepare(0x1000, 0x4000, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // start not on a page
    r = make_prepare(0, 0x5000, va, 1);
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // partial page
    r = make_prepare(0, 0x4000, va, 1);
    r.options = 1;
    CHECK_EQ(decode_prepare(&r, sizeof(r), kLimits, &p), kBad);  // unknown option
}

TEST(checksum_requests_are_word_aligned_and_bounded) {
    ChecksumArgs k;
    unimem_checksum_request r = make_checksum(1, 4, 8);
    CHECK_EQ(decode_checksum(&r, sizeof(r), &k), kBad);
    r = make_checksum(1, 8, 12);
    CHECK_EQ(decode_checksum(&r, sizeof(r), &k), kBad);
    r = make_checksum(1, 0xfffffffffffffff8ull, 16);
    CHECK_EQ(decode_checksum(&r, sizeof(r), &k), kBad);
    r = make_checksum(1, 0, 16);
    r.reserved = 1;
    CHECK_EQ(decode_checksum(&r, sizeof(r), &k), kBad);
    r = make_checksum(1, 0, 0);
    CHECK_EQ(decode_checksum(&r, sizeof(r), &k), 0);
    CHECK(range_within(0, 16, 16));
    CHECK(range_within(16, 0, 16));
    CHECK(!range_within(8, 16, 16));
    CHECK(!range_within(24, 0, 16));
    CHECK(!range_within(8, UINT64_MAX, 16));
}

TEST(replies_are_built_field_by_field) {
    unimem_header e;
    build_error(UNIMEM_SELECTOR_PREPARE, UNIMEM_IO_RETURN_NOT_PERMITTED, 13, &e);
    CHECK_EQ(e.magic, UNIMEM_MAGIC);
    CHECK_EQ(e.version, UNIMEM_VERSION);
    CHECK_EQ(e.selector, UNIMEM_SELECTOR_PREPARE);
    CHECK_EQ(e.status, 0xE00002E2u);
    CHECK_EQ(e.detail, 13u);

    unimem_handshake_reply h;
    memset(&h, 0xAB, sizeof(h));
    build_handshake_reply(1, UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED, kLimits,
                          "CybMemDriver 0.1.0 with a long tail past the field", &h);
    CHECK_EQ(h.header.status, 0u);
    CHECK_EQ(h.header.selector, UNIMEM_SELECTOR_HANDSHAKE);
    CHECK_EQ(h.version, 1);
    CHECK_EQ(h.reserved0, 0);
    CHECK_EQ(h.reserved1, 0u);
    CHECK_EQ(h.address_kind, 3u);
    CHECK_EQ(h.page_size, 16384u);
    CHECK_EQ(h.max_segments_per_reply, 252u);
    CHECK_EQ(h.max_prepare_bytes, 1ull << 30);
    CHECK(memcmp(h.server_version, "CybMemDriver 0.1.0 with a long ", 31) == 0);
    CHECK_EQ(h.server_version[31], 0);

    unimem_complete_reply c;
    build_complete_reply(4, 0x10000, &c);
    CHECK_EQ(c.header.selector, UNIMEM_SELECTOR_COMPLETE);
    CHECK_EQ(c.handle, 4u);
    CHECK_EQ(c.released_bytes, 0x10000u);

    unimem_checksum_reply k;
    ChecksumArgs a = {4, 8, 16};
    build_checksum_reply(a, 0x1234, &k);
    CHECK_EQ(k.header.selector, UNIMEM_SELECTOR_CHECKSUM);
    CHECK_EQ(k.handle, 4u);
    CHECK_EQ(k.offset, 8u);
    CHECK_EQ(k.length, 16u);
    CHECK_EQ(k.checksum, 0x1234u);
    CHECK_EQ(k.algorithm, UNIMEM_CHECKSUM_FNV1A64_WORDS);
    CHECK_EQ(k.reserved, 0u);
}

namespace {

void fill(SegmentList *l, unsigned runs) {
    memset(static_cast<void *>(l), 0, sizeof(*l));
    for (unsigned i = 0; i < runs; i++) {
        // Two pages per run, runs never adjacent on the device side.
        l->append(0x800000000ull + static_cast<uint64_t>(i) * 0x100000, 0x8000);
    }
}

// Checks the invariants the Rust decoder enforces on every reply.
bool reply_is_consistent(const unimem_segments_reply &r) {
    if (r.count > UNIMEM_SEGMENTS_PER_REPLY || r.start > r.next || r.next > r.total_length) {
        return false;
    }
    if ((r.count == 0) != (r.start == r.next)) return false;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < r.count; i++) {
        if (r.segments[i].length == 0) return false;
        sum += r.segments[i].length;
    }
    for (uint32_t i = r.count; i < UNIMEM_SEGMENTS_PER_REPLY; i++) {
        if (r.segments[i].address != 0 || r.segments[i].length != 0) return false;
    }
    return sum == r.next - r.start;
}

}  // namespace

TEST(pack_pages_through_many_replies_and_covers_everything_once) {
    SegmentList l;
    fill(&l, 600);
    unimem_segments_reply r;
    uint64_t cont = 0;
    unsigned replies = 0;
    unsigned seen = 0;
    while (replies < 10) {
        CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 3, cont, 16384, 2, &r), 0);
        CHECK(reply_is_consistent(r));
        CHECK_EQ(r.start, cont);
        CHECK_EQ(r.handle, 3u);
        CHECK_EQ(r.page_size, 16384u);
        CHECK_EQ(r.address_kind, 2u);
        CHECK_EQ(r.total_length, 600u * 0x8000);
        for (uint32_t i = 0; i < r.count; i++, seen++) {
            CHECK_EQ(r.segments[i].address, 0x800000000ull + static_cast<uint64_t>(seen) * 0x100000);
            CHECK_EQ(r.segments[i].length, 0x8000u);
        }
        replies++;
        cont = r.next;
        if (r.next == r.total_length) break;
    }
    CHECK_EQ(replies, 3u);  // 252 + 252 + 96
    CHECK_EQ(seen, 600u);
    CHECK_EQ(r.count, 96u);
    l.reset();
}

TEST(pack_cuts_the_first_run_at_a_continuation_inside_it) {
    SegmentList l;
    fill(&l, 3);
    unimem_segments_reply r;
    CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 1, 0xc000, 16384, 1, &r), 0);
    CHECK(reply_is_consistent(r));
    CHECK_EQ(r.count, 2u);
    CHECK_EQ(r.segments[0].address, 0x800100000ull + 0x4000);
    CHECK_EQ(r.segments[0].length, 0x4000u);
    CHECK_EQ(r.segments[1].address, 0x800200000ull);
    CHECK_EQ(r.next, 0x18000u);
    // On a run boundary nothing is cut.
    CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 1, 0x8000, 16384, 1, &r), 0);
    CHECK_EQ(r.segments[0].address, 0x800100000ull);
    CHECK_EQ(r.segments[0].length, 0x8000u);
    l.reset();
}

TEST(pack_at_the_end_is_empty_and_past_it_is_an_error) {
    SegmentList l;
    fill(&l, 2);
    unimem_segments_reply r;
    CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 1, 0x10000, 16384, 1, &r), 0);
    CHECK(reply_is_consistent(r));
    CHECK_EQ(r.count, 0u);
    CHECK_EQ(r.start, 0x10000u);
    CHECK_EQ(r.next, 0x10000u);
    CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 1, 0x10001, 16384, 1, &r), kBad);
    CHECK_EQ(pack_segments(l, UNIMEM_SELECTOR_SEGMENTS, 1, UINT64_MAX, 16384, 1, &r), kBad);
    l.reset();
    CHECK_EQ(host_alloc::live_blocks, 0);
}
