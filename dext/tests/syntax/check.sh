#!/usr/bin/env bash
# Compile-only check of the DEXT's sources (dext/*.cpp and dext/portable/
# *.cpp) on any OS.
#
# They are compiled with -fsyntax-only against a minimal transcription of
# the DriverKit declarations they use (driverkit/: signatures, enums and
# constants, no bodies, each with its xnu tag and file) and hand-written
# stand-ins for what iig generates from our two .iig files (generated/),
# which check_iig.py first compares with the .iig files. This catches wrong
# argument types, counts and names in DriverKit calls, IMPL/SUPERDISPATCH
# mistakes and missing includes; DEVELOPMENT.md says what it cannot catch.
#
# Two passes: with CXX (default c++, the host tests' compiler), and with
# clang++, the DEXT's real compiler, adding the warnings Xcode's default
# settings turn on (they are errors on our files there). clang is installed
# with apt-get when missing and possible; otherwise one line says that
# pass did not run. Needs python3. Exits non-zero on the first failure.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dext="$(cd "$here/../.." && pwd)"
cxx="${CXX:-c++}"

for tool in "$cxx" python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "dext/tests/syntax/check.sh: '$tool' not found (Debian: apt-get install g++ python3)" >&2
        exit 1
    fi
done

python3 "$here/check_iig.py"

sources=("$dext"/*.cpp "$dext"/portable/*.cpp)
# As the Xcode target compiles our files (-Wall -Wextra, warnings are
# errors), C++17 without exceptions, RTTI or a C++ standard library (a DEXT
# cannot count on one).
common=(
    -std=c++17 -fsyntax-only -fno-exceptions -fno-rtti -nostdinc++
    -Wall -Wextra -Werror -Wconversion -Wno-sign-conversion
    -I"$here/generated" -I"$here/driverkit"
    -I"$dext" -I"$dext/include" -I"$dext/portable"
)

compile_all() {
    local compiler="$1"
    shift
    local src
    for src in "${sources[@]}"; do
        "$compiler" "${common[@]}" "$@" "$src"
    done
    echo "DEXT syntax check ($compiler): ${#sources[@]} source(s) compile against the DriverKit declarations"
}

compile_all "$cxx"

if ! command -v clang++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $EUID -eq 0 ]]; then
    echo "dext/tests/syntax/check.sh: installing clang for the second pass" >&2
    apt-get install -y -qq clang >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq clang >/dev/null 2>&1; } \
        || true
fi
if command -v clang++ >/dev/null 2>&1; then
    # XcodeGen's base settings: GCC_WARN_64_TO_32_BIT_CONVERSION,
    # CLANG_WARN_UNREACHABLE_CODE, CLANG_WARN_DOCUMENTATION_COMMENTS,
    # GCC_WARN_UNINITIALIZED_AUTOS=YES_AGGRESSIVE, CLANG_WARN_COMMA.
    compile_all clang++ -Wshorten-64-to-32 -Wunreachable-code -Wdocumentation \
        -Wconditional-uninitialized -Wcomma
else
    echo "dext/tests/syntax/check.sh: clang++ unavailable (apt-get install clang failed or not root): the clang pass with Xcode's extra warnings did not run" >&2
fi
