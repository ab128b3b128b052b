#!/usr/bin/env bash
# replica-setup.sh — prepares an l7proxy host for l4lb's packet mode
# (--mode=xdp): the l4lbs send it the clients' packets inside IPv4-in-IPv4,
# it unwraps them, delivers them to l7proxy on the VIP and answers the
# clients directly (direct server return). Run as root on each replica.
#
#   replica-setup.sh --vip=10.0.100.1 --interface=eth0 --l4lb=10.0.2.0/24 [--l4lb=...] \
#                    [--decap=auto|ipip|xdp] [--decap-bin=PATH/l4lb-decap]
#
# What it does (idempotent):
#  1. the VIP on lo (/32): the kernel accepts packets for it and l7proxy,
#     listening on 0.0.0.0:PORT (or VIP:PORT) without --proxy-protocol,
#     sees each client's real address;
#  2. arp_ignore=1, arp_announce=2 on all interfaces: the host never answers
#     ARP for the VIP nor uses it as an ARP source, so the VIP keeps
#     pointing at the l4lbs on a shared segment;
#  3. decapsulation: with --decap=ipip (or auto when the kernel has an ipip
#     device) the fallback tunnel tunl0 is brought up, rp_filter is set to 0
#     on it and on "all" (decapsulated packets arrive on tunl0 while the
#     route back to the client leaves through IF: strict reverse-path
#     filtering would drop them), and nftables drops IPv4-in-IPv4 from any
#     source but the l4lbs; with --decap=xdp (auto when there is no ipip
#     device, e.g. kernels built without CONFIG_NET_IPIP) l4lb-decap attaches
#     an XDP program to IF that unwraps tunnels from the l4lbs only, so
#     packets appear to arrive on IF and strict rp_filter still holds.
# Replies leave by the host's normal route towards the client, with the VIP
# as source: the network must not filter that source (no uRPF on the
# replica's first hop for the VIP).
set -euo pipefail

vip="" iface="" decap=auto decap_bin="" l4lbs=()
for a in "$@"; do
  case "$a" in
    --vip=*) vip="${a#*=}" ;;
    --interface=*) iface="${a#*=}" ;;
    --l4lb=*) l4lbs+=("${a#*=}") ;;
    --decap=*) decap="${a#*=}" ;;
    --decap-bin=*) decap_bin="${a#*=}" ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "replica-setup: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ -z "$vip" ] || [ -z "$iface" ] || [ "${#l4lbs[@]}" -eq 0 ]; then
  echo "replica-setup: --vip, --interface and at least one --l4lb are required" >&2
  exit 2
fi

ip addr replace "$vip/32" dev lo
ip link set lo up
for c in all "$iface"; do
  echo 1 > "/proc/sys/net/ipv4/conf/$c/arp_ignore"
  echo 2 > "/proc/sys/net/ipv4/conf/$c/arp_announce"
done

has_ipip() { ip link show tunl0 >/dev/null 2>&1 || modprobe ipip >/dev/null 2>&1; }
if [ "$decap" = auto ]; then
  if has_ipip; then decap=ipip; else decap=xdp; fi
fi
case "$decap" in
  ipip)
    has_ipip || { echo "replica-setup: this kernel has no ipip device (use --decap=xdp)" >&2; exit 1; }
    ip link set tunl0 up
    echo 0 > /proc/sys/net/ipv4/conf/tunl0/rp_filter
    echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
    allowed=$(IFS=,; echo "${l4lbs[*]}")
    nft -f - <<NFT
table inet edge_decap
delete table inet edge_decap
table inet edge_decap {
  chain input {
    type filter hook input priority -150; policy accept;
    ip protocol ipip ip saddr != { $allowed } drop
  }
}
NFT
    echo "replica-setup: $vip on lo, decapsulating with tunl0 (tunnels from ${l4lbs[*]})"
    ;;
  xdp)
    bin="${decap_bin:-$(command -v l4lb-decap || true)}"
    [ -x "$bin" ] || { echo "replica-setup: l4lb-decap not found (--decap-bin)" >&2; exit 1; }
    args=()
    for l in "${l4lbs[@]}"; do args+=("--allow=$l"); done
    "$bin" --interface="$iface" "${args[@]}"
    echo "replica-setup: $vip on lo, decapsulating with XDP on $iface (tunnels from ${l4lbs[*]})"
    ;;
  *) echo "replica-setup: --decap must be auto, ipip or xdp" >&2; exit 2 ;;
esac
