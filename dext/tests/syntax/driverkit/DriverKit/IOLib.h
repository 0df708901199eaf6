// Stand-in for DriverKit's IOLib.h (SDK header, not in xnu), for the syntax
// check only. Signatures from Apple's DriverKit reference, "Memory
// Utilities" (developer.apple.com/documentation/driverkit/memory-utilities).
#pragma once

#include <DriverKit/OSObject.h>

// documentation/driverkit/iomalloczero
void *IOMallocZero(size_t length);
// documentation/driverkit/iofree
void IOFree(void *address, size_t length);
// documentation/driverkit/iovmpagesize
extern uint64_t IOVMPageSize;

// documentation/driverkit/ionewzero: IONewZero(type, count) gives a
// zeroed `type *`. Modelled as a declared-only template so that the type
// of the result is checked where it is assigned.
template <typename T>
T *unimem_syntax_io_new_zero(size_t count);
#define IONewZero(type, count) unimem_syntax_io_new_zero<type>(count)

// documentation/driverkit/iosafedeletenull: IOSafeDeleteNULL(ptr, type,
// count) frees and sets ptr to NULL, so ptr must be an lvalue `type *`.
template <typename T>
void unimem_syntax_io_safe_delete_null(T *&ptr, size_t count);
#define IOSafeDeleteNULL(ptr, type, count) unimem_syntax_io_safe_delete_null<type>(ptr, count)
