// Tests of Session against a simulated platform: a client buffer whose
// pages sit at scattered device addresses, and DMA commands that behave
// like PrepareForDMA (at most `capacity` segments, silent truncation).
#include <stdlib.h>
#include <string.h>

#include "checksum.hpp"
#include "harness.hpp"
#include "host_alloc.hpp"
#include "requests.hpp"
#include "session.hpp"

using namespace unimem::dext;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPages = 800;
constexpr uint64_t kVa = 0x7f0000000000ull;
const Limits kLimits = {kPage, kPages * kPage};

struct Command {
    uint64_t offset;
    uint64_t length;  // what was prepared, not what was described
    bool live;
};

struct Fake {
    uint8_t *data;
    // Behaviour knobs.
    Status create_status;
    int fail_prepare_call;  // 1-based call that fails, 0 = none
    Status prepare_status;
    bool zero_length_segment;
    bool over_report;
    bool always_short;  // describes one page less than asked, every time
    // Accounting.
    int prepare_calls;
    int live_buffers;
    int live_maps;
    Command commands[4096];
    int command_count;
};

Fake fake;

uint64_t page_address(uint64_t page) {
    // Groups of three device-contiguous pages, groups 1 MiB apart.
    return 0x80000000ull + (page / 3) * 0x100000 + (page % 3) * kPage;
}

struct Buffer {
    uint64_t va;
    uint64_t length;
};

Status create_buffer(void *ctx, uint64_t va, uint64_t length, void **out) {
    CHECK(ctx == &fake);
    if (fake.create_status != 0) return fake.create_status;
    Buffer *b = static_cast<Buffer *>(calloc(1, sizeof(Buffer)));
    b->va = va;
    b->length = length;
    fake.live_buffers++;
    *out = b;
    return 0;
}

void release_buffer(void *, void *buffer) {
    fake.live_buffers--;
    free(buffer);
}

Status prepare_command(void *, void *buffer, uint64_t offset, uint64_t length,
                       AddressSegment *segs, uint32_t *count, void **command) {
    const Buffer *b = static_cast<const Buffer *>(buffer);
    fake.prepare_calls++;
    if (fake.prepare_calls == fake.fail_prepare_call) return fake.prepare_status;
    if (*count != kSegmentsPerPrepare) return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    if (length == 0 || offset + length > b->length) return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    uint32_t n = 0;
    uint64_t end = offset + length;
    for (uint64_t pos = offset; pos < end;) {
        uint64_t va = b->va + pos;
        uint64_t page = (va - kVa) / kPage;
        uint64_t in_page = (va - kVa) % kPage;
        uint64_t chunk = kPage - in_page < end - pos ? kPage - in_page : end - pos;
        uint64_t addr = page_address(page) + in_page;
        if (n > 0 && segs[n - 1].address + segs[n - 1].length == addr) {
            segs[n - 1].length += chunk;
        } else if (n == *count) {
            break;  // silent truncation, as PrepareForDMA does
        } else {
            segs[n++] = AddressSegment{addr, chunk};
        }
        pos += chunk;
    }
    if (fake.always_short && segs[n - 1].length > kPage) {
        segs[n - 1].length -= kPage;
    } else if (fake.always_short && n > 1) {
        n--;
    }
    if (fake.zero_length_segment) segs[0].length = 0;
    if (fake.over_report) segs[n - 1].length += kPage;
    *count = n;
    Command &c = fake.commands[fake.command_count++];
    c = Command{offset, length, true};
    *command = &c;
    return 0;
}

void complete_command(void *, void *command) {
    Command *c = static_cast<Command *>(command);
    CHECK(c->live);
    c->live = false;
}

Status map_buffer(void *, void *buffer, const uint8_t **bytes, uint64_t *length, void **mapping) {
    const Buffer *b = static_cast<const Buffer *>(buffer);
    *bytes = fake.data + (b->va - kVa);
    *length = b->length;
    *mapping = &fake;
    fake.live_maps++;
    return 0;
}

void unmap_buffer(void *, void *mapping) {
    CHECK(mapping == &fake);
    fake.live_maps--;
}

const PlatformOps kOps = {create_buffer,    release_buffer, prepare_command,
                          complete_command, map_buffer,     unmap_buffer};

int live_commands() {
    int n = 0;
    for (int i = 0; i < fake.command_count; i++) n += fake.commands[i].live ? 1 : 0;
    return n;
}

