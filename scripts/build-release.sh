#!/usr/bin/env bash
# Builds the release binary of edge-sync-service for one platform, the same way inside the
# Dockerfile's build stage and on a developer's or CI's machine.
#
#   scripts/build-release.sh <amd64|armhf|arm64|host>
#
# amd64, arm64 and armhf build a static binary (Rust's musl targets), cross-compiling when
# the machine is of another architecture; `host` builds for this machine: its musl target
# when that can be set up, otherwise its default (glibc) target, so that a machine with only
# cargo still gets a release binary (built under $CARGO_TARGET_DIR when set). The binary is
# copied to target/dist/edge-sync-service and that path is printed as the last line.
#
# Needs: rustup and cargo; for a musl target of this machine's architecture, musl-gcc
# (Debian: musl-tools); for another architecture, Debian's cross compiler and the musl
# headers of that architecture (e.g. gcc-aarch64-linux-gnu and musl-dev:arm64, after
# `dpkg --add-architecture arm64`). The crates compile C (ring, SQLite): with glibc's
# headers SQLite would call glibc-only symbols (open64, fstat64...) that musl lacks, so the
# cross compiler gets musl's headers through the specs file musl-dev installs, as musl-gcc
# does. As the linker driver it needs no musl files: Rust brings its own musl start files
# and libc for these targets.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 <amd64|armhf|arm64|host>" >&2
  exit 2
}
[ $# -eq 1 ] || usage

# GNU triple prefix of an architecture as `uname -m` names it (Debian's cross compilers).
gnu_prefix() {
  case "$1" in
    x86_64) echo x86_64-linux-gnu ;;
    aarch64 | arm64) echo aarch64-linux-gnu ;;
    armv7l | armv7 | armhf) echo arm-linux-gnueabihf ;;
    *) return 1 ;;
  esac
}

# Debian's cross compiler, architecture and musl triple for a GNU triple prefix.
cross_package() {
  case "$1" in
    x86_64-linux-gnu) echo gcc-x86-64-linux-gnu ;;
    aarch64-linux-gnu) echo gcc-aarch64-linux-gnu ;;
    arm-linux-gnueabihf) echo gcc-arm-linux-gnueabihf ;;
  esac
}
debian_arch() {
  case "$1" in
    x86_64-linux-gnu) echo amd64 ;;
    aarch64-linux-gnu) echo arm64 ;;
    arm-linux-gnueabihf) echo armhf ;;
  esac
}
musl_triple() {
  case "$1" in
    x86_64-linux-gnu) echo x86_64-linux-musl ;;
    aarch64-linux-gnu) echo aarch64-linux-musl ;;
    arm-linux-gnueabihf) echo arm-linux-musleabihf ;;
  esac
}

machine=$(uname -m)
case "$1" in
  amd64) arch=x86_64 target=x86_64-unknown-linux-musl ;;
  arm64) arch=aarch64 target=aarch64-unknown-linux-musl ;;
  armhf) arch=armv7l target=armv7-unknown-linux-musleabihf ;;
  host)
    arch=$machine
    case "$machine" in
      x86_64) target=x86_64-unknown-linux-musl ;;
      aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
      armv7l) target=armv7-unknown-linux-musleabihf ;;
      *) target="" ;;
    esac
    ;;
  *) usage ;;
esac

same_arch=false
if [ "$(gnu_prefix "$arch" || true)" = "$(gnu_prefix "$machine" || true)" ]; then
  same_arch=true
fi

# True when the musl target's standard library is installed or can be added.
musl_std_ready() {
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  rustup target add "$1" >&2
}

# For `host`, falls back to the default target when musl cannot be set up here.
if [ "$1" = host ]; then
  if [ -z "$target" ]; then
    echo "note: no musl target known for $machine; building for the default target" >&2
  elif ! command -v musl-gcc >/dev/null 2>&1; then
    echo "note: musl-gcc not found (Debian: musl-tools); building for the default target" >&2
    target=""
  elif ! musl_std_ready "$target"; then
    echo "note: cannot add the Rust target $target; building for the default target" >&2
    target=""
  fi
elif ! musl_std_ready "$target"; then
  # The closest target when a distribution of Rust lacks 32-bit arm's musl standard library:
  # the same CPU with glibc, dynamically linked (it needs the armhf glibc at run time).
  if [ "$1" = armhf ] && rustup target add armv7-unknown-linux-gnueabihf >&2; then
    echo "note: $target cannot be added here; building for armv7-unknown-linux-gnueabihf" \
      "(glibc, dynamically linked) instead" >&2
    target=armv7-unknown-linux-gnueabihf
  else
    echo "error: cannot add the Rust target $target (rustup target add $target)" >&2
    exit 1
  fi
fi

if [ -n "$target" ]; then
  # cc-rs and cargo read these per-target variables (target triple in lower/upper snake case).
  snake=${target//-/_}
  upper=$(echo "$snake" | tr '[:lower:]' '[:upper:]')
  if $same_arch; then
    command -v musl-gcc >/dev/null 2>&1 || {
      echo "error: musl-gcc not found; install Debian's musl-tools" >&2
      exit 1
    }
    export "CC_${snake}=musl-gcc"
  elif [[ $target == *-gnueabihf ]]; then
    prefix=$(gnu_prefix "$arch")
    command -v "${prefix}-gcc" >/dev/null 2>&1 || {
      echo "error: ${prefix}-gcc not found; install Debian's $(cross_package "$prefix")" >&2
      exit 1
    }
    # A glibc target: the cross compiler's own headers and libraries are the right ones.
    export "CC_${snake}=${prefix}-gcc"
    export "AR_${snake}=${prefix}-ar"
    export "CARGO_TARGET_${upper}_LINKER=${prefix}-gcc"
  else
    prefix=$(gnu_prefix "$arch")
    command -v "${prefix}-gcc" >/dev/null 2>&1 || {
      echo "error: ${prefix}-gcc not found; install Debian's $(cross_package "$prefix")" >&2
      exit 1
    }
    specs="/usr/lib/$(musl_triple "$prefix")/musl-gcc.specs"
    [ -f "$specs" ] || {
      debarch=$(debian_arch "$prefix")
      echo "error: $specs not found; install Debian's musl-dev:$debarch" \
        "(dpkg --add-architecture $debarch; apt-get update; apt-get install musl-dev:$debarch)" >&2
      exit 1
    }
    export "CC_${snake}=${prefix}-gcc"
    export "CFLAGS_${snake}=-specs $specs"
    export "AR_${snake}=${prefix}-ar"
    export "CARGO_TARGET_${upper}_LINKER=${prefix}-gcc"
  fi
  cargo build --release --locked --bin edge-sync-service --target "$target" >&2
  built="${CARGO_TARGET_DIR:-target}/${target}/release/edge-sync-service"
else
  cargo build --release --locked --bin edge-sync-service >&2
  built="${CARGO_TARGET_DIR:-target}/release/edge-sync-service"
fi

mkdir -p target/dist
cp "$built" target/dist/edge-sync-service
echo "target/dist/edge-sync-service"
