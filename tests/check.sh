# check.sh: sourced by the shell tests. `check DESCRIPTION COMMAND...` counts one check, passing
# when COMMAND succeeds, and prints "ok" or "FAIL" with the description ($checks, $failed hold the
# counts for the test's closing line). need_bin skips (exit 77) when the binary is not built.
checks=0 failed=0
check() {
    local what=$1; shift
    checks=$((checks + 1))
    if "$@"; then echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}
need_bin() { [ -x "$1" ] || { echo "SKIP: $1 not built"; exit 77; }; }
