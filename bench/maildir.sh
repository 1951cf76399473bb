#!/usr/bin/env bash
# bench/maildir.sh: the Maildir benchmark. Usage: bench/maildir.sh [N=10000]
#
# Builds Release in build-bench and generates N synthetic reports once (cached;
# bench/out is git-ignored), in one gen_reports run, twice over:
#   bench/out/maildir-N-json      the reports as .json.gz files (gen_reports -o);
#   bench/out/maildir-N-template  a pristine Maildir with the same reports, byte
#                                 for byte, mailed as RFC 8460 §5.3 messages in
#                                 new/ (gen_reports -m).
# Then, per run (RUNS of them):
#   1. untimed: copies the template to a fresh Maildir bench/out/maildir-N-run
#      (cp -a), removes the run's databases, and warms the page cache (cat of
#      every file of both trees to /dev/null);
#   2. timed under bench's rusage wrapper (wall time, CPU time, peak RSS):
#      a. tlsrptd ingest --db bench/out/maildir-ingest.db --quiet --no-progress JSONDIR
#      b. tlsrptd maildir --db bench/out/maildir-maildir.db MAILDIR
#         (per-message log lines to bench/out/maildir-N-run.log);
#   3. checks: both commands exit 0, both databases hold N reports (`tlsrptd
#      summary --format json` -> totals.reports), maildir's summary line says
#      N messages, N stored, 0 quarantined, 0 left in new/, MAILDIR/new is
#      empty and MAILDIR/cur holds N files.
# Prints maildir messages/s and ingest reports/s (N / wall seconds of each
# whole process), the CPU time other processes used meanwhile (/proc/stat busy
# time minus the two commands' own), their ratio and peak RSS against the
# targets of the issue:
#   maildir >= 5,000 messages/s, maildir >= 50% of the plain ingest rate.
# Exits 1 when a target is missed or a check fails in any run.
#
# Environment: RUNS (default 1), SEED (generator seed, default 1), JOBS (build
# jobs), KEEP=1 (keep the last run's Maildir copy and databases).
set -euo pipefail

N=${1:-10000}
RUNS=${RUNS:-1}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
KEEP=${KEEP:-0}
case $N in
'' | *[!0-9]* | 0) echo "usage: bench/maildir.sh [N]   (RUNS=k for k runs)" >&2 && exit 64 ;;
esac
case $RUNS in
'' | *[!0-9]* | 0) echo "bench/maildir.sh: RUNS must be a positive number" >&2 && exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=build-bench
OUT=bench/out
JSONDIR=$OUT/maildir-$N-json
TEMPLATE=$OUT/maildir-$N-template
MAILDIR=$OUT/maildir-$N-run
LOG=$OUT/maildir-$N-run.log
DB_INGEST=$OUT/maildir-ingest.db
DB_MAILDIR=$OUT/maildir-maildir.db
RATE_MIN=5000
RATIO_MIN=50

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd gen_reports rusage >/dev/null
TLSRPTD=$BUILD/tlsrptd
GEN=$BUILD/bench/gen_reports
RUSAGE=$BUILD/bench/rusage

mkdir -p "$OUT"
# The cache is valid for this seed and this version of the generator.
stamp=".complete-seed-$SEED-$(cksum <bench/gen_reports.c | cut -d' ' -f1)"
if [ ! -f "$JSONDIR/$stamp" ] || [ ! -f "$TEMPLATE/$stamp" ]; then
    echo "generating $N reports into $JSONDIR and as mails into $TEMPLATE (seed $SEED) ..."
    rm -rf "$JSONDIR" "$JSONDIR.tmp" "$TEMPLATE" "$TEMPLATE.tmp"
    "$GEN" -n "$N" -o "$JSONDIR.tmp" -m "$TEMPLATE.tmp" -s "$SEED"
    touch "$JSONDIR.tmp/$stamp" "$TEMPLATE.tmp/$stamp"
    mv "$JSONDIR.tmp" "$JSONDIR"
    mv "$TEMPLATE.tmp" "$TEMPLATE"
