#!/usr/bin/env bash
# test_cli: the facerec command line: help, nn info, nn run (against ../shared/golden when
# present), bench nn --json, and exit codes for bad usage.
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
golden=../shared/golden
checks=0 failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    checks=$((checks + 1))
    if "$@"; then echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
[ -f "$models/rnet.tflite" ] || { echo "SKIP: models absent (make models)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check "help lists nn and bench" bash -c "'$bin' help | grep -q '^  nn' && '$bin' help | grep -q '^  bench'"
check "--version" bash -c "'$bin' --version | grep -q '^facerec [0-9]'"
check "unknown command exits 2" bash -c "'$bin' frobnicate 2>/dev/null; [ \$? -eq 2 ]"
check "nn without arguments exits 2" bash -c "'$bin' nn 2>/dev/null; [ \$? -eq 2 ]"
check "nn --help exits 0" bash -c "'$bin' nn --help | grep -q usage"
info=$("$bin" nn info "$models/MobileFaceNet.tflite")
check "nn info: params" grep -q '^params   1292992$' <<<"$info"
check "nn info: MACs of batch 2" grep -q '^MACs     468210688$' <<<"$info"
check "nn info: 35 CONV_2D" grep -qE '^  CONV_2D +35$' <<<"$info"
check "nn info: input shape" grep -q 'input    \[2,112,112,3\]' <<<"$info"
check "nn info on a missing file fails in one line" bash -c \
    "out=\$('$bin' nn info /nonexistent.tflite 2>&1); [ \$? -eq 1 ] && [ \$(wc -l <<<\"\$out\") -eq 1 ]"
printf 'not a model at all, only text' >"$tmp/bad.tflite"
check "nn info on a text file names the problem" bash -c \
    "'$bin' nn info '$tmp/bad.tflite' 2>&1 | grep -q 'not a TFLite model'"
head -c 100 "$models/rnet.tflite" >"$tmp/short.f32"
check "nn run with a wrong-size input fails" bash -c \
    "'$bin' nn run '$models/rnet.tflite' --input '$tmp/short.f32' --output '$tmp/o' 2>/dev/null; [ \$? -eq 1 ]"
if [ -f "$golden/onet.in.f32" ]; then
    "$bin" nn run "$models/onet.tflite" --input "$golden/onet.in.f32" --output "$tmp/onet"
    for i in 0 1 2; do
        check "nn run onet out$i matches golden" node -e "
            const fs = require('fs');
            const f = p => { const b = fs.readFileSync(p); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)); };
            const a = f('$tmp/onet.out$i.f32'), b = f('$golden/onet.out$i.f32');
            let e = 0, m = 0;
            for (let k = 0; k < b.length; k++) { e = Math.max(e, Math.abs(a[k] - b[k])); m = Math.max(m, Math.abs(b[k])); }
            process.exit(a.length === b.length && e / m <= 1e-4 ? 0 : 1);"
    done
    "$bin" nn run "$models/pnet.tflite" --input "$golden/pnet.in.f32" --shape 1,384,288,3 --output "$tmp/pnet"
    check "nn run pnet --shape writes two outputs of the right size" bash -c \
        "[ \$(stat -c %s '$tmp/pnet.out0.f32') -eq 207944 ] && [ \$(stat -c %s '$tmp/pnet.out1.f32') -eq 415888 ]"
else
    echo "note: $golden is absent: nn run not compared with golden outputs"
fi
check ".env.example is what 'help config --env' prints" bash -c "diff -q .env.example <('$bin' help config --env) >/dev/null"
check "README's configuration table is what 'help config --markdown' prints" bash -c \
    "'$bin' help config --markdown | while IFS= read -r line; do grep -qF -- \"\$line\" README.md || exit 1; done"
check "help config lists every setting" bash -c "'$bin' help config | grep -q SQS_VISIBILITY_TIMEOUT_SECONDS"
json=$("$bin" bench nn --repeat 1 --json)
check "bench nn --json is JSON with the expected models" node -e "
    const j = JSON.parse(process.argv[1]);
    const names = j.models.map(m => m.name);
    const ok = ['MobileFaceNet', 'P-Net pyramid 640x480', 'R-Net per crop', 'O-Net per crop']
        .every(n => names.includes(n)) && j.models.every(m => m.median_ms > 0 && m.gflops > 0);
    process.exit(ok ? 0 : 1);" "$json"
echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
