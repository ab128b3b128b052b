#!/usr/bin/env bash
# Applies .clang-format to every C source in the tree, or with --check
# lists the files that differ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' | grep -v '^bazel-' || true)
[ "${#files[@]}" -eq 0 ] && exit 0
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then echo "needs format: $f"; bad=1; fi
  done
  exit $bad
fi
for f in "${files[@]}"; do [ -f "$f" ] && clang-format --style=file -i "$f"; done
