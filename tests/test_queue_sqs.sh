#!/usr/bin/env bash
# test_queue_sqs: the SQS backend against fauxqs (npm) on 127.0.0.1, behind the SigV4-verifying
# proxy of ../shared/tools when present (tests/emulator.sh).
set -u
test_bin=${FACEREC_BUILD:-build}/tests/test_queue
[ -x "$test_bin" ] || { echo "SKIP: $test_bin not built"; exit 77; }
tmp=$(mktemp -d)
emulator_pids=()
trap 'kill "${emulator_pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/emulator.sh"
FACEREC_TEST_BACKEND=aws "$test_bin"
rc=$?
if [ $rc -ne 0 ]; then tail -n 20 "$tmp"/*.log; fi
exit $rc
