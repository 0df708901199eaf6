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

step "API docs: every public item of unimem-core and unimem documented, no broken links"
RUSTDOCFLAGS="-D warnings -D missing_docs" cargo doc --no-deps --quiet -p unimem-core -p unimem

step "library examples, run as a user of the crate would"
for example in share_with_child keep_prepared; do
    cargo run --quiet -p unimem --example "$example"
done
cargo run --quiet -p unimem --example keep_prepared -- --service

step "macOS backend compile check (cfg unimem_apple_check, no Apple frameworks linked)"
RUSTFLAGS="--cfg unimem_apple_check" cargo check -p unimem --all-targets --target-dir target/apple-check
RUSTFLAGS="--cfg unimem_apple_check" cargo clippy -p unimem --all-targets --target-dir target/apple-check --quiet -- -D warnings
# The macOS modules' unit tests (the DEXT client, its errors) use no
# framework call (the linker drops the unused FFI), so they run here too.
RUSTFLAGS="--cfg unimem_apple_check" cargo test -p unimem --lib --target-dir target/apple-check --quiet
RUSTFLAGS="--cfg unimem_apple_check" cargo check -p unimem-cli --all-targets --target-dir target/apple-check
RUSTFLAGS="--cfg unimem_apple_check" cargo clippy -p unimem-cli --all-targets --target-dir target/apple-check --quiet -- -D warnings

step "macOS backend, real target: clippy for aarch64-apple-darwin (check only; nothing links Apple frameworks)"
# The real macOS cfg, not the stand-in: needs the target's standard library,
# which rustup installs here when it can.
has_apple_target() { rustup target list --installed 2>/dev/null | grep -x aarch64-apple-darwin >/dev/null; }
has_apple_target || rustup target add aarch64-apple-darwin >/dev/null 2>&1 || true
if has_apple_target; then
    cargo clippy -p unimem -p unimem-cli -p unimem-service-tests --all-targets --target aarch64-apple-darwin --target-dir target/apple-darwin --quiet -- -D warnings
else
    echo "test.sh: skipped the aarch64-apple-darwin clippy: \`rustup target add aarch64-apple-darwin\` failed here; the macOS code is checked only through --cfg unimem_apple_check above" >&2
fi

step "DEXT: Info.plist/entitlements/project shape, syntax check of dext/*.cpp against DriverKit declarations, portable logic host tests"
dext/tests/run.sh

step "fuzz smoke: wire format and service request handling (cargo-fuzz, nightly)"
fuzz/smoke.sh
