#!/usr/bin/env bash
# build.sh — the Debian packages edge-syncd, edge-l7proxy and edge-l4lb from
# the Bazel outputs, with dpkg-deb (no debhelper needed).
#
#   deploy/deb/build.sh [--bin-dir=DIR] [--out=DIR] [--version=V]
#
# Without --bin-dir it runs `bazel build -c opt` for the four binaries and
# takes them from that bazel-bin. Depends: lines come from dpkg-shlibdeps on
# the binaries (the Debian 12 library packages they link). Each package has:
#   /usr/bin/<binaries>, /lib/systemd/system/edge-<name>.service (hardened:
#   DynamicUser (syncd: its own system user, for the Secrets it reads),
#   CapabilityBoundingSet, ProtectSystem=strict, state/cache/log
#   directories), /etc/edge/<name>.env (conffile: the flags), docs;
#   edge-syncd also /etc/edge/manifests/, edge-l7proxy a logrotate file,
#   edge-l4lb the keepalived template, check script, keepalived.env and
#   edge-l4lb-keepalived (renders /etc/keepalived/keepalived.conf).
# Maintainer scripts only tell systemd (deb-systemd-helper/invoke-rc.d when
# present): a package never starts its daemon on install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin=""
out="$root/bin/deb"
version="0.1.0"
for a in "$@"; do
  case "$a" in
    --bin-dir=*) bin="$(cd "${a#--bin-dir=}" && pwd)" ;;
    --out=*) out="${a#--out=}" ;;
    --version=*) version="${a#--version=}" ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  (cd "$root" && bazel build -c opt //syncd:syncd //syncd:syncctl //l7proxy:l7proxy //l4lb:l4lb)
  bin="$(cd "$root" && bazel info -c opt bazel-bin)"
fi
for b in syncd/syncd syncd/syncctl l7proxy/l7proxy l4lb/l4lb; do
  [ -x "$bin/$b" ] || { echo "build.sh: missing $bin/$b" >&2; exit 1; }
done
for t in dpkg-deb dpkg-shlibdeps fakeroot; do
  command -v "$t" >/dev/null || { echo "build.sh: $t missing (bash bazel/setup.sh)" >&2; exit 1; }
done
arch="$(dpkg --print-architecture)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# depends BINARY...: the shlibs:Depends value for these binaries
depends() {
  (cd "$work" && mkdir -p debian && touch debian/control &&
    dpkg-shlibdeps -O "$@" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
}

# maintainer scripts: register the unit with systemd, never start it;
# edge-syncd also gets its system user (it reads Secrets from /etc/edge)
scripts() {
  local pkg="$1" unit="$2" d="$3/DEBIAN" user=""
  if [ "$pkg" = edge-syncd ]; then
    user='if [ "$1" = configure ]; then
  getent passwd edge-syncd >/dev/null ||
    useradd --system --user-group --home-dir /var/lib/edge-syncd --no-create-home \
      --shell /usr/sbin/nologin --comment "edge control plane" edge-syncd
  chown root:edge-syncd /etc/edge/manifests
  chmod 0750 /etc/edge/manifests
fi'
  fi
  cat >"$d/postinst" <<EOS
#!/bin/sh
set -e
$user
if [ "\$1" = configure ] && command -v deb-systemd-helper >/dev/null 2>&1; then
  deb-systemd-helper unmask $unit >/dev/null || true
  deb-systemd-helper --quiet was-enabled $unit || deb-systemd-helper enable $unit >/dev/null || true
fi
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
exit 0
EOS
  cat >"$d/prerm" <<EOS
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then
  systemctl stop $unit >/dev/null 2>&1 || true
fi
exit 0
EOS
  cat >"$d/postrm" <<EOS
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
if [ "\$1" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
  deb-systemd-helper purge $unit >/dev/null || true
fi
exit 0
EOS
  chmod 0755 "$d/postinst" "$d/prerm" "$d/postrm"
}

# package NAME DESCRIPTION RECOMMENDS: builds edge-NAME from $work/edge-NAME
package() {
  local name="edge-$1" desc="$2" recommends="$3" dir="$work/edge-$1"
  shift 3
  local deps
  deps="$(depends "$@")"
  [ "$name" = edge-syncd ] && deps="$deps, passwd" # useradd in postinst
  local size
  size="$(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: edge developers <edge@localhost>"
    echo "Installed-Size: $size"
    echo "Depends: $deps"
    [ -n "$recommends" ] && echo "Recommends: $recommends"
    echo "Section: net"
    echo "Priority: optional"
    echo "Description: $desc"
    echo " Part of edge, a multi-tier HTTP edge: syncd streams configuration"
    echo " to l7proxy replicas and the replica set to l4lb load balancers."
  } >"$dir/DEBIAN/control"
  (cd "$dir" && find etc -type f 2>/dev/null | sed 's|^|/|') >"$dir/DEBIAN/conffiles"
  [ -s "$dir/DEBIAN/conffiles" ] || rm -f "$dir/DEBIAN/conffiles"
  scripts "$name" "$name.service" "$dir"
  fakeroot dpkg-deb --build -Zxz "$dir" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out/${name}_${version}_${arch}.deb ($deps)"
}

# layout NAME: the common tree of a package
layout() {
  local d="$work/edge-$1"
  install -d "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system" "$d/etc/edge" "$d/usr/share/doc/edge-$1"
  install -m 0644 "$here/edge-$1.service" "$d/lib/systemd/system/"
  install -m 0644 "$here/$1.env" "$d/etc/edge/$1.env"
  install -m 0644 "$here/README.md" "$d/usr/share/doc/edge-$1/README.md"
}

layout syncd
install -m 0755 "$bin/syncd/syncd" "$bin/syncd/syncctl" "$work/edge-syncd/usr/bin/"
install -d "$work/edge-syncd/etc/edge/manifests"
install -m 0644 "$here/manifests-README" "$work/edge-syncd/etc/edge/manifests/README"
package syncd "edge control plane (syncd, syncctl)" "" \
  "$work/edge-syncd/usr/bin/syncd" "$work/edge-syncd/usr/bin/syncctl"

layout l7proxy
install -m 0755 "$bin/l7proxy/l7proxy" "$work/edge-l7proxy/usr/bin/"
install -m 0644 "$here/edge-l7proxy@.service" "$work/edge-l7proxy/lib/systemd/system/"
install -d "$work/edge-l7proxy/etc/logrotate.d"
install -m 0644 "$here/edge-l7proxy.logrotate" "$work/edge-l7proxy/etc/logrotate.d/edge-l7proxy"
package l7proxy "edge L7 proxy (HTTP/1.1, HTTP/2, TLS, Ingress routing)" "logrotate" \
  "$work/edge-l7proxy/usr/bin/l7proxy"

layout l4lb
install -m 0755 "$bin/l4lb/l4lb" "$work/edge-l4lb/usr/bin/"
install -d "$work/edge-l4lb/usr/lib/edge" "$work/edge-l4lb/usr/share/edge-l4lb" "$work/edge-l4lb/usr/sbin"
install -m 0755 "$root/deploy/keepalived/check_l4lb.sh" "$work/edge-l4lb/usr/lib/edge/check_l4lb.sh"
install -m 0644 "$root/deploy/keepalived/keepalived.conf.tmpl" "$work/edge-l4lb/usr/share/edge-l4lb/"
install -m 0755 "$here/edge-l4lb-keepalived" "$work/edge-l4lb/usr/sbin/"
install -m 0644 "$here/keepalived.env" "$work/edge-l4lb/etc/edge/keepalived.env"
package l4lb "edge L4 load balancer (Maglev, PROXY protocol v2)" "keepalived, curl, gettext-base" \
  "$work/edge-l4lb/usr/bin/l4lb"
