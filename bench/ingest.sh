#!/usr/bin/env bash
# bench/ingest.sh: the ingest benchmark. Usage: bench/ingest.sh [N=100000]
#
# Builds Release in $BUILD (build-bench), generates N synthetic reports once into
# bench/out/reports-N (cached; bench/out is git-ignored), warms the page cache
# with one untimed parse-only pass, then times under bench's rusage wrapper:
#   1. parse_only DIR: read + inflate + json_loadb per file, nothing else;
#   2. tlsrptd ingest --db bench/out/bench.db --quiet --no-progress DIR
#      (fresh database every run).
# Checks that `tlsrptd summary` counts N reports and prints the rates, the CPU
# seconds per 1,000 reports of each (the figure that survives a noisy machine),
# their ratios and ingest's peak RSS against the targets:
#   ingest rate >= 60% of the parse-only rate, ingest CPU per report <= 2x the
#   parse-only floor's, peak RSS <= 64 MiB, all N stored.
# Exits 1 when a target is missed.
#
# Environment: BUILD (build directory, default build-bench), SEED (generator
# seed, default 1), BATCH (--commit-max for ingest, default: tlsrptd's own),
# INGEST_ARGS (more ingest options), JOBS (build jobs).
set -euo pipefail

N=${1:-100000}
SEED=${SEED:-1}
BATCH=${BATCH:-}
INGEST_ARGS=${INGEST_ARGS:-}
JOBS=${JOBS:-2}
case $N in
'' | *[!0-9]*) echo "usage: bench/ingest.sh [N]" >&2 && exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build-bench}
OUT=bench/out
DIR=$OUT/reports-$N
DB=$OUT/bench.db
RATIO_MIN=60
CPU_MAX=2.0
RSS_MAX_MIB=64

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd gen_reports parse_only rusage >/dev/null
TLSRPTD=$BUILD/tlsrptd
GEN=$BUILD/bench/gen_reports
PARSE=$BUILD/bench/parse_only
RUSAGE=$BUILD/bench/rusage

mkdir -p "$OUT"
# The cache is valid for this seed and this version of the generator.
stamp=".complete-seed-$SEED-$(cksum <bench/gen_reports.c | cut -d' ' -f1)"
if [ ! -f "$DIR/$stamp" ]; then
    echo "generating $N reports into $DIR (seed $SEED) ..."
    rm -rf "$DIR" "$DIR.tmp"
    "$GEN" -n "$N" -o "$DIR.tmp" -s "$SEED"
    touch "$DIR.tmp/$stamp"
    mv "$DIR.tmp" "$DIR"
fi
echo "reports: $DIR ($(du -sh "$DIR" | cut -f1) on disk)"

# field NAME FILE: the value of NAME=value in a rusage line
field() { sed -E -n "s/.*(^| )$1=([^ ]*).*/\2/p" "$2"; }

echo "warming the page cache (parse-only, untimed) ..."
"$PARSE" "$DIR" >/dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before: $(uptime)"
"$RUSAGE" -o "$OUT/parse.rusage" "$PARSE" "$DIR" >"$OUT/parse.out"
cat "$OUT/parse.out"

rm -f "$DB" "$DB-wal" "$DB-shm"
ingest_cmd=("$TLSRPTD" ingest --db "$DB" --quiet --no-progress)
[ -n "$BATCH" ] && ingest_cmd+=(--commit-max "$BATCH")
# shellcheck disable=SC2206 # INGEST_ARGS is split on purpose
[ -n "$INGEST_ARGS" ] && ingest_cmd+=($INGEST_ARGS)
ingest_cmd+=("$DIR")
echo "running: ${ingest_cmd[*]}"
set +e
"$RUSAGE" -o "$OUT/ingest.rusage" "${ingest_cmd[@]}" >"$OUT/ingest.out" 2>"$OUT/ingest.err"
ingest_rc=$?
set -e
cat "$OUT/ingest.err"
head -5 "$OUT/ingest.out"
echo "load after: $(uptime)"

summary=$("$TLSRPTD" summary --db "$DB" --format json)
if command -v jq >/dev/null; then
    stored=$(jq -r '.totals.reports' <<<"$summary")
else
    stored=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["reports"])' \
        <<<"$summary")
fi

p_wall=$(field wall_s "$OUT/parse.rusage")
p_user=$(field user_s "$OUT/parse.rusage")
p_sys=$(field sys_s "$OUT/parse.rusage")
p_rss=$(field maxrss_kib "$OUT/parse.rusage")
i_wall=$(field wall_s "$OUT/ingest.rusage")
i_user=$(field user_s "$OUT/ingest.rusage")
i_sys=$(field sys_s "$OUT/ingest.rusage")
i_rss=$(field maxrss_kib "$OUT/ingest.rusage")

awk -v n="$N" -v pw="$p_wall" -v pu="$p_user" -v ps="$p_sys" -v prss="$p_rss" -v iw="$i_wall" -v iu="$i_user" \
    -v is="$i_sys" -v irss="$i_rss" -v stored="$stored" -v rc="$ingest_rc" \
    -v rmin="$RATIO_MIN" -v cpumax="$CPU_MAX" -v rssmax="$RSS_MAX_MIB" -v nproc="$(nproc)" \
    -v load_before="$load_before" -v load_after="$(cut -d' ' -f1-3 /proc/loadavg)" -v batch="${BATCH:-1024 (default)}" '
function verdict(ok) { if (!ok) failed = 1; return ok ? "PASS" : "FAIL" }
BEGIN {
    prate = n / pw; irate = n / iw; ratio = 100 * irate / prate; rss = irss / 1024
    printf "\n== ingest benchmark: %d reports, %d cores, --commit-max %s\n", n, nproc, batch
    printf "load average before %s, after %s (includes this benchmark)\n", load_before, load_after
    pcpu = 1000 * (pu + ps) / n; icpu = 1000 * (iu + is) / n
    printf "parse-only     %9.0f reports/s  %.3f CPU s per 1,000  (%.2f s wall, %.2f s user, %.2f s sys, peak RSS %.1f MiB)\n", prate, pcpu, pw, pu, ps, prss / 1024
    printf "ingest         %9.0f reports/s  %.3f CPU s per 1,000  (%.2f s wall, %.2f s user, %.2f s sys, exit %d)\n", irate, icpu, iw, iu, is, rc
    printf "rate ratio     %9.2f x          target >= %.2fx     %s\n", ratio / 100, rmin / 100, verdict(ratio >= rmin)
    printf "CPU per report %9.2f x floor    target <= %.1fx      %s\n", icpu / pcpu, cpumax, verdict(icpu <= cpumax * pcpu)
    printf "ingest peak RSS %8.1f MiB        target <= %d MiB   %s\n", rss, rssmax, verdict(rss <= rssmax)
    printf "stored         %9d            target %d        %s\n", stored, n, verdict(stored == n && rc == 0)
    exit failed
}'
