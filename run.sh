#!/usr/bin/env bash
# The whole workflow, as in the seed: build, then run the probe and print
# the physical address map of a freshly written surface.
#
#   ./run.sh                 build, then probe (64 KiB memfd surface)
#   ./run.sh --skip-build    probe with the binary already built
#   ./run.sh -- ARGS...      pass ARGS to `unimem probe` (e.g. -- --size 16M)
set -euo pipefail
cd "$(dirname "$0")"

skip_build=0
probe_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --skip-build) skip_build=1 ;;
        --) shift; probe_args=("$@"); break ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see ./run.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$(uname -s)" = Darwin ]; then
    exec scripts/run_macos.sh "$@"
fi

if [ "$skip_build" = 0 ]; then
    echo "[*] Building unimem (release)..." >&2
    cargo build --release --quiet --bin unimem
fi
bin=target/release/unimem
[ -x "$bin" ] || { echo "run.sh: $bin is missing; run without --skip-build" >&2; exit 2; }

if [ "$(id -u)" != 0 ]; then
    echo "[!] Not root: reading physical addresses directly needs CAP_SYS_ADMIN; run: sudo ./run.sh" >&2
fi
exec "$bin" probe "${probe_args[@]}"
