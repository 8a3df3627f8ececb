#!/usr/bin/env bash
# test_queue_sqs: the SQS backend against fauxqs (npm) on 127.0.0.1, behind the SigV4-verifying
# proxy of ../shared/tools when present.
set -u
dir=$(dirname "$0")
emu=$dir/emulators/node_modules/.bin
test_bin=${FACEREC_BUILD:-build}/tests/test_queue
[ -x "$emu/fauxqs" ] || { echo "SKIP: fauxqs not installed (make emulators)"; exit 77; }
[ -x "$test_bin" ] || { echo "SKIP: $test_bin not built"; exit 77; }
tmp=$(mktemp -d)
port=$((20000 + RANDOM % 30000))
FAUXQS_PORT=$port FAUXQS_HOST=127.0.0.1 FAUXQS_LOGGER=false node "$emu/fauxqs" >"$tmp/fauxqs.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
endpoint=http://127.0.0.1:$port
proxy=../shared/tools/sigv4-proxy.js
if [ -f "$proxy" ]; then
    pport=$((port + 1))
    node "$proxy" "$pport" "$endpoint" test test >"$tmp/proxy.log" 2>&1 &
    pids+=($!)
    endpoint=http://127.0.0.1:$pport
else
    echo "note: $proxy is absent: signatures not verified"
fi
for _ in $(seq 1 100); do curl -s -o /dev/null "$endpoint/" && break; sleep 0.1; done
FACEREC_TEST_BACKEND=aws BACKEND=aws AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 SQS_REQ_QUEUE_NAME=test-queue-$port "$test_bin"
rc=$?
if [ $rc -ne 0 ]; then tail -n 20 "$tmp"/*.log; fi
exit $rc
