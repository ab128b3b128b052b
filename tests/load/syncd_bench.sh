#!/usr/bin/env bash
# syncd benchmark: 10,000 Ingress hosts with 10,000 TLS certificates and 10
# subscribed proxies; times a one-route change until all 10 ACKs (p50/p99),
# the bytes of that delta, and the initial load (time, RSS). Builds
# optimised binaries first. Extra flags go to syncd_bench (--hosts=N,
# --clients=N, --changes=N, --workdir=DIR, --debounce=D).
#   bash tests/load/syncd_bench.sh [--hosts=1000]
set -euo pipefail
cd "$(dirname "$0")/../.."
BAZEL=${BAZEL:-bazel}
$BAZEL build -c opt --copt=-O2 //syncd:syncd //tests/load:syncd_bench >&2
bin=$($BAZEL info -c opt --copt=-O2 bazel-bin 2>/dev/null)
exec "$bin/tests/load/syncd_bench" --syncd="$bin/syncd/syncd" "$@"
