#!/usr/bin/env bash
# bench/console.sh: the web console at 1,000,000 stored reports (issue 13).
# Usage: bench/console.sh [N=1000000]
#
# Targets: the console's first load <= 400 KB transferred (gzip), the
# overview's API calls together <= 300 ms.
#
# 1. The database is bench/summary.sh's (bench/out/summary-1m.db for N = 1M):
#    500 policy domains over 2025, built by `tlsrptd ingest` from gen_reports.
#    When it is missing (or REBUILD=1) bench/summary.sh N runs first, which
#    builds it (about 6 minutes uncached) and prints its own figures too. A
#    database built before a schema change: REBUILD=1.
# 2. Builds Release in build-bench5 (as bench/summary.sh) and starts
#    `tlsrptd serve --db DB` on a free port of 127.0.0.1 (--connection-timeout
#    600: slow answers are measured, not cut off).
# 3. For each window of the overview: 30 days (the default) and 365 days
#    (the largest), both ending 2025-12-31, the last day of the data:
#    a. headless Chromium (bench/console_load.py): RUNS first loads (cache
#       cleared and disabled before each): bytes transferred (DevTools
#       encodedDataLength: headers and gzip bodies, assets and API), and the
#       overview's API calls together, from the first request of its three
#       GET /api/v1/summary to the end of the last, as the browser saw them;
#    b. curl: the same three calls at once (as the browser makes them), with
#       Accept-Encoding: gzip, RUNS times after one warm-up: the wall time
#       until the last answer, and each call's time_total.
#    Medians (min-max) are printed against the targets; exit 1 when one is
#    missed or a check fails (an answer not 200, a load without its three
#    calls).
# Needs curl, sqlite3, python3, chromium, chromium-driver and python3-selenium
# (scripts/deps.sh test), and what bench/summary.sh needs to build the data.
# Environment: RUNS (default 5), REBUILD=1, BUILD (default build-bench5), JOBS.
set -euo pipefail

N=${1:-1000000}
RUNS=${RUNS:-5}
BUILD=${BUILD:-build-bench5}
JOBS=${JOBS:-2}
END=2025-12-31
LOAD_KB_MAX=400
API_MS_MAX=300
case $N$RUNS in
'' | *[!0-9]*) echo "usage: bench/console.sh [N] (RUNS: a number)" >&2 && exit 64 ;;
esac
for tool in curl sqlite3 python3 chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "bench/console.sh: $tool is needed" >&2 && exit 69; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=bench/out
# shellcheck source=bench/lib.sh
. bench/lib.sh
label=$(db_label "$N")
DB=$OUT/summary-$label.db

SPID=
cleanup() {
    if [ -n "$SPID" ]; then
        kill -TERM "$SPID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
# stats FILE: "median min max" of the numbers in FILE, one a line
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.1f %.1f\n", m, v[1], v[NR] }'
}

# ---- 1. the database ---------------------------------------------------------------------------
if [ "${REBUILD:-0}" = 1 ] || [ ! -f "$DB" ]; then
    echo "no $DB: running bench/summary.sh $N to build it ..."
    REBUILD=${REBUILD:-0} BUILD=$BUILD JOBS=$JOBS bench/summary.sh "$N" || true
    [ -f "$DB" ] || { echo "bench/console.sh: bench/summary.sh did not build $DB" >&2 && exit 1; }
fi
stored=$(sqlite3 "$DB" 'SELECT COUNT(*) FROM reports')
domains=$(sqlite3 "$DB" 'SELECT COUNT(DISTINCT policy_domain) FROM policies')
echo "database: $DB, $stored reports, $domains policy domains, $(du -h "$DB" | cut -f1)"

# ---- 2. the daemon -----------------------------------------------------------------------------
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
"$BUILD/tlsrptd" serve --listen "127.0.0.1:$PORT" --db "$DB" --rate-limit 0 --connection-timeout 600 \
    >"$OUT/console-serve.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do
    curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$BASE/healthz" >/dev/null || { echo "serve did not start" >&2 && cat "$OUT/console-serve.log" && exit 1; }
echo "tlsrptd $("$BUILD/tlsrptd" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD)," \
    "$(git status --porcelain -- src include web | wc -l) changed files in src include web)" \
    "on $BASE; load $(load)"

