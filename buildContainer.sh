#!/usr/bin/env bash
# Builds the container image for one platform with docker buildx and names it as Open
# Horizon names the original's images: {arch}_edge-sync-service:{version}, e.g.
# amd64_edge-sync-service:0.1.0 (version from Cargo.toml).
#
#   ./buildContainer.sh <amd64|armhf|arm64> [more docker buildx build options...]
#
# IMAGE_PREFIX is put before the name (e.g. IMAGE_PREFIX=openhorizon/ gives
# openhorizon/amd64_edge-sync-service:0.1.0). The image is loaded into the local docker
# unless the options name another destination (--push, --output/-o, or --load itself).
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  amd64) platform=linux/amd64 ;;
  arm64) platform=linux/arm64 ;;
  armhf) platform=linux/arm/v7 ;;
  *)
    echo "An invalid platform was specified \"${1:-}\"; use amd64, armhf or arm64" >&2
    exit 1
    ;;
esac
arch=$1
shift

# The package version: the first `version = "..."` line, which is in [package].
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
  echo "cannot read the version from Cargo.toml" >&2
  exit 1
fi
image="${IMAGE_PREFIX:-}${arch}_edge-sync-service:${version}"

destination=(--load)
for option in "$@"; do
  case "$option" in
    --push | --load | --output | --output=* | -o | -o*) destination=() ;;
  esac
done

docker buildx build \
  --platform "$platform" \
  --build-arg "VERSION=${version}" \
  --tag "$image" \
  "${destination[@]}" \
  "$@" \
  .
echo "$image"
