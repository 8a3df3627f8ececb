# emulator.sh: sourced by the AWS-backend tests: starts fauxqs (SQS and S3 on one endpoint,
# npm) on 127.0.0.1 behind the SigV4-verifying proxy of ../shared/tools when present, and exports
# the settings that point facerec at it. Needs $tmp; appends to the array emulator_pids.
emu_bin=$(dirname "${BASH_SOURCE[0]}")/emulators/node_modules/.bin
if [ ! -x "$emu_bin/fauxqs" ]; then echo "SKIP: fauxqs not installed (make emulators)"; exit 77; fi
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"
emu_port=$(free_port)
FAUXQS_PORT=$emu_port FAUXQS_HOST=127.0.0.1 FAUXQS_LOGGER=false node "$emu_bin/fauxqs" >"$tmp/fauxqs.log" 2>&1 &
emulator_pids+=($!)
emulator_direct=http://127.0.0.1:$emu_port
export AWS_ENDPOINT_URL=$emulator_direct
if [ -f ../shared/tools/sigv4-proxy.js ]; then
    run_proxy $((emu_port + 1)) "$emulator_direct" test test "$tmp/proxy.log"
    emulator_pids+=($!)
    export AWS_ENDPOINT_URL=http://127.0.0.1:$((emu_port + 1))
else
    echo "note: ../shared/tools/sigv4-proxy.js is absent: signatures not verified"
fi
export BACKEND=aws AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export SQS_REQ_QUEUE_NAME=jobs-$emu_port S3_IN_BUCKET=in-$emu_port S3_OUT_BUCKET=out-$emu_port
for _ in $(seq 1 100); do curl -s -o /dev/null "$emulator_direct/" && break; sleep 0.1; done
