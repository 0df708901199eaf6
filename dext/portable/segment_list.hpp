// segment_list.hpp -- the device addresses of one prepared range, in order.
//
// PrepareForDMA hands out at most 32 segments per call, so a range is
// resolved by several calls; their segments are appended here one after
// the other. Each run records the byte offset in the prepared range where
// it starts, so a continuation offset finds its run by binary search, and a
// run that continues the previous one on the device side is merged into it.
//
// The type is trivially constructible: zeroed memory is an empty list, and
// reset() (not a destructor) frees its storage. The session keeps lists in
// plain arrays, without constructors (see alloc.hpp for why).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace unimem {
namespace dext {

using Status = uint32_t;  // an IOReturn value; 0 is success

// Layout of DriverKit's IOAddressSegment (16 bytes), so the DEXT can pass
// its PrepareForDMA output array here directly.
struct AddressSegment {
    uint64_t address;
    uint64_t length;
};
static_assert(sizeof(AddressSegment) == 16, "AddressSegment mirrors IOAddressSegment");

struct Run {
    uint64_t offset;   // where the run starts in the prepared range
    uint64_t address;  // device-visible address of that byte
    uint64_t length;
};

class SegmentList {
  public:
    // Appends [address, address + length) as the next bytes of the range.
    // Rejects a zero length and anything that overflows 64 bits
    // (kIOReturnBadArgument); kIOReturnNoMemory when storage runs out.
    Status append(uint64_t address, uint64_t length);

    // Bytes covered so far.
    uint64_t total() const { return total_; }
    size_t count() const { return count_; }
    const Run &at(size_t index) const { return runs_[index]; }

    // Index of the run that contains byte `offset`; offset < total().
    size_t find(uint64_t offset) const;

    // Frees the storage; the list is empty afterwards.
    void reset();

  private:
    Run *runs_;
    size_t count_;
    size_t capacity_;
    uint64_t total_;
};

}  // namespace dext
}  // namespace unimem
