#!/usr/bin/env bash
# The Gateway API conformance runner as a test (//tests/conformance:conformance_test):
# every ported case through the directory source and through the API server
# stand-in, in a private network namespace. Fails when a case of a claimed
# feature fails; prints the ConformanceReport of each run.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
exec python3 tests/conformance/runner.py --bin-dir=. --source=both "$@"
