// protocol.hpp -- checking requests and building replies, byte for byte as
// crates/core/src/wire.rs does.
//
// A request arrives as untrusted bytes. Each decoder checks, in order: the
// exact size for the selector, the magic, the selector, the version (any
// version for a handshake, which negotiates it), that status and detail are
// zero, that reserved fields are zero, and the values a check can make
// without the session's state (ranges, overflow, alignment). A failure
// returns the IOReturn the error reply carries: kIOReturnUnsupported for a
// version, kIOReturnBadArgument for everything else.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "segment_list.hpp"
#include "unimem_wire.h"

namespace unimem {
namespace dext {

// What a resolver accepts; the handshake reply reports the same numbers.
struct Limits {
    uint64_t page_size;          // a power of two >= 4096
    uint64_t max_prepare_bytes;  // largest length one prepare accepts
};

struct HandshakeArgs {
    uint16_t min_version;
    uint16_t max_version;
};

struct PrepareArgs {
    uint64_t offset;
    uint64_t length;
    uint64_t client_va;
    uint32_t surface_id;
    // client_va + offset: the first client byte of the range.
    uint64_t start_va;
};

struct SegmentsArgs {
    uint64_t handle;
    uint64_t continuation;
};

struct CompleteArgs {
    uint64_t handle;
};

struct ChecksumArgs {
    uint64_t handle;
    uint64_t offset;
    uint64_t length;
};

Status decode_handshake(const void *message, size_t length, HandshakeArgs *out);
// Checks the range: length > 0 and <= max_prepare_bytes, a non-zero
// client_va, no overflow in client_va + offset + length, and a start and
// length that are whole pages (segment lengths are then page multiples, as
// the handshake promises).
Status decode_prepare(const void *message, size_t length, const Limits &limits,
                      PrepareArgs *out);
Status decode_segments(const void *message, size_t length, SegmentsArgs *out);
Status decode_complete(const void *message, size_t length, CompleteArgs *out);
// Checks that offset and length are multiples of 8 and do not overflow; the
// bound against the prepared range is the session's to check.
Status decode_checksum(const void *message, size_t length, ChecksumArgs *out);

// The version to speak with a client that offers [min, max], or
// kIOReturnUnsupported when this build's version is outside it.
Status negotiate_version(const HandshakeArgs &args, uint16_t *chosen);

// Whether [offset, offset + length) lies inside [0, total) without overflow.
bool range_within(uint64_t offset, uint64_t length, uint64_t total);

// Reply builders. Each fills the whole struct, zeroing what it does not set.
void build_error(uint16_t selector, Status status, uint32_t detail, unimem_header *out);
void build_handshake_reply(uint16_t version, uint32_t address_kind, const Limits &limits,
                           const char *server_version, unimem_handshake_reply *out);
void build_complete_reply(uint64_t handle, uint64_t released_bytes, unimem_complete_reply *out);
void build_checksum_reply(const ChecksumArgs &args, uint64_t checksum,
                          unimem_checksum_reply *out);

// Packs the segments of `list` from byte `continuation` on into one reply:
// up to UNIMEM_SEGMENTS_PER_REPLY segments, the first one cut at the
// continuation when it falls inside a run. `next` is where the following
// SEGMENTS call continues; it equals the total on the last reply.
// kIOReturnBadArgument when continuation is past the end.
Status pack_segments(const SegmentList &list, uint16_t selector, uint64_t handle,
                     uint64_t continuation, uint64_t page_size, uint32_t address_kind,
                     unimem_segments_reply *out);

}  // namespace dext
}  // namespace unimem
