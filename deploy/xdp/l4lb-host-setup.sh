#!/usr/bin/env bash
# l4lb-host-setup.sh — prepares a host for `l4lb --mode=xdp --interface=IF`:
# IPv4 forwarding on (the XDP program asks the kernel FIB for the next hop
# towards each replica, which bpf_fib_lookup only answers on forwarding
# interfaces), no ICMP redirects, and a blackhole route for the VIP so that
# the host itself never routes a VIP packet (the XDP program already drops
# what it does not forward; this covers the moments it is not attached).
#
#   l4lb-host-setup.sh --interface=eth0 --vip=10.0.100.1
set -euo pipefail
iface="" vips=()
for a in "$@"; do
  case "$a" in
    --interface=*) iface="${a#*=}" ;;
    --vip=*) vips+=("${a#*=}") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "l4lb-host-setup: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ -n "$iface" ] && [ "${#vips[@]}" -gt 0 ] || { echo "l4lb-host-setup: --interface and --vip are required" >&2; exit 2; }
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > "/proc/sys/net/ipv4/conf/$iface/forwarding"
echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects
echo 0 > "/proc/sys/net/ipv4/conf/$iface/send_redirects"
for v in "${vips[@]}"; do ip route replace blackhole "${v%%:*}/32"; done