// The live commands prepare [0, length) exactly once, without overlap.
bool commands_tile(uint64_t length) {
    uint64_t pos = 0;
    for (int i = 0; i < fake.command_count; i++) {
        const Command &c = fake.commands[i];
        if (!c.live) continue;
        if (c.offset != pos) return false;
        pos += c.length;
    }
    return pos == length;
}

void reset_fake() {
    uint8_t *data = fake.data;
    memset(static_cast<void *>(&fake), 0, sizeof(fake));
    if (data == nullptr) {
        data = static_cast<uint8_t *>(malloc(kPages * kPage));
    }
    for (uint64_t i = 0; i < kPages * kPage; i++) data[i] = static_cast<uint8_t>(i * 31 + i / 4096);
    fake.data = data;
}

struct Client {
    // The budget of a client that is alone with the driver: no limit.
    PinBudget own_budget;
    Session session;
    ReplyBuffer reply;
    size_t reply_length;

    // With `shared`, a further connection of the same driver: it shares
    // that budget and the simulated platform (which is not reset).
    explicit Client(PinBudget *shared = nullptr) : own_budget(UINT64_MAX) {
        if (shared == nullptr) reset_fake();
        SessionConfig config = {kLimits, UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED, "CybMemDriver test",
                                shared != nullptr ? shared : &own_budget};
        // Zeroed, not constructed: as the DEXT's instance variables are.
        memset(static_cast<void *>(&session), 0, sizeof(session));
        session.init(config, &kOps, &fake);
    }

    template <typename T>
    Status send(uint16_t selector, const T &request) {
        memset(&reply, 0xEE, sizeof(reply));
        reply_length = 0;
        Status st = session.handle(selector, &request, sizeof(request), &reply, &reply_length);
        CHECK_EQ(reply.error.magic, UNIMEM_MAGIC);
        CHECK_EQ(reply.error.selector, selector);
        CHECK_EQ(reply.error.status, st);
        if (st != 0) CHECK_EQ(reply_length, sizeof(unimem_header));
        return st;
    }

    Status handshake() { return send(UNIMEM_SELECTOR_HANDSHAKE, make_handshake(1, 1)); }
    Status prepare(uint64_t offset, uint64_t length) {
        return send(UNIMEM_SELECTOR_PREPARE, make_prepare(offset, length, kVa, 42));
    }
};

bool nothing_held(const Client &c) {
    return c.session.prepared_count() == 0 && live_commands() == 0 && fake.live_buffers == 0 &&
           fake.live_maps == 0 && host_alloc::live_blocks == 0 && c.own_budget.in_use() == 0;
}

}  // namespace

TEST(session_resolves_pages_and_checksums_a_large_range) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    CHECK_EQ(c.reply_length, sizeof(unimem_handshake_reply));
    CHECK_EQ(c.reply.handshake.address_kind, UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED);
    CHECK_EQ(c.reply.handshake.page_size, kPage);

    const uint64_t offset = 2 * kPage;  // start mid-group: first run is one page
    const uint64_t length = 790 * kPage;
    CHECK_EQ(c.prepare(offset, length), 0);
    CHECK_EQ(c.reply_length, sizeof(unimem_segments_reply));
    uint64_t handle = c.reply.segments.handle;
    CHECK(handle != 0);
    CHECK_EQ(c.reply.segments.total_length, length);
    CHECK_EQ(c.reply.segments.start, 0u);
    CHECK_EQ(c.reply.segments.address_kind, UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED);
    // 790 pages in groups of three need more than 8 commands of 32 segments.
    CHECK(live_commands() > 8);
    CHECK(commands_tile(length));

    // Expected runs, coalesced from the page table.
    uint64_t want_addr[1000];
    uint64_t want_len[1000];
    int want = 0;
    for (uint64_t p = 0; p < length / kPage; p++) {
        uint64_t a = page_address(offset / kPage + p);
        if (want > 0 && want_addr[want - 1] + want_len[want - 1] == a) {
            want_len[want - 1] += kPage;
        } else {
            want_addr[want] = a;
            want_len[want++] = kPage;
        }
    }
    int got = 0;
    int replies = 1;
    bool match = true;
    for (;;) {
        const unimem_segments_reply &r = c.reply.segments;
        for (uint32_t i = 0; i < r.count; i++, got++) {
            match = match && got < want && r.segments[i].address == want_addr[got] &&
                    r.segments[i].length == want_len[got];
        }
        if (r.next == r.total_length) break;
        CHECK_EQ(c.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(handle, r.next)), 0);
        CHECK_EQ(c.reply.segments.header.selector, UNIMEM_SELECTOR_SEGMENTS);
        if (++replies > 5) break;
    }
    CHECK(match);
    CHECK_EQ(got, want);
    CHECK_EQ(replies, 2);

    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(handle, 0, length)), 0);
    CHECK_EQ(c.reply.checksum.checksum,
             checksum_update(kChecksumInit, fake.data + offset, static_cast<size_t>(length)));
    CHECK_EQ(c.reply.checksum.algorithm, UNIMEM_CHECKSUM_FNV1A64_WORDS);
    // The checksum reads live memory through the mapping.
    fake.data[offset + 100] ^= 0xFF;
    uint64_t before = c.reply.checksum.checksum;
    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(handle, 0, length)), 0);
    CHECK(c.reply.checksum.checksum != before);
    CHECK_EQ(fake.live_maps, 0);

    CHECK_EQ(c.send(UNIMEM_SELECTOR_COMPLETE, make_complete(handle)), 0);
    CHECK_EQ(c.reply.complete.handle, handle);
    CHECK_EQ(c.reply.complete.released_bytes, length);
    CHECK(nothing_held(c));
}

