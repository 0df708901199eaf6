// Tests of PinBudget alone: exact limits, overflow, and many threads taking
// and giving back at once (as user clients on their own queues do).
#include <pthread.h>
#include <stdint.h>

#include "harness.hpp"
#include "pin_budget.hpp"

using unimem::dext::PinBudget;

TEST(pin_budget_grants_up_to_the_limit_and_not_a_byte_more) {
    PinBudget b(100);
    CHECK_EQ(b.limit(), 100u);
    CHECK(b.take(60));
    CHECK(!b.take(41));
    CHECK_EQ(b.in_use(), 60u);
    CHECK(b.take(40));
    CHECK_EQ(b.in_use(), 100u);
    CHECK(!b.take(1));
    b.give_back(40);
    CHECK(b.take(1));
    b.give_back(61);
    CHECK_EQ(b.in_use(), 0u);
    CHECK(!b.take(101));
    CHECK(b.take(0));
    CHECK_EQ(b.in_use(), 0u);
}

TEST(pin_budget_refuses_sizes_that_would_overflow) {
    PinBudget b(UINT64_MAX - 10);
    CHECK(b.take(UINT64_MAX - 20));
    CHECK(!b.take(UINT64_MAX));
    CHECK(!b.take(11));
    CHECK(b.take(10));
    CHECK_EQ(b.in_use(), UINT64_MAX - 10);
    b.give_back(UINT64_MAX - 10);
    CHECK_EQ(b.in_use(), 0u);
    PinBudget zero(0);
    CHECK(!zero.take(1));
}

namespace {

constexpr uint64_t kUnit = 4096;
// Fewer units than threads, so that takers really compete for them.
constexpr uint64_t kUnitsAllowed = 2;
constexpr int kThreads = 4;
constexpr int kRounds = 1000000;

PinBudget shared_budget(kUnitsAllowed * kUnit);
// Units the threads hold right now, counted independently of the budget.
long held_units = 0;
long most_units_held = 0;
long grants = 0;

void *hammer(void *) {
    for (int i = 0; i < kRounds; i++) {
        if (!shared_budget.take(kUnit)) continue;
        long now = __atomic_add_fetch(&held_units, 1, __ATOMIC_SEQ_CST);
        long seen = __atomic_load_n(&most_units_held, __ATOMIC_SEQ_CST);
        while (now > seen &&
               !__atomic_compare_exchange_n(&most_units_held, &seen, now, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        }
        __atomic_add_fetch(&grants, 1, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&held_units, 1, __ATOMIC_SEQ_CST);
        shared_budget.give_back(kUnit);
    }
    return nullptr;
}

}  // namespace

TEST(pin_budget_holds_its_limit_under_concurrent_takers) {
    pthread_t threads[kThreads];
    for (int i = 0; i < kThreads; i++) {
        CHECK_EQ(pthread_create(&threads[i], nullptr, hammer, nullptr), 0);
    }
    for (int i = 0; i < kThreads; i++) {
        CHECK_EQ(pthread_join(threads[i], nullptr), 0);
    }
    // Never more held at once than the limit allows, every take matched by
    // a give-back, and the threads did fill it. (A take that reads and then
    // writes without compare-and-swap lets a third unit through in about
    // every other run on two cores; this one never may.)
    CHECK_EQ(most_units_held, kUnitsAllowed);
    CHECK(grants > 0);
    CHECK_EQ(held_units, 0);
    CHECK_EQ(shared_budget.in_use(), 0u);
}
