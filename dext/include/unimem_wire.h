/*
 * unimem_wire.h -- the unimem wire format, in C.
 *
 * This is the C twin of crates/core/src/wire/: the structs the client,
 * the Linux resolver service and the CybMemDriver DEXT exchange, with the
 * same fields at the same offsets. crates/core/tests/c_header.rs compiles
 * this header and compares the size and offset of every field and the value
 * of every constant with the Rust definitions; the static assertions at the
 * end pin the same numbers for C and C++ compilers that include it.
 *
 * Every message is little-endian and starts with a unimem_header. A request
 * is the input struct of IOConnectCallStructMethod(selector); the reply is
 * the selector's reply struct or, on failure, a bare unimem_header whose
 * status is a non-zero IOReturn and whose detail carries the OS's own code.
 *
 * All fields sit at their natural alignment, so plain uint16_t/uint32_t/
 * uint64_t fields give the Rust layout (whose integers have alignment 1)
 * without packing pragmas. Copy received bytes into these structs with
 * memcpy rather than casting a byte pointer: a buffer need not be aligned.
 *
 * Plain C99/C11 and C++11 or later; no platform headers beyond stdint and
 * stddef, so the DEXT, host tests and any other client can include it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define UNIMEM_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define UNIMEM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol constants ------------------------------------------------ */

/* "UNMM" as little-endian bytes. */
#define UNIMEM_MAGIC UINT32_C(0x4D4D4E55)
/* The protocol version this build speaks. */
#define UNIMEM_VERSION UINT16_C(1)
/* Largest message either side sends: IOKit's inband struct limit
 * (io_struct_inband_t). Larger structs would reach a DEXT as memory
 * descriptors, so no unimem message is larger. */
#define UNIMEM_MAX_MESSAGE 4096u
/* Segments carried by one unimem_segments_reply. */
#define UNIMEM_SEGMENTS_PER_REPLY 252u
/* Length of the server version string field, NUL-padded. */
#define UNIMEM_SERVER_VERSION_LEN 32u

/* ---- Selectors (the IOConnectCallStructMethod selector) ---------------- */

#define UNIMEM_SELECTOR_HANDSHAKE 0u
#define UNIMEM_SELECTOR_PREPARE 1u
#define UNIMEM_SELECTOR_SEGMENTS 2u
#define UNIMEM_SELECTOR_COMPLETE 3u
#define UNIMEM_SELECTOR_CHECKSUM 4u
/* One past the last selector. */
#define UNIMEM_SELECTOR_COUNT 5u

/* ---- Address kinds (the address_kind fields) --------------------------- */

/* CPU physical addresses. */
#define UNIMEM_ADDRESS_KIND_PHYSICAL 1u
/* IOVAs valid only behind one IOMMU (a DART on Apple Silicon). */
#define UNIMEM_ADDRESS_KIND_IOVA 2u
/* DMA addresses for a device with no IOMMU parent: the system mapper's
 * addresses if the platform has one, otherwise physical. */
#define UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED 3u

/* ---- Checksum (crates/core/src/checksum.rs) ---------------------------- */

/* FNV-1a over 64-bit little-endian words: h = (h ^ word) * prime. */
#define UNIMEM_CHECKSUM_FNV1A64_WORDS 1u
#define UNIMEM_FNV_OFFSET_BASIS UINT64_C(0xcbf29ce484222325)
#define UNIMEM_FNV_PRIME UINT64_C(0x00000100000001b3)

/* ---- IOReturn status values (xnu iokit/IOKit/IOReturn.h) ---------------
 * Spelled out here so code without IOKit headers (the Linux service, the
 * DEXT's portable logic and its host tests) uses the same numbers. */