TEST(session_requires_a_handshake_first_and_rejects_unknown_selectors) {
    Client c;
    CHECK_EQ(c.prepare(0, kPage), UNIMEM_IO_RETURN_NOT_READY);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_COMPLETE, make_complete(1)), UNIMEM_IO_RETURN_NOT_READY);
    CHECK_EQ(fake.prepare_calls, 0);
    CHECK_EQ(c.send(7, make_complete(1)), UNIMEM_IO_RETURN_UNSUPPORTED);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_HANDSHAKE, make_handshake(2, 3)),
             UNIMEM_IO_RETURN_UNSUPPORTED);
    CHECK_EQ(c.prepare(0, kPage), UNIMEM_IO_RETURN_NOT_READY);
    CHECK_EQ(c.handshake(), 0);
    CHECK_EQ(c.prepare(0, kPage), 0);
    c.session.close();
    CHECK(nothing_held(c));
}

TEST(session_fails_a_prepare_midway_and_releases_what_it_held) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    fake.fail_prepare_call = 5;
    fake.prepare_status = UNIMEM_IO_RETURN_CANNOT_WIRE;
    CHECK_EQ(c.prepare(0, 600 * kPage), UNIMEM_IO_RETURN_CANNOT_WIRE);
    CHECK_EQ(fake.prepare_calls, 5);
    CHECK(nothing_held(c));
    // The slot is free again.
    fake.fail_prepare_call = 0;
    CHECK_EQ(c.prepare(0, 600 * kPage), 0);
    c.session.close();
    CHECK(nothing_held(c));
}

TEST(session_reports_the_descriptor_failure_code) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    fake.create_status = UNIMEM_IO_RETURN_NOT_PERMITTED;
    CHECK_EQ(c.prepare(0, kPage), UNIMEM_IO_RETURN_NOT_PERMITTED);
    CHECK_EQ(fake.prepare_calls, 0);
    CHECK(nothing_held(c));
}

TEST(session_rejects_segments_a_command_cannot_have_produced) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    fake.zero_length_segment = true;
    CHECK_EQ(c.prepare(0, 10 * kPage), UNIMEM_IO_RETURN_ERROR);
    CHECK(nothing_held(c));
    fake.zero_length_segment = false;
    fake.over_report = true;
    CHECK_EQ(c.prepare(0, 10 * kPage), UNIMEM_IO_RETURN_ERROR);
    CHECK(nothing_held(c));
}

TEST(session_gives_up_when_truncation_never_settles) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    fake.always_short = true;
    CHECK_EQ(c.prepare(0, 10 * kPage), UNIMEM_IO_RETURN_ERROR);
    CHECK_EQ(fake.prepare_calls, static_cast<int>(kMaxShrinkAttempts));
    CHECK(nothing_held(c));
}

