#!/usr/bin/env bash
# Builds the release binary of an arm architecture and runs it under qemu-user on this
# machine: --help, then a CSS of that architecture serving an ESS of this machine, and an
# ESS of that architecture served by a CSS of this machine, each synchronizing one object
# with data over HTTP on 127.0.0.1, the data compared byte for byte.
#
#   scripts/check-arm.sh <arm64|armhf> HOST_BINARY
#
# HOST_BINARY is a release binary of this machine (scripts/build-release.sh host). The arm
# binary is kept as target/dist/edge-sync-service-<arch>. Needs what build-release.sh needs
# for the architecture, and qemu-user-static (Debian); armhf's glibc build (see
# build-release.sh) also needs the armhf C library that Debian's cross compiler brings
# (/usr/arm-linux-gnueabihf). Every process started is stopped at the end; each wait has a
# deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || {
  echo "usage: $0 <arm64|armhf> HOST_BINARY" >&2
  exit 2
}
arch=$1
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
    # Reaped here, so that the shell does not report each kill.
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# A copy: the build below replaces target/dist/edge-sync-service, which it may be.
host="$work/edge-sync-service-host"
cp "$2" "$host"
case "$arch" in
  arm64) qemu=(qemu-aarch64-static) ;;
  armhf) qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf) ;;
  *)
    echo "error: unknown architecture $arch" >&2
    exit 2
    ;;
esac
command -v "${qemu[0]}" >/dev/null 2>&1 || {
  echo "error: ${qemu[0]} not found; install Debian's qemu-user-static" >&2
  exit 1
}

built=$(scripts/build-release.sh "$arch" | tail -n 1)
binary="$(pwd)/target/dist/edge-sync-service-$arch"
cp "$built" "$binary"
if command -v file >/dev/null 2>&1; then file "$binary"; fi
"${qemu[@]}" "$binary" --help | grep -q "^Usage: edge-sync-service" || {
  echo "error: $arch: --help under qemu did not print the usage" >&2
  exit 1
}
echo "$arch: --help under ${qemu[0]}: ok"

check=$arch
# shellcheck source=scripts/check-lib.sh
source scripts/check-lib.sh

# pair LABEL CSS_COMMAND... -- ESS_COMMAND...: one object with data from the CSS to the ESS.
pair() {
  local label=$1
  shift
  local css=() ess=()
  while [ "$1" != "--" ]; do
    css+=("$1")
    shift
  done
  shift
  ess=("$@")
  local css_port ess_port node="node-$label"
  css_port=$(free_port)
  ess_port=$(free_port)
  start "css-$label" CSS "$css_port" "$css_port" "${css[@]}"
  start "$node" ESS "$ess_port" "$css_port" "${ess[@]}"
  sync_object "$label" "$css_port" "$ess_port" "$node"
  echo "$arch: $label: 3 MB synchronized, the same bytes"
}

pair "$arch-css" "${qemu[@]}" "$binary" -- "$host"
pair "$arch-ess" "$host" -- "${qemu[@]}" "$binary"
echo "$arch: 2 passed"
