// CybMemAlloc.cpp -- the portable logic's allocator (portable/alloc.hpp)
// inside the DEXT: DriverKit's IOMallocZero and IOFree.
#include <DriverKit/IOLib.h>

#include "portable/alloc.hpp"

namespace unimem {
namespace dext {

void *allocate_zeroed(size_t bytes)
{
    return IOMallocZero(bytes);
}

void release(void *memory, size_t bytes)
{
    if (memory != nullptr) {
        IOFree(memory, bytes);
    }
}

}  // namespace dext
}  // namespace unimem
