#!/usr/bin/env bash
# test_autoscale: the autoscaler on the embedded backend.
#   1. facerec serve from zero workers: a burst of uploads (facerec loadtest) all succeed; the
#      worker count, scraped from GET /metrics over time, goes 0 -> MAX_WORKERS -> 0 after the
#      stabilisation window; the metrics count every request and job.
#   2. a worker killed with SIGKILL is replaced, and the crash is logged and counted.
#   3. the command driver runs its command with the desired count: up with the backlog, and back
#      to zero once the queue is empty for the window.
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
. "$(dirname "$0")/ports.sh"
tmp=$(mktemp -d)
server= scraper= scaler=
cleanup() {
    kill $scraper $scaler 2>/dev/null
    [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
    rm -rf "$tmp"
}
trap cleanup EXIT
export HOST=127.0.0.1 FACEREC_MODELS=$models MAX_WAIT_SECONDS=60 SCALE_INTERVAL_MS=100

start_serve() { # DATA_DIR
    port=$(free_port)
    url=http://127.0.0.1:$port
    DATA_DIR=$1 PORT=$port "$bin" serve 2>>"$tmp/serve.log" &
    server=$!
    for _ in $(seq 1 150); do curl -sf "$url/health" >/dev/null && return 0; sleep 0.1; done
    return 1
}
stop_serve() { kill "$server"; wait "$server" 2>/dev/null; server=; }
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
wait_for() { # SECONDS COMMAND...: polls until the command succeeds
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}

# ---- 1. from zero, a burst, back to zero ----
export MIN_WORKERS=0 MAX_WORKERS=2 SCALE_DOWN_SECONDS=2
check "serve starts" start_serve "$tmp/d1"
sleep 0.5
check "no worker before any job" [ "$(metric facerec_workers)" = 0 ]
( t0=$(date +%s.%N)
  while :; do
      n=$(curl -s "$url/metrics" | awk '$1 == "facerec_workers" { print $2 }')
      [ -n "$n" ] && echo "$(echo "$(date +%s.%N) - $t0" | bc) $n"
      sleep 0.2
  done >"$tmp/timeline" ) &
scraper=$!
# the first sample (0 workers) is in before the burst: workers start within milliseconds of it
for _ in $(seq 1 100); do [ -s "$tmp/timeline" ] && break; sleep 0.02; done
"$bin" loadtest "$url/" --requests 30 --concurrency 10 --json "$tmp/load.json" "$photo" >"$tmp/load.txt" 2>&1
rc=$?
sed 's/^/     /' "$tmp/load.txt"
check "every request of the burst succeeds" [ $rc = 0 ]
check "the load report is JSON with the success rate" grep -q '"success_rate": 1' "$tmp/load.json"
zero() { [ "$(metric facerec_workers)" = 0 ]; }
check "workers scale back to zero after the window" wait_for 15 zero
sleep 0.5
kill $scraper; scraper=
# the worker count over time, runs of equal values collapsed: e.g. 0 (0.0 s) 2 (0.6 s) 0 (4.1 s)
summary=$(awk 'NR == 1 || $2 != last { printf "%s%d (%.1f s)", sep, $2, $1; sep = " -> "; last = $2 }' "$tmp/timeline")
echo "     workers over time: $summary"
went_up_and_down() { [[ "$summary" =~ ^0\ .*\ 2\ \(.*\ 0\ \([0-9.]+\ s\)$ ]]; }
check "the count went 0 -> 2 -> 0" went_up_and_down
check "never above MAX_WORKERS" [ "$(awk '$2 > m { m = $2 } END { print m + 0 }' "$tmp/timeline")" = 2 ]
check "jobs done counted" [ "$(metric 'facerec_jobs_total{outcome="done"}')" = 30 ]
check "uploads counted by status" [ "$(metric 'facerec_http_requests_total{route="upload",code="200"}')" = 30 ]
check "end-to-end histogram has every job" [ "$(metric facerec_job_seconds_count)" = 30 ]
check "stage histograms filled" [ "$(metric 'facerec_stage_seconds_count{stage="detect"}')" = 30 ]
# the gauge drops when a worker is asked to stop; the stop is counted once it has exited
started_stopped() {
    [ "$(metric 'facerec_worker_events_total{event="start"}')" -ge 2 -a \
      "$(metric 'facerec_worker_events_total{event="stop"}')" -ge 2 -a \
      "$(metric 'facerec_worker_events_total{event="crash"}')" = 0 ]
}
check "workers started and stopped, none crashed" wait_for 10 started_stopped
check "metrics have HELP and TYPE lines" bash -c "curl -s $url/metrics | grep -q '^# TYPE facerec_job_seconds histogram'"
check "decisions are logged with their inputs" \
    grep -qE 'autoscale: waiting=[0-9]+ in_flight=[0-9]+ current=[01] desired=2: ' "$tmp/serve.log"
check "scale-down is logged with its reason" grep -qE 'desired=0: .*none more for 2 s' "$tmp/serve.log"
stop_serve

# ---- 2. a killed worker is replaced ----
export MIN_WORKERS=1 MAX_WORKERS=1
check "serve starts with MIN_WORKERS=1" start_serve "$tmp/d2"
one() { [ "$(metric facerec_workers)" = 1 ]; }
check "one worker runs" wait_for 20 one
scaler=$(pgrep -P "$server" | head -1)
victim=$(pgrep -P "$scaler" | head -1)
check "found the worker process" [ -n "$victim" ]
kill -9 "$victim" 2>/dev/null
replaced() { local w; w=$(pgrep -P "$scaler" | head -1); [ -n "$w" ] && [ "$w" != "$victim" ]; }
check "a new worker replaces it" wait_for 10 replaced
check "the crash is counted" [ "$(metric 'facerec_worker_events_total{event="crash"}')" = 1 ]
check "the crash is logged" grep -qE "worker $victim killed by signal 9" "$tmp/serve.log"
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' -F "inputFile=@$photo" "$url/")
check "the replacement does jobs" [ "$code" = 200 ] && grep -q '"status":"done"' "$tmp/r.json"
scaler=
stop_serve

# ---- 3. the command driver ----
export AUTOSCALE_DRIVER=command AUTOSCALE_COMMAND="echo \"\$1 \$FACEREC_DESIRED_WORKERS\" >>$tmp/counts"
export MIN_WORKERS=0 MAX_WORKERS=15 SCALE_DOWN_SECONDS=1 DATA_DIR=$tmp/d3
"$bin" autoscale 2>>"$tmp/serve.log" &
scaler=$!
counted() { [ "$(tail -n 1 "$tmp/counts" 2>/dev/null)" = "$1 $1" ]; }
check "the command sets the count at start" wait_for 10 counted 0
for i in 1 2 3; do "$bin" queue send "not-a-job-$i"; done
check "the command is run with the backlog's count" wait_for 10 counted 3
mport=$(free_port)
AUTOSCALE_DRIVER=process METRICS_PORT=$mport "$bin" worker 2>>"$tmp/serve.log" & # drains the (poison) messages
worker=$!
check "and with zero once the queue is empty for the window" wait_for 15 counted 0
poison() { curl -s "http://127.0.0.1:$mport/metrics" | grep -qx 'facerec_jobs_total{outcome="poison"} 3'; }
check "a standalone worker serves its metrics on METRICS_PORT" wait_for 5 poison
kill $worker $scaler; wait $worker $scaler 2>/dev/null
scaler=
check "the command ran only on changes" [ -z "$(uniq -d "$tmp/counts")" ]

echo "$checks checks, $failed failed"
[ "$failed" = 0 ] || { echo "--- serve.log (tail)"; tail -n 40 "$tmp/serve.log"; }
[ "$failed" = 0 ]
