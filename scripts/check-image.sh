#!/usr/bin/env bash
# Builds the amd64 container image with scripts/build-image.sh and runs it with podman, both
# on a storage of their own that is deleted at the end: a CSS in the container (its non-root
# user, its volume) serves an ESS of this machine, one object with data is synchronized and
# compared byte for byte, and the image's own health check passes.
#
#   scripts/check-image.sh STATIC_BINARY
#
# STATIC_BINARY is this machine's static release binary (scripts/build-release.sh amd64 or
# host on a machine with musl). Needs buildah, podman and runc (Debian packages). Every
# container and process started is stopped at the end; each wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 1 ] || {
  echo "usage: $0 STATIC_BINARY" >&2
  exit 2
}
binary=$(realpath "$1")
# The image holds nothing but the binary: a dynamically linked one would not start in it.
if ! file -b "$binary" | grep -q "static"; then
  echo "error: $binary is not statically linked (build it with scripts/build-release.sh amd64)" >&2
  exit 1
fi
work=$(mktemp -d)
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
container=""
pids=()
cleanup() {
  if [ -n "$container" ]; then podman "${storage[@]}" rm -f "$container" >/dev/null 2>&1 || true; fi
  for pid in "${pids[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # Files of the non-root user inside the container belong to its uid here.
  rm -rf "$work"
}
trap cleanup EXIT

image=$(scripts/build-image.sh amd64 "$binary" "${storage[@]}" | tail -n 1)
echo "image: built $image"

check=image
extra_logs() {
  if [ -n "$container" ]; then podman "${storage[@]}" logs "$container" 2>&1 | tail -n 20; fi
}
# shellcheck source=scripts/check-lib.sh
source scripts/check-lib.sh

css_port=$(free_port)
ess_port=$(free_port)

# The host's network (no network setup needed), the runc runtime (it also runs where the
# cgroup hierarchy is hybrid), and resource limits no higher than this shell's: podman would
# otherwise raise them, which a host that withholds CAP_SYS_RESOURCE from its containers
# refuses. The health check runs when asked below rather than from a systemd timer, which
# needs a systemd that a build machine may not run.
container=$(podman "${storage[@]}" run -d --runtime runc --network host --health-interval disable \
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096 \
  -e NODE_TYPE=CSS -e LISTENING_TYPE=unsecure -e LISTENING_ADDRESS=127.0.0.1 \
  -e UNSECURE_LISTENING_PORT="$css_port" -e COMMUNICATION_PROTOCOL=http \
  "$image")
wait_until "the CSS in the container to answer" 120 curl -sf "${AUTH[@]}" "http://127.0.0.1:$css_port/api/v1/health"
user=$(podman "${storage[@]}" inspect --format '{{.Config.User}}' "$container")
[ "$user" = "65532:65532" ] || {
  echo "error: image: the container runs as '$user', not the non-root 65532:65532" >&2
  exit 1
}
echo "image: the CSS answers, as user $user"

start node-image ESS "$ess_port" "$css_port" "$binary"
sync_object image "$css_port" "$ess_port" node-image
echo "image: 3 MB synchronized from the CSS in the container to an ESS, the same bytes"

podman "${storage[@]}" healthcheck run "$container"
echo "image: the image's health check passes"
echo "image: 3 passed"
