#!/usr/bin/env bash
# The whole workflow, as in the seed: build, start the resolver service (the
# seed loads the DEXT), run the probe through it as an ordinary user, stop
# the service (the seed unloads the DEXT).
#
#   sudo ./run.sh                  build, start `unimem serve`, probe through it
#                                  as $SUDO_USER (or as nobody, uid 65534, when
#                                  run as plain root), stop the service
#   ./run.sh --client-only         only the probe, against a service already
#                                  running (e.g. the systemd unit); no root needed
#   ./run.sh --skip-build          use the binary already built
#   ./run.sh --socket PATH         the service's socket (default /run/unimem/unimem.sock)
#   ./run.sh -- ARGS...            pass ARGS to `unimem probe` (e.g. -- --size 256M)
#
# On macOS this runs scripts/run_macos.sh with the same arguments.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(uname -s)" = Darwin ]; then
    exec scripts/run_macos.sh "$@"
fi

skip_build=0
client_only=0
socket=/run/unimem/unimem.sock
probe_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --skip-build) skip_build=1 ;;
        --client-only) client_only=1 ;;
        --socket)
            [ $# -ge 2 ] || { echo "run.sh: --socket needs a path" >&2; exit 2; }
            socket=$2; shift ;;
        --socket=*) socket=${1#--socket=} ;;
        --) shift; probe_args=("$@"); break ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see ./run.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$client_only" = 0 ] && [ "$(id -u)" != 0 ]; then
    cat >&2 <<EOF
[!] Not root. run.sh starts the resolver service, which must run as root: it
    reads physical addresses (CAP_SYS_ADMIN) and pins memory (CAP_IPC_LOCK).
    Either run:   sudo ./run.sh
    or start the service yourself (sudo unimem serve --allow-uid $(id -u), or
    sudo systemctl start unimem) and run:   ./run.sh --client-only
EOF
    exit 2
fi

target=${CARGO_TARGET_DIR:-target}
if [ "$skip_build" = 0 ]; then
    echo "[*] Building unimem (release)..." >&2
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
        # Build as the user who called sudo, with their toolchain, so the
        # tree does not fill with root-owned files.
        sudo -u "$SUDO_USER" -H env "PATH=$PATH" cargo build --release --quiet --bin unimem
    else
        cargo build --release --quiet --bin unimem
    fi
fi
bin=$target/release/unimem
[ -x "$bin" ] || { echo "run.sh: $bin is missing; run without --skip-build" >&2; exit 2; }

if [ "$client_only" = 1 ]; then
    echo "[*] Probing through the resolver service at $socket..." >&2
    exec "$bin" probe --via service --socket "$socket" "${probe_args[@]}"
fi

# The client: the user who ran sudo, else nobody. Never root: the point is
# that a user without CAP_SYS_ADMIN gets real addresses through the service.
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    client_uid=$(id -u "$SUDO_USER")
    client_gid=$(id -g "$SUDO_USER")
    client_name=$SUDO_USER
    groups_opt=(--init-groups)
else
    client_uid=65534
    client_gid=65534
    client_name="nobody (uid 65534)"
    groups_opt=(--clear-groups)
fi
command -v setpriv >/dev/null || {
    echo "run.sh: setpriv (util-linux) is needed to run the client as $client_name" >&2
    exit 2
}

# The client may not be able to reach the build tree (a home directory of
# mode 0700): give it its own copy of the binary.
work=$(mktemp -d /tmp/unimem-run.XXXXXX)
chmod 755 "$work"
cp "$bin" "$work/unimem"
chmod 755 "$work/unimem"

service_pid=
cleanup() {
    local status=$?
    if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
        echo "[*] Stopping the resolver service (pid $service_pid)..." >&2
        kill -TERM "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "[*] Starting the resolver service on $socket for $client_name..." >&2
"$work/unimem" serve --socket "$socket" --allow-uid "$client_uid" &
service_pid=$!
for _ in $(seq 100); do
    [ -S "$socket" ] && break
    kill -0 "$service_pid" 2>/dev/null || {
        wait "$service_pid" || true
        service_pid=
        echo "[!] The resolver service did not start (see its message above)." >&2
        exit 2
    }
    sleep 0.05
done
[ -S "$socket" ] || { echo "[!] The resolver service did not create $socket within 5 s." >&2; exit 2; }

echo "[*] Running the probe as $client_name through the service..." >&2
set +e
(cd / && setpriv --reuid "$client_uid" --regid "$client_gid" "${groups_opt[@]}" \
    "$work/unimem" probe --via service --socket "$socket" "${probe_args[@]}")
status=$?
set -e
exit "$status"