# The overview's three calls for a window of D days ending END (as web/overview.js makes them).
overview_urls() {
    python3 - "$1" "$END" <<'EOF'
import datetime, sys
days, end = int(sys.argv[1]), datetime.date.fromisoformat(sys.argv[2])
def w(back):
    last = end - datetime.timedelta(days=back * days)
    return (last - datetime.timedelta(days=days - 1)).isoformat(), \
        (last + datetime.timedelta(days=1)).isoformat()
(s, u), (ps, pu) = w(0), w(1)
print("/api/v1/summary?by=domain&since=%s&until=%s&failures=0" % (s, u))
print("/api/v1/summary?by=domain&since=%s&until=%s&failures=0" % (ps, pu))
print("/api/v1/summary?by=day&since=%s&until=%s" % (s, u))
EOF
}

fail=0
results=()
for days in 30 365; do
    echo
    echo "== overview, $days days ending $END (#/?days=$days&end=$END), load $(load)"
    # ---- 3b. curl: the three calls at once -------------------------------------------------------
    mapfile -t urls < <(overview_urls "$days")
    : >"$OUT/console-curl-$days.ms"
    for run in $(seq 0 "$RUNS"); do
        t0=$(date +%s%N)
        pids=()
        for i in 0 1 2; do
            curl -s -o "$OUT/console-curl-$i.body" -H 'Accept-Encoding: gzip' \
                -w '%{http_code} %{time_total} %{size_download}\n' "$BASE${urls[$i]}" \
                >"$OUT/console-curl-$i.w" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || true; done # a failed call is said below
        t1=$(date +%s%N)
        for i in 0 1 2; do
            read -r code tt size <"$OUT/console-curl-$i.w"
            if [ "$code" != 200 ]; then
                echo "FAIL: ${urls[$i]} answered $code" && fail=1
            fi
            [ "$run" = 0 ] && echo "  ${urls[$i]}: $size bytes as sent, $(gzip -dcf <"$OUT/console-curl-$i.body" | wc -c) bytes of JSON"
            [ "$run" != 0 ] && echo "$tt" >>"$OUT/console-curl-$days-$i.s"
        done
        [ "$run" != 0 ] && echo "$(((t1 - t0) / 1000))" | awk '{ print $1 / 1000 }' >>"$OUT/console-curl-$days.ms"
    done
    read -r cm cmin cmax < <(stats "$OUT/console-curl-$days.ms")
    for i in 0 1 2; do
        awk '{ print $1 * 1000 }' "$OUT/console-curl-$days-$i.s" >"$OUT/console-curl-$days-$i.ms"
        read -r m mn mx < <(stats "$OUT/console-curl-$days-$i.ms")
        echo "  curl ${urls[$i]%%&*}...: median $m ms ($mn-$mx)"
        rm -f "$OUT/console-curl-$days-$i.s"
    done
    echo "  curl, the three at once: median $cm ms ($cmin-$cmax) over $RUNS runs"
    # ---- 3a. the browser ---------------------------------------------------------------------------
    python3 bench/console_load.py "$BASE" "#/?days=$days&end=$END" "$RUNS" | tee "$OUT/console-load-$days.txt"
    for k in bytes api_ms load_ms; do
        sed -E -n "s/.* $k=([0-9.]+).*/\1/p" "$OUT/console-load-$days.txt" >"$OUT/console-load-$days.$k"
    done
    if grep -qv 'api_calls=3 ' "$OUT/console-load-$days.txt"; then
        echo "FAIL: a load without the overview's three calls" && fail=1
    fi
    read -r bm bmin bmax < <(stats "$OUT/console-load-$days.bytes")
    read -r am amin amax < <(stats "$OUT/console-load-$days.api_ms")
    read -r lm lmin lmax < <(stats "$OUT/console-load-$days.load_ms")
    kb=$(awk -v b="$bm" 'BEGIN { printf "%.1f", b / 1000 }')
    echo "  browser: first load $kb KB transferred (median of $RUNS; min $bmin, max $bmax bytes);" \
        "the overview's API calls together median $am ms ($amin-$amax); ready after $lm ms ($lmin-$lmax)"
    verdict_load=PASS
    awk -v b="$bm" -v m="$LOAD_KB_MAX" 'BEGIN { exit !(b / 1000 <= m) }' || { verdict_load=FAIL; fail=1; }
    verdict_api=PASS
    awk -v a="$am" -v c="$cm" -v m="$API_MS_MAX" 'BEGIN { exit !(a <= m && c <= m) }' || { verdict_api=FAIL; fail=1; }
    results+=("$days days: first load $kb KB <= $LOAD_KB_MAX KB: $verdict_load; API calls browser $am ms, curl $cm ms <= $API_MS_MAX ms: $verdict_api")
done

kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=
[ "$rc" = 0 ] || { echo "FAIL: serve exited $rc" && fail=1; }
echo
printf '%s\n' "${results[@]}"
[ "$fail" = 0 ] && echo "all targets met" || echo "a target or a check FAILED"
exit "$fail"