#define UNIMEM_IO_RETURN_SUCCESS UINT32_C(0x00000000)
#define UNIMEM_IO_RETURN_ERROR UINT32_C(0xE00002BC)
#define UNIMEM_IO_RETURN_NO_MEMORY UINT32_C(0xE00002BD)
#define UNIMEM_IO_RETURN_NO_RESOURCES UINT32_C(0xE00002BE)
#define UNIMEM_IO_RETURN_IPC_ERROR UINT32_C(0xE00002BF)
#define UNIMEM_IO_RETURN_NO_DEVICE UINT32_C(0xE00002C0)
#define UNIMEM_IO_RETURN_NOT_PRIVILEGED UINT32_C(0xE00002C1)
#define UNIMEM_IO_RETURN_BAD_ARGUMENT UINT32_C(0xE00002C2)
#define UNIMEM_IO_RETURN_EXCLUSIVE_ACCESS UINT32_C(0xE00002C5)
#define UNIMEM_IO_RETURN_UNSUPPORTED UINT32_C(0xE00002C7)
#define UNIMEM_IO_RETURN_VM_ERROR UINT32_C(0xE00002C8)
#define UNIMEM_IO_RETURN_IO_ERROR UINT32_C(0xE00002CA)
#define UNIMEM_IO_RETURN_CANNOT_LOCK UINT32_C(0xE00002CC)
#define UNIMEM_IO_RETURN_NOT_OPEN UINT32_C(0xE00002CD)
#define UNIMEM_IO_RETURN_NOT_READY UINT32_C(0xE00002D8)
#define UNIMEM_IO_RETURN_NO_SPACE UINT32_C(0xE00002DB)
#define UNIMEM_IO_RETURN_CANNOT_WIRE UINT32_C(0xE00002DE)
#define UNIMEM_IO_RETURN_NOT_PERMITTED UINT32_C(0xE00002E2)
#define UNIMEM_IO_RETURN_NO_COMPLETION UINT32_C(0xE00002EA)
#define UNIMEM_IO_RETURN_ABORTED UINT32_C(0xE00002EB)
#define UNIMEM_IO_RETURN_NOT_FOUND UINT32_C(0xE00002F0)

/* ---- Refusal rules -------------------------------------------------------- */

/* An error reply's `detail`: below 4096 an errno; at or above
 * UNIMEM_RULE_BASE, UNIMEM_RULE_BASE plus the number of the resolver's rule
 * that refused (crates/core/src/wire/refusal.rs says what each means). */
#define UNIMEM_RULE_BASE UINT32_C(0x10000)
#define UNIMEM_RULE_POLICY 1u
#define UNIMEM_RULE_CONNECTIONS 2u
#define UNIMEM_RULE_PREPARE_BYTES 3u
#define UNIMEM_RULE_CONNECTION_BYTES 4u
#define UNIMEM_RULE_TOTAL_BYTES 5u
#define UNIMEM_RULE_HANDLES 6u
#define UNIMEM_RULE_FD_KIND 7u
#define UNIMEM_RULE_MISSING_FD 8u
#define UNIMEM_RULE_EXTRA_FDS 9u
#define UNIMEM_RULE_RANGE 10u
#define UNIMEM_RULE_ALIGNMENT 11u
#define UNIMEM_RULE_UNKNOWN_HANDLE 12u
#define UNIMEM_RULE_CONTINUATION 13u
#define UNIMEM_RULE_OVERSIZED 14u
#define UNIMEM_RULE_MALFORMED 15u
#define UNIMEM_RULE_HANDSHAKE_FIRST 16u
#define UNIMEM_RULE_CHECKSUM_RANGE 17u
#define UNIMEM_RULE_FD_ACCESS 18u
#define UNIMEM_RULE_CLIENT_VA 19u
#define UNIMEM_RULE_NOT_PRESENT 20u
#define UNIMEM_RULE_IDLE_TIMEOUT 21u
#define UNIMEM_RULE_NOT_SHRINK_SEALED 22u
#define UNIMEM_RULE_NOT_BACKED 23u
#define UNIMEM_RULE_SURFACE_CHANGED 24u
#define UNIMEM_RULE_WRITE_SEALED 25u
#define UNIMEM_RULE_USER_CONNECTIONS 26u
#define UNIMEM_RULE_USER_BYTES 27u
#define UNIMEM_RULE_HANDSHAKE_TIMEOUT 28u
#define UNIMEM_RULE_TOO_MANY_REFUSALS 29u

/* ---- Messages ------------------------------------------------------------ */

