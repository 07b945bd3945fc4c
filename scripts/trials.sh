#!/usr/bin/env bash
# Runs the kill -9 trials of tests/kill_trials.rs at bench scale on the release build:
# KILL_TRIALS trials per kind (default 100), the kinds side by side, then prints each kind's
# summary line (trials / acknowledged writes checked / lost / corrupt / duplicates at the
# application / refetched bytes max) and the failures, if any. The whole output is kept in
# target/trials/kill_trials.log; TRIAL_SEED (printed at the start of each kind) replays a run.
#
#   scripts/trials.sh
#   KILL_TRIALS=20 scripts/trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."

trials="${KILL_TRIALS:-100}"
log=target/trials/kill_trials.log
mkdir -p "$(dirname "$log")"

status=0
KILL_TRIALS="$trials" cargo test --release --locked --test kill_trials -- --nocapture >"$log" 2>&1 || status=$?

grep -E '^kill trials [a-z-]+: (trials [0-9]+ /|FAILED)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "the trials failed (exit $status); see $log" >&2
fi
exit "$status"
