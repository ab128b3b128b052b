#!/usr/bin/env bash
# build-images.sh — builds edge/syncd, edge/l7proxy, edge/l4lb (and the
# example backend edge/backend) on the Debian 12 base made here.
#
#   deploy/docker/build-images.sh [--tag=dev] [--from-source] [--bin-dir=DIR]
#
# Default: the runtime images install the .debs that deploy/deb/build.sh
# makes from this machine's Bazel outputs (--bin-dir, else `bazel build -c
# opt`), passed as EDGE_PREBUILT_DEBS=bin/deb: about a minute.
# --from-source: the Dockerfile's build stage compiles everything inside the
# image (bazel/setup.sh --build, offline bazel build -c opt, the .debs):
# the multi-stage build a CI without a Bazel cache runs; several minutes.
# Needs a Docker daemon (DOCKER_HOST; deploy/docker/dockerd.sh starts a
# private one) and a Debian mirror for apt-get inside `docker build
# --network host` (the same one the host uses).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tag=dev
source=0
bin=""
for a in "$@"; do
  case "$a" in
    --tag=*) tag="${a#--tag=}" ;;
    --from-source) source=1 ;;
    --bin-dir=*) bin="${a#--bin-dir=}" ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
say() { printf '[images] %s\n' "$*"; }
t0=$SECONDS
bash "$here/base-image.sh"
args=()
if [ "$source" = 0 ]; then
  rm -rf "$root/bin/deb"
  bash "$root/deploy/deb/build.sh" --out="$root/bin/deb" ${bin:+--bin-dir="$bin"}
  args=(--build-arg EDGE_PREBUILT_DEBS=bin/deb)
fi
for t in syncd l7proxy l4lb; do
  say "docker build --target $t -t edge/$t:$tag ${args[*]}"
  t1=$SECONDS
  docker build --network host -q -f "$here/Dockerfile" --target "$t" -t "edge/$t:$tag" \
    "${args[@]}" "$root" >/dev/null
  say "edge/$t:$tag built in $((SECONDS - t1)) s ($(docker image inspect -f '{{.Size}}' "edge/$t:$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
done
docker build --network host -q -f "$here/backend.Dockerfile" -t "edge/backend:$tag" "$root" >/dev/null
say "edge/backend:$tag built; all images in $((SECONDS - t0)) s"
