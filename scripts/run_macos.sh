#!/usr/bin/env bash
# The seed's workflow on macOS: build the DEXT and the client, activate the
# DEXT, run the client against it, deactivate the DEXT.
#
#   scripts/run_macos.sh                 # build, activate, run, deactivate
#   scripts/run_macos.sh --skip-build    # use what target/ already holds
#   scripts/run_macos.sh --client-only   # the DEXT is already active: run the client only
#   scripts/run_macos.sh -- probe --json # arguments after -- go to the client
#
# Unsigned development needs SIP disabled and `systemextensionsctl developer
# on` (DEVELOPMENT.md). The first activation waits for approval in System
# Settings > Privacy & Security. Exits with the client's status, or
# non-zero as soon as a build or activation step fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dext_id="org.unimem.CybMemDriver"
app="$root/target/dext/CybMemHost.app"
client="${CARGO_TARGET_DIR:-$root/target}/release/unimem"
skip_build=0
client_only=0
client_args=()

while [[ $# -gt 0 ]]; do
    case "$1" in
    --skip-build) skip_build=1 ;;
    --client-only) client_only=1 ;;
    --) shift; client_args=("$@"); break ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run_macos.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
[[ ${#client_args[@]} -gt 0 ]] || client_args=(probe)

[[ "$(uname -s)" == Darwin ]] || { echo "run_macos.sh: needs macOS" >&2; exit 1; }

if [[ $skip_build -eq 0 ]]; then
    [[ $client_only -eq 1 ]] || "$root/scripts/build_dext.sh"
    "$root/scripts/build_client.sh"
fi

activated=0
if [[ $client_only -eq 0 ]]; then
    [[ -d "$app" ]] || { echo "run_macos.sh: $app missing: run without --skip-build" >&2; exit 1; }
    echo "==> activating $dext_id"
    "$app/Contents/MacOS/CybMemHost" activate
    activated=1
    systemextensionsctl list | grep -F "$dext_id" || true
    # The request completes when sysextd has accepted the DEXT; its process
    # starts and registers the service a moment later. Wait for the service
    # (what the client matches by name) rather than racing it.
    echo "==> waiting for the CybMemDriver service"
    registered=0
    for _ in $(seq 1 30); do
        if ioreg -r -n CybMemDriver -d 1 2>/dev/null | grep CybMemDriver >/dev/null; then
            registered=1
            break
        fi
        sleep 1
    done
    if [[ $registered -eq 0 ]]; then
        echo "run_macos.sh: no IOService named CybMemDriver after 30 s; see DEVELOPMENT.md (logs, systemextensionsctl list)" >&2
    fi
fi

deactivate() {
    if [[ $activated -eq 1 ]]; then
        echo "==> deactivating $dext_id"
        "$app/Contents/MacOS/CybMemHost" deactivate || echo "run_macos.sh: deactivation failed" >&2
    fi
}
trap deactivate EXIT

[[ -x "$client" ]] || { echo "run_macos.sh: $client missing: run without --skip-build" >&2; exit 1; }
echo "==> $client ${client_args[*]}"
"$client" "${client_args[@]}"
