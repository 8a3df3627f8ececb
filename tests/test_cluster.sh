#!/usr/bin/env bash
# test_cluster: facerec beyond one machine. The SQS/S3 emulator (fauxqs), the API, two workers
# and the test client each run in their own network namespace with their own address on
# 10.77.0.0/24 (veth pairs to a bridge in one more namespace, all made here and named after this
# shell's pid). Each server listens on its namespace address only; the SigV4-verifying proxy of
# ../shared/tools (which binds 127.0.0.1) runs as a sidecar inside the api and worker namespaces,
# forwarding to fauxqs across the bridge. Shows that jobs flow across machines (each worker did
# some, from its log) and that a worker cut off mid-job (frozen with SIGSTOP, then its link set
# down) loses nothing: the job's message comes back after SQS_VISIBILITY_TIMEOUT_SECONDS and the
# other worker completes it while the client polls. Needs root (ip netns); else SKIP.
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
fixtures=${FACEREC_FIXTURES:-build/fixtures}
. "$(dirname "${BASH_SOURCE[0]}")/check.sh"
need_bin "$bin"
bin=$(realpath "$bin") models=$(realpath "$models")
[ -f "$models/pnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: ip (iproute2) not installed"; exit 77; }
emu_bin=$(dirname "$0")/emulators/node_modules/.bin
[ -x "$emu_bin/fauxqs" ] || { echo "SKIP: fauxqs not installed (make emulators)"; exit 77; }
emu_bin=$(realpath "$emu_bin")

# photos: ten from ../shared when present, else the fixtures
faces=../shared/datasets/faces
if [ -d "$faces" ]; then
    mapfile -t photos < <(find "$faces" -name '*.jpg' -size -1000k | sort | head -10)
    big_src=$faces/face-api.js/groups/bbt1.jpg
else
    echo "note: $faces absent (../shared): using build/fixtures/sample1.jpg"
    photos=()
    for _ in $(seq 1 10); do photos+=("$fixtures/sample1.jpg"); done
    big_src=$fixtures/sample1.jpg
