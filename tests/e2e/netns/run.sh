#!/usr/bin/env bash
# run.sh — the network-namespace e2e runner (CI). Every daemon runs on its own
# "host" (a network namespace) on one bridge, and all of it inside one outer
# namespace made here with `unshare --net --mount` that has no route out: the
# 10.99/16 addresses exist only in there, so no packet can leave the machine.
#
#   tests/e2e/netns/run.sh [--bin-dir=DIR] [--only=NAME[,NAME]] [--infra-only]
#                          [--repeat=N] [SCENARIO...]
#
# SCENARIO names select scenarios like --only. --repeat=N runs the selection
#   N times on one cluster (stress) and prints the requests sent and failed
#   per run, e.g. `run.sh --repeat=20 fault-syncd-restart`.
# --bin-dir: where syncd/syncd, syncd/syncctl, l7proxy/l7proxy, l4lb/l4lb are
#   (a bazel-bin directory; default: $EDGE_BIN_DIR, else `bazel info bazel-bin`).
# --infra-only: only the namespace/bridge/keepalived self-test (VIP moves when
#   the active member's check fails), with stand-in l4lb admin endpoints.
#   Without it, missing daemons are a failure (never a quieter run).
# Needs root and network namespaces (unshare --net --mount): without them it
# skips by tests/lib/skip.sh (one loud EDGE_SKIP line, exit 0; a failure when
# CI=true). ip, keepalived, curl, openssl and python3 with PyYAML come from
# bazel/setup.sh: a missing one is a failure. Exit status: 0 when every
# scenario passed.
set -uo pipefail
if [ -n "${TEST_SRCDIR:-}" ]; then # under bazel test: $0 is named after the target
  root="$TEST_SRCDIR/${TEST_WORKSPACE:-edge}"
  here="$root/tests/e2e/netns"
else
  here="$(cd "$(dirname "$0")" && pwd)"
  root="$(cd "$here/../../.." && pwd)"
fi

if [ -z "${EDGE_E2E_INNER:-}" ]; then
  . "$root/tests/lib/skip.sh"
  if [ "$(id -u)" -ne 0 ]; then
    edge_platform_skip "tests/e2e/netns needs root (network namespaces)"
  fi
  for tool in unshare ip keepalived curl openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAILED: $tool not installed (bash bazel/setup.sh installs it)"; exit 1; }
  done
  python3 -c 'import yaml' 2>/dev/null || { echo "FAILED: python3 PyYAML missing (bash bazel/setup.sh installs python3-yaml)"; exit 1; }
  if ! unshare --net --mount --propagation private true 2>/dev/null; then
    edge_platform_skip "unshare --net --mount not permitted here (no network namespaces)"
  fi
  export EDGE_E2E_INNER=1
  exec unshare --net --mount --propagation private -- bash "$here/run.sh" "$@"
fi

# Inside the outer namespace: only loopback exists, there is no default route.
set -e
ip link set lo up
# `ip netns add` keeps its handles under /run/netns: a private tmpfs keeps them
# inside this mount namespace, so nothing leaks to the host.
mkdir -p /run/netns
mount -t tmpfs -o size=1m,mode=755 edge-e2e-netns /run/netns
if ip route show default | grep -q .; then
  echo "refusing to run: the outer namespace has a default route" >&2
  exit 1
fi
set +e
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$here/runner.py" --repo="$root" "$@"
