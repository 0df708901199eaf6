// checksum.cpp -- FNV-1a over little-endian 64-bit words.
#include "checksum.hpp"

namespace unimem {
namespace dext {

uint64_t checksum_update(uint64_t state, const uint8_t *bytes, size_t length) {
    uint64_t h = state;
    for (size_t i = 0; i + 8 <= length; i += 8) {
        // Assemble the word byte by byte: the buffer need not be aligned and
        // the value must not depend on the host's byte order.
        uint64_t word = 0;
        for (unsigned b = 0; b < 8; b++) {
            word |= static_cast<uint64_t>(bytes[i + b]) << (8 * b);
        }
        h = (h ^ word) * UNIMEM_FNV_PRIME;
    }
    return h;
}

}  // namespace dext
}  // namespace unimem
