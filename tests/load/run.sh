#!/usr/bin/env bash
# tests/load/run.sh — edge's load-testing suite: named scenarios, each run
# side by side with nginx and HAProxy (1 worker each, same nginx backend,
# all on 127.0.0.1), reporting req/s, p50/p99/p99.9, errors, proxy CPU µs
# per request, RSS and edge's ratios to each peer.
#
#   tests/load/run.sh list                      the scenarios
#   tests/load/run.sh SCENARIO... [--quick] [--json] [--duration=S] [--conns=N]
#                     [--repeat=N]   (N interleaved runs per side, medians)
#   tests/load/run.sh all --quick               the regression guard (~2 s a side)
#
# Writes tests/load/results/<UTC timestamp>/{report.md,report.json,plot.png}
# and prints the Markdown table (or the JSON with --json). Exit status 1 when
# a scenario failed: a side that should run did not, measured nothing, or
# saw unexpected errors. There are no skipped sides.
#
# Binaries: built here with `bazel build -c opt` (l7proxy, l4lb, syncd, syncd_bench)
# unless EDGE_BIN_DIR points at a bazel-bin that has them. EDGE_BAZEL
# overrides the bazel command (e.g. "bazel/dev-bazel.sh NAME"). A binary that
# does not build fails edge's sides, never fake numbers.
# Needs: nginx, haproxy, wrk, h2load (nghttp2-client), curl, openssl,
# gnuplot, python3. A benchmark, never a test: timings are not asserted.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

case "${1:-}" in
  "" | -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  list) exec python3 "$here/loadtest.py" list ;;
esac

export PYTHONDONTWRITEBYTECODE=1
# Reject bad arguments before spending a build on them.
python3 "$here/loadtest.py" --dry-run "$@"

if [ -z "${EDGE_BIN_DIR:-}" ]; then
  cd "$root"
  bazel_cmd=(${EDGE_BAZEL:-bazel})
  echo "[load] building l7proxy, l4lb, syncd and syncd_bench (-c opt) ..." >&2
  if ! "${bazel_cmd[@]}" build -c opt --keep_going //l7proxy:l7proxy //l4lb:l4lb //syncd:syncd //tests/load:syncd_bench >"${TMPDIR:-/tmp}/edge-load-build.log" 2>&1; then
    echo "[load] build failed (see ${TMPDIR:-/tmp}/edge-load-build.log); edge sides without a binary fail" >&2
  fi
  EDGE_BIN_DIR="$("${bazel_cmd[@]}" info -c opt bazel-bin 2>/dev/null || true)"
  export EDGE_BIN_DIR
fi
exec python3 "$here/loadtest.py" "$@"
