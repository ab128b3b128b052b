#!/usr/bin/env bash
# The test command: format check, every Bazel test (unit, integration, e2e
# in network namespaces, fuzz corpus replay), the load scenarios in quick
# mode (each side that should run does, measures something and sees no
# unexpected errors; no timing is asserted), then the Bazel server is shut
# down. Prints "tests: N passed, N failed, N skipped".
#
# Skips (CONTRIBUTING.md, "Tests"): a test may skip only for a missing
# platform ability (no root, no network namespaces), on a line starting
# with "EDGE_SKIP:" in its log. They are listed at the end; with CI=true any
# skip fails the run (the tests themselves fail too).
#
# Usage: tests/run.sh [--asan] [--no-load] [extra bazel test args]
#   --asan     run the Bazel tests under ASan + UBSan (skips the load run)
#   --no-load  skip the quick load scenarios
#
# Tests that start real processes share two cores with everything else; a
# test that fails once is retried once and reported FLAKY by Bazel rather
# than failing the run (a second failure fails it).
set -uo pipefail
cd "$(dirname "$0")/.."

config=()
load=1
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) config=(--config=asan); load=0; shift ;;
    --no-load) load=0; shift ;;
    *) break ;;
  esac
done

status=0
passed=0
failed=0
skipped=0
skips=$(mktemp)
ci=0
case "${CI:-}" in true | TRUE | True | 1 | yes) ci=1 ;; esac

echo "== format check (clang-format)"
if bash bazel/format.sh --check; then
  passed=$((passed + 1))
else
  echo "format check failed: run bazel/format.sh"
  status=1
  failed=$((failed + 1))
fi

echo "== bazel test //... ${config[*]}"
log=$(mktemp)
bazel test "${config[@]}" --test_summary=short --flaky_test_attempts=2 //... "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] && status=1
passed=$((passed + $(grep -cE '^//.* (PASSED|FLAKY)' "$log" || true)))
bfailed=$(grep -cE '^//.* (FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD|INCOMPLETE)' "$log" || true)
if [ "$rc" -ne 0 ] && [ "$bfailed" -eq 0 ]; then bfailed=1; fi
failed=$((failed + bfailed))
# Skips inside the tests that ran, from their logs (cached results too).
testlogs=$(bazel info "${config[@]}" bazel-testlogs 2>/dev/null)
for target in $(grep -oE '^//[^ ]+' "$log" | sort -u); do
  f="$testlogs/$(sed -e 's|^//||' -e 's|:|/|' <<<"$target")/test.log"
  [ -f "$f" ] && grep -h '^EDGE_SKIP:' "$f" | sed "s|^|$target: |" >>"$skips"
done
rm -f "$log"

if [ "$load" -eq 1 ] && [ "$rc" -eq 0 ]; then
  echo "== load scenarios, quick mode (tests/load/run.sh all --quick)"
  bin=$(bazel info bazel-bin 2>/dev/null)
  out=$(mktemp -d)
  if EDGE_BIN_DIR="$bin" bash tests/load/run.sh all --quick --out="$out/quick"; then
    passed=$((passed + 1))
  else
    echo "load quick mode failed once; retrying (shared cores)"
    if EDGE_BIN_DIR="$bin" bash tests/load/run.sh all --quick --out="$out/retry"; then
      passed=$((passed + 1))
    else
      status=1
      failed=$((failed + 1))
    fi
  fi
  rm -rf "$out"
fi

bazel shutdown >/dev/null 2>&1 || true

skipped=$(sort -u "$skips" | grep -c . || true)
if [ "$skipped" -gt 0 ]; then
  echo "== SKIPPED ($skipped; allowed only for a missing platform ability):"
  sort -u "$skips" | sed 's/^/  /'
  if [ "$ci" -eq 1 ]; then
    echo "CI=true: a skip is a failure"
    status=1
  fi
fi
rm -f "$skips"
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