TEST(session_handles_are_unique_bounded_and_never_reused) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    uint64_t handles[kMaxPrepared];
    for (size_t i = 0; i < kMaxPrepared; i++) {
        CHECK_EQ(c.prepare(i * kPage, kPage), 0);
        handles[i] = c.reply.segments.handle;
        for (size_t j = 0; j < i; j++) CHECK(handles[j] != handles[i]);
    }
    CHECK_EQ(c.prepare(0, kPage), UNIMEM_IO_RETURN_NO_RESOURCES);
    CHECK_EQ(c.session.prepared_count(), kMaxPrepared);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_COMPLETE, make_complete(handles[3])), 0);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_COMPLETE, make_complete(handles[3])),
             UNIMEM_IO_RETURN_NOT_FOUND);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(handles[3], 0)),
             UNIMEM_IO_RETURN_NOT_FOUND);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(handles[3], 0, 8)),
             UNIMEM_IO_RETURN_NOT_FOUND);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(0, 0)), UNIMEM_IO_RETURN_NOT_FOUND);
    CHECK_EQ(c.prepare(0, kPage), 0);
    for (size_t j = 0; j < kMaxPrepared; j++) CHECK(c.reply.segments.handle != handles[j]);
    c.session.close();
    CHECK(nothing_held(c));
}

TEST(session_checks_ranges_against_the_prepared_length) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    CHECK_EQ(c.prepare(kPage, 4 * kPage), 0);
    uint64_t h = c.reply.segments.handle;
    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(h, 0, 4 * kPage + 8)),
             UNIMEM_IO_RETURN_BAD_ARGUMENT);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(h, 4 * kPage, 8)),
             UNIMEM_IO_RETURN_BAD_ARGUMENT);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_CHECKSUM, make_checksum(h, 8, 16)), 0);
    CHECK_EQ(c.reply.checksum.checksum,
             checksum_update(kChecksumInit, fake.data + kPage + 8, 16));
    CHECK_EQ(c.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(h, 4 * kPage + 1)),
             UNIMEM_IO_RETURN_BAD_ARGUMENT);
    CHECK_EQ(c.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(h, 4 * kPage)), 0);
    CHECK_EQ(c.reply.segments.count, 0u);
    // A malformed request never reaches the platform.
    int calls = fake.prepare_calls;
    CHECK_EQ(c.prepare(1, kPage), UNIMEM_IO_RETURN_BAD_ARGUMENT);
    unimem_prepare_request short_request = make_prepare(0, kPage, kVa, 1);
    size_t n = 0;
    CHECK_EQ(c.session.handle(UNIMEM_SELECTOR_PREPARE, &short_request, sizeof(short_request) - 8,
                              &c.reply, &n),
             UNIMEM_IO_RETURN_BAD_ARGUMENT);
    CHECK_EQ(n, sizeof(unimem_header));
    CHECK_EQ(fake.prepare_calls, calls);
    c.session.close();
    CHECK(nothing_held(c));
}

TEST(session_close_releases_every_prepared_range) {
    Client c;
    CHECK_EQ(c.handshake(), 0);
    CHECK_EQ(c.prepare(0, 300 * kPage), 0);
    CHECK_EQ(c.prepare(300 * kPage, 300 * kPage), 0);
    CHECK_EQ(c.session.prepared_count(), 2u);
    CHECK(live_commands() > 2);
    CHECK_EQ(fake.live_buffers, 2);
    c.session.close();
    CHECK(nothing_held(c));
    c.session.close();  // idempotent
    CHECK(nothing_held(c));
}

TEST(session_survives_running_out_of_memory_while_preparing) {
    for (long budget = 0; budget < 6; budget++) {
        Client c;
        CHECK_EQ(c.handshake(), 0);
        host_alloc::fail_after = budget;
        Status st = c.prepare(0, 700 * kPage);
        host_alloc::fail_after = -1;
        if (st == 0) {
            c.session.close();
        } else {
            CHECK_EQ(st, UNIMEM_IO_RETURN_NO_MEMORY);
        }
        CHECK(nothing_held(c));
    }
}

// ---- The driver-wide pin limit, across connections ------------------------