fi
echo "reports: $JSONDIR ($(du -sh "$JSONDIR" | cut -f1) on disk)," \
    "mails: $TEMPLATE/new ($(du -sh "$TEMPLATE" | cut -f1) on disk," \
    "$(find "$TEMPLATE/new" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s / NR}') bytes per message)"

# busy_s: CPU seconds the whole machine has been busy since boot (/proc/stat)
busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# field NAME FILE: the value of NAME=value in a rusage line
field() { sed -E -n "s/.*(^| )$1=([^ ]*).*/\2/p" "$2"; }

# stored DB: totals.reports of `tlsrptd summary`
stored() {
    local summary
    summary=$("$TLSRPTD" summary --db "$1" --format json)
    if command -v jq >/dev/null; then
        jq -r '.totals.reports' <<<"$summary"
    else
        python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["reports"])' \
            <<<"$summary"
    fi
}

rm_db() { rm -f "$1" "$1-wal" "$1-shm"; }

failed=0
results=$OUT/maildir-$N.results
: >"$results"
for run in $(seq 1 "$RUNS"); do
    echo
    echo "== run $run of $RUNS: preparing (untimed) ..."
    rm -rf "$MAILDIR"
    cp -a "$TEMPLATE" "$MAILDIR"
    rm_db "$DB_INGEST"
    rm_db "$DB_MAILDIR"
    find "$JSONDIR" "$MAILDIR" -type f -exec cat {} + >/dev/null

    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    time_utc=$(date -u +%H:%M:%S)
    echo "load before: $(uptime)"

    busy_before=$(busy_s)
    ingest_cmd=("$TLSRPTD" ingest --db "$DB_INGEST" --quiet --no-progress "$JSONDIR")
    echo "running: ${ingest_cmd[*]}"
    set +e
    "$RUSAGE" -o "$OUT/maildir-ingest.rusage" "${ingest_cmd[@]}" \
        >"$OUT/maildir-ingest.out" 2>"$OUT/maildir-ingest.err"
    ingest_rc=$?
    set -e
    cat "$OUT/maildir-ingest.err"

    maildir_cmd=("$TLSRPTD" maildir --db "$DB_MAILDIR" "$MAILDIR")
    echo "running: ${maildir_cmd[*]} 2>$LOG"
    set +e
    "$RUSAGE" -o "$OUT/maildir-maildir.rusage" "${maildir_cmd[@]}" \
        >"$OUT/maildir-maildir.out" 2>"$LOG"
    maildir_rc=$?
    set -e
    busy_after=$(busy_s)
    cat "$OUT/maildir-maildir.out"
    grep -v '\[info\]' "$LOG" | head -5 || true
    echo "load after: $(uptime)"

    ingest_stored=$(stored "$DB_INGEST")
    maildir_stored=$(stored "$DB_MAILDIR")
    left_new=$(find "$MAILDIR/new" -type f | wc -l)
    in_cur=$(find "$MAILDIR/cur" -type f | wc -l)
    quarantined=$(find "$MAILDIR/.Quarantine/new" -type f 2>/dev/null | wc -l)
    # maildir: N messages: S stored, D duplicates, Q quarantined, T left in new/
    line=$(head -1 "$OUT/maildir-maildir.out")
    expect="maildir: $N messages: $N stored, 0 duplicates, 0 quarantined, 0 left in new/"

    set +e
    awk -v n="$N" -v run="$run" -v time_utc="$time_utc" -v nproc="$(nproc)" \
        -v iw="$(field wall_s "$OUT/maildir-ingest.rusage")" \
        -v iu="$(field user_s "$OUT/maildir-ingest.rusage")" \
        -v is="$(field sys_s "$OUT/maildir-ingest.rusage")" \
        -v irss="$(field maxrss_kib "$OUT/maildir-ingest.rusage")" \
        -v mw="$(field wall_s "$OUT/maildir-maildir.rusage")" \
        -v mu="$(field user_s "$OUT/maildir-maildir.rusage")" \
        -v ms="$(field sys_s "$OUT/maildir-maildir.rusage")" \
        -v mrss="$(field maxrss_kib "$OUT/maildir-maildir.rusage")" \
        -v irc="$ingest_rc" -v mrc="$maildir_rc" -v istored="$ingest_stored" \
        -v mstored="$maildir_stored" -v left="$left_new" -v cur="$in_cur" -v q="$quarantined" \
        -v line_ok="$([ "$line" = "$expect" ] && echo 1 || echo 0)" \
        -v rmin="$RATE_MIN" -v ratio_min="$RATIO_MIN" -v results="$results" \
        -v busy="$(awk -v a="$busy_before" -v b="$busy_after" 'BEGIN { print b - a }')" \
        -v load_before="$load_before" -v load_after="$(cut -d' ' -f1-3 /proc/loadavg)" '
