#!/usr/bin/env bash
# Builds the container image without a daemon and without pulling anything, with buildah:
# the Dockerfile's runtime stage assembled on an empty base from a static binary built
# beforehand (scripts/build-release.sh) and this machine's CA certificates. The image has the
# name, layout, user, volume, ports, environment and health check of the Dockerfile's image,
# for places where `docker buildx` or the base images' registries cannot be reached.
#
#   scripts/build-image.sh <amd64|arm64|armhf> STATIC_BINARY [BUILDAH_GLOBAL_OPTIONS...]
#
# The global options (e.g. --root DIR --runroot DIR --storage-driver vfs) go before each
# buildah command, so that a check can keep its images apart. Prints the image name last.
# Needs buildah (Debian package buildah) and a CA bundle at /etc/ssl/certs/ca-certificates.crt
# (package ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || {
  echo "usage: $0 <amd64|arm64|armhf> STATIC_BINARY [BUILDAH_GLOBAL_OPTIONS...]" >&2
  exit 2
}
arch=$1
binary=$2
shift 2
case "$arch" in
  amd64) platform=(--arch amd64) ;;
  arm64) platform=(--arch arm64) ;;
  armhf) platform=(--arch arm --variant v7) ;;
  *)
    echo "error: unknown architecture $arch; use amd64, arm64 or armhf" >&2
    exit 2
    ;;
esac
[ -x "$binary" ] || {
  echo "error: $binary is not an executable" >&2
  exit 1
}
certificates=/etc/ssl/certs/ca-certificates.crt
[ -f "$certificates" ] || {
  echo "error: no CA bundle at $certificates (Debian package ca-certificates)" >&2
  exit 1
}
command -v buildah >/dev/null 2>&1 || {
  echo "error: buildah not found (Debian package buildah)" >&2
  exit 1
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
image="${IMAGE_PREFIX:-}${arch}_edge-sync-service:${version}"
global=("$@")
# Docker's format throughout: OCI image configurations have no health check.
export BUILDAH_FORMAT=docker

# The files of the image, as the Dockerfile lays them out: the binary where the original's
# images keep theirs, the data folder owned by the non-root runtime user (65532, distroless's
# "nonroot"), the CA bundle where Rust's TLS roots and OpenSSL-style tools look, and the
# passwd and group entries of that user.
root=$(mktemp -d)
container=""
cleanup() {
  if [ -n "$container" ]; then buildah "${global[@]}" rm "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$root"
}
trap cleanup EXIT
mkdir -p "$root/edge-sync-service" "$root/var/edge-sync-service" "$root/etc/ssl/certs" "$root/tmp"
cp "$binary" "$root/edge-sync-service/edge-sync-service"
cp "$certificates" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

container=$(buildah "${global[@]}" from "${platform[@]}" scratch)
buildah "${global[@]}" copy "$container" "$root/edge-sync-service" /edge-sync-service
buildah "${global[@]}" copy "$container" "$root/etc" /etc
buildah "${global[@]}" copy "$container" "$root/tmp" /tmp
buildah "${global[@]}" copy --chown 65532:65532 "$container" "$root/var/edge-sync-service" /var/edge-sync-service
buildah "${global[@]}" config \
  --label org.opencontainers.image.title=edge-sync-service \
  --label "org.opencontainers.image.description=Cloud-edge object synchronization service compatible with Open Horizon's sync service (MMS)" \
  --label "org.opencontainers.image.version=${version}" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --user 65532:65532 \
  --env PERSISTENCE_ROOT_PATH=/var/edge-sync-service \
  --env LOG_TRACE_DESTINATION=stdout \
  --volume /var/edge-sync-service \
  --port 8080 --port 8443 \
  --healthcheck 'CMD /edge-sync-service/edge-sync-service --healthcheck' \
  --healthcheck-interval 30s --healthcheck-timeout 15s --healthcheck-start-period 30s \
  --healthcheck-retries 3 \
  --cmd '["/edge-sync-service/edge-sync-service"]' \
  "$container"
buildah "${global[@]}" commit --quiet --rm "$container" "$image" >/dev/null
container=""
echo "$image"