TEST(session_refuses_a_second_connection_once_the_driver_wide_limit_is_reached) {
    PinBudget driver(10 * kPage);
    Client a(&driver);
    reset_fake();  // the first client of this driver
    Client b(&driver);
    CHECK_EQ(a.handshake(), 0);
    CHECK_EQ(b.handshake(), 0);

    CHECK_EQ(a.prepare(0, 6 * kPage), 0);
    uint64_t a_handle = a.reply.segments.handle;
    CHECK_EQ(driver.in_use(), 6 * kPage);
    // Each connection is far below its own limits; together they would
    // pass the driver's. Refused before anything is wired.
    int calls = fake.prepare_calls;
    CHECK_EQ(b.prepare(100 * kPage, 6 * kPage), UNIMEM_IO_RETURN_NO_RESOURCES);
    CHECK_EQ(fake.prepare_calls, calls);
    CHECK_EQ(fake.live_buffers, 1);
    CHECK_EQ(driver.in_use(), 6 * kPage);
    CHECK_EQ(b.session.prepared_count(), 0u);
    // What still fits is granted, up to the limit exactly.
    CHECK_EQ(b.prepare(100 * kPage, 4 * kPage), 0);
    uint64_t b_handle = b.reply.segments.handle;
    CHECK_EQ(driver.in_use(), 10 * kPage);
    CHECK_EQ(a.prepare(200 * kPage, kPage), UNIMEM_IO_RETURN_NO_RESOURCES);

    // COMPLETE returns the bytes: the other connection can use them.
    CHECK_EQ(a.send(UNIMEM_SELECTOR_COMPLETE, make_complete(a_handle)), 0);
    CHECK_EQ(driver.in_use(), 4 * kPage);
    CHECK_EQ(b.prepare(300 * kPage, 6 * kPage), 0);
    CHECK_EQ(driver.in_use(), 10 * kPage);

    // Closing a connection (client exit, crash, driver stop) returns all
    // of its bytes.
    b.session.close();
    CHECK_EQ(driver.in_use(), 0u);
    CHECK_EQ(b.send(UNIMEM_SELECTOR_SEGMENTS, make_segments(b_handle, 0)),
             UNIMEM_IO_RETURN_NOT_FOUND);
    CHECK_EQ(a.prepare(0, 10 * kPage), 0);
    CHECK_EQ(driver.in_use(), 10 * kPage);
    a.session.close();
    CHECK_EQ(driver.in_use(), 0u);
    CHECK_EQ(live_commands(), 0);
    CHECK_EQ(fake.live_buffers, 0);
    CHECK_EQ(host_alloc::live_blocks, 0);
}

TEST(session_returns_the_budget_when_a_prepare_fails) {
    PinBudget driver(8 * kPage);
    reset_fake();
    Client c(&driver);
    CHECK_EQ(c.handshake(), 0);

    // The descriptor cannot be made.
    fake.create_status = UNIMEM_IO_RETURN_NOT_PERMITTED;
    CHECK_EQ(c.prepare(0, 8 * kPage), UNIMEM_IO_RETURN_NOT_PERMITTED);
    CHECK_EQ(driver.in_use(), 0u);
    fake.create_status = 0;

    // A DMA command fails midway.
    fake.fail_prepare_call = fake.prepare_calls + 1;
    fake.prepare_status = UNIMEM_IO_RETURN_CANNOT_WIRE;
    CHECK_EQ(c.prepare(0, 8 * kPage), UNIMEM_IO_RETURN_CANNOT_WIRE);
    CHECK_EQ(driver.in_use(), 0u);
    fake.fail_prepare_call = 0;

    // Out of memory while keeping the commands.
    host_alloc::fail_after = 0;
    CHECK_EQ(c.prepare(0, 8 * kPage), UNIMEM_IO_RETURN_NO_MEMORY);
    host_alloc::fail_after = -1;
    CHECK_EQ(driver.in_use(), 0u);

    // A malformed request takes nothing.
    CHECK_EQ(c.prepare(1, 8 * kPage), UNIMEM_IO_RETURN_BAD_ARGUMENT);
    CHECK_EQ(driver.in_use(), 0u);

    // After all that, the whole budget is still there.
    CHECK_EQ(c.prepare(0, 8 * kPage), 0);
    CHECK_EQ(driver.in_use(), 8 * kPage);
    c.session.close();
    CHECK_EQ(driver.in_use(), 0u);
    CHECK_EQ(live_commands(), 0);
    CHECK_EQ(fake.live_buffers, 0);
}

TEST(session_without_a_budget_prepares_nothing) {
    reset_fake();
    Session s;
    memset(static_cast<void *>(&s), 0, sizeof(s));
    SessionConfig config = {kLimits, UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED, "no budget", nullptr};
    s.init(config, &kOps, &fake);
    ReplyBuffer reply;
    size_t n = 0;
    unimem_handshake_request hs = make_handshake(1, 1);
    CHECK_EQ(s.handle(UNIMEM_SELECTOR_HANDSHAKE, &hs, sizeof(hs), &reply, &n), 0);
    unimem_prepare_request pr = make_prepare(0, kPage, kVa, 1);
    CHECK_EQ(s.handle(UNIMEM_SELECTOR_PREPARE, &pr, sizeof(pr), &reply, &n),
             UNIMEM_IO_RETURN_ERROR);
    CHECK_EQ(fake.live_buffers, 0);
    CHECK_EQ(fake.prepare_calls, 0);
}
