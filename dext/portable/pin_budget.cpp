// pin_budget.cpp -- lock-free accounting of the driver-wide pin limit.
//
// The __atomic builtins (GCC and Clang, no header) are used rather than
// <atomic> because the DEXT's C++ standard library is not guaranteed.
#include "pin_budget.hpp"

namespace unimem {
namespace dext {

bool PinBudget::take(uint64_t bytes) {
    uint64_t seen = __atomic_load_n(&in_use_, __ATOMIC_RELAXED);
    for (;;) {
        if (bytes > limit_ || seen > limit_ - bytes) {
            return false;
        }
        // On failure `seen` is reloaded with the current count; retry.
        if (__atomic_compare_exchange_n(&in_use_, &seen, seen + bytes, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            return true;
        }
    }
}

void PinBudget::give_back(uint64_t bytes) {
    uint64_t seen = __atomic_load_n(&in_use_, __ATOMIC_RELAXED);
    for (;;) {
        // Never below zero, even if a caller returned more than it took.
        uint64_t next = bytes > seen ? 0 : seen - bytes;
        if (__atomic_compare_exchange_n(&in_use_, &seen, next, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            return;
        }
    }
}

uint64_t PinBudget::in_use() const {
    return __atomic_load_n(&in_use_, __ATOMIC_ACQUIRE);
}

}  // namespace dext
}  // namespace unimem
