#!/usr/bin/env bash
# Builds the CybMemDriver DEXT and its host app with xcodebuild, signs both
# with their entitlements, and embeds the DEXT in the app at
# CybMemHost.app/Contents/Library/SystemExtensions/. macOS with full Xcode
# only. Exits non-zero on any failure.
#
#   scripts/build_dext.sh                 # ad hoc signature (SIP off, developer mode)
#   CODESIGN_IDENTITY="Apple Development: ..." scripts/build_dext.sh
#   CONFIGURATION=Debug scripts/build_dext.sh
#
# Output: target/dext/CybMemHost.app (path printed at the end).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dext="$root/dext"
out="$root/target/dext"
configuration="${CONFIGURATION:-Release}"
identity="${CODESIGN_IDENTITY:--}"
dext_id="org.unimem.CybMemDriver"

die() { echo "build_dext.sh: $*" >&2; exit 1; }

[[ "$(uname -s)" == Darwin ]] || die "needs macOS with Xcode (this is $(uname -s))"
command -v xcodebuild >/dev/null || die "xcodebuild not found: install Xcode (not only the Command Line Tools)"
xcrun --sdk driverkit --show-sdk-path >/dev/null 2>&1 \
    || die "no DriverKit SDK: install full Xcode and run: sudo xcode-select -s /Applications/Xcode.app"
command -v xcodegen >/dev/null || die "xcodegen not found: brew install xcodegen"

echo "==> generating dext/CybMem.xcodeproj"
(cd "$dext" && xcodegen generate --quiet)

echo "==> xcodebuild ($configuration)"
rm -rf "$out"
mkdir -p "$out"
xcodebuild -project "$dext/CybMem.xcodeproj" -configuration "$configuration" \
    -target CybMemDriver -target CybMemHost \
    SYMROOT="$out/build" OBJROOT="$out/obj" build

dext_bundle="$(find "$out/build" -maxdepth 2 -name "$dext_id.dext" -type d | head -n 1)"
app_built="$(find "$out/build" -maxdepth 2 -name CybMemHost.app -type d | head -n 1)"
[[ -n "$dext_bundle" ]] || die "xcodebuild produced no $dext_id.dext under $out/build"
[[ -n "$app_built" ]] || die "xcodebuild produced no CybMemHost.app under $out/build"
[[ -f "$dext_bundle/Info.plist" ]] || die "$dext_bundle is not a shallow DriverKit bundle (no Info.plist at its top)"

echo "==> signing the DEXT ($identity)"
codesign --force --sign "$identity" --options runtime \
    --entitlements "$dext/CybMemDriver.entitlements" "$dext_bundle"

echo "==> embedding it in the host app"
app="$out/CybMemHost.app"
cp -R "$app_built" "$app"
mkdir -p "$app/Contents/Library/SystemExtensions"
cp -R "$dext_bundle" "$app/Contents/Library/SystemExtensions/"
codesign --force --sign "$identity" --options runtime \
    --entitlements "$root/host-app/CybMemHost.entitlements" "$app"

codesign --verify --strict --verbose=2 "$app/Contents/Library/SystemExtensions/$dext_id.dext"
codesign --verify --strict --verbose=2 "$app"
echo "built $app"
