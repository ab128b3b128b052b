#!/usr/bin/env bash
# announce.sh — couples an l4lb's BGP announcement of its VIPs to its
# health, like keepalived's vrrp_script for the TCP mode: every INTERVAL it
# asks l4lb's /readyz and enables the BIRD static protocol that carries the
# VIP routes while it answers 200, disables it otherwise (not ready yet, no
# healthy replica, draining after SIGTERM, or dead). The router then sends
# the VIP's flows to the other l4lbs. BIRD's own session and BFD cover the
# host dying as a whole.
#
#   announce.sh --readyz=http://10.0.2.2:9901/readyz --bird-socket=/run/bird-lb1.ctl \
#               [--protocol=vip] [--interval=0.2]
# Runs until killed; logs one line per change.
set -uo pipefail
readyz="" sock="" proto=vip interval=0.2
for a in "$@"; do
  case "$a" in
    --readyz=*) readyz="${a#*=}" ;;
    --bird-socket=*) sock="${a#*=}" ;;
    --protocol=*) proto="${a#*=}" ;;
    --interval=*) interval="${a#*=}" ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "announce: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ -n "$readyz" ] && [ -n "$sock" ] || { echo "announce: --readyz and --bird-socket are required" >&2; exit 2; }
state=unknown
trap 'exit 0' TERM INT
while :; do
  if curl -fsS -m 1 -o /dev/null "$readyz" 2>/dev/null; then want=enable; else want=disable; fi
  if [ "$want" != "$state" ]; then
    if birdc -s "$sock" "$want" "$proto" >/dev/null 2>&1; then
      echo "level=info msg=announce_${want}d protocol=$proto readyz=$readyz"
      state=$want
    fi
  fi
  sleep "$interval"
done
