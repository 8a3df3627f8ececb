#!/usr/bin/env bash
# test_cli: the facerec command line: help, nn info, nn run (against ../shared/golden when
# present), bench nn --json, exit codes for bad usage; and the conventions every command of
# `facerec help` must keep: --help/-h and `help COMMAND` print its manual page on stdout (exit 0);
# a usage error is one line "facerec: ..." on stderr and exit 2; failures one line and exit 1;
# progress only on a terminal.
set -u
bin=${FACEREC_BIN:-build/facerec}
models=${FACEREC_MODELS:-models}
golden=../shared/golden
. "$(dirname "${BASH_SOURCE[0]}")/check.sh"
need_bin "$bin"
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
sed -n '/^<!-- config-table:begin -->$/,/^<!-- config-table:end -->$/p' README.md | sed '1d;$d' >"$tmp/readme-table"
check "README's configuration table is what 'help config --markdown' prints (scripts/readme-config.sh)" \
    diff "$tmp/readme-table" <("$bin" help config --markdown)
check "help config lists every setting" bash -c "'$bin' help config | grep -q SQS_VISIBILITY_TIMEOUT_SECONDS"
json=$("$bin" bench nn --repeat 1 --json)
check "bench nn --json is JSON with the expected models" node -e "
    const j = JSON.parse(process.argv[1]);
    const names = j.models.map(m => m.name);
    const ok = ['MobileFaceNet', 'P-Net pyramid 640x480', 'R-Net per crop', 'O-Net per crop']
        .every(n => names.includes(n)) && j.models.every(m => m.median_ms > 0 && m.gflops > 0);
    process.exit(ok ? 0 : 1);" "$json"
# ---- conventions, for every command `facerec help` lists (so a new one must keep them too) ----
export DATA_DIR=$tmp/data # nothing below may create ./data
commands=$("$bin" help | sed -n '/^commands:$/,/^$/p' | sed -n 's/^  \([a-z][a-z0-9-]*\) .*/\1/p')
check "help lists the commands (found: $(tr '\n' ' ' <<<"$commands"))" [ "$(wc -l <<<"$commands")" -ge 12 ]
for c in $commands; do
    "$bin" "$c" --help >"$tmp/h.out" 2>"$tmp/h.err"; rc=$?
    check "$c --help: exit 0, on stdout, nothing on stderr" [ $rc = 0 -a -s "$tmp/h.out" -a ! -s "$tmp/h.err" ]
    missing=$(for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES; do grep -qx "$s" "$tmp/h.out" || echo "$s"; done | tr '\n' ' ')
    check "$c --help: a manual page (NAME ... EXAMPLES)${missing:+; missing: $missing}" [ -z "$missing" ]
    check "$c --help: NAME is facerec $c" grep -q "^    facerec $c - " "$tmp/h.out"
    check "$c --help: exit status 0, 1, 2 documented" bash -c "grep -q '^    0  ' '$tmp/h.out' && grep -q '^    1  ' '$tmp/h.out' && grep -q '^    2  ' '$tmp/h.out'"
    check "$c -h: the same page" cmp -s "$tmp/h.out" <("$bin" "$c" -h 2>/dev/null)
    check "help $c: the same page" cmp -s "$tmp/h.out" <("$bin" help "$c" 2>/dev/null)
    "$bin" "$c" --no-such-option >"$tmp/u.out" 2>"$tmp/u.err"; rc=$?
    check "$c --no-such-option: exit 2, one line 'facerec: ...' on stderr, nothing on stdout (got $rc: $(head -c 200 "$tmp/u.err"))" \
        [ $rc = 2 -a ! -s "$tmp/u.out" -a "$(wc -l <"$tmp/u.err")" = 1 ] && grep -q '^facerec: ' "$tmp/u.err"
done
check "nothing created ./data" [ ! -e "$tmp/data" ]
one_line_exit() { # one_line_exit STATUS COMMAND...: exits STATUS with one line "facerec: ..." on stderr
    local want=$1; shift
    "$@" >/dev/null 2>"$tmp/e.err"; local rc=$?
    [ $rc = "$want" ] && [ "$(wc -l <"$tmp/e.err")" = 1 ] && grep -q '^facerec: ' "$tmp/e.err"
}
check "no command: exit 2, one line" one_line_exit 2 "$bin"
check "help NOSUCH: exit 2, one line" one_line_exit 2 "$bin" help frobnicate
check "help config --bogus: exit 2, one line" one_line_exit 2 "$bin" help config --bogus
check "--help and help: the command list on stdout, exit 0" bash -c "'$bin' --help | grep -q '^  serve ' && '$bin' help | grep -q '^  serve '"
check "detect on a missing file: exit 1, one line" one_line_exit 1 "$bin" detect /nonexistent.jpg
check "identify with a missing gallery: exit 1, one line" one_line_exit 1 "$bin" identify --gallery /nonexistent.gallery x.jpg
check "a setting out of bounds: exit 1, one line" one_line_exit 1 env PORT=0 "$bin" serve
check "queue counts with a bad BACKEND: exit 1, one line" one_line_exit 1 env BACKEND=floppy "$bin" queue counts
check "queue counts: JSON" node -e "const j = JSON.parse(require('child_process').execFileSync('$bin', ['queue', 'counts']));
    process.exit(['waiting', 'in_flight', 'delayed', 'dead'].every(k => Number.isInteger(j[k])) ? 0 : 1)"
fixture=${FACEREC_FIXTURES:-build/fixtures}/sample1.jpg
if [ -f "$fixture" ]; then
    check "bench pipeline --json: JSON" node -e "const j = JSON.parse(require('child_process').execFileSync('$bin', ['bench', 'pipeline', '--repeat', '1', '--json', '$fixture']));
        process.exit(j.photos.length === 1 && j.photos[0].faces > 0 && j.photos[0].total_ms > 0 ? 0 : 1)"
    # progress lines only when stderr is a terminal
    mkdir -p "$tmp/people/Someone"; cp "$fixture" "$tmp/people/Someone/a.jpg"
    "$bin" enroll --gallery "$tmp/g" "$tmp/people" >/dev/null 2>"$tmp/enroll.err"
    check "enroll: no progress line when stderr is not a terminal" bash -c "! grep -q 'enrolling:' '$tmp/enroll.err'"
    if command -v script >/dev/null; then
        script -qec "'$bin' enroll --gallery '$tmp/g2' '$tmp/people' >/dev/null" /dev/null >"$tmp/enroll.tty" 2>&1
        check "enroll: a progress line on a terminal" grep -q 'enrolling: person 1/1' "$tmp/enroll.tty"
        script -qec "'$bin' bench pipeline --repeat 1 '$fixture' >/dev/null" /dev/null >"$tmp/bench.tty" 2>&1
        check "bench: a progress line on a terminal" grep -q 'bench: photo 1/1' "$tmp/bench.tty"
    fi
    "$bin" bench pipeline --repeat 1 "$fixture" >/dev/null 2>"$tmp/bench.err"
    check "bench: no progress line when stderr is not a terminal" [ ! -s "$tmp/bench.err" ]
else
    echo "note: $fixture absent (make fixtures): bench pipeline and progress lines not checked"
fi
echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ]
