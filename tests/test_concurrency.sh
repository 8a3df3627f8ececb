#!/usr/bin/env bash
# test_concurrency: 100 concurrent uploads of photos of different enrolled people to
# `facerec serve`: every response names the right person for its own photo. Embedded backend;
# with FACEREC_TEST_BACKEND=aws on SQS and S3 emulated by fauxqs (tests/emulator.sh).
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
data=../shared/datasets/faces/face-api.js
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$models/pnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
[ -d "$data" ] || { echo "SKIP: $data is absent: no labelled photos to enrol"; exit 77; }
tmp=$(mktemp -d)
emulator_pids=()
trap 'kill "${emulator_pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
if [ "${FACEREC_TEST_BACKEND:-}" = aws ]; then . "$(dirname "$0")/emulator.sh"; fi
. "$(dirname "$0")/ports.sh"
port=$(free_port)
export DATA_DIR=$tmp/data HOST=127.0.0.1 PORT=$port WORKERS=2 MAX_WAIT_SECONDS=60 FACEREC_MODELS=$models
"$bin" serve 2>"$tmp/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; kill "${emulator_pids[@]}" 2>/dev/null; [ -n "${KEEP_LOG:-}" ] && cp "$tmp/serve.log" /tmp/concurrency.log; rm -rf "$tmp"' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

people=(amy bernadette howard leonard penny raj sheldon stuart)
for p in "${people[@]}"; do
    curl -s -F "photo=@$data/$p/${p}1.png" "$url/people/$p" | grep -q '"added":1' || { echo "enrolling $p failed"; exit 1; }
done
# 100 uploads at once: photos 2..5 of each person, round robin
start=$(date +%s%N)
pids=()
for i in $(seq 0 99); do
    p=${people[$((i % 8))]}
    echo "$p" >"$tmp/want$i"
    curl -s -m 120 -o "$tmp/r$i" -F "inputFile=@$data/$p/$p$((2 + (i / 8) % 4)).png" "$url/" &
    pids+=($!)
done
wait "${pids[@]}"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
right=0 wrong=0
for i in $(seq 0 99); do
    want=$(cat "$tmp/want$i")
    if grep -q "\"status\":\"done\",\"result\":\"$want\"" "$tmp/r$i" 2>/dev/null; then
        right=$((right + 1))
    else
        wrong=$((wrong + 1))
        echo "upload $i (a photo of $want): $(head -c 200 "$tmp/r$i" 2>/dev/null)"
    fi
done
ids=$(cat "$tmp"/r* | grep -o '"job_id":"[^"]*"' | sort -u | wc -l)
echo "${BACKEND:-embedded} backend: 100 concurrent uploads in $ms ms: $right named right, $wrong wrong; $ids distinct job ids"
checks=3 failed=0
[ "$wrong" -eq 0 ] || failed=$((failed + 1))
if grep -qE 'replacing it|AddressSanitizer|runtime error' "$tmp/serve.log"; then
    failed=$((failed + 1))
    echo "a worker died:"; grep -E -m 5 'replacing it|AddressSanitizer|runtime error' "$tmp/serve.log"
fi
[ "$ids" -eq 100 ] || failed=$((failed + 1))
echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
