// harness.cpp -- registry and main() of the host test runner.
#include "harness.hpp"

namespace harness {
namespace {

struct Entry {
    const char *name;
    TestFn fn;
};

Entry tests[256];
int test_count = 0;

}  // namespace

int current_failures = 0;

Registration::Registration(const char *name, TestFn fn) {
    if (test_count == 256) {
        fprintf(stderr, "too many tests: raise the registry size\n");
        return;
    }
    tests[test_count++] = Entry{name, fn};
}

void fail(const char *file, int line, const char *expr, const char *detail) {
    current_failures++;
    fprintf(stderr, "    %s:%d: CHECK(%s) failed %s\n", file, line, expr, detail);
}

}  // namespace harness

int main() {
    int passed = 0;
    int failed = 0;
    for (int i = 0; i < harness::test_count; i++) {
        harness::current_failures = 0;
        harness::tests[i].fn();
        if (harness::current_failures == 0) {
            passed++;
            printf("ok   %s\n", harness::tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", harness::tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
