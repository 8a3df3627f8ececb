#!/usr/bin/env bash
# test_service: facerec serve end to end over HTTP on 127.0.0.1: the error table of the API
# contract, a recognised photo, worker outcomes (poison message, missing input), and that
# rejected requests store and queue nothing. Embedded backend; with FACEREC_TEST_BACKEND=aws on
# SQS and S3 emulated by fauxqs (tests/emulator.sh).
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
photo=${FACEREC_TEST_PHOTO:-../shared/datasets/faces/openface/eric_clapton/clapton-1.jpg}
. "$(dirname "${BASH_SOURCE[0]}")/check.sh"
need_bin "$bin"
[ -f "$models/pnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
if [ ! -f "$photo" ]; then
    echo "note: $photo absent (../shared): using a face-api demo photo"
    photo=${FACEREC_FIXTURES:-build/fixtures}/sample1.jpg
fi
tmp=$(mktemp -d)
emulator_pids=()
trap 'kill "${emulator_pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
aws=0
if [ "${FACEREC_TEST_BACKEND:-}" = aws ]; then aws=1; . "$(dirname "$0")/emulator.sh"; fi
. "$(dirname "$0")/ports.sh"
port=$(free_port)
export DATA_DIR=$tmp/data HOST=127.0.0.1 PORT=$port WORKERS=1 MAX_WAIT_SECONDS=20 MAX_FILE_MB=1
export FACEREC_MODELS=$models JOB_TIMEOUT_SECONDS=20 SQS_VISIBILITY_TIMEOUT_SECONDS=30 API_KEY=sesame
# on SQS a worker killed during a long poll may take a message with it until its visibility
# timeout: keep that short there, so the job comes back within MAX_WAIT_SECONDS
[ $aws = 1 ] && export SQS_VISIBILITY_TIMEOUT_SECONDS=5
"$bin" serve 2>"$tmp/serve.log" &
server=$!
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; kill "${emulator_pids[@]}" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

code() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
# objects stored (files only: on S3 this count is not taken) and messages queued or in flight
objects() { if [ $aws = 1 ]; then echo 0; else find "$DATA_DIR/objects" -type f | wc -l; fi; }
queued() { "$bin" queue counts | sed 's/[^0-9,]//g' | awk -F, '{print $1 + $2 + $3}'; }

check "health is 200 ok" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $url/health)\" = 200 ]"
before_o=$(objects) before_q=$(queued)
check "no inputFile: 400" [ "$(code -F other=@"$photo" "$url/")" = 400 ]
check "... says what is missing" grep -q inputFile "$tmp/body"
: >"$tmp/empty.jpg"
check "empty file: 400" [ "$(code -F inputFile=@"$tmp/empty.jpg" "$url/")" = 400 ]
printf 'just text, not an image\n' >"$tmp/notes.jpg"
check "non-image: 400" [ "$(code -F inputFile=@"$tmp/notes.jpg" "$url/")" = 400 ]
head -c 2000000 /dev/urandom >"$tmp/big.jpg"
check "upload over MAX_FILE_MB: 400" [ "$(code -F inputFile=@"$tmp/big.jpg" "$url/")" = 400 ]
check "... with a JSON error" grep -q '"status":"error"' "$tmp/body"
check "chunked upload over MAX_FILE_MB: 400" [ "$(code -H 'Transfer-Encoding: chunked' -F inputFile=@"$tmp/big.jpg" "$url/")" = 400 ]
check "not multipart: 400" [ "$(code -H 'Content-Type: application/octet-stream' --data-binary @"$photo" "$url/")" = 400 ]
check "wrong method on /: 405" [ "$(code -X PUT "$url/")" = 405 ]
# the page and its files, embedded in the binary (web/)
ctype() { curl -s -o "$tmp/body" -w '%{http_code} %{content_type}' "$@"; }
check "GET / is the page (text/html)" [ "$(ctype "$url/")" = "200 text/html; charset=utf-8" ]
check "... the page itself" grep -q '<script src="/static/app.js"' "$tmp/body"
check "HEAD / like GET, without a body" bash -c "[ \"\$(curl -s -I -o '$tmp/head' -w '%{http_code}' $url/)\" = 200 ] && grep -qi '^Content-Type: text/html' '$tmp/head' && [ \"\$(curl -s -I $url/ -o /dev/null -w '%{size_download}')\" = 0 ]"
check "/static/app.js is JavaScript" [ "$(ctype "$url/static/app.js")" = "200 text/javascript; charset=utf-8" ]
check "... the embedded bytes are web/app.js" bash -c "[ ! -f web/app.js ] || cmp -s web/app.js '$tmp/body'"
check "/static/app.css is CSS" [ "$(ctype "$url/static/app.css")" = "200 text/css; charset=utf-8" ]
check "unknown /static/x: 404" [ "$(code "$url/static/x")" = 404 ]
check "no path outside the embedded files: 404" [ "$(code --path-as-is "$url/static/..%2F..%2FMakefile")" = 404 ]
check "POST on /static/app.js: 405" [ "$(code -X POST "$url/static/app.js")" = 405 ]
check "wrong method on /health: 405" [ "$(code -X DELETE "$url/health")" = 405 ]
check "unknown route: 404" [ "$(code "$url/nowhere")" = 404 ]
check "malformed job id: 400" [ "$(code "$url/status/not-a-uuid")" = 400 ]
check "path-like job id: 404 (an id is one path segment)" [ "$(code "$url/status/..%2F..%2Fetc%2Fpasswd")" = 404 ]
check "unknown job id: 404" [ "$(code "$url/status/00000000-0000-4000-8000-000000000000")" = 404 ]
big_header=$(head -c 40000 /dev/zero | tr '\0' 'a')
hc=$(code -H "X-Big: $big_header" "$url/health")
check "huge headers refused (got $hc)" [ "$hc" -ge 400 ] 2>/dev/null
check "nothing stored or queued by rejected requests" [ "$(objects)" = "$before_o" ] && [ "$(queued)" = "$before_q" ]

