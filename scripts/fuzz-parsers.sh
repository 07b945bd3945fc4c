#!/usr/bin/env bash
# Fuzzes every parser of untrusted input through its property tests (the `props` modules:
# ranges, paths and names, queries, sync.conf, MQTT payloads, metadata and node-to-node
# bodies, versions, spellings) with many more cases than a plain `cargo test` runs.
# Each property runs on its own, so a slow one shows; a failure prints proptest's minimal
# failing input and is stored under proptest-regressions/ to be replayed by every later run.
#
# Settings (environment):
#   PROPTEST_CASES  cases per property (default 100000)
#   FUZZ_FILTER     only the properties whose path contains this text (default: all)
# Built with the `fuzz` profile: optimized, with overflow checks and debug assertions.
set -euo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
filter="${FUZZ_FILTER:-}"

cargo test --locked --profile fuzz --lib --no-run --quiet
# `name: test` lines of the properties, with the ignored ones (a contract not met yet) apart.
list() {
  cargo test --locked --profile fuzz --lib --quiet -- --list "$@" ::props:: 2>/dev/null |
    sed -n 's/: test$//p' | grep -F -- "$filter" | sort || true
}
mapfile -t ignored < <(list --ignored)
mapfile -t properties < <(list | grep -vxF -f <(printf '%s\n' "${ignored[@]}" ""))
if [ "${#properties[@]}" -eq 0 ]; then
  echo "no property test matches '${filter}'" >&2
  exit 1
fi

passed=0
failed=0
failures=()
printf '%-96s %8s %8s %s\n' "property" "cases" "seconds" "result"
for property in "${properties[@]}"; do
  log=$(mktemp)
  start=$(date +%s)
  if cargo test --locked --profile fuzz --lib --quiet -- --exact "$property" >"$log" 2>&1; then
    result=ok
    passed=$((passed + 1))
  else
    result=FAILED
    failed=$((failed + 1))
    failures+=("$property")
  fi
  printf '%-96s %8s %8s %s\n' "$property" "$PROPTEST_CASES" "$(($(date +%s) - start))" "$result"
  if [ "$result" = FAILED ]; then
    grep -E 'minimal failing input|Test failed|panicked' "$log" | head -5 | sed 's/^/    /' || true
  fi
  rm -f "$log"
done
for property in "${ignored[@]}"; do
  printf '%-96s %8s %8s %s\n' "$property" 0 0 "ignored"
done

echo
echo "$passed passed, $failed failed, ${#ignored[@]} skipped"
for property in "${failures[@]}"; do
  echo "failed: $property"
done
[ "$failed" -eq 0 ]
