#!/usr/bin/env bash
# Checks that the Debian packages facerec needs are installed; prints nothing when they all are.
# As root it installs the missing ones (apt-get update, then apt-get install); otherwise it prints
# the command to run and exits 1. Exit status: 0 all present (or installed now), 1 otherwise.
# --test adds what only the tests need (Debian's chromium for the web page test).
set -euo pipefail

packages=(
    pkg-config clang
    libxnnpack-dev libpthreadpool-dev libcpuinfo-dev
    libjpeg62-turbo-dev libpng-dev libwebp-dev
    libsqlite3-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev libjansson-dev sqlite3 curl
    nodejs npm
)
if [ "${1:-}" = --test ]; then packages+=(chromium); fi

die() {
    printf 'deps.sh: %s\n' "$*" >&2
    exit 1
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script expects Debian (bookworm)"

# One dpkg-query for all packages (one call each takes ~0.3 s in all). It exits 1 when some name
# is unknown to dpkg, which only means "not installed" here, hence the '|| true'. A package can be
# listed once per architecture; any installed instance counts.
declare -A installed=()
while read -r name _want _err state; do
    if [ "$state" = installed ]; then installed[${name%%:*}]=1; fi
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for p in "${packages[@]}"; do
    if [ -n "${installed[$p]:-}" ]; then continue; fi
    # The machine's Node.js may come from NodeSource: its 'nodejs' package ships npm itself and
    # conflicts with Debian's 'npm' package, so there a working command is what counts.
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
    missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    install=(apt-get install -y --no-install-recommends "${missing[@]}")
    if [ "$(id -u)" -ne 0 ]; then
        printf 'deps.sh: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf 'deps.sh: run as root:\n    apt-get update && %s\n' "${install[*]}" >&2
        exit 1
    fi
    printf 'deps.sh: installing missing Debian packages: %s\n' "${missing[*]}" >&2
    printf '+ apt-get update -qq\n' >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    printf '+ %s\n' "${install[*]}" >&2
    DEBIAN_FRONTEND=noninteractive "${install[@]}" || die "apt-get install failed (command above)"
fi

command -v node >/dev/null 2>&1 || die "'node' command not found after installing nodejs"
command -v npm >/dev/null 2>&1 || die "'npm' command not found after installing npm"
