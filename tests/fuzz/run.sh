#!/bin/sh
# run.sh: build the libFuzzer targets with clang in build-fuzz and run them.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Targets: report jsondoc gz mime record http (default all).
#
# Each target runs SECONDS (default 60) seeded from its committed corpus
# (tests/fuzz/corpus/<t>; jsondoc also corpus/report), samples/ and
# ../shared/corpus/real when present.
# New units and crash files go to a scratch directory outside the tree
# ($TLSRPTD_FUZZ_WORK, default /tmp/tlsrptd-fuzz/<t>/{new,crashes}) so nothing
# derived from the shared corpus lands in the repository. Exits non-zero on
# the first crash, leak or timeout, after printing the crash file.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-report jsondoc gz mime record http}
work=${TLSRPTD_FUZZ_WORK:-/tmp/tlsrptd-fuzz}
build=$top/build-fuzz

case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 64 ;;
esac
for t in $targets; do
    case $t in
    report | jsondoc | gz | mime | record | http) ;;
    *) echo "$0: unknown target '$t' (report, jsondoc, gz, mime, record, http)" >&2; exit 64 ;;
    esac
done

cmake -S "$top" -B "$build" -DCMAKE_C_COMPILER=clang -DTLSRPTD_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target $(for t in $targets; do printf 'fuzz_%s ' "$t"; done)

# Leaks are checked at exit and after every input; UBSan findings abort too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

status=0
for t in $targets; do
    new=$work/$t/new
    crashes=$work/$t/crashes
    mkdir -p "$new" "$crashes"
    set -- -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -detect_leaks=1 \
        -print_final_stats=1 -artifact_prefix="$crashes/"
    [ -f "$top/tests/fuzz/$t.dict" ] && set -- "$@" -dict="$top/tests/fuzz/$t.dict"
    [ "$t" = jsondoc ] && set -- "$@" -dict="$top/tests/fuzz/report.dict"
    set -- "$@" "$new" "$top/tests/fuzz/corpus/$t" "$top/samples"
    [ "$t" = jsondoc ] && set -- "$@" "$top/tests/fuzz/corpus/report" # JSON, both
    [ -d "$top/../shared/corpus/real" ] && set -- "$@" "$top/../shared/corpus/real"

    echo "== fuzz_$t: $seconds s, new units in $new"
    log=$work/$t/last.log
    { "$build/tests/fuzz/fuzz_$t" "$@" 2>&1; echo $? >"$work/$t/rc"; } | tee "$log"
    rc=$(cat "$work/$t/rc")
    if [ "$rc" -ne 0 ] || grep -q -E '^==[0-9]+==ERROR|^SUMMARY: |Test unit written to' "$log"; then
        echo "!! fuzz_$t failed; crash file(s):" >&2
        grep -E 'Test unit written to' "$work/$t/last.log" >&2 || ls -l "$crashes" >&2
        status=1
        break
    fi
done
exit $status
