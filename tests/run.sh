#!/usr/bin/env bash
# The test command: format check, then every Bazel test (unit, integration,
# e2e, fuzz corpus replay), then the Bazel server is shut down.
# Usage: tests/run.sh [--asan] [extra bazel test args]
set -uo pipefail
cd "$(dirname "$0")/.."

config=()
if [ "${1:-}" = "--asan" ]; then config=(--config=asan); shift; fi

status=0
echo "== format check (clang-format)"
if ! bash bazel/format.sh --check; then
  echo "format check failed: run bazel/format.sh"
  status=1
fi

echo "== bazel test //... ${config[*]}"
log=$(mktemp)
bazel test "${config[@]}" --test_summary=short //... "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] && status=1

passed=$(grep -cE '^//.* PASSED' "$log" || true)
failed=$(grep -cE '^//.* (FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
rm -f "$log"
bazel shutdown >/dev/null 2>&1 || true

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "tests: $passed passed, $failed failed"
exit "$status"
