#!/usr/bin/env bash
# Everything about the DEXT that can be checked without a Mac, in order:
#   1. Info.plist and entitlements shape (check_bundle.py): administrators
#      only, classes matching the .iig files, stamped CFBundleVersion;
#   2. the DEXT's own sources compile against transcribed DriverKit
#      declarations (syntax/check.sh);
#   3. the shared wire header compiles as C11 and as C++17;
#   4. the host tests of the portable logic.
# Exits non-zero on any failure; the last line is the runner's
# "N passed, M failed".
#
# Needs a C and a C++ compiler and python3 (Debian: apt-get install g++
# python3).
# CXX and CC pick other compilers; BUILD_DIR moves the build output.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dext="$(dirname "$here")"
root="$(dirname "$dext")"
build="${BUILD_DIR:-$root/target/dext-tests}"
cxx="${CXX:-c++}"
cc="${CC:-cc}"

for tool in "$cxx" "$cc" python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "dext/tests/run.sh: compiler '$tool' not found (Debian: apt-get install g++ python3)" >&2
        exit 1
    fi
done

python3 "$here/check_bundle.py"
CXX="$cxx" "$here/syntax/check.sh"

mkdir -p "$build"
warn=(-Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion)

# The header alone, as C11 and as C++17, pedantic: the DEXT and any C client
# include it.
printf '#include "unimem_wire.h"\nint main(void) { return (int)sizeof(unimem_segments_reply) - 4096; }\n' \
    >"$build/header_c.c"
"$cc" -std=c11 -pedantic "${warn[@]}" -I"$dext/include" "$build/header_c.c" -o "$build/header_c"
"$build/header_c"
cp "$build/header_c.c" "$build/header_cxx.cpp"
"$cxx" -std=c++17 -pedantic "${warn[@]}" -I"$dext/include" "$build/header_cxx.cpp" -o "$build/header_cxx"
"$build/header_cxx"

# The portable logic under DriverKit's constraints: no exceptions, no RTTI.
sources=(
    "$dext"/portable/*.cpp
    "$here"/harness.cpp
    "$here"/host_alloc.cpp
    "$here"/test_*.cpp
)
"$cxx" -std=c++17 -O1 -g "${warn[@]}" -fno-exceptions -fno-rtti -pthread \
    -I"$dext/include" -I"$dext/portable" -I"$here" \
    "${sources[@]}" -o "$build/portable_tests"
"$build/portable_tests"
