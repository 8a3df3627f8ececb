#!/usr/bin/env bash
# test_store_s3: the S3 backend against s3rver (npm) on 127.0.0.1, behind the SigV4-verifying
# proxy of ../shared/tools when present (s3rver checks signatures too, with its own keys).
set -u
dir=$(dirname "$0")
emu=$dir/emulators/node_modules/.bin
test_bin=${FACEREC_BUILD:-build}/tests/test_store
[ -x "$emu/s3rver" ] || { echo "SKIP: s3rver not installed (make emulators)"; exit 77; }
[ -x "$test_bin" ] || { echo "SKIP: $test_bin not built"; exit 77; }
tmp=$(mktemp -d)
. "$(dirname "$0")/ports.sh"
port=$(free_port)
node "$emu/s3rver" -d "$tmp/s3" -a 127.0.0.1 -p "$port" --silent --no-vhost-buckets >"$tmp/s3rver.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
endpoint=http://127.0.0.1:$port
proxy=../shared/tools/sigv4-proxy.js
if [ -f "$proxy" ]; then
    pport=$((port + 1))
    run_proxy "$pport" "$endpoint" S3RVER S3RVER "$tmp/proxy.log"
    pids+=($!)
    endpoint=http://127.0.0.1:$pport
else
    echo "note: $proxy is absent: signatures checked by s3rver alone"
fi
for _ in $(seq 1 100); do curl -s -o /dev/null "$endpoint/" && break; sleep 0.1; done
FACEREC_TEST_BACKEND=aws BACKEND=aws AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=S3RVER \
    AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 "$test_bin"
rc=$?
if [ $rc -ne 0 ] && [ -f "$tmp/proxy.log" ]; then tail -n 20 "$tmp/proxy.log"; fi
exit $rc
