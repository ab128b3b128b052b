#!/usr/bin/env bash
# Bazel entry for check_scenarios.py (runs from the runfiles root).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
exec python3 tests/e2e/check_scenarios.py "$PWD"
