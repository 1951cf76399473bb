#!/usr/bin/env bash
# bench/summary.sh: the summary benchmark at 1,000,000 stored reports.
# Usage: bench/summary.sh [N=1000000]
#
# 1. Builds Release in build-bench5 (tlsrptd, gen_reports, rusage).
# 2. Generates N reports once, 500 policy domains over a year (cached in
#    bench/out/summary-reports-N; bench/out is git-ignored):
#      gen_reports -n N -o DIR -s SEED -d 500 -y 365
#    -y 365 keeps the dates in 2025-01-01 .. 2025-12-31: report i has domain
#    i mod 500 and day (i div 500) mod 365, and each pass over the year has
#    other senders (Google, Microsoft, Mimecast, Mail.ru, Postfix hosts), so a
#    domain gets N / 182,500 reports a day (5.5 at 1M), no two from one
#    organization. Also a batch of new reports (cached in
#    bench/out/summary-new-N-7d): the week after that year, 2026-01-01 .. 07,
#    from the same senders, for the same domains: one gen_reports run per pass
#    p < P = ceil(N / 182,500) (6 at 1M) with -y 372 (the year and the week)
#    -f ((p * 372) + 365) * 500 -n 3,500, so NEW = P * 3,500 (21,000 at 1M),
#    P reports per domain and day.
# 3. Builds the database once, untimed for the targets:
#      tlsrptd ingest --db bench/out/summary-1m.db --quiet --no-progress DIR
#    then `PRAGMA wal_checkpoint(TRUNCATE)`. It is cached with a stamp file
#    (.stamp: generator stamp, N and a checksum of schema/*.sql): rebuilt when
#    missing, when the schema or the reports change, or with REBUILD=1.
#    Bytes per report = (database file + -wal) / N, measured every run;
#    .info keeps the build's rate and the bytes per table (dbstat).
# 4. Ingest rate at N stored against an empty database, INGEST_RUNS times
#    (default 3), alternating which goes first: the week's NEW reports (page
#    cache warmed by one untimed read) are ingested with
#      tlsrptd ingest --db DB --quiet --no-progress NEWDIR
#    under bench/rusage into (a) a new empty database and (b) a copy of the
#    N-report database (cp + sync, untimed; deleted after the run). Every run
#    must store all NEW. Rates are NEW / wall seconds; the ratio compares the
#    medians.
# 5. Summary times, RUNS runs (default 10) after 2 warm-up runs, with hyperfine
#    when installed (else a loop over date +%s%N): the whole process, from
#    exec to exit, output to /dev/null:
#      tlsrptd summary --db DB --domain D --since S --format json
#      tlsrptd summary --db DB --format json
#    D is the first domain by name. The data's dates are fixed, so "--since
#    30d" (relative to now) would find nothing: S is the date 29 days before
#    the last day of the data (2025-12-02 for a year from 2025-01-01), the
#    window "30d" would give on the day after the data ends: 30 days. Both
#    queries are checked first: one group for D with reports; all domains and
#    N reports in the default summary.
# 6. /metrics: starts `tlsrptd serve --listen 127.0.0.1:PORT --db DB` (a free
#    port), waits for /healthz, scrapes /metrics once (untimed for the target;
#    it must name all 500 domains in tlsrptd_sessions_total), then times RUNS
#    scrapes with curl's time_total, each a 200. SIGTERM; exit 0 expected.
# 7. Prints the figures against the targets of the issue: one-domain 30-day
#    summary <= 50 ms and all-domain summary <= 1 s (medians), scrape <= 200 ms
#    (median), <= 2 KiB per report, ingest at N stored >= 80 % of the rate into
#    an empty database. Exits 1 when a target or a check fails.
#
# Needs sqlite3, jq and curl (hyperfine and python3, for a free port, when
# installed). Disk: the reports take about 4 KiB each (small
# files), the database about 2 KiB per report, and step 4 a copy of it.
# Environment: SEED (default 1), NEW_DAYS (days of new reports, default 7),
# RUNS (default 10), INGEST_RUNS (default 3), REBUILD=1, BUILD (build
# directory, default build-bench5), JOBS (build jobs).
set -euo pipefail

N=${1:-1000000}
NEW_DAYS=${NEW_DAYS:-7}
SEED=${SEED:-1}
RUNS=${RUNS:-10}
INGEST_RUNS=${INGEST_RUNS:-3}
REBUILD=${REBUILD:-0}
BUILD=${BUILD:-build-bench5}
JOBS=${JOBS:-2}
DOMAINS=500
DAYS=365
for v in "$N" "$NEW_DAYS" "$RUNS" "$INGEST_RUNS"; do
    case $v in
    '' | *[!0-9]* | 0) echo "usage: bench/summary.sh [N] (NEW_DAYS, RUNS, INGEST_RUNS: numbers)" >&2 && exit 64 ;;
    esac
