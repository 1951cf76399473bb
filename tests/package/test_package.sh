#!/usr/bin/env bash
# tests/package/test_package.sh: build the Debian package and use it as an
# operator would, on this machine (root; no systemd needed):
#   1. dpkg-buildpackage -us -uc -b on a copy of the tree; lintian (no error,
#      no warning that is not overridden with a reason)
#   2. apt install ./tlsrptd_VERSION_ARCH.deb; tlsrptd --version; man -w for
#      both pages; systemd-analyze verify on the installed unit; the tlsrptd
#      user, /etc/tlsrptd (root:tlsrptd), /var/lib/tlsrptd (tlsrptd), the
#      unit enabled
#   3. the INSTALLED binary started the way the unit starts it (its ExecStart,
#      as user tlsrptd with setpriv, cwd /, $CREDENTIALS_DIRECTORY holding
#      tls.crt and tls.key as LoadCredential= would), on free ports of
#      127.0.0.1 (HTTP and HTTPS added as flags); a report POSTed over HTTPS;
#      `tlsrptd summary` with NO flags finds /etc/tlsrptd/tlsrptd.conf and the
#      database and shows it; SIGHUP reloads the credentials; SIGTERM exits 0
#   4. apt purge: nothing of the package is left, and no process runs as
#      tlsrptd
# Needs: debhelper, lintian, scdoc and the build dependencies, curl, openssl,
# man-db, systemd (systemd-analyze), util-linux (setpriv) -- scripts/deps.sh test.
# Environment: KEEP=1 keeps the work directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
unset TLSRPTD_CONFIG # the installed /etc/tlsrptd/tlsrptd.conf is the point here

