#!/usr/bin/env bash
# bench/pg.sh: tlsrptd on PostgreSQL. Usage: bench/pg.sh [DURATION=20s]
#
# Builds Release in build-bench, starts a throwaway PostgreSQL 15 cluster
# (tests/pg_cluster.py, in bench/out/pg; fsync on, as a real server) and then:
#   0. a warm-up, not counted: the first run below for WARMUP (20s) on a
#      database of its own. A cluster fresh from initdb creates (and fills
#      with zeros) a WAL segment file each 16 MiB of WAL, where a server in
#      service recycles the old ones once a checkpoint has passed them; on
#      the fresh cluster the first run's p99 was a quarter longer. Each run
#      (this one too) starts with a CHECKPOINT: none pays for a checkpoint
#      the one before it made due, and each pays for the full-page images
#      PostgreSQL writes for every page first changed after a checkpoint;
#   1. one `tlsrptd serve --db postgresql://…` (a fresh database), and wrk
#      -t2 -c64 -dDURATION -s bench/post_report.lua against it: reports/s,
#      latency, and every 201 stored (tlsrptd summary counts the reports:
#      201s <= stored <= 201s + unanswered);
#   2. two `serve` processes on one fresh database, wrk -t1 -c32 against each
#      at the same time: the same figures, summed;
#   3. with SUMMARY_DB=PATH (a SQLite database, e.g. the 1,000,000 reports of
#      bench/summary.sh in bench/out/summary-1m.db): `tlsrptd migrate` into a
#      fresh PostgreSQL database (timed), then the summary figures of
#      bench/summary.sh on it: one-domain 30-day summary, all-domain summary
#      (the whole process, median of RUNS) and the /metrics scrape (curl
#      time_total, median), and bytes per report (pg_database_size / reports).
# The machine is shared by wrk, tlsrptd and PostgreSQL: CPU seconds per 1,000
# reports are printed for tlsrptd and for the server (every postgres process),
# so the figures survive a noisy machine. Targets (issue 12): >= 3,000
# reports/s with p99 <= 50 ms; summaries <= 100 ms (one domain, 30 days) and
# <= 1 s (all domains), /metrics <= 200 ms.
#
# Environment: RUNS (summary runs, default 10), SUMMARY_DB, JOBS, PORT (first
# of 3 loopback ports, default 28470), KEEP=1 (leave the cluster running),
# WARMUP (the warm-up's duration, default 20s; 0: none).
set -euo pipefail

DURATION=${1:-20s}
WARMUP=${WARMUP:-20s}
RUNS=${RUNS:-10}
SUMMARY_DB=${SUMMARY_DB:-}
JOBS=${JOBS:-2}
PORT=${PORT:-28470}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=build-bench
OUT=bench/out
STATE=$OUT/pg
HOST=127.0.0.1
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd rusage >/dev/null
TLSRPTD=$BUILD/tlsrptd
mkdir -p "$OUT"

PG_CLUSTER_FSYNC=on python3 tests/pg_cluster.py start "$STATE" >/dev/null
SERVER=$(cat "$STATE/uri")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ "${KEEP:-0}" = 1 ] || python3 tests/pg_cluster.py stop "$STATE"
}
trap cleanup EXIT