# a slow client that never finishes its headers is dropped, and others are served meanwhile
(exec 3<>/dev/tcp/127.0.0.1/$port; printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&3; sleep 20) &
slow=$!
sleep 0.3
check "served while a slow client hangs" [ "$(code "$url/health")" = 200 ]
kill $slow 2>/dev/null

# a real photo: 200 with a result; filename with a path is sanitised
check "photo: 200 done" [ "$(code -F "inputFile=@$photo;filename=../../etc/passwd.jpg" "$url/")" = 200 ]
check "... result and faces" bash -c "grep -q '\"status\":\"done\"' '$tmp/body' && grep -q '\"faces\":\[{' '$tmp/body'"
check "... and the size of the image the boxes refer to" grep -qE '"image":\{"width":[0-9]+,"height":[0-9]+\}' "$tmp/body"
job=$(sed -n 's/.*"job_id":"\([0-9a-f-]*\)".*/\1/p' "$tmp/body")
check "... job id is a UUID" bash -c "[[ '$job' =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]"
[ $aws = 1 ] || check "... input stored under a sanitised key" [ -f "$DATA_DIR/objects/input-bucket/${job}_passwd.jpg" ]
check "... status answers 200 with the result" [ "$(code "$url/status/$job")" = 200 ]
check "... message deleted" [ "$(queued)" = 0 ]
check "log lines carry the job id" grep -q "job=$job" "$tmp/serve.log"

# worker outcomes: a poison message is deleted; a missing input gives an error result
"$bin" queue send garbage
missing=11111111-2222-4333-8444-555555555555
"$bin" queue send "${missing}_gone.jpg"
for _ in $(seq 1 100); do [ "$(queued)" = 0 ] && break; sleep 0.1; done
check "poison and missing-input messages deleted" [ "$(queued)" = 0 ]
check "poison message logged" grep -q "poison" "$tmp/serve.log"
check "missing input: status gives an error result" bash -c \
    "[ \"\$(curl -s -o '$tmp/m' -w '%{http_code}' $url/status/$missing)\" = 200 ] && grep -q 'input object is missing' '$tmp/m'"

