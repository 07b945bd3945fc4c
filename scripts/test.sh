#!/usr/bin/env bash
# Runs every check and test of the project on a fresh Debian machine with Rust:
# installs what the tests need, then formatting, lints, unit and integration tests, a short
# fuzzing run of the REST API, then the packaging: shell scripts, the release build, the
# systemd unit, and the arm64 and armhf builds run under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, installed only when missing.
# mosquitto: the MQTT tests start their own brokers on free ports.
# postgresql: the store conformance and PostgreSQL CSS tests start their own throw-away
# cluster (initdb, pg_ctl) on a free port; they find the server binaries on PATH or in
# /usr/lib/postgresql/<version>/bin.
# python3-venv: the API fuzzer (schemathesis from PyPI) runs in a virtual environment.
# chromium, chromium-driver: the status page's tests drive a real headless browser.
# For the packaging checks: shellcheck for the shell scripts, musl-tools for the static
# release build, systemd for systemd-analyze (it checks the unit without a running systemd).
# For the arm builds run under qemu (scripts/check-arm.sh): Debian's cross compilers, the musl
# headers of each architecture (packages of a foreign architecture), armhf's glibc headers
# for the glibc build of armhf (see build-release.sh), and qemu-user-static.
# For the container image (scripts/check-image.sh): buildah builds it, podman runs it with
# runc, ca-certificates gives it its CA bundle, and file tells that the binary is static.
packages=(mosquitto postgresql python3-venv chromium chromium-driver shellcheck musl-tools systemd
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-armhf-cross musl-dev:arm64 musl-dev:armhf
  qemu-user-static buildah podman runc ca-certificates file)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  for arch in arm64 armhf; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || $sudo_cmd dpkg --add-architecture "$arch"
  done
  $sudo_cmd apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends "${missing[@]}"
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --all-targets --locked
echo "== the README's run command starts the service"
help=$(cargo run --locked -q -- --help)
grep -q "^Usage: edge-sync-service " <<<"$help"
echo "== API fuzzing (schemathesis, FUZZ_EXAMPLES per operation)"
scripts/fuzz-api.sh

echo "== shellcheck"
shellcheck buildContainer.sh scripts/*.sh
echo "== release build (scripts/build-release.sh host)"
binary=$(scripts/build-release.sh host | tail -n 1)
"$binary" --help >/dev/null
# Says whether the build is static (musl) or fell back to the default target.
if command -v file >/dev/null 2>&1; then file "$binary"; fi
echo "== systemd unit"
# verify needs the ExecStart binary to exist: point a copy of the unit at the one just built.
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s#/usr/local/bin/edge-sync-service#$(pwd)/$binary#" \
  packaging/systemd/edge-sync-service.service >"$unit_dir/edge-sync-service.service"
# It reports problems (unknown keys, bad values) as messages but still exits 0.
messages=$(systemd-analyze verify "$unit_dir/edge-sync-service.service" 2>&1) || {
  echo "$messages"
  exit 1
}
if [ -n "$messages" ]; then
  echo "$messages"
  exit 1
fi
echo "== arm builds run under qemu (scripts/check-arm.sh)"
# Each arm build replaces target/dist/edge-sync-service: keep this machine's binary apart.
host_binary=target/dist/edge-sync-service-host
cp "$binary" "$host_binary"
for arch in arm64 armhf; do
  scripts/check-arm.sh "$arch" "$host_binary"
done
echo "== container image built with buildah and run with podman (scripts/check-image.sh)"
scripts/check-image.sh "$host_binary"
# Any failure above has already stopped the script: shellcheck, release build, unit, arm, image.
echo "packaging: 6 passed, 0 failed"
