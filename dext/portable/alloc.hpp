// alloc.hpp -- the two allocation calls the portable DEXT logic makes.
//
// The portable code runs inside a DriverKit extension, where the C++
// runtime is small (no exceptions, no RTTI, no guarantee of a standard
// library), and in host tests on Linux. It therefore never uses new,
// delete or containers; it asks for zeroed memory through these two
// functions, which the DEXT implements with IOMallocZero/IOFree and the
// host tests with calloc/free (plus failure injection).
#pragma once

#include <stddef.h>

namespace unimem {
namespace dext {

// Returns `bytes` of zeroed memory, or nullptr when none is available.
void *allocate_zeroed(size_t bytes);

// Releases memory from allocate_zeroed; `bytes` is the size it was given.
// Accepts nullptr.
void release(void *memory, size_t bytes);

}  // namespace dext
}  // namespace unimem
