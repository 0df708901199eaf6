#!/usr/bin/env bash
# Compile-only check of the DEXT's own sources (dext/*.cpp) on any OS.
#
# They are compiled with -fsyntax-only against a minimal transcription of
# the DriverKit declarations they use (driverkit/: signatures, enums and
# constants, no bodies, each with its xnu tag and file) and hand-written
# stand-ins for what iig generates from our two .iig files (generated/),
# which check_iig.py first compares with the .iig files. This catches wrong
# argument types, counts and names in DriverKit calls, IMPL/SUPERDISPATCH
# mistakes and missing includes; DEVELOPMENT.md says what it cannot catch.
#
# Needs a C++17 compiler (CXX, default c++) and python3. Exits non-zero on
# the first file that does not compile.
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

# Our files as the Xcode target compiles them (-Wall -Wextra, warnings are
# errors), plus -Wconversion in place of clang's -Wshorten-64-to-32. No C++
# standard library (-nostdinc++): a DEXT cannot count on one.
flags=(
    -std=c++17 -fsyntax-only -fno-exceptions -fno-rtti -nostdinc++
    -Wall -Wextra -Werror -Wconversion -Wno-sign-conversion
    -I"$here/generated" -I"$here/driverkit"
    -I"$dext" -I"$dext/include" -I"$dext/portable"
)
count=0
for src in "$dext"/*.cpp; do
    "$cxx" "${flags[@]}" "$src"
    count=$((count + 1))
done
[[ $count -gt 0 ]] || { echo "dext/tests/syntax/check.sh: no dext/*.cpp found" >&2; exit 1; }
echo "DEXT syntax check: $count source(s) compile against the DriverKit declarations"
