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
# Settings > Privacy & Security. The DEXT admits administrators (root) only,
# so the client runs through sudo unless this script already runs as root.
# Exits with the client's status, or non-zero as soon as a build or
# activation step fails or the service does not appear; a DEXT this script
# activated is deactivated on every exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dext_id="org.unimem.CybMemDriver"
app="$root/target/dext/CybMemHost.app"
client="${CARGO_TARGET_DIR:-$root/target}/release/unimem"
wait_seconds=30
skip_build=0
client_only=0
client_args=()

# Installed before anything can be activated, so that every later exit
# (a failed step, a missing service, Ctrl-C) deactivates what we activated.
activated=0
deactivate() {
    if [[ $activated -eq 1 ]]; then
        echo "==> deactivating $dext_id"
        "$app/Contents/MacOS/CybMemHost" deactivate || echo "run_macos.sh: deactivation failed" >&2
    fi
}
trap deactivate EXIT

while [[ $# -gt 0 ]]; do
    case "$1" in
    --skip-build) skip_build=1 ;;
    --client-only) client_only=1 ;;
    --)
        shift
        client_args=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
    *)
        echo "run_macos.sh: unknown option '$1'" >&2
        exit 2
        ;;
    esac
    shift
done
[[ ${#client_args[@]} -gt 0 ]] || client_args=(probe)

[[ "$(uname -s)" == Darwin ]] || {
    echo "run_macos.sh: needs macOS" >&2
    exit 1
}

if [[ $skip_build -eq 0 ]]; then
    [[ $client_only -eq 1 ]] || "$root/scripts/build_dext.sh"
    "$root/scripts/build_client.sh"
fi

service_registered() {
    ioreg -r -n CybMemDriver -d 1 2>/dev/null | grep CybMemDriver >/dev/null
}

if [[ $client_only -eq 0 ]]; then
    [[ -d "$app" ]] || {
        echo "run_macos.sh: $app missing: run without --skip-build" >&2
        exit 1
    }
    echo "==> activating $dext_id"
    activated=1
    "$app/Contents/MacOS/CybMemHost" activate
    systemextensionsctl list | grep -F "$dext_id" || true
    # The request completes when sysextd has accepted the DEXT; its process
    # starts and registers the service a moment later. Wait for the service
    # (what the client matches by name) rather than racing it.
    echo "==> waiting up to ${wait_seconds} s for the CybMemDriver service"
    registered=0
    for _ in $(seq 1 "$wait_seconds"); do
        if service_registered; then
            registered=1
            break
        fi
        sleep 1
    done
    if [[ $registered -eq 0 ]]; then
        echo "run_macos.sh: no IOService named CybMemDriver after ${wait_seconds} s:" \
            "check \`systemextensionsctl list\` and the DEXT's log (DEVELOPMENT.md, Logs)" >&2
        exit 1
    fi
elif ! service_registered; then
    echo "run_macos.sh: --client-only, but no IOService named CybMemDriver is registered:" \
        "activate the DEXT first (DEVELOPMENT.md)" >&2
    exit 1
fi

[[ -x "$client" ]] || {
    echo "run_macos.sh: $client missing: run without --skip-build" >&2
    exit 1
}
# (No empty arrays under set -u: macOS's bash 3.2 calls them unbound.)
if [[ $EUID -eq 0 ]]; then
    echo "==> $client ${client_args[*]}"
    "$client" "${client_args[@]}"
else
    echo "==> sudo $client ${client_args[*]} (the DEXT admits administrators only)"
    sudo "$client" "${client_args[@]}"
fi
