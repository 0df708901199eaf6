#!/usr/bin/env bash
# A short, bounded coverage-guided run of every fuzz target, for the test
# command: installs cargo-fuzz (nightly) if missing, builds the targets with
# AddressSanitizer and runs each for UNIMEM_FUZZ_SECS seconds (default 30),
# starting from the committed seeds. Any crash, assertion failure, leak or
# timeout fails this script; libFuzzer leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
# The fuzz build has its own target directory, fuzz/target.
unset CARGO_TARGET_DIR
secs="${UNIMEM_FUZZ_SECS:-30}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (about a minute)" >&2
    cargo +nightly install cargo-fuzz --locked
fi

cargo +nightly fuzz build -O
for target in wire session; do
    mkdir -p "corpus/$target"
    echo "fuzz: $target for ${secs} s" >&2
    log="target/smoke-$target.log"
    mkdir -p target
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb bounds memory.
    if ! cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/ (log: fuzz/$log)" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$log" >&2 || true
done
