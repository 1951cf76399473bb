#!/usr/bin/env bash
# bench/http.sh: the HTTP benchmark. Usage: bench/http.sh [DURATION=20s]
#
# Installs wrk and openssl with apt-get when missing, builds Release in
# build-bench and makes a throwaway self-signed certificate (P-256) in bench/out
# (git-ignored). Then, for plain HTTP and after that for HTTPS:
#   1. starts bench's mhd_ceiling (bare libmicrohttpd: reads the body, answers
#      201) and runs wrk -t2 -c64 -d$DURATION --latency -s bench/post_report.lua
#      against it: the ceiling;
#   2. starts tlsrptd serve --db bench/out/http.db (fresh) --rate-limit 0
#      --max-connections-per-ip 1024 --max-connections 2048 --idle-timeout 120
#      and runs the same wrk; every request POSTs a distinct ~1.5 KB report;
#   3. reads the daemon's VmHWM and VmRSS from /proc/PID/status, opens 256
#      keep-alive connections (a python client: TLS handshake where HTTPS, one
#      distinct report POSTed and answered 201 on each, then idle) and reads
#      VmRSS and VmHWM again;
#   4. sends SIGTERM (exit 0 expected) and counts the rows in reports
#      (tlsrptd summary): every 201 must be stored, and nothing may be stored
#      that was not sent. wrk drops the requests still in flight when its time
#      is up (at most one per connection); the daemon stores those too, so the
#      check is 201s <= rows - 256 <= 201s + unanswered (in practice rows equals
#      201s + unanswered + 256 exactly), and every wrk response must be a 201.
# Prints a table against the targets of the issue: >= 10,000 reports/s over
# plain HTTP; >= 25 % of the ceiling; p99 <= 20 ms; RSS <= 64 MiB with 256 open
# connections (plain and HTTPS). Exits 1 when a target is missed.
#
# Environment: THREADS (tlsrptd --threads and mhd_ceiling --threads, default
# tlsrptd's own, 4), COMMIT_MAX (--commit-max), SERVE_ARGS (more serve options),
# SERVE_ENV (environment for the daemon only, e.g. GLIBC_TUNABLES=...),
# CEILING_ARGS (more mhd_ceiling options, e.g. --epoll),
# CONNS (wrk connections, default 64), IDLE (idle connections, default 256),
# PORT (first of 4 loopback ports, default 28460), JOBS (build jobs),
# ONLY (http or https: run one protocol).
set -euo pipefail

DURATION=${1:-20s}
THREADS=${THREADS:-}
COMMIT_MAX=${COMMIT_MAX:-}
SERVE_ARGS=${SERVE_ARGS:-}
SERVE_ENV=${SERVE_ENV:-}
CEILING_ARGS=${CEILING_ARGS:-}
CONNS=${CONNS:-64}
IDLE=${IDLE:-256}
PORT=${PORT:-28460}
JOBS=${JOBS:-2}
ONLY=${ONLY:-}
case $DURATION in
'' | *[!0-9smh]* | [!0-9]*) echo "usage: bench/http.sh [DURATION, e.g. 20s]" >&2 && exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=build-bench
OUT=bench/out
DB=$OUT/http.db
HOST=127.0.0.1
RATE_MIN=10000
RATIO_MIN=25
P99_MAX_MS=20
RSS_MAX_MIB=64

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} ..."
    SUDO=
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y "${missing[@]}" >/dev/null ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "${missing[@]}" >/dev/null; }
fi

# The tree may change under a long benchmark: record what was built.
SRC_STATE="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git status --porcelain -- src include schema CMakeLists.txt 2>/dev/null)" ] &&
    SRC_STATE="$SRC_STATE + uncommitted changes in src/"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target tlsrptd mhd_ceiling rusage >/dev/null
TLSRPTD=$BUILD/tlsrptd
CEILING=$BUILD/bench/mhd_ceiling
RUSAGE=$BUILD/bench/rusage

mkdir -p "$OUT"
CERT=$OUT/http-cert.pem
KEY=$OUT/http-key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=IP:$HOST,DNS:localhost" \
    -keyout "$KEY" -out "$CERT" 2>/dev/null

