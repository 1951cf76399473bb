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
# derived from the shared corpus lands in the repository. As many targets run
# at once as there are cores (FUZZ_JOBS). Exits non-zero when any target found
# a crash, leak or timeout, after printing the end of its log and the crash file.
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

# One target: its libFuzzer run, output in $work/$t/last.log, exit code in $work/$t/rc.
fuzz_one() {
    t=$1
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
    rc=0
    "$build/tests/fuzz/fuzz_$t" "$@" >"$work/$t/last.log" 2>&1 || rc=$?
    echo "$rc" >"$work/$t/rc"
}

# A target failed when it exited non-zero or reported an error or a crash unit.
fuzz_failed() {
    [ "$(cat "$work/$1/rc" 2>/dev/null)" != 0 ] ||
        grep -q -E '^==[0-9]+==ERROR|^SUMMARY: |Test unit written to' "$work/$1/last.log"
}

# Each fuzzer is one process on one core: as many run at once as there are
# cores (FUZZ_JOBS), so each still gets its SECONDS of a core.
jobs=${FUZZ_JOBS:-$(nproc)}
status=0
running=0
for t in $targets; do
    rm -f "$work/$t/rc"
    fuzz_one "$t" &
    running=$((running + 1))
    [ "$running" -lt "$jobs" ] && continue
    wait
    running=0
done
wait
for t in $targets; do
    if fuzz_failed "$t"; then
        echo "!! fuzz_$t failed; its log ends:" >&2
        tail -n 60 "$work/$t/last.log" >&2
        grep -E 'Test unit written to' "$work/$t/last.log" >&2 || ls -l "$work/$t/crashes" >&2
        status=1
    else
        echo "== fuzz_$t passed: $(grep -E '^Done|^stat::number_of_executed_units' "$work/$t/last.log" |
            tr '\n' ' ')"
    fi
done
exit $status
