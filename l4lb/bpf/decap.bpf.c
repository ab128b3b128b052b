/*
 * decap.bpf — the replica's end of l4lb's packet mode, for kernels without
 * an ipip device (CONFIG_NET_IPIP unset, as on the build machines): an XDP
 * program on the replica's interface that strips the outer IPv4 header of
 * IPv4-in-IPv4 packets sent by an allowed l4lb and passes the client's
 * packet on to the kernel, as if it had arrived directly. The VIP sits on
 * a local interface (lo), so the kernel delivers it to l7proxy, which sees
 * the client's real address and answers it directly (DSR).
 *
 * Loaded, fed and attached by l4lb-decap (l4lb/decap_main.c). Maps:
 * allowed (LPM trie of outer source prefixes: the l4lbs; a tunnel packet
 * from anywhere else is dropped, so nobody else can inject packets with a
 * forged client address) and counters (per CPU: decapsulated, refused).
 * Everything that is not IPv4-in-IPv4 passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "l4lb/bpf/decap_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, DECAP_MAX_ALLOWED);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct decap_prefix);
  __type(value, __u32);
} allowed SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DECAP_CTR_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline int counted(__u32 which, int action) {
  __u64 *v = bpf_map_lookup_elem(&counters, &which);
  if (v) *v += 1;
  return action;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *outer = (void *)(eth + 1);
  if ((void *)(outer + 1) > end || outer->protocol != IPPROTO_IPIP) return XDP_PASS;
  struct decap_prefix k = {.prefixlen = 32, .addr = outer->saddr};
  if (!bpf_map_lookup_elem(&allowed, &k)) return counted(DECAP_CTR_REFUSED, XDP_DROP);
  /* l4lb sends a plain 20-byte outer header and never fragments it */
  if (outer->ihl != 5 || (outer->frag_off & bpf_htons(0x3fff)))
    return counted(DECAP_CTR_REFUSED, XDP_DROP);
  struct iphdr *inner = (void *)(outer + 1);
  if ((void *)(inner + 1) > end || inner->version != 4) return counted(DECAP_CTR_REFUSED, XDP_DROP);
  struct ethhdr copy;
  __builtin_memcpy(&copy, eth, sizeof(copy));
  if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
    return counted(DECAP_CTR_REFUSED, XDP_DROP);
  data = (void *)(long)ctx->data;
  end = (void *)(long)ctx->data_end;
  eth = data;
  if ((void *)(eth + 1) > end) return XDP_DROP;
  __builtin_memcpy(eth, &copy, sizeof(copy));
  return counted(DECAP_CTR_DECAPSULATED, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