# the gallery over HTTP: enrol, list, recognise, delete, API key
people=../shared/datasets/faces/face_recognition
if [ -f "$people/obama/obama.jpg" ]; then
    check "enrol: 200" [ "$(code -H "X-Api-Key: sesame" -F a=@"$people/obama/obama.jpg" -F b=@"$people/obama/obama1.jpg" "$url/people/Barack%20Obama")" = 200 ]
    check "... two examples added" grep -q '"added":2' "$tmp/body"
    check "enrol a non-image only: 400" [ "$(code -H "X-Api-Key: sesame" -F a=@"$tmp/notes.jpg" "$url/people/Nobody")" = 400 ]
    check "enrol with a bad name: 400" [ "$(code -H "X-Api-Key: sesame" -F a=@"$people/obama/obama.jpg" "$url/people/..")" = 400 ]
    check "enrol with no photo: 400" [ "$(code -H "X-Api-Key: sesame" -F x=y "$url/people/Someone")" = 400 ]
    check "enrol without the API key: 401" [ "$(code -F a=@"$people/obama/obama.jpg" "$url/people/Barack%20Obama")" = 401 ]
    check "list without the API key: 401" [ "$(code "$url/people")" = 401 ]
    check "list: 200 with counts" bash -c "[ \"\$(curl -s -H 'X-Api-Key: sesame' -o '$tmp/p' -w '%{http_code}' $url/people)\" = 200 ] && grep -q '\"name\":\"Barack Obama\",\"examples\":2' '$tmp/p'"
    [ $aws = 1 ] && sleep 1.2 # remote galleries are re-checked at most once a second
    check "another photo is recognised" bash -c "curl -s -F inputFile=@$people/obama/obama2.jpg $url/ | grep -q '\"result\":\"Barack Obama\"'"
    check "a stranger is Unknown" bash -c "curl -s -F inputFile=@$photo $url/ | grep -q '\"result\":\"Unknown\"'"
    check "delete: 200" [ "$(code -H "X-Api-Key: sesame" -X DELETE "$url/people/Barack%20Obama")" = 200 ]
    [ $aws = 1 ] && sleep 1.2 # remote galleries are re-checked at most once a second
    check "delete again: 404" [ "$(code -H "X-Api-Key: sesame" -X DELETE "$url/people/Barack%20Obama")" = 404 ]
    check "after deletion the photo is Unknown" bash -c "curl -s -F inputFile=@$people/obama/obama2.jpg $url/ | grep -q '\"result\":\"Unknown\"'"
    # thumbnails: a name with odd characters round-trips through the URL and the store key
    odd='Zo%C3%AB%20%22Q%22%20%3C%26%3E%20O%27Brien%3F%23%25%2B' # Zoë "Q" <&> O'Brien?#%+
    oddkey=photo-$(printf '%s' 'Zoë "Q" <&> O'"'"'Brien?#%+' | od -An -v -tx1 | tr -d ' \n')
    check "enrol an odd name: 200" [ "$(code -H "X-Api-Key: sesame" -F a=@"$people/biden/biden.jpg" "$url/people/$odd")" = 200 ]
    check "... its thumbnail is a JPEG" [ "$(ctype -H "X-Api-Key: sesame" "$url/people/$odd/photo")" = "200 image/jpeg" ]
    check "... the bytes are a JPEG" bash -c "head -c 3 '$tmp/body' | od -An -tx1 | grep -q 'ff d8 ff'"
    [ $aws = 1 ] || check "... stored under photo-{hex of the name}" cmp -s "$tmp/body" "$DATA_DIR/objects/output-bucket/$oddkey"
    check "thumbnail without the API key: 401" [ "$(code "$url/people/$odd/photo")" = 401 ]
    check "thumbnail of no one: 404" [ "$(code -H "X-Api-Key: sesame" "$url/people/Nobody/photo")" = 404 ]
    check "thumbnail of a name with a slash: 404 (a name is one path segment)" [ "$(code -H "X-Api-Key: sesame" "$url/people/..%2Fx/photo")" = 404 ]
    check "delete the odd name: 200" [ "$(code -H "X-Api-Key: sesame" -X DELETE "$url/people/$odd")" = 200 ]
    check "... its thumbnail is gone: 404" [ "$(code -H "X-Api-Key: sesame" "$url/people/$odd/photo")" = 404 ]
    # a second API process on the same DATA_DIR; the two enrol people at the same moments: the
    # gallery is written by compare-and-swap, so no enrolment is lost (the S3 emulators ignore
    # conditional writes: embedded only)
    if [ $aws = 0 ]; then
        port2=$(free_port)
        PORT=$port2 "$bin" api 2>"$tmp/api2.log" &
        api2=$!
        for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port2/health" >/dev/null && break; sleep 0.1; done
        enrols=()
        for i in 1 2 3 4 5 6; do
            curl -s -o "$tmp/ea$i" -H "X-Api-Key: sesame" -F a=@"$people/biden/biden.jpg" "$url/people/A$i" &
            enrols+=($!)
            curl -s -o "$tmp/eb$i" -H "X-Api-Key: sesame" -F a=@"$people/biden/biden.jpg" "http://127.0.0.1:$port2/people/B$i" &
            enrols+=($!)
        done
        wait "${enrols[@]}"
        check "two API processes enrolling at once: all 12 answered 200" bash -c "[ \$(cat '$tmp'/ea* '$tmp'/eb* | grep -c '\"added\":1') = 12 ]"
        curl -s -H 'X-Api-Key: sesame' "$url/people" >"$tmp/p12"
        check "... and all 12 are in the gallery" [ "$(grep -oE '"name":"[AB][1-6]"' "$tmp/p12" | sort -u | wc -l)" = 12 ]
        echo "figure: $(cat "$tmp/serve.log" "$tmp/api2.log" | grep -c 'changed meanwhile') enrolments made again after a conflict"
        for i in 1 2 3 4 5 6; do code -H "X-Api-Key: sesame" -X DELETE "$url/people/A$i" >/dev/null; code -H "X-Api-Key: sesame" -X DELETE "$url/people/B$i" >/dev/null; done
        kill -TERM "$api2"
        wait "$api2"
        check "... the second API stops cleanly" [ $? = 0 ]
        check "... no sanitizer report from it" bash -c "! grep -qE 'AddressSanitizer|runtime error' '$tmp/api2.log'"
    fi
