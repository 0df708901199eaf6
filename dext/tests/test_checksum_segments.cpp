// Tests of the checksum and of SegmentList.
#include <string.h>

#include "checksum.hpp"
#include "harness.hpp"
#include "host_alloc.hpp"
#include "segment_list.hpp"

using namespace unimem::dext;

TEST(checksum_known_vectors) {
    // The same vectors as crates/core/src/checksum.rs.
    CHECK_EQ(checksum_update(kChecksumInit, nullptr, 0), 0xcbf29ce484222325ull);
    uint8_t zeros[8] = {0};
    CHECK_EQ(checksum_update(kChecksumInit, zeros, 8), 0xaf63bd4c8601b7dfull);
    uint8_t bytes[32];
    for (int i = 0; i < 32; i++) bytes[i] = static_cast<uint8_t>(i);
    CHECK_EQ(checksum_update(kChecksumInit, bytes, 32), 0x052dc82d2f436945ull);
}

TEST(checksum_pieces_equal_whole_and_order_matters) {
    uint8_t data[4096];
    for (unsigned i = 0; i < sizeof(data); i++) data[i] = static_cast<uint8_t>(i * 7);
    uint64_t whole = checksum_update(kChecksumInit, data, sizeof(data));
    uint64_t pieces = checksum_update(checksum_update(kChecksumInit, data, 1024), data + 1024,
                                      sizeof(data) - 1024);
    CHECK_EQ(pieces, whole);
    uint8_t swapped[4096];
    memcpy(swapped, data, sizeof(data));
    memcpy(swapped, data + 8, 8);
    memcpy(swapped + 8, data, 8);
    CHECK(checksum_update(kChecksumInit, swapped, sizeof(swapped)) != whole);
}

TEST(checksum_ignores_a_trailing_partial_word_and_reads_unaligned) {
    uint8_t buf[41];
    for (int i = 0; i < 41; i++) buf[i] = static_cast<uint8_t>(i);
    // bytes 1..32 at an odd address hash like the same bytes aligned.
    uint8_t aligned[32];
    memcpy(aligned, buf + 1, 32);
    CHECK_EQ(checksum_update(kChecksumInit, buf + 1, 32),
             checksum_update(kChecksumInit, aligned, 32));
    CHECK_EQ(checksum_update(kChecksumInit, buf, 39), checksum_update(kChecksumInit, buf, 32));
}

TEST(segment_list_merges_only_device_contiguous_runs) {
    SegmentList l;
    memset(static_cast<void *>(&l), 0, sizeof(l));
    CHECK_EQ(l.append(0x10000, 0x4000), 0);
    CHECK_EQ(l.append(0x14000, 0x4000), 0);  // continues: merged
    CHECK_EQ(l.append(0x40000, 0x4000), 0);  // gap: new run
    CHECK_EQ(l.append(0x3c000, 0x4000), 0);  // ends where the last starts: new run
    CHECK_EQ(l.count(), 3u);
    CHECK_EQ(l.total(), 0x10000u);
    CHECK_EQ(l.at(0).offset, 0u);
    CHECK_EQ(l.at(0).length, 0x8000u);
    CHECK_EQ(l.at(1).offset, 0x8000u);
    CHECK_EQ(l.at(1).address, 0x40000u);
    CHECK_EQ(l.at(2).offset, 0xc000u);
    CHECK_EQ(l.at(2).address, 0x3c000u);
    l.reset();
    CHECK_EQ(l.count(), 0u);
    CHECK_EQ(l.total(), 0u);
    CHECK_EQ(host_alloc::live_blocks, 0);
}

TEST(segment_list_rejects_empty_and_overflowing_runs) {
    SegmentList l;
    memset(static_cast<void *>(&l), 0, sizeof(l));
    CHECK_EQ(l.append(0x1000, 0), 0xE00002C2u);
    CHECK_EQ(l.append(UINT64_MAX - 10, 0x1000), 0xE00002C2u);
    CHECK_EQ(l.append(0x1000, UINT64_MAX - 0x2000), 0);
    CHECK_EQ(l.append(0x100000, 0x4000), 0xE00002C2u);  // total would overflow
    CHECK_EQ(l.count(), 1u);
    l.reset();
    CHECK_EQ(host_alloc::live_blocks, 0);
}

TEST(segment_list_grows_and_finds_every_offset) {
    SegmentList l;
    memset(static_cast<void *>(&l), 0, sizeof(l));
    // 1000 runs of varying length, none contiguous with the previous.
    uint64_t expect_offset = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t len = 0x1000 * (1 + i % 3);
        CHECK_EQ(l.append(0x100000000ull - i * 0x10000, len), 0);
        expect_offset += len;
    }
    CHECK_EQ(l.count(), 1000u);
    CHECK_EQ(l.total(), expect_offset);
    for (size_t i = 0; i < l.count(); i++) {
        const Run &r = l.at(i);
        CHECK_EQ(l.find(r.offset), i);
        CHECK_EQ(l.find(r.offset + r.length - 1), i);
    }
    l.reset();
    CHECK_EQ(host_alloc::live_blocks, 0);
}

TEST(segment_list_reports_out_of_memory_and_keeps_its_runs) {
    SegmentList l;
    memset(static_cast<void *>(&l), 0, sizeof(l));
    host_alloc::fail_after = 1;  // the first block (64 runs) only
    uint32_t st = 0;
    int appended = 0;
    for (int i = 0; i < 100 && st == 0; i++) {
        st = l.append(0x1000000 + static_cast<uint64_t>(i) * 0x10000, 0x1000);
        appended += st == 0;
    }
    host_alloc::fail_after = -1;
    CHECK_EQ(st, 0xE00002BDu);
    CHECK_EQ(appended, 64);
    CHECK_EQ(l.count(), 64u);
    CHECK_EQ(l.total(), 64u * 0x1000);
    l.reset();
    CHECK_EQ(host_alloc::live_blocks, 0);
}
