#!/usr/bin/env bash
# End-to-end latency on the embedded backend: sequential uploads of one photo to a fresh
# `facerec serve`, from the start of the request to the 200 answer. Prints the median and p90 and
# how much of it the worker spent fetching and decoding, detecting and embedding (from the
# result's timing_ms); the rest is HTTP, storage, queue and waiting.
#   bench/latency.sh PHOTO [REQUESTS]
set -eu
photo=${1:?usage: bench/latency.sh PHOTO [REQUESTS]}
n=${2:-50}
bin=${FACEREC_BIN:-build/facerec}
tmp=$(mktemp -d)
. "$(dirname "$0")/../tests/ports.sh"
port=$(free_port)
DATA_DIR=$tmp/data HOST=127.0.0.1 PORT=$port WORKERS=${WORKERS:-1} "$bin" serve 2>"$tmp/log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
url=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done
for _ in 1 2 3 4 5; do curl -s -o /dev/null -F "inputFile=@$photo" "$url/"; done
for i in $(seq 1 "$n"); do
    curl -s -o "$tmp/r$i" -w '%{time_total}\n' -F "inputFile=@$photo" "$url/" >>"$tmp/times"
done
cat "$tmp"/r* | sed -n 's/.*"fetch_decode":\([0-9.]*\),"detect":\([0-9.]*\),"embed":\([0-9.]*\).*/\1 \2 \3/p' >"$tmp/stages"
node -e '
const fs = require("fs");
const med = a => { a = a.slice().sort((x, y) => x - y); const m = a.length >> 1; return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2; };
const t = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map(Number).map(x => x * 1000);
const s = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(l => l.split(" ").map(Number));
const sorted = t.slice().sort((a, b) => a - b);
const total = med(t), fd = med(s.map(x => x[0])), det = med(s.map(x => x[1])), emb = med(s.map(x => x[2]));
console.log(`${t.length} sequential requests: median ${total.toFixed(1)} ms, p90 ${sorted[Math.floor(t.length * 0.9)].toFixed(1)} ms`);
console.log(`  in the worker: fetch+decode ${fd.toFixed(1)} ms, detect ${det.toFixed(1)} ms, align+embed ${emb.toFixed(1)} ms`);
console.log(`  HTTP, storage, queue and waiting: ${(total - fd - det - emb).toFixed(1)} ms`);
' "$tmp/times" "$tmp/stages"
