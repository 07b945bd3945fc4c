#!/usr/bin/env bash
# Runs the network fault trials (tests/network_faults.rs) in their long form: the blackhole
# lasts 30 s, as in the original issue, instead of the 8 s of the regular test run. Prints,
# for each fault and transport, how long delivery took after the heal and, for the
# blackhole, the CPU each node used while cut off.
#
# Usage: scripts/faults.sh [blackhole seconds]
# Needs mosquitto (/usr/sbin/mosquitto): the MQTT trials start their own broker.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: $0 [blackhole seconds]" >&2
    exit 2
    ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== network fault trials, blackhole of ${seconds} s"
status=0
FAULT_BLACKHOLE_SECS="$seconds" cargo test --locked --test network_faults -- --nocapture \
  >"$log" 2>&1 || status=$?

echo "== results"
grep -E '^test .* \.\.\. ' "$log" | sed 's/^test /  /' || true
echo "== figures"
grep -E 'after the heal|of CPU in a|queued objects arrived' "$log" | sed 's/^/  /' || true
if [ "$status" -ne 0 ]; then
  echo "== failures"
  grep -E -A4 "panicked at" "$log" | cut -c1-300 || true
  echo "the trials failed (exit status $status)" >&2
fi
exit "$status"
