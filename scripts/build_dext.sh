#!/usr/bin/env bash
# Builds the CybMemDriver DEXT and its host app with xcodebuild, stamps a
# new CFBundleVersion into both, signs both ad hoc with their entitlements,
# and embeds the DEXT in the app at
# CybMemHost.app/Contents/Library/SystemExtensions/. macOS with full Xcode
# only. Exits non-zero on any failure.
#
#   scripts/build_dext.sh
#   CONFIGURATION=Debug scripts/build_dext.sh
#
# Ad hoc signatures load only with SIP disabled and system extension
# developer mode on (DEVELOPMENT.md). Signing with a real identity is not
# supported: the DriverKit and system-extension entitlements are restricted
# and would need provisioning profiles embedded in both bundles, which this
# script does not do; it refuses CODESIGN_IDENTITY rather than build a
# bundle that cannot load.
#
# Output: target/dext/CybMemHost.app (path printed at the end). The
# generated dext/CybMem.xcodeproj is ignored by git.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dext="$root/dext"
out="$root/target/dext"
counter_file="$root/target/dext-build-number"
configuration="${CONFIGURATION:-Release}"
dext_id="org.unimem.CybMemDriver"

die() {
    echo "build_dext.sh: $*" >&2
    exit 1
}

if [[ -n "${CODESIGN_IDENTITY:-}" && "${CODESIGN_IDENTITY}" != "-" ]]; then
    die "CODESIGN_IDENTITY is set: signing with a real identity needs provisioning profiles" \
        "for the DEXT and the app, which this script does not embed. Unset it to sign ad hoc" \
        "(SIP off, systemextensionsctl developer on; see DEVELOPMENT.md)."
fi
[[ "$(uname -s)" == Darwin ]] || die "needs macOS with Xcode (this is $(uname -s))"
command -v xcodebuild >/dev/null || die "xcodebuild not found: install Xcode (not only the Command Line Tools)"
xcrun --sdk driverkit --show-sdk-path >/dev/null 2>&1 \
    || die "no DriverKit SDK: install full Xcode and run: sudo xcode-select -s /Applications/Xcode.app"
command -v xcodegen >/dev/null || die "xcodegen not found: brew install xcodegen"

# CFBundleVersion, new on every build so that sysextd replaces the active
# DEXT: <commit count>.<build number / 100 % 100>.<build number % 100>. A
# DEXT's version must parse as a kext version (at most 9999.99.99, see
# DEVELOPMENT.md), so a timestamp does not fit; the build number counts
# builds of this checkout in target/dext-build-number.
commits="$(git -C "$root" rev-list --count HEAD 2>/dev/null || echo 1)"
[[ "$commits" =~ ^[0-9]+$ && "$commits" -ge 1 && "$commits" -le 9999 ]] \
    || die "cannot form a kext-style version from commit count '$commits' (must be 1..9999)"
build_number=0
if [[ -f "$counter_file" ]]; then
    build_number="$(cat "$counter_file")"
    [[ "$build_number" =~ ^[0-9]+$ ]] || die "$counter_file does not hold a number: remove it"
fi
build_number=$(((build_number + 1) % 10000))
mkdir -p "$(dirname "$counter_file")"
echo "$build_number" >"$counter_file"
version="$commits.$((build_number / 100)).$((build_number % 100))"

echo "==> generating dext/CybMem.xcodeproj"
(cd "$dext" && xcodegen generate --quiet)

echo "==> xcodebuild ($configuration), CFBundleVersion $version"
rm -rf "$out"
mkdir -p "$out"
xcodebuild -project "$dext/CybMem.xcodeproj" -configuration "$configuration" \
    -target CybMemDriver -target CybMemHost \
    SYMROOT="$out/build" OBJROOT="$out/obj" CURRENT_PROJECT_VERSION="$version" build

dext_bundle="$(find "$out/build" -maxdepth 2 -name "$dext_id.dext" -type d | head -n 1)"
app_built="$(find "$out/build" -maxdepth 2 -name CybMemHost.app -type d | head -n 1)"
[[ -n "$dext_bundle" ]] || die "xcodebuild produced no $dext_id.dext under $out/build"
[[ -n "$app_built" ]] || die "xcodebuild produced no CybMemHost.app under $out/build"
[[ -f "$dext_bundle/Info.plist" ]] || die "$dext_bundle is not a shallow DriverKit bundle (no Info.plist at its top)"

bundle_version() { /usr/libexec/PlistBuddy -c 'Print :CFBundleVersion' "$1"; }
[[ "$(bundle_version "$dext_bundle/Info.plist")" == "$version" ]] \
    || die "the DEXT's CFBundleVersion is $(bundle_version "$dext_bundle/Info.plist"), not $version"
[[ "$(bundle_version "$app_built/Contents/Info.plist")" == "$version" ]] \
    || die "the app's CFBundleVersion is $(bundle_version "$app_built/Contents/Info.plist"), not $version"

# Fails unless the signature of $1 carries every entitlement key of $2.
check_entitlements() {
    local bundle="$1" wanted="$2" signed key
    signed="$(codesign -d --entitlements - --xml "$bundle" 2>/dev/null)" \
        || die "cannot read the entitlements of $bundle"
    for key in $(/usr/libexec/PlistBuddy -c 'Print' "$wanted" | sed -n 's/^    \([^ ]*\) = .*/\1/p'); do
        grep -qF "<key>$key</key>" <<<"$signed" || die "$bundle is not signed with $key"
    done
}

echo "==> signing the DEXT (ad hoc)"
codesign --force --sign - --options runtime \
    --entitlements "$dext/CybMemDriver.entitlements" "$dext_bundle"
check_entitlements "$dext_bundle" "$dext/CybMemDriver.entitlements"

echo "==> embedding it in the host app"
app="$out/CybMemHost.app"
cp -R "$app_built" "$app"
mkdir -p "$app/Contents/Library/SystemExtensions"
cp -R "$dext_bundle" "$app/Contents/Library/SystemExtensions/"
codesign --force --sign - --options runtime \
    --entitlements "$root/host-app/CybMemHost.entitlements" "$app"
check_entitlements "$app" "$root/host-app/CybMemHost.entitlements"
check_entitlements "$app/Contents/Library/SystemExtensions/$dext_id.dext" "$dext/CybMemDriver.entitlements"

codesign --verify --strict --verbose=2 "$app/Contents/Library/SystemExtensions/$dext_id.dext"
codesign --verify --strict --verbose=2 "$app"
echo "built $app (CFBundleVersion $version)"
