#!/usr/bin/env bash
# The kind e2e runner's entry point under tests/: see deploy/kind/run.sh
# (creates the cluster, deploys, runs tests/e2e/kind/runner.py, collects logs).
exec "$(cd "$(dirname "$0")/../../.." && pwd)/deploy/kind/run.sh" "$@"