# The idle client: python3 -c "$IDLE_PY" HOST PORT N TLS(0/1) READYFILE HOLD_S REPORT
# Opens N connections; on each (after the TLS handshake when TLS=1) POSTs one
# distinct report (REPORT with report-id "idle-<time>-<i>") and reads the 201,
# keep-alive, so that every connection has served a real request. Then all N
# stay open and idle: it writes N to READYFILE and sleeps HOLD_S. (GET /healthz
# would not do: tlsrptd answers it with "Connection: close".)
IDLE_PY=$(
    cat <<'EOF'
import json, socket, ssl, sys, time
host, port, n, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
ready, hold, report = sys.argv[5], float(sys.argv[6]), json.load(open(sys.argv[7]))
ctx = None
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
run = int(time.time())
conns = []
for i in range(n):
    s = socket.create_connection((host, port))
    if ctx:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    report["report-id"] = "idle-%d-%d" % (run, i)
    body = json.dumps(report).encode()
    s.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: localhost\r\n"
              b"Content-Type: application/tlsrpt+json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("idle client: connection %d closed" % i)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 201"):
        sys.exit("idle client: " + lines[0].decode())
    fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
    if fields.get(b"connection", b"").lower() == b"close":
        sys.exit("idle client: the server closes the connection")
    while len(rest) < int(fields.get(b"content-length", b"0")):
        rest += s.recv(4096)
    conns.append(s)
with open(ready, "w") as f:
    f.write("%d\n" % len(conns))
time.sleep(hold)
EOF
)

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

