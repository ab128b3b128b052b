/*
 * xdp_pass — passes every frame. Attached to the peer of a veth that runs
 * the balancer: a veth delivers frames sent with XDP_TX only to a peer that
 * runs an XDP program itself (measured on kernel 6.18: without it the
 * frames are dropped). Real NICs do not need it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx) {
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
