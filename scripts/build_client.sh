#!/usr/bin/env bash
# Builds the unimem client (the CLI, which contains the macOS backend) and
# signs it ad hoc (or with CODESIGN_IDENTITY). The client needs no
# entitlement: the DEXT lets any process open it
# (com.apple.developer.driverkit.allow-any-userclient-access) and then
# admits only administrators, so run the client as root. macOS only.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
identity="${CODESIGN_IDENTITY:--}"

[[ "$(uname -s)" == Darwin ]] || { echo "build_client.sh: needs macOS" >&2; exit 1; }

cd "$root"
cargo build --release -p unimem-cli
bin="${CARGO_TARGET_DIR:-$root/target}/release/unimem"
[[ -x "$bin" ]] || { echo "build_client.sh: $bin was not built" >&2; exit 1; }
codesign --force --sign "$identity" "$bin"
codesign --verify --verbose=2 "$bin"
echo "built $bin"
