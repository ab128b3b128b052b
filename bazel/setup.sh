#!/usr/bin/env bash
# Installs every Debian 12 package that edge's build, tests and benchmarks
# need. Idempotent: safe to run again; it only installs what is missing.
# Run as root (or with sudo available) on a fresh Debian 12 machine.
#
#   bash bazel/setup.sh           everything: build, tests, benchmarks, operations
#   bash bazel/setup.sh --build   only what building the binaries and the .debs
#                                 needs (the image build stage uses this)
set -euo pipefail

BUILD_PACKAGES=(
  # build
  bazel-bootstrap build-essential clang lld libclang-rt-14-dev clang-format pkg-config
  # libraries
  libuv1-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libgrpc-dev libssl-dev libcunit1-dev libyaml-dev libjansson-dev
  libcurl4-openssl-dev node-llhttp android-libboringssl-dev
  # route policies: bcrypt via libxcrypt's crypt_r, cluster-wide rate limits in Redis
  libcrypt-dev libhiredis-dev
  # l4lb packet mode: XDP program (clang -target bpf, bpftool skeleton, libbpf)
  libbpf-dev bpftool
  # .deb packages (deploy/deb/build.sh)
  dpkg-dev fakeroot
)
PACKAGES=(
  "${BUILD_PACKAGES[@]}"
  # tests and benchmarks: real clients and peers
  curl nghttp2-client nginx-light haproxy wrk openssl gnuplot-nox
  iproute2 nftables keepalived procps psmisc python3 python3-yaml
  # route policies: real htpasswd files (apache2-utils) and a real Redis
  apache2-utils redis-server
  # l4lb packet mode: the BGP daemon of its ECMP tests
  bird2 ethtool
  # operations: promtool (rule checks and tests), unit checks, images
  prometheus systemd debootstrap docker.io gettext-base
)
if [ "${1:-}" = --build ]; then PACKAGES=("${BUILD_PACKAGES[@]}"); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Daemons we only use as benchmark peers must not hold ports on their own.
for svc in nginx haproxy keepalived bird prometheus docker containerd; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "setup: done"