fi
[ ${#photos[@]} -ge 2 ] && [ -f "$big_src" ] || { echo "SKIP: no photos (../shared or $fixtures)"; exit 77; }

tmp=$(mktemp -d)
id=fr$$
br=${id}br
nodes=(emu api w1 w2 cl)
declare -A addr=([emu]=10.77.0.2 [api]=10.77.0.3 [w1]=10.77.0.4 [w2]=10.77.0.5 [cl]=10.77.0.10)
made=()
cleanup() {
    local ns p
    disown -a 2>/dev/null # no "Killed" lines for the servers
    for ns in "${made[@]}"; do
        # only processes this test started: those inside the namespaces it made
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    done
    for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# the network: one bridge namespace, one namespace per machine, a veth from each to the bridge
if ! ip netns add "$br" 2>"$tmp/netns.err"; then
    echo "SKIP: cannot make network namespaces (needs root and CAP_SYS_ADMIN): $(cat "$tmp/netns.err")"
    exit 77
fi
made+=("$br")
ip -n "$br" link add br0 type bridge && ip -n "$br" link set br0 up && ip -n "$br" link set lo up ||
    { echo "SKIP: cannot make a bridge in a namespace"; exit 77; }
i=0
for n in "${nodes[@]}"; do
    i=$((i + 1))
    ip netns add "$id$n" || { echo "FAIL: ip netns add $id$n"; exit 1; }
    made+=("$id$n")
    ip -n "$br" link add "p$i" type veth peer name eth0 netns "$id$n" &&
        ip -n "$br" link set "p$i" master br0 up &&
        ip -n "$id$n" addr add "${addr[$n]}/24" dev eth0 &&
        ip -n "$id$n" link set eth0 up && ip -n "$id$n" link set lo up ||
        { echo "SKIP: cannot make veth pairs between namespaces"; exit 77; }
done
inns() { local n=$1; shift; ip netns exec "$id$n" "$@"; }

# the emulator on its machine
emu_port=4566
inns emu env FAUXQS_PORT=$emu_port FAUXQS_HOST="${addr[emu]}" FAUXQS_LOGGER=false node "$emu_bin/fauxqs" >"$tmp/fauxqs.log" 2>&1 &
emu_url=http://${addr[emu]}:$emu_port
for _ in $(seq 1 100); do inns cl curl -s -o /dev/null "$emu_url/" && break; sleep 0.1; done
check "fauxqs answers on ${addr[emu]} from the client machine" inns cl curl -s -o /dev/null "$emu_url/"
# (fauxqs itself binds 0.0.0.0: FAUXQS_HOST only names it in URLs; its namespace has one address)

# the settings every machine shares; the endpoint is the local SigV4 proxy when there is one
export BACKEND=aws AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export SQS_REQ_QUEUE_NAME=jobs-$$ S3_IN_BUCKET=in-$$ S3_OUT_BUCKET=out-$$ FACEREC_MODELS=$models
export SQS_VISIBILITY_TIMEOUT_SECONDS=5 SQS_WAIT_TIME_SECONDS=2 JOB_TIMEOUT_SECONDS=60 MAX_WAIT_SECONDS=0
endpoint=$emu_url
if [ -f ../shared/tools/sigv4-proxy.js ]; then
    proxy=$(realpath ../shared/tools/sigv4-proxy.js)
    for n in api w1 w2; do
        # restarted when it exits (it crashes when a client drops a connection mid-response)
        inns "$n" bash -c "while :; do node '$proxy' 4567 '$emu_url' test test; sleep 0.05; done" >>"$tmp/proxy-$n.log" 2>&1 &
    done
    endpoint=http://127.0.0.1:4567
    sleep 0.5
else
    echo "note: ../shared/tools/sigv4-proxy.js is absent: signatures not verified"
fi
export AWS_ENDPOINT_URL=$endpoint

port=8000
inns api env HOST="${addr[api]}" PORT=$port DATA_DIR="$tmp/api" "$bin" api 2>"$tmp/api.log" &
url=http://${addr[api]}:$port
for _ in $(seq 1 100); do inns cl curl -sf "$url/health" >/dev/null && break; sleep 0.1; done
check "API answers /health on ${addr[api]} from the client machine" inns cl curl -sf -o /dev/null "$url/health"
check "... and not on the API machine's loopback" bash -c "! ip netns exec $id""api curl -s -o /dev/null --max-time 2 http://127.0.0.1:$port/health"
declare -A wpid
for n in w1 w2; do
    # ip netns exec and env exec, so $! is the worker itself. A large DETECT_MAX_SIDE makes the big photo of the second part a job of seconds
    ip netns exec "$id$n" env HOST="${addr[$n]}" METRICS_PORT=9100 DETECT_MAX_SIDE=5000 DATA_DIR="$tmp/$n" "$bin" worker 2>"$tmp/$n.log" &
    wpid[$n]=$!
done
for _ in $(seq 1 150); do
    grep -q "models loaded" "$tmp/w1.log" && grep -q "models loaded" "$tmp/w2.log" && break
    sleep 0.1
done
check "both workers started" bash -c "grep -q 'models loaded' '$tmp/w1.log' && grep -q 'models loaded' '$tmp/w2.log'"
sleep 0.5

# 1. jobs flow across machines: ten uploads at once, polled to done
post() { inns cl curl -s -o "$2" -F "inputFile=@$1" "$url/"; }
jobid() { sed -n 's/.*"job_id":"\([0-9a-f-]*\)".*/\1/p' "$1"; }
k=0
for p in "${photos[@]}"; do k=$((k + 1)); post "$p" "$tmp/up$k" & done
wait_jobs=$(jobs -p)
sleep 0.1
ids=()
for _ in $(seq 1 100); do
    ids=()
    for j in $(seq 1 "$k"); do [ -s "$tmp/up$j" ] && ids+=("$(jobid "$tmp/up$j")"); done
    [ ${#ids[@]} -eq "$k" ] && break
    sleep 0.1
done
check "all $k uploads answered with a job id" [ ${#ids[@]} -eq "$k" ]
poll() { # poll ID SECONDS: until the status is done (or error)
    local t
    for t in $(seq 1 $(($2 * 5))); do
        inns cl curl -s -o "$tmp/st" "$url/status/$1"
        grep -q '"status":"\(done\|error\)"' "$tmp/st" && return 0
        sleep 0.2
    done
    return 1
}
t0=$(date +%s%N)
ndone=0
for j in "${ids[@]}"; do poll "$j" 30 && grep -q '"status":"done"' "$tmp/st" && ndone=$((ndone + 1)); done
t1=$(date +%s%N)
check "all $k jobs done ($(( (t1 - t0) / 1000000 )) ms after the last upload was answered)" [ $ndone -eq "$k" ]
d1=$(grep -c 'job=.* done:' "$tmp/w1.log") d2=$(grep -c 'job=.* done:' "$tmp/w2.log")
echo "     worker 1 did $d1 jobs, worker 2 did $d2"
check "worker 1 (${addr[w1]}) did some of them" [ "$d1" -gt 0 ]
check "worker 2 (${addr[w2]}) did some of them" [ "$d2" -gt 0 ]
check "together exactly the $k" [ $((d1 + d2)) -eq "$k" ]
check "the API machine ran no job" bash -c "! grep -q 'done:' '$tmp/api.log'"

# 2. a worker cut off mid-job: a big photo (seconds of detection at DETECT_MAX_SIDE=5000). Once
# the queue counts it in flight, the worker running it (the one burning CPU: a worker's /metrics
# answers between jobs only) is frozen and its link set down; the other worker takes the job when
# the visibility timeout has passed, and the client polls it to done.
"$bin" bench fit "$big_src" 5000x3750 "$tmp/big.jpg"
check "both workers serve /metrics on their address" bash -c \
    "ip netns exec $id""cl curl -sf -o /dev/null http://${addr[w1]}:9100/metrics && ip netns exec $id""cl curl -sf -o /dev/null http://${addr[w2]}:9100/metrics"
inflight() { inns api "$bin" queue counts 2>/dev/null | sed -n 's/.*in.flight[^0-9]*\([0-9]*\).*/\1/p'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
post "$tmp/big.jpg" "$tmp/upbig"
tu=$(date +%s%N)
big=$(jobid "$tmp/upbig")
check "big photo uploaded" [ -n "$big" ]
held=0
for _ in $(seq 1 100); do [ "$(inflight)" = 1 ] && { held=1; break; }; sleep 0.05; done
check "a worker took the big job (one message in flight)" [ $held = 1 ]
c1=$(cpu "${wpid[w1]}") c2=$(cpu "${wpid[w2]}")
sleep 0.3
c1=$(( $(cpu "${wpid[w1]}") - c1 )) c2=$(( $(cpu "${wpid[w2]}") - c2 ))
victim=w1 other=w2
[ "$c2" -gt "$c1" ] && { victim=w2; other=w1; }
check "... it is busy with it (CPU ticks in 0.3 s: w1 $c1, w2 $c2)" [ $(( c1 + c2 )) -gt 0 ]
kill -STOP "${wpid[$victim]}"
ip -n "$id$victim" link set eth0 down
echo "     $victim frozen and cut off $(( ($(date +%s%N) - tu) / 1000000 )) ms after the upload, holding job $big"
check "... $victim had not finished it" bash -c "! grep -q 'job=$big done' '$tmp/$victim.log'"
t0=$(date +%s%N)
check "the client polls the big job to done" poll "$big" 60
t1=$(date +%s%N)
echo "     done $(( (t1 - t0) / 1000000 )) ms after the cut (visibility timeout ${SQS_VISIBILITY_TIMEOUT_SECONDS} s)"
check "... with faces in the result" grep -q '"faces":\[{' "$tmp/st"
check "... done by the other worker, $other" grep -q "job=$big done" "$tmp/$other.log"
check "... not by the cut-off $victim" bash -c "! grep -q 'job=$big done' '$tmp/$victim.log'"
check "... after the visibility timeout" [ $(( (t1 - tu) / 1000000 )) -ge $((SQS_VISIBILITY_TIMEOUT_SECONDS * 1000)) ]
grep "job=$big done" "$tmp/$other.log" | sed 's/^/     /'
kill "${wait_jobs[@]}" 2>/dev/null

echo "$checks checks, $failed failed"
if [ $failed -gt 0 ]; then
    for f in api w1 w2; do echo "--- $f.log (tail)"; tail -5 "$tmp/$f.log"; done
    exit 1
fi
