// pin_budget.hpp -- the bytes every connection of the driver may keep
// prepared (wired) at once, shared by all of them.
//
// Each user client runs on its own dispatch queue, so two connections can
// prepare at the same moment: the count is changed only with atomic
// compare-and-swap, never read-then-written. The budget needs no lock and
// no constructor call at run time: a `static PinBudget` with a constant
// limit is initialized by the compiler, which is all the DEXT's small C++
// runtime has to offer.
#pragma once

#include <stdint.h>

namespace unimem {
namespace dext {

class PinBudget {
  public:
    constexpr explicit PinBudget(uint64_t limit) : limit_(limit), in_use_(0) {}

    PinBudget(const PinBudget &) = delete;
    PinBudget &operator=(const PinBudget &) = delete;

    // Takes `bytes` from the budget, all or nothing. False when the bytes
    // in use would pass the limit; the budget is then unchanged.
    bool take(uint64_t bytes);

    // Returns bytes an earlier take() gave out.
    void give_back(uint64_t bytes);

    // Bytes taken and not yet given back (a snapshot).
    uint64_t in_use() const;

    uint64_t limit() const { return limit_; }

  private:
    const uint64_t limit_;
    uint64_t in_use_;  // read and written only through __atomic builtins
};

}  // namespace dext
}  // namespace unimem
