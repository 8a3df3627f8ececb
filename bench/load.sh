#!/usr/bin/env bash
# Issue 5's load benchmarks, each against a fresh `facerec serve` started with zero workers:
#   burst      100 uploads at once (the original's load test), embedded backend, then AWS backend
#              (fauxqs emulator via tests/emulator.sh): success, latency avg/p50/p95/p99, photos/s
#   split      photos/s for worker x thread splits (closed loop, 200 uploads, 32 clients)
#   sustained  60 s open loop at twice the photos/s of two workers, then the drain: nothing lost,
#              the worker count over time (from /metrics, every second) back to MIN_WORKERS
#   bench/load.sh PHOTO [burst|split|sustained|all]    (JSON reports in $OUT, default /tmp/facerec-load)
set -u
photo=${1:?usage: bench/load.sh PHOTO [burst|split|sustained|all]}
what=${2:-all}
bin=${FACEREC_BIN:-build/facerec}
out=${OUT:-/tmp/facerec-load}
mkdir -p "$out"
tmp=$(mktemp -d)
emulator_pids=()
server=
cleanup() {
    [ -n "$server" ] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
    kill "${emulator_pids[@]}" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/../tests/ports.sh"
export HOST=127.0.0.1 MAX_WAIT_SECONDS=60 FACEREC_MODELS=${FACEREC_MODELS:-models}

serve() { # NAME: starts facerec serve with the environment given, waits until its workers can start
    port=$(free_port)
    url=http://127.0.0.1:$port
    DATA_DIR=$tmp/data-$1 PORT=$port "$bin" serve 2>"$out/$1.log" &
    server=$!
    for _ in $(seq 1 300); do
        grep -q "autoscale: process driver" "$out/$1.log" 2>/dev/null && curl -sf "$url/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "serve did not start: see $out/$1.log"; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null; server=; }
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
pps() { sed -n 's/.*"photos_per_second": \([0-9.]*\).*/\1/p' "$1"; }

burst() {
    echo "== burst: 100 uploads at once, from zero workers"
    serve burst-embedded
    "$bin" loadtest "$url/" --requests 100 --concurrency 100 --json "$out/burst-embedded.json" "$photo"
    stop
    ( . "$(dirname "$0")/../tests/emulator.sh"
      SQS_WAIT_TIME_SECONDS=1 serve burst-aws
      "$bin" loadtest "$url/" --requests 100 --concurrency 100 --json "$out/burst-aws.json" "$photo"
      stop
      kill "${emulator_pids[@]}" 2>/dev/null )
}

split() {
    echo "== split: photos/s by workers x threads (200 uploads, 32 clients, after 20 to warm up)"
    for wt in 1x1 2x1 3x1 4x1 1x2 2x2; do
        WORKERS=${wt%x*} WORKER_THREADS=${wt#*x} serve "split-$wt"
        "$bin" loadtest "$url/" --requests 20 --concurrency 4 "$photo" >/dev/null
        "$bin" loadtest "$url/" --requests 200 --concurrency 32 --json "$out/split-$wt.json" "$photo" >/dev/null
        printf '%s workers x threads: %.1f photos/s\n' "$wt" "$(pps "$out/split-$wt.json")"
        stop
    done
}

sustained() {
    WORKERS=2 serve capacity
    "$bin" loadtest "$url/" --requests 20 --concurrency 4 "$photo" >/dev/null
    "$bin" loadtest "$url/" --requests 200 --concurrency 32 --json "$out/capacity.json" "$photo" >/dev/null
    stop
    cap=$(pps "$out/capacity.json")
    rate=$(echo "2 * $cap" | bc)
    n=$(echo "$rate * 60 / 1" | bc)
    echo "== sustained: two workers serve $cap photos/s; 60 s at $rate uploads/s ($n uploads), then the drain"
    SCALE_DOWN_SECONDS=${SCALE_DOWN_SECONDS:-30} MAX_WAIT_SECONDS=0 serve sustained
    ( while :; do echo "$SECONDS $(metric facerec_workers) $(metric 'facerec_queue_messages{state="waiting"}')"; sleep 1; done ) >"$out/sustained-timeline.txt" &
    scraper=$!
    start=$SECONDS
    "$bin" loadtest "$url/" --requests "$n" --rate "$rate" --concurrency 64 --timeout 600 \
        --json "$out/sustained.json" "$photo"
    echo "all results in after $((SECONDS - start)) s; waiting for the workers to scale back"
    for _ in $(seq 1 120); do [ "$(metric facerec_workers)" = 0 ] && break; sleep 1; done
    sleep 1
    kill $scraper
    echo "workers over time (s since start: workers, waiting):"
    awk 'NR == 1 { t0 = $1 } { w = $2 " workers, " $3 " waiting"; if (w != last) printf "  %4d s: %s\n", $1 - t0, w; last = w }' "$out/sustained-timeline.txt"
    echo "jobs done: $(metric 'facerec_jobs_total{outcome="done"}'), failed: $(metric 'facerec_jobs_total{outcome="failed"}'), workers now: $(metric facerec_workers)"
    stop
}

case $what in
burst) burst ;;
split) split ;;
sustained) sustained ;;
all) burst; split; sustained ;;
*) echo "unknown benchmark $what"; exit 2 ;;
esac
