#!/usr/bin/env bash
# scripts/deps.sh: install the Debian 12 packages tlsrptd needs.
#   scripts/deps.sh build   compiler, CMake and the libraries (default); libidn2
#                           names the A-label of a Unicode domain (tlsrptd record);
#                           GnuTLS checks certificates; scdoc builds the man pages;
#                           libcurl (GnuTLS flavour) reads IMAP mailboxes and sends
#                           alerts (webhooks, SMTP); libopendkim verifies the DKIM
#                           signatures of mailed reports
#                           libjs-chart.js is the Chart.js compiled into the console
#   scripts/deps.sh test    build + what the test suite uses (python3, clang
#                           for libFuzzer, clang-format, valgrind, curl, openssl,
#                           OpenSMTPD + swaks for the end-to-end mail test,
#                           dnsmasq for tlsrptd record --check, promtool
#                           (prometheus) and ip (iproute2) for the API tests,
#                           debhelper, lintian, man-db and systemd for the
#                           Debian package test; Dovecot for the IMAP tests;
#                           python3-dkim signs the mails of the DKIM test;
#                           chromium, chromium-driver and python3-selenium for
#                           the console's browser test; postgresql-15 for the
#                           throwaway server of the *_pg tests; strace shows
#                           that an answer waits for its commit's sync)
# Installs only what is missing; runs apt-get update at most once.
set -euo pipefail

build_pkgs=(gcc cmake make pkg-config libmicrohttpd-dev libjansson-dev libgmime-3.0-dev
            libsqlite3-dev zlib1g-dev libidn2-dev libpq-dev libcurl4-gnutls-dev
            libjs-chart.js)
# GnuTLS checks a certificate and key before a reload; scdoc builds the man pages
build_pkgs+=(libgnutls28-dev scdoc)
# libopendkim verifies the DKIM signatures of mailed reports
build_pkgs+=(libopendkim-dev)
test_pkgs=(python3 clang libclang-rt-14-dev clang-format valgrind curl openssl sqlite3
           opensmtpd swaks dnsmasq-base prometheus iproute2 dovecot-imapd
           postgresql-15)
# the package test: build (debhelper, dpkg-dev), lintian, man -w (man-db),
# systemd-analyze verify (systemd), setpriv (util-linux), adduser
test_pkgs+=(debhelper dpkg-dev lintian man-db systemd util-linux adduser)
# it_dkim signs report mails with dkimpy
test_pkgs+=(python3-dkim)
# it_console drives the console in headless Chromium
test_pkgs+=(chromium chromium-driver python3-selenium)
# it_serve and it_cli trace the daemon's syncs and answers
test_pkgs+=(strace)

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
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