/* Starts every message. 16 bytes. */
typedef struct unimem_header {
    uint32_t magic;
    uint16_t version;
    uint16_t selector;
    /* IOReturn; 0 in requests and in successful replies. */
    uint32_t status;
    /* The OS's own error code behind status (errno on Linux), or 0. */
    uint32_t detail;
} unimem_header;

/* Selector 0, request. The client offers a range of versions. */
typedef struct unimem_handshake_request {
    unimem_header header;
    uint16_t min_version;
    uint16_t max_version;
    uint32_t reserved0;
    uint64_t reserved1;
} unimem_handshake_request;

/* Selector 0, reply. */
typedef struct unimem_handshake_reply {
    unimem_header header;
    /* The version the server chose within the client's range. */
    uint16_t version;
    uint16_t reserved0;
    /* UNIMEM_ADDRESS_KIND_* of the addresses this resolver returns. */
    uint32_t address_kind;
    /* The resolver's page size: segment lengths are multiples of it. */
    uint64_t page_size;
    uint32_t max_segments_per_reply;
    uint32_t reserved1;
    /* Largest length one prepare accepts. */
    uint64_t max_prepare_bytes;
    /* The server's version, UTF-8, NUL-padded. */
    uint8_t server_version[UNIMEM_SERVER_VERSION_LEN];
} unimem_handshake_reply;

/* Selector 1, request: resolve and pin [offset, offset + length) of the
 * surface. On macOS the surface is the client's locked IOSurface at
 * client_va (in the process that called IOServiceOpen); surface_id is for
 * logs. On Linux client_va is 0 and the surface is the fd passed along. */
typedef struct unimem_prepare_request {
    unimem_header header;
    uint64_t offset;
    uint64_t length;
    uint64_t client_va;
    uint32_t surface_id;
    /* No options are defined: must be 0. */
    uint32_t options;
} unimem_prepare_request;

/* Selector 2, request: segments from continuation (a byte offset into the
 * prepared range) on. */
typedef struct unimem_segments_request {
    unimem_header header;
    uint64_t handle;
    uint64_t continuation;
} unimem_segments_request;

/* Selector 3, request: release a prepared handle. */
typedef struct unimem_complete_request {
    unimem_header header;
    uint64_t handle;
    uint64_t reserved;
} unimem_complete_request;

/* Selector 4, request: checksum [offset, offset + length) of the prepared
 * range (offsets relative to the prepared range; multiples of 8). */
typedef struct unimem_checksum_request {
    unimem_header header;
    uint64_t handle;
    uint64_t offset;
    uint64_t length;
    uint64_t reserved;
} unimem_checksum_request;

/* One run of contiguous device-visible addresses. */
typedef struct unimem_wire_segment {
    uint64_t address;
    uint64_t length;
} unimem_wire_segment;

/* Reply to selectors 1 and 2: exactly 4096 bytes. */
typedef struct unimem_segments_reply {
    unimem_header header;
    uint64_t handle;
    /* Length of the whole prepared range. */
    uint64_t total_length;
    /* Offset into the prepared range where segments[0] starts. */
    uint64_t start;
    /* Continuation for the next SEGMENTS call; equals total_length when
     * this reply carries the last segment. */
    uint64_t next;
    uint64_t page_size;
    uint32_t address_kind;
    /* Valid entries in segments; they cover [start, next) in order. */
    uint32_t count;
    unimem_wire_segment segments[UNIMEM_SEGMENTS_PER_REPLY];
} unimem_segments_reply;

/* Reply to selector 3. */
typedef struct unimem_complete_reply {
    unimem_header header;
    uint64_t handle;
    /* Bytes that were unpinned. */
    uint64_t released_bytes;
} unimem_complete_reply;

/* Reply to selector 4. */
typedef struct unimem_checksum_reply {
    unimem_header header;
    uint64_t handle;
    uint64_t offset;
    uint64_t length;
    uint64_t checksum;
    /* UNIMEM_CHECKSUM_FNV1A64_WORDS. */
    uint32_t algorithm;
    uint32_t reserved;
} unimem_checksum_reply;

#ifdef __cplusplus
} /* extern "C" */
#endif

/* ---- Layout pins (the same numbers wire.rs asserts) --------------------- */

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
UNIMEM_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
                     "the unimem wire format is little-endian; this header assumes a "
                     "little-endian target");
