#!/usr/bin/env bash
# test_deploy: deploy/ is consistent with the code. k8s.yaml and keda.yaml parse (node, yaml
# from tests/emulators) and set only env names that are facerec settings (`facerec help config
# --env`), with the worker's grace period, probes and resources the README describes
# (tests/deploy_check.cjs); the Dockerfile installs every build package of scripts/deps.sh,
# fetches the models with scripts/models.sh and runs as non-root. Not a cluster test: nothing
# here is applied or built (see deploy/README.md).
set -u
bin=${FACEREC_BIN:-build/facerec}
here=$(dirname "$0")
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 77; }
[ -f "$here/emulators/node_modules/yaml/package.json" ] || { echo "SKIP: yaml (npm) not installed (scripts/emulators.sh)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
"$bin" help config --env | sed -n 's/^\([A-Z][A-Z0-9_]*\)=.*/\1/p' >"$tmp/names"
[ -s "$tmp/names" ] || { echo "FAIL facerec help config --env lists no settings"; exit 1; }
node "$here/deploy_check.cjs" "$here/../deploy" "$tmp/names" | tee "$tmp/out"

df=$here/../deploy/Dockerfile
# the build packages of deps.sh (not the test-only browser nor the sqlite3 shell)
mapfile -t pkgs < <(sed -n '/^packages=(/,/^)/p' "$here/../scripts/deps.sh" | sed '1d;$d' | tr ' ' '\n' | grep -v '^$' | grep -vx 'chromium\|sqlite3')
missing=()
for p in "${pkgs[@]}"; do grep -qw -- "$p" "$df" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ] && [ ${#pkgs[@]} -gt 5 ]; then echo "ok   Dockerfile installs the ${#pkgs[@]} build packages of scripts/deps.sh"
else echo "FAIL Dockerfile lacks packages of scripts/deps.sh: ${missing[*]}"; failed=1; fi
if grep -q '^FROM debian:bookworm' "$df" && grep -q 'scripts/models.sh' "$df" && grep -Eq '^USER [1-9]' "$df"; then
    echo "ok   Dockerfile: Debian bookworm, models fetched by scripts/models.sh, runs as a non-root user"
else echo "FAIL Dockerfile: bookworm base, scripts/models.sh and a non-root USER expected"; failed=1; fi
checks=$(( $(grep -c '^ok' "$tmp/out") + $(grep -c '^FAIL' "$tmp/out") + 2 ))
failed=$(( failed + $(grep -c '^FAIL' "$tmp/out") ))
grep -q '^ok' "$tmp/out" || failed=$((failed + 1)) # the node check did not run
echo "$checks checks, $failed failed"
[ $failed -eq 0 ]