function verdict(ok) { if (!ok) failed = 1; return ok ? "PASS" : "FAIL" }
BEGIN {
    mrate = n / mw; irate = n / iw; ratio = 100 * mrate / irate
    checks = irc == 0 && mrc == 0 && istored == n && mstored == n && left == 0 && cur == n && q == 0 && line_ok
    printf "\n== maildir benchmark, run %d: %d reports, %d cores, %s UTC\n", run, n, nproc, time_utc
    other = busy - (iu + is + mu + ms); if (other < 0) other = 0
    printf "load average before %s, after %s (includes this benchmark)\n", load_before, load_after
    printf "CPU used by other processes while timing: %.2f s in %.2f s wall (%d cores)\n", other, iw + mw, nproc
    printf "ingest .json.gz %8.0f reports/s   (%.2f s wall, %.2f s user, %.2f s sys, peak RSS %.1f MiB, exit %d)\n", irate, iw, iu, is, irss / 1024, irc
    printf "maildir         %8.0f messages/s  (%.2f s wall, %.2f s user, %.2f s sys, peak RSS %.1f MiB, exit %d)\n", mrate, mw, mu, ms, mrss / 1024, mrc
    printf "maildir rate    %8.0f messages/s  target >= %d/s      %s\n", mrate, rmin, verdict(mrate >= rmin)
    printf "ratio           %8.1f %%           target >= %d%%       %s\n", ratio, ratio_min, verdict(ratio >= ratio_min)
    printf "  (CPU-time ratio, less sensitive to other load: %.1f %%)\n", 100 * (iu + is) / (mu + ms)
    printf "checks: stored %d (ingest) / %d (maildir) of %d, new/ %d left, cur/ %d, quarantined %d, summary line %s   %s\n", istored, mstored, n, left, cur, q, line_ok ? "as expected" : "UNEXPECTED", verdict(checks)
    printf "%d|%s|%s|%.0f|%.2f|%.0f|%.2f|%.1f|%.1f|%.1f|%.2f|%s\n", run, time_utc, load_before, mrate, mw, irate, iw, ratio, mrss / 1024, irss / 1024, other, checks ? "ok" : "FAILED" >> results
    exit failed
}'
    run_rc=$?
    set -e
    [ "$run_rc" -ne 0 ] && failed=1
    if [ "$line" != "$expect" ]; then
        echo "maildir summary line: $line"
        echo "expected:             $expect"
    fi
done

if [ "$RUNS" -gt 1 ]; then
    echo
    echo "== all runs (run|time UTC|load before|maildir msgs/s|wall s|ingest reports/s|wall s|ratio %|maildir RSS MiB|ingest RSS MiB|other CPU s|checks)"
    cat "$results"
fi
if [ "$KEEP" != 1 ]; then
    rm -rf "$MAILDIR"
    rm_db "$DB_INGEST"
    rm_db "$DB_MAILDIR"
fi
exit "$failed"
