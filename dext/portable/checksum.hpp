// checksum.hpp -- the checksum both ends of the wire compute over a range:
// FNV-1a over 64-bit little-endian words (crates/core/src/checksum.rs).
// The DEXT runs it over its own mapping of the client's buffer, so the
// client can prove the resolver saw the bytes the client wrote.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "unimem_wire.h"

namespace unimem {
namespace dext {

constexpr uint64_t kChecksumInit = UNIMEM_FNV_OFFSET_BASIS;

// Feeds the whole words of bytes[0, length) into `state` and returns the new
// state. A trailing partial word is ignored: callers check that lengths are
// multiples of 8 first, as the protocol requires.
uint64_t checksum_update(uint64_t state, const uint8_t *bytes, size_t length);

}  // namespace dext
}  // namespace unimem