done
# passes over the year: reports per domain and day (at most 14, gen_reports' limit)
PASSES=$(((N + DOMAINS * DAYS - 1) / (DOMAINS * DAYS)))
if [ "$PASSES" -gt 14 ]; then
    echo "bench/summary.sh: N is at most $((14 * DOMAINS * DAYS))" >&2 && exit 64
fi
NEW=$((PASSES * NEW_DAYS * DOMAINS))
for tool in sqlite3 jq curl; do
    command -v "$tool" >/dev/null || { echo "bench/summary.sh: $tool is needed" >&2 && exit 69; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=bench/out
# targets of the issue
DOMAIN_MS_MAX=50
ALL_MS_MAX=1000
SCRAPE_MS_MAX=200
BYTES_MAX=2048
RATIO_MIN=80

t_start=$(date +%s)
SPID= # tlsrptd serve, while it runs
cleanup() {
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
field() { sed -E -n "s/.*(^| )$1=([^ ]*).*/\2/p" "$2" | head -1; }
filesize() { if [ -e "$1" ]; then stat -c %s "$1"; else echo 0; fi; }
# stats FILE: "median min max" of the numbers in FILE, one a line
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR] }'
}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd gen_reports rusage >/dev/null
TLSRPTD=$BUILD/tlsrptd
GEN=$BUILD/bench/gen_reports
RUSAGE=$BUILD/bench/rusage
mkdir -p "$OUT"

# ---- 2. reports --------------------------------------------------------------------------------
# The caches are valid for this seed, these flags and this version of the generator.
gen_stamp=".complete-seed-$SEED-d$DOMAINS-y$DAYS-$(cksum <bench/gen_reports.c | cut -d' ' -f1)"
DIR=$OUT/summary-reports-$N
NEWDIR=$OUT/summary-new-$N-${NEW_DAYS}d
if [ ! -f "$DIR/$gen_stamp" ]; then
    echo "generating $N reports into $DIR (seed $SEED, $DOMAINS domains, $DAYS days) ..."
    rm -rf "$DIR" "$DIR.tmp"
    "$GEN" -n "$N" -o "$DIR.tmp" -s "$SEED" -d "$DOMAINS" -y "$DAYS"
    touch "$DIR.tmp/$gen_stamp"
    mv "$DIR.tmp" "$DIR"
fi
if [ ! -f "$NEWDIR/$gen_stamp" ]; then
    echo "generating $NEW new reports, $NEW_DAYS days after the $DAYS, into $NEWDIR ..."
    rm -rf "$NEWDIR" "$NEWDIR.tmp"
    span=$((DAYS + NEW_DAYS))
    for p in $(seq 0 $((PASSES - 1))); do
        "$GEN" -n $((NEW_DAYS * DOMAINS)) -f $(((p * span + DAYS) * DOMAINS)) -o "$NEWDIR.tmp" \
            -s "$SEED" -d "$DOMAINS" -y "$span"
    done
    touch "$NEWDIR.tmp/$gen_stamp"
    mv "$NEWDIR.tmp" "$NEWDIR"
fi

# ---- 3. the N-report database ------------------------------------------------------------------
# shellcheck source=bench/lib.sh
. bench/lib.sh
label=$(db_label "$N")
DB=$OUT/summary-$label.db
db_stamp="reports=$gen_stamp n=$N schema=$(cat schema/*.sql | cksum | cut -d' ' -f1)"
if [ "$REBUILD" = 1 ] || [ ! -f "$DB" ] || [ "$(cat "$DB.stamp" 2>/dev/null)" != "$db_stamp" ]; then
    rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.stamp" "$DB.info"
    tmp=$OUT/summary-build.db
    rm -f "$tmp" "$tmp-wal" "$tmp-shm"
    echo "building $DB from $N reports (load $(load)) ..."
    "$RUSAGE" -o "$OUT/summary-build.rusage" "$TLSRPTD" ingest --db "$tmp" --quiet --no-progress \
        "$DIR" 2>&1 | tail -3
    sqlite3 "$tmp" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    rm -f "$tmp-wal" "$tmp-shm"
    mv "$tmp" "$DB"
    {
        echo "built=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?)" \
            "dirty_src=$(git status --porcelain -- src include schema 2>/dev/null | wc -l)"
        echo "ingest $(cat "$OUT/summary-build.rusage")"
        echo "rows reports=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM reports')" \
            "policies=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM policies')" \
            "failure_details=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM failure_details')" \
            "rollup_sessions=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM rollup_sessions')" \
            "rollup_failures=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM rollup_failures')"
        echo "raw $(sqlite3 "$DB" "SELECT 'kept_bytes=' || SUM(length(raw)) || ' json_bytes=' ||
            SUM(raw_size) FROM reports")"
        echo "bytes per table and index (dbstat):"
        sqlite3 "$DB" "SELECT printf('  %-24s %12d', name, SUM(pgsize)) FROM dbstat
            GROUP BY name ORDER BY SUM(pgsize) DESC" 2>/dev/null || echo "  (no dbstat)"
    } >"$DB.info"
    echo "$db_stamp" >"$DB.stamp"
