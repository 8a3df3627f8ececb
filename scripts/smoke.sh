#!/usr/bin/env bash
# Smoke test against a running service (make run): health, enrol a person from one photo, upload
# a different photo of them, expect their name. Photos come from ../shared/datasets/faces.
set -u
url=${1:-${SMOKE_URL:-http://localhost:8000}}
data=${SMOKE_DATA:-../shared/datasets/faces}
enrol=$data/face_recognition/obama/obama.jpg
probe=$data/face_recognition/obama/obama2.jpg
fail() { echo "FAIL: $*"; exit 1; }
echo "Smoke test against $url"
[ -f "$enrol" ] && [ -f "$probe" ] || fail "$data is absent: the smoke test needs two photos of one person"
key=()
[ -n "${API_KEY:-}" ] && key=(-H "X-Api-Key: $API_KEY")
health=$(curl -s -m 5 "$url/health") || fail "no answer from $url/health"
grep -q '"status":"ok"' <<<"$health" || fail "health: $health"
echo "Health check OK"
curl -s -m 30 "${key[@]}" -F "photo=@$enrol" "$url/people/Smoke%20Test%20Person" | grep -q '"added":1' ||
    fail "could not enrol a person"
answer=$(curl -s -m 60 -F "inputFile=@$probe" "$url/")
job=$(sed -n 's/.*"job_id":"\([0-9a-f-]*\)".*/\1/p' <<<"$answer")
status=$(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' <<<"$answer")
[ -n "$job" ] || fail "upload: $answer"
echo "Upload OK, job_id=$job, status=$status"
for _ in $(seq 1 60); do
    [ "$status" = done ] && break
    sleep 1
    answer=$(curl -s -m 5 "$url/status/$job")
    status=$(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' <<<"$answer")
done
result=$(sed -n 's/.*"result":"\([^"]*\)".*/\1/p' <<<"$answer")
echo "Result: $result"
curl -s -m 10 "${key[@]}" -X DELETE "$url/people/Smoke%20Test%20Person" >/dev/null
[ "$result" = "Smoke Test Person" ] || fail "expected Smoke Test Person"
echo PASS