# wait_port PORT PID: until PORT accepts connections (PID must stay alive)
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# stop PID: SIGTERM and wait; the exit status goes to STOP_RC
stop() {
    kill -TERM "$1"
    STOP_RC=0
    wait "$1" || STOP_RC=$?
}
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# cpu_s PID: user + system CPU seconds of a running process
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' \
        "/proc/$1/stat"
}
# busy_s: CPU seconds the whole machine has been busy (all but idle and iowait)
busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}
field() { sed -E -n "s/.*(^| )$1=([^ ]*).*/\2/p" "$2" | head -1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# run_wrk URL NAME: wrk under rusage; output in $OUT/NAME.wrk, CPU in $OUT/NAME.wrk.rusage
run_wrk() {
    "$RUSAGE" -o "$OUT/$2.wrk.rusage" wrk -t2 -c"$CONNS" -d"$DURATION" --latency \
        -s bench/post_report.lua "$1" >"$OUT/$2.wrk" 2>&1 || true
    grep -q '^BENCH ' "$OUT/$2.wrk" || { echo "wrk failed:" && cat "$OUT/$2.wrk"; } >&2
}

# shellcheck disable=SC2206 # SERVE_ENV is split on purpose; env execs, so $! is the daemon
# --idle-timeout 120: the idle client opens its connections one after another, and over
# HTTPS on a busy machine that can take longer than the default 15 s, after which the
# first ones would be closed before they are counted
serve_cmd=(env $SERVE_ENV "$TLSRPTD" serve --db "$DB" --rate-limit 0 --max-connections-per-ip 1024
    --max-connections 2048 --idle-timeout 120)
ceiling_args=()
# shellcheck disable=SC2206 # CEILING_ARGS is split on purpose
[ -n "$CEILING_ARGS" ] && ceiling_args+=($CEILING_ARGS)
[ -n "$THREADS" ] && serve_cmd+=(--threads "$THREADS") && ceiling_args+=(--threads "$THREADS")
[ -n "$COMMIT_MAX" ] && serve_cmd+=(--commit-max "$COMMIT_MAX")
# shellcheck disable=SC2206 # SERVE_ARGS is split on purpose
[ -n "$SERVE_ARGS" ] && serve_cmd+=($SERVE_ARGS)

RESULTS=$OUT/http.results
: >"$RESULTS"
echo "load before: $(uptime)"

bench_proto() {
    local proto=$1 cport=$2 dport=$3 scheme tlsflag=0
    local ccmd=("$CEILING" --listen "$HOST:$cport" "${ceiling_args[@]}")
    local dcmd=("${serve_cmd[@]}")
    if [ "$proto" = https ]; then
        scheme=https tlsflag=1
        ccmd+=(--cert "$CERT" --key "$KEY")
        dcmd+=(--listen-tls "$HOST:$dport" --tls-cert "$CERT" --tls-key "$KEY")
    else
        scheme=http
        dcmd+=(--listen "$HOST:$dport")
    fi

    # 1. the ceiling
    echo "[$proto] ceiling: ${ccmd[*]}"
    "${ccmd[@]}" 2>"$OUT/$proto-ceiling.log" &
    local cpid=$!
    PIDS+=("$cpid")
    wait_port "$cport" "$cpid" || { cat "$OUT/$proto-ceiling.log" >&2 && exit 1; }
    local c_load0 c_cpu0 c_cpu1
    c_load0=$(load)
    c_cpu0=$(cpu_s "$cpid")
    local c_busy0 c_busy1 d_busy0 d_busy1
    c_busy0=$(busy_s)
    run_wrk "$scheme://$HOST:$cport/tlsrpt" "$proto-ceiling"
    c_cpu1=$(cpu_s "$cpid")
    c_busy1=$(busy_s)
    local c_hwm c_load1
    c_hwm=$(status_kib "$cpid" VmHWM)
    c_load1=$(load)
    stop "$cpid"
    grep '^BENCH ' "$OUT/$proto-ceiling.wrk" || true

    # 2. tlsrptd serve
    rm -f "$DB" "$DB-wal" "$DB-shm"
    echo "[$proto] daemon: ${dcmd[*]}"
    "${dcmd[@]}" 2>"$OUT/$proto-serve.log" &
    local dpid=$!
    PIDS+=("$dpid")
    wait_port "$dport" "$dpid" || { cat "$OUT/$proto-serve.log" >&2 && exit 1; }
    local d_load0 d_cpu0 d_cpu1 d_load1
    d_load0=$(load)
    d_cpu0=$(cpu_s "$dpid")
    d_busy0=$(busy_s)
    run_wrk "$scheme://$HOST:$dport/tlsrpt" "$proto-serve"
    d_cpu1=$(cpu_s "$dpid")
    d_busy1=$(busy_s)
    d_load1=$(load)
    grep '^BENCH ' "$OUT/$proto-serve.wrk" || true

    # 3. RSS: after wrk, then with IDLE idle keep-alive connections
    local hwm rss
    hwm=$(status_kib "$dpid" VmHWM)
    rss=$(status_kib "$dpid" VmRSS)
    local ready=$OUT/$proto-idle.ready
    rm -f "$ready"
    python3 -c "$IDLE_PY" "$HOST" "$dport" "$IDLE" "$tlsflag" "$ready" 20 samples/report.json &
    local ipid=$!
    PIDS+=("$ipid")
    for _ in $(seq 300); do
        [ -s "$ready" ] && break
        kill -0 "$ipid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    local open idle_rss idle_hwm
    open=$(ss -Htn state established "( sport = :$dport )" | wc -l)
    idle_rss=$(status_kib "$dpid" VmRSS)
    idle_hwm=$(status_kib "$dpid" VmHWM)
    kill "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    local idle_created=0
    if [ -s "$ready" ]; then
        idle_created=$(cat "$ready")
    else
        echo "[$proto] the idle client did not get its $IDLE connections" >&2
    fi

    # 4. SIGTERM, then count the rows
    stop "$dpid"
    local rc=$STOP_RC
    local summary stored
    summary=$("$TLSRPTD" summary --db "$DB" --format json)
    if command -v jq >/dev/null; then
        stored=$(jq -r '.totals.reports' <<<"$summary")
    else
        stored=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["reports"])' \
            <<<"$summary")
    fi
    echo "[$proto] RSS after wrk ${rss} KiB (peak ${hwm}), with $open/$IDLE idle connections ${idle_rss} KiB (peak ${idle_hwm}); exit $rc; $stored rows"

    local cw=$OUT/$proto-ceiling.wrk dw=$OUT/$proto-serve.wrk
    {
        printf 'proto=%s c_rps=%s c_p50=%s c_p99=%s c_hwm=%s c_cpu=%s c_wrk_cpu=%s c_busy=%s c_load0="%s" c_load1="%s" ' \
            "$proto" "$(field created_rps "$cw")" "$(field p50_ms "$cw")" "$(field p99_ms "$cw")" \
            "$c_hwm" "$(awk -v a="$c_cpu0" -v b="$c_cpu1" 'BEGIN { print b - a }')" \
            "$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(user|sys)_s=/) { split($i, kv, "="); s += kv[2] } } END { print s }' "$cw.rusage")" \
            "$(awk -v a="$c_busy0" -v b="$c_busy1" 'BEGIN { print b - a }')" "$c_load0" "$c_load1"
        printf 'rps=%s created=%s responses=%s unanswered=%s p50=%s p99=%s max=%s errors=%s ' \
            "$(field created_rps "$dw")" "$(field created "$dw")" "$(field responses "$dw")" \
            "$(field unanswered "$dw")" "$(field p50_ms "$dw")" "$(field p99_ms "$dw")" \
            "$(field max_ms "$dw")" \
            "$(awk '/^BENCH/ { for (i = 1; i <= NF; i++) if ($i ~ /^err_/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }' "$dw")"
        printf 'hwm=%s rss=%s idle_open=%s idle_created=%s idle_rss=%s idle_hwm=%s rc=%s stored=%s d_cpu=%s d_wrk_cpu=%s d_busy=%s d_load0="%s" d_load1="%s"\n' \
            "$hwm" "$rss" "$open" "$idle_created" "$idle_rss" "$idle_hwm" "$rc" "$stored" \
            "$(awk -v a="$d_cpu0" -v b="$d_cpu1" 'BEGIN { print b - a }')" \
            "$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(user|sys)_s=/) { split($i, kv, "="); s += kv[2] } } END { print s }' "$dw.rusage")" \
            "$(awk -v a="$d_busy0" -v b="$d_busy1" 'BEGIN { print b - a }')" "$d_load0" "$d_load1"
    } >>"$RESULTS"
}