else
    echo "using the cached $DB ($db_stamp)"
fi
cat "$DB.info"
stored=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM reports')
db_bytes=$(($(filesize "$DB") + $(filesize "$DB-wal")))

# ---- 4. ingest rate at N stored against an empty database --------------------------------------
echo "warming the page cache with the $NEW new reports (untimed) ..."
find "$NEWDIR" -type f -name '*.json.gz' -exec cat {} + >/dev/null
EMPTY=$OUT/summary-empty.db
COPY=$OUT/summary-copy.db
: >"$OUT/summary-ingest-empty.rates"
: >"$OUT/summary-ingest-full.rates"
ingest_ok=1
ingest_log=""
# ingest_run KIND RUN: time ingesting NEWDIR into an empty database or a copy of DB
ingest_run() {
    local db=$EMPTY
    [ "$1" = full ] && db=$COPY
    rm -f "$db" "$db-wal" "$db-shm"
    if [ "$1" = full ]; then
        cp "$DB" "$db"
        sync
    fi
    local l
    l=$(load)
    "$RUSAGE" -o "$OUT/summary-ingest-$1.rusage" "$TLSRPTD" ingest --db "$db" --quiet --no-progress \
        "$NEWDIR" 2>"$OUT/summary-ingest-$1.err" || true
    local st wall user sys n
    st=$(field status "$OUT/summary-ingest-$1.rusage")
    wall=$(field wall_s "$OUT/summary-ingest-$1.rusage")
    user=$(field user_s "$OUT/summary-ingest-$1.rusage")
    sys=$(field sys_s "$OUT/summary-ingest-$1.rusage")
    n=$(sed -E -n 's/.*: ([0-9]+) stored.*/\1/p' "$OUT/summary-ingest-$1.err")
    if [ "$st" != 0 ] || [ "${n:-0}" != "$NEW" ]; then
        ingest_ok=0
        cat "$OUT/summary-ingest-$1.err" >&2
    fi
    awk -v n="$NEW" -v w="$wall" 'BEGIN { print n / w }' >>"$OUT/summary-ingest-$1.rates"
    local line
    line=$(printf "run %d %-5s %8.0f reports/s  (%.2f s wall, %.2f s user, %.2f s sys, %s stored, load %s)" \
        "$2" "$1" "$(awk -v n="$NEW" -v w="$wall" 'BEGIN { print n / w }')" "$wall" "$user" "$sys" \
        "${n:-?}" "$l")
    echo "$line"
    ingest_log+="$line"$'\n'
    rm -f "$db" "$db-wal" "$db-shm"
}
echo "ingest rate: $NEW new reports into an empty database and into a copy of $DB, $INGEST_RUNS runs each"
for r in $(seq "$INGEST_RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then
        ingest_run empty "$r"
        ingest_run full "$r"
    else
        ingest_run full "$r"
        ingest_run empty "$r"
    fi
done
read -r empty_med empty_min empty_max < <(stats "$OUT/summary-ingest-empty.rates")
read -r full_med full_min full_max < <(stats "$OUT/summary-ingest-full.rates")

# ---- 5. summaries ------------------------------------------------------------------------------
D=$(sqlite3 "$DB" "SELECT MIN(policy_domain) FROM rollup_sessions WHERE policy_domain <> ''")
last=$(sqlite3 "$DB" 'SELECT MAX(start_time) FROM reports')
SINCE=$(date -u -d "@$((last - 29 * 86400))" +%F)
dom_cmd=("$TLSRPTD" summary --db "$DB" --domain "$D" --since "$SINCE" --format json)
all_cmd=("$TLSRPTD" summary --db "$DB" --format json)

checks_ok=1
"${dom_cmd[@]}" >"$OUT/summary-domain.json"
dom_groups=$(jq '.groups | length' "$OUT/summary-domain.json")
dom_reports=$(jq '.totals.reports' "$OUT/summary-domain.json")
dom_name=$(jq -r '.groups[0].policy_domain' "$OUT/summary-domain.json")
if [ "$dom_groups" != 1 ] || [ "$dom_name" != "$D" ] || [ "$dom_reports" -le 0 ]; then
    checks_ok=0
fi
"${all_cmd[@]}" >"$OUT/summary-all.json"
all_groups=$(jq '.groups | length' "$OUT/summary-all.json")
all_reports=$(jq '.totals.reports' "$OUT/summary-all.json")
all_named=$(jq '[.groups[] | select(.policy_domain != null)] | length' "$OUT/summary-all.json")
if [ "$all_named" != "$DOMAINS" ] || [ "$all_reports" != "$N" ]; then
    checks_ok=0
fi
echo "domain summary: $D since $SINCE: $dom_groups group, $dom_reports reports"
echo "all-domain summary: $all_groups groups ($all_named named domains), $all_reports reports"

# time_cmd NAME CMD...: RUNS timed runs (after 2 warm-ups) into $OUT/summary-NAME.times (seconds)
time_cmd() {
    local name=$1
    shift
    echo "timing $name (load $(load)): $*"
    if command -v hyperfine >/dev/null; then
        local cmdline
        cmdline=$(printf '%q ' "$@")
        hyperfine -N --runs "$RUNS" --warmup 2 --style basic \
            --export-json "$OUT/summary-$name.hyperfine.json" "$cmdline"
        jq -r '.results[0].times[]' "$OUT/summary-$name.hyperfine.json" >"$OUT/summary-$name.times"
    else
        "$@" >/dev/null
        "$@" >/dev/null
        : >"$OUT/summary-$name.times"
        local t0 t1
        for _ in $(seq "$RUNS"); do
            t0=$(date +%s%N)
            "$@" >/dev/null
            t1=$(date +%s%N)
            awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }' >>"$OUT/summary-$name.times"
        done
    fi
}
load_sum=$(load)
time_cmd domain "${dom_cmd[@]}"
time_cmd all "${all_cmd[@]}"
read -r dom_med dom_min dom_max < <(stats "$OUT/summary-domain.times")
read -r all_med all_min all_max < <(stats "$OUT/summary-all.times")