else
    echo "note: $people absent: enrolment not checked"
fi
check "wrong method on /people/x: 405 with Allow" bash -c "curl -s -i -X PUT $url/people/x | grep -qi '^Allow: POST, DELETE'"

check "no worker died so far (and no sanitizer report)" bash -c \
    "! grep -qE 'will be replaced|AddressSanitizer|runtime error' '$tmp/serve.log'"

# a worker killed by a signal is replaced
scaler=$(pgrep -P "$server" | head -n 1) # serve -> autoscaler -> workers
wpid=$(pgrep -P "$scaler" | head -n 1)
kill -9 "$wpid" 2>/dev/null
for _ in $(seq 1 50); do grep -q "worker $wpid killed by signal 9" "$tmp/serve.log" && break; sleep 0.1; done
check "a killed worker is replaced" bash -c "grep -q 'worker $wpid killed by signal 9 after .* it will be replaced' '$tmp/serve.log'"
check "service still answers after it" [ "$(code -F "inputFile=@$photo" "$url/")" = 200 ]

# the queue refusing a job (its database locked by another process for longer than the ~10 s
# of busy retries): 503, and the input stored before the send is removed again
if [ $aws = 1 ]; then
    :
elif ! command -v python3 >/dev/null; then
    echo "note: python3 absent: the refused-send case is not checked (it locks the queue database)"
else
    python3 -c "import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(13); c.execute('COMMIT')" \
        "$DATA_DIR/queue.db" >"$tmp/lock.out" &
    locker=$!
    for _ in $(seq 1 50); do grep -q locked "$tmp/lock.out" && break; sleep 0.1; done
    before_o=$(objects)
    check "queue locked past its busy retries: 503" [ "$(code -F "inputFile=@$photo" "$url/")" = 503 ]
    check "... says the job was not accepted" grep -q 'could not accept the job' "$tmp/body"
    check "... its input is not left behind" [ "$(objects)" = "$before_o" ]
    wait "$locker"
    check "... and uploads are accepted again after" [ "$(code -F "inputFile=@$photo" "$url/")" = 200 ]
fi

kill -TERM "$server"
wait "$server"
check "SIGTERM stops the service cleanly" [ $? = 0 ]
echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
