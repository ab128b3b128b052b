#!/usr/bin/env bash
# base-image.sh — the Debian 12 base image, made from Debian's packages here
# (no registry pull: this machine cannot pull images).
#
#   deploy/docker/base-image.sh [--tag=edge/debian:bookworm] [--rootfs=DIR]
#
# debootstrap --variant=minbase bookworm into DIR (kept as a cache: a second
# run reuses it), then `tar -C DIR -c . | docker import - TAG`. The Dockerfiles
# in this directory start FROM this tag (ARG DEBIAN). The mirror is the one
# apt uses on this host, or EDGE_DEBIAN_MIRROR. DOCKER_HOST selects the
# daemon (deploy/docker/dockerd.sh starts a private one).
set -euo pipefail
tag="edge/debian:bookworm"
rootfs="${EDGE_ROOTFS_CACHE:-/var/cache/edge-build/bookworm-minbase}"
for a in "$@"; do
  case "$a" in
    --tag=*) tag="${a#--tag=}" ;;
    --rootfs=*) rootfs="${a#--rootfs=}" ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "base-image.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
say() { printf '[base-image] %s\n' "$*"; }

mirror="${EDGE_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
fi

if [ ! -f "$rootfs/.edge-complete" ]; then
  command -v debootstrap >/dev/null || { echo "base-image.sh: debootstrap missing (bazel/setup.sh installs it)" >&2; exit 1; }
  rm -rf "$rootfs.tmp"
  mkdir -p "$(dirname "$rootfs")"
  say "debootstrap --variant=minbase bookworm $rootfs ($mirror)"
  t0=$SECONDS
  debootstrap --variant=minbase bookworm "$rootfs.tmp" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; exit 1; }
  # apt inside the image uses the same mirror; no cached package lists.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
    >"$rootfs.tmp/etc/apt/sources.list"
  rm -rf "$rootfs.tmp/var/lib/apt/lists/"* "$rootfs.tmp/var/cache/apt/archives/"*.deb
  touch "$rootfs.tmp/.edge-complete"
  rm -rf "$rootfs"
  mv "$rootfs.tmp" "$rootfs"
  say "rootfs ready in $((SECONDS - t0)) s ($(du -sh "$rootfs" | cut -f1))"
else
  say "reusing $rootfs"
fi
t0=$SECONDS
tar -C "$rootfs" --exclude=./.edge-complete -c . | docker import - "$tag" >/dev/null
say "imported $tag in $((SECONDS - t0)) s"
