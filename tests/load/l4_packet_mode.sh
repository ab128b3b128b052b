#!/usr/bin/env bash
# l4_packet_mode.sh — benchmark of l4lb's packet mode: TCP mode vs XDP mode
# vs HAProxy `mode tcp`, CPU of the L4 tier per new connection, per
# kept-alive request and per MB (replies bypass the l4lb in XDP mode), in
# network namespaces inside an outer namespace with no route out. See
# tests/load/l4_packet_bench.py. Root; a benchmark, never a test.
#
#   bash tests/load/l4_packet_mode.sh [--duration=5] [--conns=50] [--bulk-mb=256] [--repeat=3]
#
# Uses a -c opt build (bazel build -c opt) unless EDGE_BIN_DIR is set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${EDGE_XDP_BENCH_INNER:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "l4_packet_mode: needs root (namespaces, XDP)" >&2; exit 1; }
  if [ -z "${EDGE_BIN_DIR:-}" ]; then
    (cd "$root" && bazel build -c opt //l4lb:l4lb //l4lb:l4lb-decap //l4lb/bpf:xdp_pass_obj >/dev/null)
    EDGE_BIN_DIR=$(cd "$root" && bazel info -c opt bazel-bin 2>/dev/null)
  fi
  export EDGE_BIN_DIR EDGE_XDP_BENCH_INNER=1
  exec unshare --net --mount --propagation private -- bash "$0" "$@"
fi
ip link set lo up
mkdir -p /run/netns
mount -t tmpfs -o size=1m,mode=755 edge-l4-bench-netns /run/netns
if ip route show default | grep -q .; then echo "refusing: outer namespace has a default route" >&2; exit 1; fi
exec python3 "$here/l4_packet_bench.py" --repo="$root" --bin-dir="$EDGE_BIN_DIR" \
  --xdp-pass="$EDGE_BIN_DIR/l4lb/bpf/xdp_pass.bpf.o" "$@"
