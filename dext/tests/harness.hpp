// harness.hpp -- a minimal test runner for the DEXT's portable logic:
// TEST(name) registers a function, CHECK/CHECK_EQ record failures with the
// source line and keep going, and main() prints "N passed, M failed".
#pragma once

#include <stdint.h>
#include <stdio.h>

namespace harness {

using TestFn = void (*)();

struct Registration {
    Registration(const char *name, TestFn fn);
};

// Failures recorded by the test that is running.
extern int current_failures;

void fail(const char *file, int line, const char *expr, const char *detail);

}  // namespace harness

#define TEST(name)                                                  \
    static void name();                                             \
    static harness::Registration registration_##name(#name, name); \
    static void name()

#define CHECK(cond)                                                \
    do {                                                           \
        if (!(cond)) harness::fail(__FILE__, __LINE__, #cond, ""); \
    } while (0)

#define CHECK_EQ(a, b)                                                                    \
    do {                                                                                  \
        unsigned long long check_a_ = static_cast<unsigned long long>(a);                 \
        unsigned long long check_b_ = static_cast<unsigned long long>(b);                 \
        if (check_a_ != check_b_) {                                                       \
            char check_msg_[96];                                                          \
            snprintf(check_msg_, sizeof(check_msg_), "0x%llx != 0x%llx", check_a_, check_b_); \
            harness::fail(__FILE__, __LINE__, #a " == " #b, check_msg_);                  \
        }                                                                                 \
    } while (0)
