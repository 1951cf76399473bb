#!/usr/bin/env bash
# bench/hostile.sh: the hostile-load benchmark of issue 11.
#   bench/hostile.sh [FLOOD_SECONDS=60]
#
# Builds Release in build-bench and (unless ASAN=0) the Asan type in
# build-bench-asan, then runs bench/hostile.py: an honest sender alone (the
# baseline), each hostile POST alone and four at once beside the honest
# sender and a /healthz poller, the slow-header and idle keep-alive floods
# (600 connections from 127.0.0.1-200) for FLOOD_SECONDS, and the hostile-input
# corpus against the ASan build. Prints the figures and the issue's targets
# with PASS or FAIL (exit 1 when one is missed). Daemon logs and databases go
# to bench/out (git-ignored). Needs python3; the floods need a file limit of
# 2048 or more (ulimit -n).
#
# Environment: HONEST (seconds of the baseline, default 30), ASAN (0 skips the
# ASan build and the corpus), JOBS (build jobs, default 2).
set -euo pipefail

FLOOD=${1:-60}
HONEST=${HONEST:-30}
ASAN=${ASAN:-1}
JOBS=${JOBS:-2}
case $FLOOD in
'' | *[!0-9]*) echo "usage: bench/hostile.sh [FLOOD_SECONDS]" >&2 && exit 64 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 2048 ] || ulimit -n 4096

SRC_STATE="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git status --porcelain -- src include schema CMakeLists.txt 2>/dev/null)" ] &&
    SRC_STATE="$SRC_STATE + uncommitted changes in src/"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j "$JOBS" --target tlsrptd >/dev/null
args=(--bin build-bench/tlsrptd --duration "$FLOOD" --honest "$HONEST" --out bench/out)
if [ "$ASAN" != 0 ]; then
    cmake -S . -B build-bench-asan -DCMAKE_BUILD_TYPE=Asan -DTLSRPTD_BENCH=OFF >/dev/null
    cmake --build build-bench-asan -j "$JOBS" --target tlsrptd >/dev/null
    args+=(--asan-bin build-bench-asan/tlsrptd)
fi
mkdir -p bench/out
echo "built from $SRC_STATE; $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
python3 bench/hostile.py "${args[@]}" || rc=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
