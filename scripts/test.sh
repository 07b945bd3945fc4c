#!/usr/bin/env bash
# Runs every check and test of the project on a fresh Debian machine with Rust:
# installs what the tests need, then formatting, lints, unit and integration tests, and a
# short fuzzing run of the REST API.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, installed only when missing (python3-venv: the API fuzzer).
packages=(python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
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
echo "== API fuzzing (schemathesis, FUZZ_EXAMPLES per operation)"
scripts/fuzz-api.sh