[ "$ONLY" != https ] && bench_proto http "$PORT" $((PORT + 2))
[ "$ONLY" != http ] && bench_proto https $((PORT + 1)) $((PORT + 3))
echo "load after: $(uptime)"

awk -v dur="$DURATION" -v conns="$CONNS" -v idle="$IDLE" -v nproc="$(nproc)" \
    -v threads="${THREADS:-4 (default)}" -v commit="${COMMIT_MAX:-1024 (default)}" \
    -v extra="$SERVE_ARGS${SERVE_ENV:+ (env $SERVE_ENV)}" -v src="$SRC_STATE" \
    -v ceiling="$CEILING ${ceiling_args[*]}" -v rmin="$RATE_MIN" -v ratio_min="$RATIO_MIN" -v p99max="$P99_MAX_MS" \
    -v rssmax="$RSS_MAX_MIB" '
function verdict(ok) { if (!ok) failed = 1; return ok ? "PASS" : "FAIL" }
{
    # key=value pairs; values in double quotes may hold spaces
    line = $0
    delete val
    while (match(line, /[a-z_0-9]+=("[^"]*"|[^ ]*)/)) {
        kv = substr(line, RSTART, RLENGTH)
        line = substr(line, RSTART + RLENGTH)
        k = substr(kv, 1, index(kv, "=") - 1)
        x = substr(kv, index(kv, "=") + 1)
        gsub(/"/, "", x)
        val[k] = x
    }
    p = val["proto"]
    protos[++np] = p
    for (k in val) r[p, k] = val[k] ~ /^-?[0-9.]+$/ ? val[k] + 0 : val[k]
}
END {
    printf "\n== HTTP benchmark: wrk -t2 -c%d -d%s, %d cores, tlsrptd --threads %s --commit-max %s %s\n", conns, dur, nproc, threads, commit, extra
    printf "built from %s; ceiling: %s\n", src, ceiling
    printf "%-9s %9s %9s %6s %7s %7s %9s %9s %15s %7s  %s\n", "", "ceiling/s", "reports/s", "%ceil", "p50 ms", "p99 ms", "peak RSS", "RSS+" idle, "CPU s srv/wrk/oth", "stored", "load avg before -> after"
    for (i = 1; i <= np; i++) {
        p = protos[i]
        ratio = r[p, "c_rps"] > 0 ? 100 * r[p, "rps"] / r[p, "c_rps"] : 0
        wrk_rows = r[p, "stored"] - r[p, "idle_created"]
        ok_store = r[p, "rc"] == 0 && r[p, "created"] > 0 && r[p, "created"] == r[p, "responses"] && r[p, "errors"] == 0 && wrk_rows >= r[p, "created"] && wrk_rows <= r[p, "created"] + r[p, "unanswered"]
        store[p] = ok_store; rat[p] = ratio
        c_oth = r[p, "c_busy"] - r[p, "c_cpu"] - r[p, "c_wrk_cpu"]; if (c_oth < 0) c_oth = 0
        d_oth = r[p, "d_busy"] - r[p, "d_cpu"] - r[p, "d_wrk_cpu"]; if (d_oth < 0) d_oth = 0
        printf "%-9s %9s %9s %6s %7.2f %7.2f %9s %9s %15s %7s  %s -> %s\n", p " mhd", sprintf("%.0f", r[p, "c_rps"]), "-", "-", r[p, "c_p50"], r[p, "c_p99"], sprintf("%.1f MiB", r[p, "c_hwm"] / 1024), "-", sprintf("%.1f/%.1f/%.1f", r[p, "c_cpu"], r[p, "c_wrk_cpu"], c_oth), "-", r[p, "c_load0"], r[p, "c_load1"]
        printf "%-9s %9s %9s %6s %7.2f %7.2f %9s %9s %15s %7s  %s -> %s\n", p " tlsrptd", "", sprintf("%.0f", r[p, "rps"]), sprintf("%.1f%%", ratio), r[p, "p50"], r[p, "p99"], sprintf("%.1f MiB", r[p, "hwm"] / 1024), sprintf("%.1f MiB", r[p, "idle_rss"] / 1024), sprintf("%.1f/%.1f/%.1f", r[p, "d_cpu"], r[p, "d_wrk_cpu"], d_oth), ok_store ? "yes" : "NO", r[p, "d_load0"], r[p, "d_load1"]
        printf "       wrk: %d responses, %d of them 201, %d unanswered at the end, %d errors; rows: %d = %d from wrk + %d from the idle client; exit %d\n", r[p, "responses"], r[p, "created"], r[p, "unanswered"], r[p, "errors"], r[p, "stored"], wrk_rows, r[p, "idle_created"], r[p, "rc"]
        printf "       %d/%d idle connections open; RSS after wrk %.1f MiB, peak with idle %.1f MiB; daemon %.3f CPU s per 1,000 reports\n", r[p, "idle_open"], idle, r[p, "rss"] / 1024, r[p, "idle_hwm"] / 1024, (r[p, "created"] > 0 ? 1e3 * r[p, "d_cpu"] / r[p, "created"] : 0)
    }
    printf "CPU s: user + system seconds during the wrk run of the server, of wrk, and of everything else\n"
    printf "on the machine (other agents, kernel threads; %d cores x %s available). The load averages\n", nproc, dur
    printf "include the benchmark itself (its threads, and D state in fdatasync).\n\ntargets:\n"
    for (i = 1; i <= np; i++) {
        p = protos[i]
        if (p == "http")
            printf "  %-5s reports/s >= %d          %8.0f      %s\n", p, rmin, r[p, "rps"], verdict(r[p, "rps"] >= rmin)
        printf "  %-5s >= %d%% of the ceiling        %7.1f%%      %s\n", p, ratio_min, rat[p], verdict(rat[p] >= ratio_min)
        printf "  %-5s p99 <= %d ms                %8.2f ms   %s\n", p, p99max, r[p, "p99"], verdict(r[p, "p99"] > 0 && r[p, "p99"] <= p99max)
        printf "  %-5s RSS with %d conns <= %d MiB %6.1f MiB  %s\n", p, idle, rssmax, r[p, "idle_rss"] / 1024, verdict(r[p, "idle_open"] >= idle && r[p, "idle_rss"] > 0 && r[p, "idle_rss"] / 1024 <= rssmax)
        printf "  %-5s stored == acked, exit 0               %s\n", p, verdict(store[p])
    }
    exit failed
}' "$RESULTS"
