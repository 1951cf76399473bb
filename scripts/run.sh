#!/usr/bin/env bash
# scripts/run.sh: install what tlsrptd needs, build it (Release, in build/)
# when the sources changed, and run it with the given arguments.
#   scripts/run.sh ingest --db ./tlsrptd.db samples/
#   scripts/run.sh summary --db ./tlsrptd.db
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$top/build" -j"$(nproc)" --target tlsrptd >/dev/null
exec "$top/build/tlsrptd" "$@"
