#!/usr/bin/env bash
# Runs a fuzz target's replay binary over its seed corpus (see edge.bzl).
set -euo pipefail
bin="$1"; shift
exec "$bin" "$@"
