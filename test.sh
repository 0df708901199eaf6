#!/usr/bin/env bash
# The project's test command: everything CI checks, in the order a failure
# is cheapest to find. Run as root for the tests that read PFNs.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*" >&2; }

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "tests"
cargo test --workspace

step "library examples, run as a user of the crate would"
for example in share_with_child keep_prepared; do
    cargo run --quiet -p unimem --example "$example"
done
cargo run --quiet -p unimem --example keep_prepared -- --service

step "macOS backend compile check (cfg unimem_apple_check, no Apple frameworks linked)"
RUSTFLAGS="--cfg unimem_apple_check" cargo check -p unimem --all-targets --target-dir target/apple-check
RUSTFLAGS="--cfg unimem_apple_check" cargo clippy -p unimem --all-targets --target-dir target/apple-check --quiet -- -D warnings
# The apple module's unit tests use no framework call (the linker drops
# the unused FFI), so they run here too.
RUSTFLAGS="--cfg unimem_apple_check" cargo test -p unimem --lib --target-dir target/apple-check --quiet apple::
RUSTFLAGS="--cfg unimem_apple_check" cargo check -p unimem-cli --all-targets --target-dir target/apple-check
RUSTFLAGS="--cfg unimem_apple_check" cargo clippy -p unimem-cli --all-targets --target-dir target/apple-check --quiet -- -D warnings
# With the macOS standard library installed (rustup target add
# aarch64-apple-darwin), also check the real macOS build of the CLI.
if rustup target list --installed 2>/dev/null | grep -x aarch64-apple-darwin >/dev/null; then
    cargo clippy -p unimem -p unimem-cli --all-targets --target aarch64-apple-darwin --target-dir target/apple-check --quiet -- -D warnings
fi

step "DEXT portable logic: host tests"
dext/tests/run.sh

step "fuzz smoke: wire format and service request handling (cargo-fuzz, nightly)"
fuzz/smoke.sh
