#!/usr/bin/env bash
# Runs each test program given, prints one line per program and the closing count line.
# A program that exits 77 is skipped (it prints why); any other non-zero exit is a failure.
set -u
pass=0 fail=0 skip=0 failed=()
for t in "$@"; do
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    case $rc in
    0) pass=$((pass + 1)); printf 'PASS %-28s %s\n' "$name" "$(tail -n 1 <<<"$out")" ;;
    77) skip=$((skip + 1)); printf 'SKIP %-28s %s\n' "$name" "$(grep -m1 '^SKIP' <<<"$out")" ;;
    *) fail=$((fail + 1)); failed+=("$name"); printf 'FAIL %-28s (exit %d)\n' "$name" "$rc"
       sed 's/^/    /' <<<"$out" | tail -n 40 ;;
    esac
done
echo "${pass} passed, ${fail} failed, ${skip} skipped"
[ "$fail" -eq 0 ]
