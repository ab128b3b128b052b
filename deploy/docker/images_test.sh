#!/usr/bin/env bash
# images_test.sh — the images build here and pass deploy/local/run.sh --check.
#
#   deploy/docker/images_test.sh [--from-source] [--bin-dir=DIR]   (root)
#
# Without --bin-dir (and outside Bazel) it runs `bazel build -c opt` first.
#
# 1. In this machine's network namespace (apt inside `docker build` needs
#    the Debian mirror): a private Docker daemon (dockerd.sh: own socket,
#    data root, no bridge, no iptables), the Debian 12 base image from
#    debootstrap (base-image.sh), and edge/{syncd,l7proxy,l4lb}:test built
#    by build-images.sh (from the .debs of this tree's binaries, or
#    --from-source: the multi-stage build compiling inside the image).
#    The daemon is stopped (by its pid file) at the end of the step.
# 2. In a new network namespace with only loopback: the same daemon again
#    (same data root, so the same images), and deploy/local/run.sh --check
#    --images=test: syncd, three l7proxy and two l4lb containers with
#    --network=host on 127.0.0.1 ports, the example requests and the
#    live-edit check, exactly as the binaries are checked.
# The daemon's data root is kept in EDGE_DOCKER_DIR (default
# /var/cache/edge-build/dockerd-images-test) so layers are reused.
set -uo pipefail
if [ -n "${TEST_SRCDIR:-}" ]; then
  root="$TEST_SRCDIR/${TEST_WORKSPACE:-edge}"
else
  root="$(cd "$(dirname "$0")/../.." && pwd)"
fi
from_source=0
bin=""
[ -n "${TEST_SRCDIR:-}" ] && bin="$root"
for a in "$@"; do
  case "$a" in
    --from-source) from_source=1 ;;
    --bin-dir=*) bin="$(cd "${a#--bin-dir=}" && pwd)" ;;
    *) echo "images_test.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
say() { printf '[images_test] %s\n' "$*"; }
if [ "$(id -u)" -ne 0 ] || ! unshare --net true 2>/dev/null; then
  . "$root/tests/lib/skip.sh"
  edge_platform_skip "needs root and unshare --net"
fi
for t in dockerd docker debootstrap; do
  command -v "$t" >/dev/null || { say "FAILED: $t missing (bash bazel/setup.sh installs it)"; exit 1; }
done
ddir="${EDGE_DOCKER_DIR:-/var/cache/edge-build/dockerd-images-test}"
# One run at a time per data root: two runs (two checkouts on one machine)
# would share the daemon and one would stop it under the other.
mkdir -p "$ddir"
exec 9>"$ddir.lock"
if ! flock -w 600 9; then
  say "FAILED: another images_test held $ddir.lock for 10 min"
  exit 1
fi
if [ -z "$bin" ] && [ "$from_source" = 0 ]; then
  (cd "$root" && bazel build -c opt //syncd:syncd //syncd:syncctl //l7proxy:l7proxy //l4lb:l4lb) || exit 1
  bin="$(cd "$root" && bazel info -c opt bazel-bin)"
fi
work="$(mktemp -d)"
cleanup() {
  bash "$root/deploy/docker/dockerd.sh" stop "$ddir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# The build context must hold real files: a Bazel runfiles tree is symlinks.
ctx="$work/ctx"
mkdir -p "$ctx"
(cd "$root" && tar -chf - --exclude='./bin' --exclude='./_*' .) | tar -C "$ctx" -xf - ||
  { say "FAILED: cannot copy the build context"; exit 1; }
t0=$SECONDS
say "step 1: private dockerd ($ddir), base image, images"
eval "$(bash "$ctx/deploy/docker/dockerd.sh" start "$ddir")" || exit 1
build=(bash "$ctx/deploy/docker/build-images.sh" --tag=test)
if [ "$from_source" = 1 ]; then build+=(--from-source); else build+=(--bin-dir="$bin"); fi
if ! "${build[@]}"; then
  say "FAILED: image build"
  exit 1
fi
docker image prune -f >/dev/null 2>&1
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ':test' | sed 's/^/[images_test]   /'
bash "$ctx/deploy/docker/dockerd.sh" stop "$ddir"
say "step 1 took $((SECONDS - t0)) s"

say "step 2: run.sh --check --images=test in a private network namespace"
t1=$SECONDS
unshare --net -- bash -c '
  set -uo pipefail
  ip link set lo up
  eval "$(bash "$1/deploy/docker/dockerd.sh" start "$2")" || exit 1
  EDGE_LOCAL_NETNS=1 EDGE_RUN_DIR="$3/run" bash "$1/deploy/local/run.sh" --check --images=test
  rc=$?
  bash "$1/deploy/docker/dockerd.sh" stop "$2"
  exit $rc
' _ "$ctx" "$ddir" "$work"
rc=$?
say "step 2 took $((SECONDS - t1)) s"
if [ "$rc" -eq 0 ]; then say "passed"; else say "FAILED (run.sh --check --images=test exit $rc)"; fi
exit "$rc"