fail() {
    echo "package test: FAIL: $*" >&2
    exit 1
}
say() { printf 'package test: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || fail "needs root (apt install, setpriv)"
for tool in dpkg-buildpackage lintian scdoc curl openssl man setpriv systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool is missing: scripts/deps.sh test"
done

work=$(mktemp -d /tmp/tlsrptd-package.XXXXXX)
chmod 0711 "$work" # the service user reaches its credentials below it
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if dpkg-query -W -f='${Status}' tlsrptd 2>/dev/null | grep -q installed; then
        apt-get -o DPkg::Lock::Timeout=300 purge -y -qq tlsrptd >/dev/null 2>&1 || true
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. build and lint ----------------------------------------------------------------------
version=$(cd "$top" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
src="$work/tlsrptd-$version"
mkdir -p "$src"
(cd "$top" && git ls-files -co --exclude-standard | tar -cf - -T -) | tar -xf - -C "$src"
say "dpkg-buildpackage -us -uc -b (log: $work/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)" >"$work/build.log" 2>&1); then
    tail -40 "$work/build.log" >&2
    fail "dpkg-buildpackage failed"
fi
deb="$work/tlsrptd_${version}_${arch}.deb"
[ -f "$deb" ] || fail "no $deb"
say "built $(basename "$deb")"
lrc=0
lintian --fail-on error,warning "$work/tlsrptd_${version}_${arch}.changes" \
    >"$work/lintian.log" 2>&1 || lrc=$?
grep -v '^running with root privileges' "$work/lintian.log" || true
[ "$lrc" = 0 ] || fail "lintian reports errors or warnings (explain or override them in debian/)"
say "lintian: no error, no warning"

# ---- 2. install -----------------------------------------------------------------------------
if dpkg-query -W -f='${Status}' tlsrptd 2>/dev/null | grep -q installed; then
    apt-get -o DPkg::Lock::Timeout=300 purge -y -qq tlsrptd >/dev/null
fi
say "apt install ./$(basename "$deb")"
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$deb" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "apt install failed"; }

[ "$(command -v tlsrptd)" = /usr/bin/tlsrptd ] || fail "tlsrptd is not /usr/bin/tlsrptd"
got=$(tlsrptd --version)
[ "$got" = "tlsrptd ${version%%-*}" ] || fail "tlsrptd --version says '$got'"
man -w tlsrptd >/dev/null || fail "man -w tlsrptd"
man -w tlsrptd.conf >/dev/null || fail "man -w tlsrptd.conf"
man -w 5 tlsrptd.conf | grep -q man5 || fail "tlsrptd.conf is not in section 5"
unit=/lib/systemd/system/tlsrptd.service
[ -f "$unit" ] || fail "no $unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
[ -L /etc/systemd/system/multi-user.target.wants/tlsrptd.service ] ||
    fail "the unit is not enabled"
getent passwd tlsrptd >/dev/null || fail "no tlsrptd user"
[ "$(stat -c '%U:%G %a' /etc/tlsrptd/tlsrptd.conf)" = "root:tlsrptd 640" ] ||
    fail "/etc/tlsrptd/tlsrptd.conf is $(stat -c '%U:%G %a' /etc/tlsrptd/tlsrptd.conf)"
[ "$(stat -c '%U:%G %a' /etc/tlsrptd)" = "root:tlsrptd 750" ] || fail "/etc/tlsrptd"
[ "$(stat -c '%U' /var/lib/tlsrptd)" = tlsrptd ] || fail "/var/lib/tlsrptd is not tlsrptd's"
grep -q '^RestartPreventExitStatus=64 78$' "$unit" || fail "RestartPreventExitStatus"
setpriv --reuid=tlsrptd --regid=tlsrptd --init-groups cat /etc/tlsrptd/tlsrptd.conf >/dev/null ||
    fail "the tlsrptd user cannot read its configuration"
say "installed: $(tlsrptd --version), man pages, unit verified and enabled"

# ---- 3. run it as the unit would ------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
creds="$work/credentials" # what LoadCredential=tls.crt:... and tls.key:... make
mkdir -p "$creds"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$creds/tls.key" -out "$creds/tls.crt" >/dev/null 2>&1
cp "$creds/tls.crt" "$work/ca.crt"
chown -R tlsrptd:tlsrptd "$creds"
chmod 0500 "$creds"
chmod 0400 "$creds"/*
http_port=$(free_port)
https_port=$(free_port)
read -r -a exec_start < <(sed -n 's/^ExecStart=//p' "$unit")
[ "${exec_start[0]}" = /usr/bin/tlsrptd ] || fail "ExecStart is ${exec_start[*]}"
say "as tlsrptd: ${exec_start[*]} --listen 127.0.0.1:$http_port --listen-tls 127.0.0.1:$https_port"
(cd / && exec setpriv --reuid=tlsrptd --regid=tlsrptd --init-groups --inh-caps=-all \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CREDENTIALS_DIRECTORY="$creds" \
    "${exec_start[@]}" --listen "127.0.0.1:$http_port" --listen-tls "127.0.0.1:$https_port" \
    >"$work/serve.log" 2>&1) &
daemon_pid=$!
ready=0
for _ in $(seq 300); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    if curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
[ "$ready" = 1 ] || { cat "$work/serve.log" >&2; fail "the installed daemon did not come up"; }
[ "$(stat -c %U "/proc/$daemon_pid")" = tlsrptd ] || fail "the daemon does not run as tlsrptd"
status=$(curl -sS -o "$work/post.json" -w '%{http_code}' --cacert "$work/ca.crt" \
    -H 'Content-Type: application/tlsrpt+gzip' --data-binary @"$top/samples/report.json.gz" \
    "https://127.0.0.1:$https_port/tlsrpt")
[ "$status" = 201 ] || { cat "$work/post.json" "$work/serve.log" >&2; fail "POST answered $status"; }
say "POST over HTTPS (credential:tls.crt): 201"

# summary with no flags, from another directory: /etc/tlsrptd/tlsrptd.conf -> its db
out=$(cd "$work" && tlsrptd summary) || fail "tlsrptd summary failed"
echo "$out" | sed 's/^/    /'
echo "$out" | grep -Eq "^mail\.example +1200 +7 " || fail "summary does not show the report"
reports=$(cd "$work" && tlsrptd summary --format json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["totals"]["reports"])')
[ "$reports" = 1 ] || fail "summary --format json counts $reports reports"
[ "$(stat -c %U /var/lib/tlsrptd/tlsrptd.db)" = tlsrptd ] || fail "the database is not tlsrptd's"

kill -HUP "$daemon_pid"
for _ in $(seq 100); do
    grep -q 'certificate and key reloaded' "$work/serve.log" && break
    sleep 0.1
done
grep -q 'certificate and key reloaded' "$work/serve.log" || fail "SIGHUP did not reload"
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[ "$rc" = 0 ] || { cat "$work/serve.log" >&2; fail "the daemon exited $rc after SIGTERM"; }
say "SIGHUP reloaded the credentials; SIGTERM: exit 0"

# ---- 4. purge -------------------------------------------------------------------------------
apt-get -o DPkg::Lock::Timeout=300 purge -y -qq tlsrptd >"$work/purge.log" 2>&1 ||
    { cat "$work/purge.log" >&2; fail "apt purge failed"; }
for gone in /usr/bin/tlsrptd /etc/tlsrptd "$unit" /var/lib/tlsrptd /var/log/tlsrptd \
    /etc/logrotate.d/tlsrptd /etc/systemd/system/multi-user.target.wants/tlsrptd.service; do
    [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "$gone is left after purge"
done
if pgrep -u tlsrptd >/dev/null; then
    ps -u tlsrptd -o pid,args >&2
    fail "processes of tlsrptd are left after purge"
fi
say "purged: no file of the package and no tlsrptd process left"
say "passed"
