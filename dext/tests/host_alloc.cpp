// host_alloc.cpp -- allocate_zeroed/release for the host tests: calloc and
// free, with a count of live bytes (to find leaks) and an injectable
// failure (to drive the out-of-memory paths).
#include "host_alloc.hpp"

#include <stdlib.h>

#include "alloc.hpp"

namespace host_alloc {

long long live_bytes = 0;
long long live_blocks = 0;
long fail_after = -1;

}  // namespace host_alloc

namespace unimem {
namespace dext {

void *allocate_zeroed(size_t bytes) {
    if (host_alloc::fail_after == 0) {
        return nullptr;
    }
    if (host_alloc::fail_after > 0) {
        host_alloc::fail_after--;
    }
    void *p = calloc(1, bytes);
    if (p != nullptr) {
        host_alloc::live_bytes += static_cast<long long>(bytes);
        host_alloc::live_blocks++;
    }
    return p;
}

void release(void *memory, size_t bytes) {
    if (memory == nullptr) {
        return;
    }
    host_alloc::live_bytes -= static_cast<long long>(bytes);
    host_alloc::live_blocks--;
    free(memory);
}

}  // namespace dext
}  // namespace unimem