#endif

UNIMEM_STATIC_ASSERT(sizeof(unimem_header) == 16, "unimem_header size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_header, magic) == 0, "unimem_header.magic");
UNIMEM_STATIC_ASSERT(offsetof(unimem_header, version) == 4, "unimem_header.version");
UNIMEM_STATIC_ASSERT(offsetof(unimem_header, selector) == 6, "unimem_header.selector");
UNIMEM_STATIC_ASSERT(offsetof(unimem_header, status) == 8, "unimem_header.status");
UNIMEM_STATIC_ASSERT(offsetof(unimem_header, detail) == 12, "unimem_header.detail");

UNIMEM_STATIC_ASSERT(sizeof(unimem_handshake_request) == 32, "handshake_request size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_request, min_version) == 16, "min_version");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_request, max_version) == 18, "max_version");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_request, reserved0) == 20, "reserved0");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_request, reserved1) == 24, "reserved1");

UNIMEM_STATIC_ASSERT(sizeof(unimem_handshake_reply) == 80, "handshake_reply size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, version) == 16, "version");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, reserved0) == 18, "reserved0");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, address_kind) == 20, "address_kind");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, page_size) == 24, "page_size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, max_segments_per_reply) == 32,
                     "max_segments_per_reply");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, reserved1) == 36, "reserved1");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, max_prepare_bytes) == 40,
                     "max_prepare_bytes");
UNIMEM_STATIC_ASSERT(offsetof(unimem_handshake_reply, server_version) == 48, "server_version");

UNIMEM_STATIC_ASSERT(sizeof(unimem_prepare_request) == 48, "prepare_request size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_prepare_request, offset) == 16, "offset");
UNIMEM_STATIC_ASSERT(offsetof(unimem_prepare_request, length) == 24, "length");
UNIMEM_STATIC_ASSERT(offsetof(unimem_prepare_request, client_va) == 32, "client_va");
UNIMEM_STATIC_ASSERT(offsetof(unimem_prepare_request, surface_id) == 40, "surface_id");
UNIMEM_STATIC_ASSERT(offsetof(unimem_prepare_request, options) == 44, "options");

UNIMEM_STATIC_ASSERT(sizeof(unimem_segments_request) == 32, "segments_request size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_request, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_request, continuation) == 24, "continuation");

UNIMEM_STATIC_ASSERT(sizeof(unimem_complete_request) == 32, "complete_request size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_complete_request, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_complete_request, reserved) == 24, "reserved");

UNIMEM_STATIC_ASSERT(sizeof(unimem_checksum_request) == 48, "checksum_request size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_request, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_request, offset) == 24, "offset");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_request, length) == 32, "length");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_request, reserved) == 40, "reserved");

UNIMEM_STATIC_ASSERT(sizeof(unimem_wire_segment) == 16, "wire_segment size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_wire_segment, address) == 0, "address");
UNIMEM_STATIC_ASSERT(offsetof(unimem_wire_segment, length) == 8, "length");

UNIMEM_STATIC_ASSERT(sizeof(unimem_segments_reply) == UNIMEM_MAX_MESSAGE,
                     "segments_reply must fill the inband limit exactly");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, total_length) == 24, "total_length");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, start) == 32, "start");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, next) == 40, "next");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, page_size) == 48, "page_size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, address_kind) == 56, "address_kind");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, count) == 60, "count");
UNIMEM_STATIC_ASSERT(offsetof(unimem_segments_reply, segments) == 64, "segments");

UNIMEM_STATIC_ASSERT(sizeof(unimem_complete_reply) == 32, "complete_reply size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_complete_reply, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_complete_reply, released_bytes) == 24, "released_bytes");

UNIMEM_STATIC_ASSERT(sizeof(unimem_checksum_reply) == 56, "checksum_reply size");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, handle) == 16, "handle");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, offset) == 24, "offset");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, length) == 32, "length");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, checksum) == 40, "checksum");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, algorithm) == 48, "algorithm");
UNIMEM_STATIC_ASSERT(offsetof(unimem_checksum_reply, reserved) == 52, "reserved");
