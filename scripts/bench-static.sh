#!/usr/bin/env bash
# Benchmarks the binary users run: builds the static release binary the container image ships
# (scripts/build-release.sh host) and runs the side-by-side benchmark harness on it, several
# times, then prints the medians.
#
#   scripts/bench-static.sh HARNESS_DIR [OTHER_BINARY]
#
# HARNESS_DIR is the folder of the harness (its run.sh and summarize.py). OTHER_BINARY, when
# given, is measured in the same runs (the original, or an earlier build), so that the table's
# last column compares the two on the same day; figures move between days on shared machines.
# The harness's own environment variables pass through (BENCH_SECTIONS, BENCH_SIZES, ...).
# BENCH_RUNS sets the number of runs (default 3); the JSON lines of each run and the summary
# are kept in target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 HARNESS_DIR [OTHER_BINARY]" >&2
  exit 2
fi
harness=$(cd "$1" && pwd)
if [ ! -x "$harness/run.sh" ] || [ ! -f "$harness/summarize.py" ]; then
  echo "error: $harness has no run.sh and summarize.py" >&2
  exit 2
fi
other=()
if [ $# -eq 2 ]; then
  [ -x "$2" ] || {
    echo "error: $2 is not an executable" >&2
    exit 2
  }
  other=("$(cd "$(dirname "$2")" && pwd)/$(basename "$2")")
fi

built=$(scripts/build-release.sh host | tail -n 1)
out=target/bench
mkdir -p "$out"
# The harness measures the file it is given: a copy keeps a later build from changing it.
binary="$out/edge-sync-service"
cp "$built" "$binary"
file "$binary" >&2 || true

runs=${BENCH_RUNS:-3}
results=()
for run in $(seq 1 "$runs"); do
  echo "== run $run of $runs" >&2
  rm -f "$out/run-$run.jsonl" # the harness appends
  BENCH_JSONL="$out/run-$run.jsonl" "$harness/run.sh" "$binary" "${other[@]}" >"$out/run-$run.txt"
  results+=("$out/run-$run.jsonl")
done
"$harness/summarize.py" "${results[@]}" | tee "$out/summary.md"
