#!/usr/bin/env bash
# packet_run.sh — the packet-mode (l4lb --mode=xdp) e2e in network
# namespaces: ECMP router with BGP (bird2), two XDP l4lbs, three DSR
# replicas, syncd, backends, clients; see packet_mode.py. Everything runs
# inside an outer namespace made here with `unshare --net --mount` that has
# no route out.
#
#   tests/e2e/netns/packet_run.sh --bin-dir=DIR --xdp-pass=FILE [--only=NAME[,NAME]]
#
# Needs root, unshare, ip, bird, birdc, curl, ethtool, python3 + PyYAML, and
# native XDP on veth. A missing platform ability (not root, no namespaces,
# XDP cannot attach) skips through tests/lib/skip.sh (one EDGE_SKIP line; a
# failure under CI=true); a missing tool that bazel/setup.sh installs is a
# failure.
set -uo pipefail
if [ -n "${TEST_SRCDIR:-}" ]; then
  root="$TEST_SRCDIR/${TEST_WORKSPACE:-edge}"
  here="$root/tests/e2e/netns"
else
  here="$(cd "$(dirname "$0")" && pwd)"
  root="$(cd "$here/../../.." && pwd)"
fi
xdp_pass=""
for a in "$@"; do case "$a" in --xdp-pass=*) xdp_pass="${a#*=}" ;; esac; done

. "$root/tests/lib/skip.sh"
if [ -z "${EDGE_XDP_E2E_INNER:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    edge_platform_skip "tests/e2e/netns packet mode needs root (network namespaces, bpf(2))"
  fi
  for tool in unshare ip bird birdc curl ethtool python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "FAILED: $tool not installed (run bazel/setup.sh)"; exit 1; }
  done
  python3 -c 'import yaml' 2>/dev/null || { echo "FAILED: python3 PyYAML missing (bazel/setup.sh)"; exit 1; }
  if ! unshare --net --mount --propagation private true 2>/dev/null; then
    edge_platform_skip "unshare --net --mount not permitted here (no network namespaces)"
  fi
  export EDGE_XDP_E2E_INNER=1
  exec unshare --net --mount --propagation private -- bash "$0" "$@"
fi

set -e
ip link set lo up
mkdir -p /run/netns
mount -t tmpfs -o size=1m,mode=755 edge-xdp-e2e-netns /run/netns
# BIRD's control sockets need short paths (Bazel's TEST_TMPDIR is too long)
mkdir -p /run/edge-xdp
mount -t tmpfs -o size=1m,mode=700 edge-xdp-e2e-sockets /run/edge-xdp
if ip route show default | grep -q .; then
  echo "refusing to run: the outer namespace has a default route" >&2
  exit 1
fi
# Can native XDP attach to a veth here? (a platform ability, not a feature)
ip link add xdpprobe0 type veth peer name xdpprobe1
if ! why=$(ip link set dev xdpprobe0 xdpdrv obj "$xdp_pass" sec xdp 2>&1); then
  edge_platform_skip "native XDP cannot attach to a veth on this kernel: ${why:-unknown}"
fi
ip link del xdpprobe0
set +e
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$here/packet_mode.py" --repo="$root" "$@"
