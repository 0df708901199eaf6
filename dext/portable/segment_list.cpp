// segment_list.cpp -- appending, merging and finding runs.
#include "segment_list.hpp"

#include <string.h>

#include "alloc.hpp"
#include "unimem_wire.h"

namespace unimem {
namespace dext {

Status SegmentList::append(uint64_t address, uint64_t length) {
    if (length == 0 || address + length < address || total_ + length < total_) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    if (count_ > 0) {
        Run &last = runs_[count_ - 1];
        if (last.address + last.length == address) {
            last.length += length;
            total_ += length;
            return UNIMEM_IO_RETURN_SUCCESS;
        }
    }
    if (count_ == capacity_) {
        size_t grown = capacity_ == 0 ? 64 : capacity_ * 2;
        if (grown > SIZE_MAX / sizeof(Run)) {
            return UNIMEM_IO_RETURN_NO_MEMORY;
        }
        Run *bigger = static_cast<Run *>(allocate_zeroed(grown * sizeof(Run)));
        if (bigger == nullptr) {
            return UNIMEM_IO_RETURN_NO_MEMORY;
        }
        if (count_ > 0) {
            memcpy(bigger, runs_, count_ * sizeof(Run));
        }
        release(runs_, capacity_ * sizeof(Run));
        runs_ = bigger;
        capacity_ = grown;
    }
    runs_[count_] = Run{total_, address, length};
    count_++;
    total_ += length;
    return UNIMEM_IO_RETURN_SUCCESS;
}

size_t SegmentList::find(uint64_t offset) const {
    // The last run whose start is <= offset.
    size_t lo = 0;
    size_t hi = count_;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (runs_[mid].offset <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void SegmentList::reset() {
    release(runs_, capacity_ * sizeof(Run));
    runs_ = nullptr;
    count_ = 0;
    capacity_ = 0;
    total_ = 0;
}

}  // namespace dext
}  // namespace unimem
