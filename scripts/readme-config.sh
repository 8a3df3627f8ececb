#!/usr/bin/env bash
# Rewrites the configuration table of README.md (between the markers
# <!-- config-table:begin --> and <!-- config-table:end -->) from `facerec help config --markdown`,
# the one table in src/util/config.c. tests/test_cli.sh fails while the two differ.
# Usage: scripts/readme-config.sh [BINARY]   (default build/facerec). Exit 0 ok, 1 error.
set -euo pipefail
bin=${1:-build/facerec}
readme=$(dirname "$0")/../README.md
table=$(mktemp)
trap 'rm -f "$table" "$table.new"' EXIT
"$bin" help config --markdown >"$table"
grep -q '^<!-- config-table:begin -->$' "$readme" && grep -q '^<!-- config-table:end -->$' "$readme" ||
    { echo "readme-config.sh: the markers are missing from README.md" >&2; exit 1; }
awk -v table="$table" '
    /^<!-- config-table:begin -->$/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /^<!-- config-table:end -->$/ { skip = 0 }
    !skip' "$readme" >"$table.new"
cat "$table.new" >"$readme"
