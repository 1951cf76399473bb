#!/usr/bin/env bash
# scripts/deps.sh: install the Debian 12 packages tlsrptd needs.
#   scripts/deps.sh build   compiler, CMake and the libraries (default); libidn2
#                           names the A-label of a Unicode domain (tlsrptd record)
#   scripts/deps.sh test    build + what the test suite uses (python3, clang
#                           for libFuzzer, clang-format, valgrind, curl, openssl,
#                           OpenSMTPD + swaks for the end-to-end mail test,
#                           dnsmasq for tlsrptd record --check, promtool
#                           (prometheus) and ip (iproute2) for the API tests,
#                           postgresql-15 for the throwaway server of the *_pg tests)
# Installs only what is missing; runs apt-get update at most once.
set -euo pipefail

build_pkgs=(gcc cmake make pkg-config libmicrohttpd-dev libjansson-dev libgmime-3.0-dev
            libsqlite3-dev zlib1g-dev libidn2-dev libpq-dev)
test_pkgs=(python3 clang libclang-rt-14-dev clang-format valgrind curl openssl sqlite3
           opensmtpd swaks dnsmasq-base prometheus iproute2 postgresql-15)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
    want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