psql_admin() { /usr/lib/postgresql/15/bin/psql -X -q -At "${SERVER}postgres" -c "$1"; }
new_db() { psql_admin "DROP DATABASE IF EXISTS $1" && psql_admin "CREATE DATABASE $1" && echo "$SERVER$1"; }
field() { sed -E -n "s/.*(^| )$1=([^ ]*).*/\2/p" "$2" | head -1; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"; }
# CPU seconds of every postgres process of the cluster so far (live ones; the
# server's children match both patterns, each is counted once)
pg_cpu_s() {
    local total=0 p
    for p in $({ pgrep -f "postgres: " || true; pgrep -x postgres || true; } | sort -u); do
        [ -r "/proc/$p/stat" ] && total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" \
            '{ sub(/^.*\) /, ""); printf "%.2f\n", t + ($12 + $13 + $14 + $15) / hz }' "/proc/$p/stat")
    done
    echo "$total"
}
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
stored() { "$TLSRPTD" summary --db "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["reports"])'; }

RESULTS=$OUT/pg.results
: >"$RESULTS"
echo "load before: $(uptime)"

# run COLLECTORS [warm]: a CHECKPOINT, COLLECTORS serve processes on one fresh
# database, wrk on each for DURATION; with "warm", for WARMUP, and the figures
# are not kept
run() {
    local n=$1 db i pids=() wrks=() conns=$((64 / $1)) threads=$((2 / $1 > 0 ? 2 / $1 : 1))
    local duration=$DURATION label="" results=$RESULTS
    if [ "${2:-}" = warm ]; then
        duration=$WARMUP label="warm-up, not counted: " results=/dev/null
    fi
    db=$(new_db "bench_$n${2:-}")
    psql_admin CHECKPOINT
    for i in $(seq "$n"); do
        "$TLSRPTD" serve --db "$db" --listen "$HOST:$((PORT + i))" --rate-limit 0 \
            --max-connections-per-ip 1024 --max-connections 2048 \
            --spool-dir "$OUT/pg-spool-$n-$i" 2>"$OUT/pg-serve-$n-$i.log" &
        pids+=($!)
        PIDS+=($!)
        wait_port "$((PORT + i))" "$!" || { cat "$OUT/pg-serve-$n-$i.log" >&2 && exit 1; }
    done
    local cpu0=0 cpu1=0 pg0 pg1
    for p in "${pids[@]}"; do cpu0=$(awk -v a="$cpu0" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
    pg0=$(pg_cpu_s)
    for i in $(seq "$n"); do
        wrk -t"$threads" -c"$conns" -d"$duration" --latency -s bench/post_report.lua \
            "http://$HOST:$((PORT + i))/tlsrpt" -- "$i" >"$OUT/pg-wrk-$n-$i" 2>&1 &
        wrks+=($!)
    done
    for w in "${wrks[@]}"; do wait "$w" || true; done
    for p in "${pids[@]}"; do cpu1=$(awk -v a="$cpu1" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
    pg1=$(pg_cpu_s)
    local rc=0
    for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || rc=$?; done
    local created=0 unanswered=0 rps=0 p99=0 other=0
    for i in $(seq "$n"); do
        local f=$OUT/pg-wrk-$n-$i
        grep -q '^BENCH ' "$f" || { cat "$f" >&2 && exit 1; }
        created=$((created + $(field created "$f")))
        unanswered=$((unanswered + $(field unanswered "$f")))
        rps=$(awk -v a="$rps" -v b="$(field created_rps "$f")" 'BEGIN { print a + b }')
        p99=$(awk -v a="$p99" -v b="$(field p99_ms "$f")" 'BEGIN { print (b > a) ? b : a }')
        other=$((other + $(field responses "$f") - $(field created "$f")))
    done
    local rows
    rows=$(stored "$db")
    awk -v label="$label" -v n="$n" -v rps="$rps" -v p99="$p99" -v created="$created" -v rows="$rows" \
        -v un="$unanswered" -v other="$other" -v rc="$rc" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" \
        -v pg="$(awk -v a="$pg0" -v b="$pg1" 'BEGIN { print b - a }')" 'BEGIN {
        ok = rows >= created && rows <= created + un && other == 0 && rc == 0
        printf "%s%d collector%s  %7.0f reports/s  p99 %6.1f ms  201s %d  stored %d  (unanswered %d, not 201: %d, exit %d) %s\n",
            label, n, (n > 1 ? "s" : " "), rps, p99, created, rows, un, other, rc, (ok ? "all stored" : "MISMATCH")
        printf "              CPU s per 1,000 reports: tlsrptd %.2f, PostgreSQL %.2f\n",
            1000 * cpu / (rows ? rows : 1), 1000 * pg / (rows ? rows : 1)
        printf "%d %.0f %.1f %s\n", n, rps, p99, (ok ? "ok" : "bad") > "/dev/stderr"
    }' 2>>"$results"
}

echo "== tlsrptd serve on PostgreSQL, wrk with 64 connections, $DURATION"
[ "$WARMUP" = 0 ] || run 1 warm
run 1
run 2

if [ -n "$SUMMARY_DB" ]; then
    echo
    echo "== $SUMMARY_DB migrated to PostgreSQL"
    db=$(new_db bench_summary)
    start=$(date +%s.%N)
    "$TLSRPTD" migrate --db "$SUMMARY_DB" --to "$db" 2>"$OUT/pg-migrate.log" | tail -1
    end=$(date +%s.%N)
    n=$(stored "$db")
    echo "migrate: $n reports in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f s (%.0f reports/s)", b - a, '"$n"' / (b - a) }')"
    dom=$("$TLSRPTD" summary --db "$db" --format json | python3 -c 'import json,sys; print(sorted(g["policy_domain"] for g in json.load(sys.stdin)["groups"] if g["policy_domain"])[0])')
    last=$("$TLSRPTD" summary --db "$db" --by day --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][-1]["day"])')
    since=$(date -u -d "$last - 29 days" +%Y-%m-%d)
    median_ms() {
        local t=() i s e
        for i in 1 2; do "$@" >/dev/null; done
        for i in $(seq "$RUNS"); do
            s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N)
            t+=($(((e - s) / 1000)))
        done
        printf '%s\n' "${t[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }'
    }
    one=$(median_ms "$TLSRPTD" summary --db "$db" --domain "$dom" --since "$since" --format json)
    all=$(median_ms "$TLSRPTD" summary --db "$db" --format json)
    "$TLSRPTD" serve --db "$db" --listen "$HOST:$((PORT + 9))" 2>"$OUT/pg-metrics.log" &
    mpid=$!
    PIDS+=("$mpid")
    wait_port "$((PORT + 9))" "$mpid"
    curl -s "http://$HOST:$((PORT + 9))/metrics" >/dev/null
    scrape=$(for i in $(seq "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' "http://$HOST:$((PORT + 9))/metrics"; done |
        sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", 1000 * a[int((NR + 1) / 2)] }')
    kill -TERM "$mpid"; wait "$mpid" || true
    bytes=$(psql_admin "SELECT pg_database_size('bench_summary')")
    printf "one-domain 30-day summary %8s ms   target <= 100 ms\n" "$one"
    printf "all-domain summary        %8s ms   target <= 1000 ms\n" "$all"
    printf "/metrics scrape           %8s ms   target <= 200 ms\n" "$scrape"
    printf "bytes per report          %8.0f\n" "$(awk -v b="$bytes" -v n="$n" 'BEGIN { print b / n }')"
fi
echo "load after: $(uptime)"