# ---- 6. /metrics -------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0));
print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
URL=http://127.0.0.1:$PORT
"$TLSRPTD" serve --listen "127.0.0.1:$PORT" --db "$DB" >"$OUT/summary-serve.log" 2>&1 &
SPID=$!
up=0
for _ in $(seq 100); do
    kill -0 "$SPID" 2>/dev/null || break
    if curl -sf -o /dev/null "$URL/healthz"; then
        up=1
        break
    fi
    sleep 0.1
done
if [ "$up" != 1 ]; then
    cat "$OUT/summary-serve.log" >&2
    echo "bench/summary.sh: tlsrptd serve did not come up" >&2
    exit 1
fi
load_scrape=$(load)
read -r first_code first_s < <(curl -s -o "$OUT/summary-metrics.txt" -w '%{http_code} %{time_total}\n' \
    "$URL/metrics")
metric_domains=$(sed -E -n 's/^tlsrptd_sessions_total\{policy_domain="([^"]*)".*/\1/p' \
    "$OUT/summary-metrics.txt" | sort -u | grep -cv '^(none)$' || true)
metric_bytes=$(filesize "$OUT/summary-metrics.txt")
if [ "$first_code" != 200 ] || [ "$metric_domains" != "$DOMAINS" ]; then
    checks_ok=0
fi
echo "timing $RUNS scrapes of $URL/metrics (load $load_scrape)"
: >"$OUT/summary-scrape.times"
for _ in $(seq "$RUNS"); do
    read -r code s < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$URL/metrics")
    [ "$code" = 200 ] || checks_ok=0
    echo "$s" >>"$OUT/summary-scrape.times"
done
kill -TERM "$SPID"
serve_rc=0
wait "$SPID" || serve_rc=$?
SPID=
[ "$serve_rc" = 0 ] || checks_ok=0
read -r scr_med scr_min scr_max < <(stats "$OUT/summary-scrape.times")
db_bytes_after=$(($(filesize "$DB") + $(filesize "$DB-wal")))

