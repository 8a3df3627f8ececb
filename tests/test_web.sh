#!/usr/bin/env bash
# test_web: the page served at / in a real browser. Starts facerec serve on 127.0.0.1 (embedded
# backend, API_KEY set, MAX_WAIT_SECONDS=0 so that the page must poll a pending job), then
# tests/test_web.cjs drives Debian's chromium headless with playwright-core: the API key prompt,
# enrolment, the people list with thumbnails, recognition of a dropped photo and of a group photo
# (names and Unknown next to boxes), deletion. Screenshot: tests/artifacts/web.png.
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
faces=${FACEREC_FACES:-../shared/datasets/faces}
chromium=${CHROMIUM:-/usr/bin/chromium}
here=$(cd "$(dirname "$0")" && pwd)
modules=$here/emulators/node_modules
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$models/pnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
[ -f "$faces/face_recognition/groups/obama_and_biden.jpg" ] ||
    { echo "SKIP: $faces absent (../shared): no photos to enrol"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node not installed (scripts/deps.sh)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
[ -x "$chromium" ] || { echo "SKIP: chromium not installed at $chromium (scripts/deps.sh installs it)"; exit 77; }
[ -f "$modules/playwright-core/package.json" ] ||
    { echo "SKIP: playwright-core not installed (scripts/emulators.sh)"; exit 77; }

tmp=$(mktemp -d)
. "$here/ports.sh"
port=$(free_port)
key=web-test-key
export DATA_DIR=$tmp/data HOST=127.0.0.1 PORT=$port WORKERS=1 MAX_WAIT_SECONDS=0 API_KEY=$key
export FACEREC_MODELS=$models JOB_TIMEOUT_SECONDS=60
"$bin" serve 2>"$tmp/serve.log" &
server=$!
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 300); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

FACEREC_URL=$url FACEREC_KEY=$key FACES=$faces ARTIFACTS=$here/artifacts CHROMIUM=$chromium \
    NODE_PATH=$modules node "$here/test_web.cjs"
rc=$?
if grep -qE 'AddressSanitizer|runtime error|replacing it' "$tmp/serve.log"; then
    echo "FAIL the service logged a crash or sanitizer report:"; tail -n 20 "$tmp/serve.log"; rc=1
fi
[ $rc = 0 ] || { echo "--- serve.log"; tail -n 30 "$tmp/serve.log"; }
exit $rc
