#!/usr/bin/env bash
# scripts/test.sh: the whole test suite, as CI runs it, on a fresh Debian 12.
#  1. installs the Debian packages (scripts/deps.sh test)
#  2. checks formatting (clang-format, .clang-format)
#  3. builds Release and runs every ctest test (unit, integration, fuzz replay)
#  4. builds the ASan/UBSan type and runs every test again
#  5. runs the unit tests and the CLI (ingest, maildir, validate, summary, record)
#     under valgrind (memcheck, GLib suppressions)
#  6. the Debian package (as root): built, linted, installed, run as the unit
#     runs it, purged (tests/package/test_package.sh)
#  7. fuzz smoke: each libFuzzer target for FUZZ_SECONDS (default 60; 0 skips)
# Environment: JOBS (default nproc), FUZZ_SECONDS, SKIP_VALGRIND=1, SKIP_PACKAGE=1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-60}
# no config file for the commands run here: an installed /etc/tlsrptd/tlsrptd.conf must
# not change what the tests see (the package step below sets its own)
export TLSRPTD_CONFIG=

# each step with the time it started, so that a log shows where a run's time went
step() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# dnsmasq on 127.0.0.1 serving the TXT records `tlsrptd record --check` asks
# for (valgrind step). The port must be free for UDP and TCP (dnsmasq binds
# both); it is ready when it answers, not after a sleep; a port taken in the
# meantime gets another try; on failure its log is printed. Sets dnsport and
# dnsmasq_pid.
start_dnsmasq() {
    local dir=$1 try i
    for try in 1 2 3 4 5; do
        dnsport=$(python3 -c 'import socket
for _ in range(50):
    t, u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]; u.bind(("127.0.0.1", p))
        print(p); break
    except OSError:
        pass
    finally:
        t.close(); u.close()')
        dnsmasq --no-daemon --port="$dnsport" --listen-address=127.0.0.1 --bind-interfaces \
            --no-resolv --no-hosts --conf-file=/dev/null --local=/example/ --pid-file= \
            "--txt-record=_smtp._tls.mail.example,v=TLSRPTv1;, rua=https://collector.example/tlsrpt" \
            "--txt-record=_smtp._tls.two.example,v=TLSRPTv1; rua=mailto:a@two.example" \
            "--txt-record=_smtp._tls.two.example,v=TLSRPTv1; rua=mailto:b@two.example" \
            >"$dir/dnsmasq.log" 2>&1 &
        dnsmasq_pid=$!
        trap 'kill "$dnsmasq_pid" 2>/dev/null || true' EXIT
        for i in $(seq 100); do
            if build-ci-release/tlsrptd record --check --domain mail.example --dns-timeout 1 \
                --dns "127.0.0.1:$dnsport" --rua https://collector.example/tlsrpt >/dev/null 2>&1; then
                return 0
            fi
            kill -0 "$dnsmasq_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$dnsmasq_pid" 2>/dev/null || true
        wait "$dnsmasq_pid" 2>/dev/null || true
        echo "dnsmasq on 127.0.0.1:$dnsport did not answer (try $try); its log:" >&2
        cat "$dir/dnsmasq.log" >&2
    done
    echo "dnsmasq could not be started" >&2
    exit 1
}

step "dependencies"
scripts/deps.sh test

step "format check"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')
clang-format --dry-run -Werror "${sources[@]}"

for type in Release Asan; do
    dir=build-ci-$(echo "$type" | tr 'A-Z' 'a-z')
    step "build $type ($dir)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" >/dev/null
    cmake --build "$dir" -j"$jobs"
    step "ctest $type"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs"
done

if [ "${SKIP_VALGRIND:-0}" != 1 ]; then
    step "valgrind (unit tests and the CLI on the corpus, Release build)"
    vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=99)
    export TLSRPTD_VALGRIND=1
    for t in build-ci-release/tests/test_*; do
        echo "valgrind $(basename "$t")"
        "${vg[@]}" "$t" "$top/samples" "$top/../shared/corpus" >/dev/null
    done
    vgdb=$(mktemp -d)
    mkdir -p "$vgdb/md/tmp" "$vgdb/md/new" "$vgdb/md/cur"
    cp "$top"/../shared/corpus/real/*.eml "$top"/samples/*.eml "$vgdb/md/new/"
    # for tlsrptd record: a config, and a dnsmasq on 127.0.0.1 that --check asks
    printf 'public_url = https://collector.example/tlsrpt\nreport_mailbox = tlsrpt@mail.example\n' \
        >"$vgdb/record.conf"
    start_dnsmasq "$vgdb"
    rconf="-c $vgdb/record.conf"
    for cmd in "ingest --db $vgdb/t.db $top/samples $top/../shared/corpus/real" \
               "maildir --db $vgdb/m.db $vgdb/md" \
               "validate $top/samples $top/../shared/corpus/real" \
               "summary --db $vgdb/t.db --format json" \
               "ingest --db $vgdb/d.db --domains example.com,test.xmox.nl $top/../shared/corpus/real" \
               "prune --db $vgdb/t.db --retention 1000d --quarantine-retention 1s" \
               "forget --db $vgdb/t.db --domain example.com" \
               "alerts --evaluate --db $vgdb/t.db --alert-email ops@example.com --alert-sendmail /bin/cat" \
               "alerts --db $vgdb/t.db --format json" \
               "record $rconf --domain mail.example" \
               "record $rconf --domain mail.example --format json --mta-sts --mx mx.mail.example" \
               "record --domain mail.example --rua https://c.example/a;b --format value" \
               "record --domain xn--bcher-kva.example --rua mailto:x@y.example,z@y.example" \
               "record --parse v=TLSRPTv1;rua=mailto:a@b.example,https://c.example/r;x=1" \
               "record --parse v=TLSRPTv1;rua=http://c.example/r" \
               "record $rconf --check --domain mail.example --dns 127.0.0.1:$dnsport" \
               "record $rconf --check --domain two.example --dns 127.0.0.1:$dnsport" \
               "record $rconf --check --domain none.example --dns 127.0.0.1:$dnsport"; do
        echo "valgrind tlsrptd $cmd"
        rc=0
        # shellcheck disable=SC2086
        "${vg[@]}" build-ci-release/tlsrptd $cmd >/dev/null 2>&1 || rc=$?
        # 65: some corpus files (and some records) are rejected by design; 99: valgrind errors
        if [ "$rc" != 0 ] && [ "$rc" != 65 ]; then
            echo "valgrind: tlsrptd $cmd exited $rc" >&2
            exit 1
        fi
    done
    kill "$dnsmasq_pid"
    wait "$dnsmasq_pid" 2>/dev/null || true
    trap - EXIT
    rm -rf "$vgdb"
    unset TLSRPTD_VALGRIND
fi

if [ "${SKIP_PACKAGE:-0}" != 1 ]; then
    step "Debian package: build, lintian, install, run as the unit would, purge"
    if [ "$(id -u)" = 0 ]; then
        tests/package/test_package.sh
    else
        echo "skipped: installing a package needs root (SKIP_PACKAGE=1 silences this)"
    fi
fi

if [ "$fuzz_seconds" != 0 ]; then
    step "fuzz smoke ($fuzz_seconds s per target)"
    tests/fuzz/run.sh "$fuzz_seconds"
fi
step "all tests passed"