# ---- 7. results --------------------------------------------------------------------------------
printf "\n== summary benchmark: %d reports, %d domains, %d days, %d cores, %s\n" "$N" "$DOMAINS" \
    "$DAYS" "$(nproc)" "$(date -u +%FT%TZ)"
cat "$DB.info"
printf "ingest runs:\n%s" "$ingest_log"
awk -v n="$N" -v stored="$stored" -v dbb="$db_bytes" -v dbb2="$db_bytes_after" \
    -v em="$empty_med" -v emin="$empty_min" -v emax="$empty_max" \
    -v fm="$full_med" -v fmin="$full_min" -v fmax="$full_max" -v iok="$ingest_ok" -v new="$NEW" \
    -v dm="$dom_med" -v dmin="$dom_min" -v dmax="$dom_max" -v d="$D" -v since="$SINCE" \
    -v dr="$dom_reports" -v am="$all_med" -v amin="$all_min" -v amax="$all_max" -v ag="$all_groups" \
    -v ar="$all_reports" -v sm="$scr_med" -v smin="$scr_min" -v smax="$scr_max" \
    -v first="$first_s" -v mdom="$metric_domains" -v mbytes="$metric_bytes" -v srv="$serve_rc" \
    -v cok="$checks_ok" -v runs="$RUNS" -v iruns="$INGEST_RUNS" -v ndom="$DOMAINS" \
    -v dmax_t="$DOMAIN_MS_MAX" -v amax_t="$ALL_MS_MAX" -v smax_t="$SCRAPE_MS_MAX" \
    -v bmax="$BYTES_MAX" -v rmin="$RATIO_MIN" -v lsum="$load_sum" -v lscr="$load_scrape" '
function verdict(ok) { if (!ok) failed = 1; return ok ? "PASS" : "FAIL" }
BEGIN {
    bpr = dbb / n; ratio = 100 * fm / em
    printf "summary runs: load %s; scrapes: load %s\n\n", lsum, lscr
    printf "%-44s %-34s %-12s %s\n", "figure", "measured", "target", ""
    printf "%-44s %-34s %-12s %s\n", "database bytes per report", sprintf("%.0f B (%.2f GB / %d)", bpr, dbb / 1e9, n), "<= " bmax " B", verdict(bpr <= bmax)
    printf "%-44s %-34s %-12s %s\n", "summary --domain D --since 30d, median", sprintf("%.1f ms (%.1f-%.1f, %d runs)", 1000 * dm, 1000 * dmin, 1000 * dmax, runs), "<= " dmax_t " ms", verdict(1000 * dm <= dmax_t)
    printf "%-44s %-34s %-12s %s\n", "summary (all domains), median", sprintf("%.1f ms (%.1f-%.1f, %d runs)", 1000 * am, 1000 * amin, 1000 * amax, runs), "<= " amax_t " ms", verdict(1000 * am <= amax_t)
    printf "%-44s %-34s %-12s %s\n", "/metrics scrape, median", sprintf("%.1f ms (%.1f-%.1f, %d runs)", 1000 * sm, 1000 * smin, 1000 * smax, runs), "<= " smax_t " ms", verdict(1000 * sm <= smax_t)
    printf "%-44s %-34s %-12s %s\n", "ingest at " n " stored / into empty", sprintf("%.1f %% (%.0f / %.0f reports/s)", ratio, fm, em), ">= " rmin " %", verdict(ratio >= rmin)
    printf "  ingest of %d new reports, %d runs each: empty %.0f /s (%.0f-%.0f), at %d stored %.0f /s (%.0f-%.0f)\n", new, iruns, em, emin, emax, n, fm, fmin, fmax
    printf "  domain %s since %s: %d reports; all domains: %d groups, %d reports\n", d, since, dr, ag, ar
    printf "  /metrics: %d bytes, %d domains in tlsrptd_sessions_total, first scrape %.1f ms, serve exit %d\n", mbytes, mdom, 1000 * first, srv
    if (dbb2 != dbb) printf "  (database + WAL after the scrapes: %d bytes)\n", dbb2
    printf "%-44s %-34s %-12s %s\n", "checks", sprintf("stored %d, ingests %s, queries %s", stored, iok ? "ok" : "FAILED", cok ? "ok" : "FAILED"), "all", verdict(stored == n && iok && cok)
    exit failed
}' && rc=0 || rc=$?
echo "bench/summary.sh took $(($(date +%s) - t_start)) s"
[ "$rc" -eq 0 ] # the exit status: 1 when a target or a check failed
