#!/usr/bin/env bash
# test_openapi: docs/openapi.yaml is a valid OpenAPI document (@apidevtools/swagger-parser) and
# says what `facerec serve` does: every documented operation answers a documented status and
# Content-Type with a body of the documented schema; undocumented methods answer 405 with the
# documented Allow, undocumented paths 404; api.c's route table and the document list the same
# routes (tests/openapi_check.cjs). An operation with no route in api.c yet that answers 404 or
# 405 is printed "skip ...: not implemented yet".
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
here=$(dirname "$0")
photo=${FACEREC_FIXTURES:-build/fixtures}/sample3.jpg # one face at a time is named: any will do
[ -f "$photo" ] || photo=../shared/datasets/faces/face_recognition/obama/obama.jpg
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$models/pnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
[ -f "$photo" ] || { echo "SKIP: no photo with a face (make fixtures)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v node >/dev/null || { echo "FAIL: node is not installed (scripts/deps.sh)"; exit 1; }
[ -f "$here/emulators/node_modules/@apidevtools/swagger-parser/package.json" ] ||
    { echo "FAIL: @apidevtools/swagger-parser is not installed (make emulators)"; exit 1; }
tmp=$(mktemp -d)
. "$here/ports.sh"
port=$(free_port)
export DATA_DIR=$tmp/data HOST=127.0.0.1 PORT=$port WORKERS=1 MAX_WAIT_SECONDS=0 API_KEY=sesame
export FACEREC_MODELS=$models BACKEND=embedded
"$bin" serve 2>"$tmp/serve.log" &
server=$!
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:$port PHOTO=$photo DOC=${DOC:-docs/openapi.yaml} API_SRC=src/service/api.c \
    node "$here/openapi_check.cjs"
rc=$?
if grep -qE 'AddressSanitizer|runtime error' "$tmp/serve.log"; then
    echo "FAIL the server's log has a sanitizer report:"; grep -E -A5 'AddressSanitizer|runtime error' "$tmp/serve.log"
    rc=1
fi
exit $rc
