// host_alloc.hpp -- leak accounting and failure injection for the host
// implementation of alloc.hpp.
#pragma once

namespace host_alloc {

// Bytes and blocks handed out and not yet released.
extern long long live_bytes;
extern long long live_blocks;
// When >= 0: allocations that still succeed before every further one fails.
// -1 (the default) never fails.
extern long fail_after;

}  // namespace host_alloc
