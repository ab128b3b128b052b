#!/usr/bin/env bash
# Developer helper: runs Bazel with a private output base named NAME, so
# several people (or agents) can build and test in one checkout at once
# without waiting on each other's Bazel server lock.
#   bazel/dev-bazel.sh NAME test //syncd/...
#   bazel/dev-bazel.sh NAME bin   -> prints the bazel-bin directory
set -euo pipefail
name="$1"; shift
cd "$(dirname "$0")/.."
base="${HOME}/.cache/bazel-edge-${name}"
if [ "${1:-}" = "bin" ]; then
  exec bazel --output_base="$base" info --symlink_prefix=/ bazel-bin 2>/dev/null
fi
cmd="$1"; shift
case "$cmd" in
  build|test|run|coverage) exec bazel --output_base="$base" "$cmd" --symlink_prefix=/ "$@" ;;
  *) exec bazel --output_base="$base" "$cmd" "$@" ;;
esac
