/*
 * balancer.bpf — l4lb's packet mode: an XDP program that sends VIP packets
 * to an L7 replica chosen by the same Maglev table as TCP mode, inside an
 * IPv4-in-IPv4 tunnel; the replica decapsulates and answers the client
 * directly (direct server return). Built by Bazel with clang -target bpf,
 * loaded and fed by l4lb/xdp.c; its maps (balancer_abi.h) are its only
 * interface. Runs per packet in the driver's receive path, any CPU.
 *
 * Per IPv4 packet:
 *  - destination not a VIP address: XDP_PASS, untouched;
 *  - TCP/UDP to a VIP: flow -> connection table (LRU) or, for a new flow
 *    (TCP SYN, or no valid entry), SipHash-2-4 of the canonical 5-tuple
 *    (maglev_hash_flow, byte for byte) mod M -> the live table half ->
 *    replica; entry written; then the route towards the replica is looked
 *    up in the kernel FIB (bpf_fib_lookup: next-hop MACs, egress device,
 *    MTU) and the packet is encapsulated and transmitted. When the tunnel
 *    packet would exceed the route MTU, a DF packet is answered with ICMP
 *    "fragmentation needed" (MTU minus the tunnel header), others dropped;
 *  - ICMP destination unreachable to a VIP address (PMTU discovery for the
 *    replicas' direct replies): sent to the replica owning the flow it
 *    quotes; echo request: answered; anything else, fragments and malformed
 *    headers: dropped and counted (never passed: the host would route a VIP
 *    packet back towards the VIP).
 * IPv6 and non-IP frames are passed untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "l4lb/bpf/balancer_abi.h"

#define AF_INET 2
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPIP_TTL 64
/* <linux/icmp.h> pulls in libc headers that do not build for -target bpf */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMP_ECHO 8

struct icmphdr {
  __u8 type;
  __u8 code;
  __u16 checksum;
  __u16 unused; /* identifier for echo */
  __u16 mtu;    /* next-hop MTU for "fragmentation needed"; sequence for echo */
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xlb_config);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, XLB_MAX_VIPS);
  __type(key, struct xlb_vip_key);
  __type(value, struct xlb_vip);
} vips SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, XLB_MAX_VIPS);
  __type(key, __u32);
  __type(value, __u32);
} vip_addrs SEC(".maps");

/* max_entries is set by user space to 2*M before loading */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * 65537);
  __type(key, __u32);
  __type(value, __u32);
} maglev SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * XLB_MAX_REALS);
  __type(key, __u32);
  __type(value, struct xlb_real);
} table_reals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, XLB_MAX_REALS);
  __type(key, __u32);
  __type(value, __u32);
} live_reals SEC(".maps");

/* max_entries is set by user space (--conn-table-size) before loading */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 262144);
  __type(key, struct xlb_flow);
  __type(value, __u32);
} conn SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XLB_MAX_VIPS);
  __type(key, __u32);
  __type(value, struct xlb_stats);
} vip_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XLB_MAX_REALS);
  __type(key, __u32);
  __type(value, struct xlb_stats);
} real_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XLB_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} events SEC(".maps");

/* ---- counters ------------------------------------------------------------ */

static __always_inline void count(__u32 ev) {
  __u64 *v = bpf_map_lookup_elem(&events, &ev);
  if (v) *v += 1;
}

static __always_inline int drop(__u32 ev) {
  count(ev);
  return XDP_DROP;
}

static __always_inline void account(void *map, __u32 idx, __u32 bytes) {
  struct xlb_stats *s = bpf_map_lookup_elem(map, &idx);
  if (s) {
    s->packets += 1;
    s->bytes += bytes;
  }
}

/* ---- the flow hash: maglev_hash_flow() in BPF ------------------------------ */

static __always_inline __u64 rotl(__u64 x, int b) {
  return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3) \
  do {                           \
    v0 += v1;                    \
    v1 = rotl(v1, 13);           \
    v1 ^= v0;                    \
    v0 = rotl(v0, 32);           \
    v2 += v3;                    \
    v3 = rotl(v3, 16);           \
    v3 ^= v2;                    \
    v0 += v3;                    \
    v3 = rotl(v3, 21);           \
    v3 ^= v0;                    \
    v2 += v1;                    \
    v1 = rotl(v1, 17);           \
    v1 ^= v2;                    \
    v2 = rotl(v2, 32);           \
  } while (0)

/* SipHash-2-4 of at most 15 bytes: m0 is the first 8 (when len >= 8),
 * tail the remaining bytes little-endian, as maglev_siphash() reads them. */
static __always_inline __u64 siphash_short(__u64 k0, __u64 k1, __u64 m0, __u64 tail, __u32 len) {
  __u64 v0 = k0 ^ 0x736f6d6570736575ull;
  __u64 v1 = k1 ^ 0x646f72616e646f6dull;
  __u64 v2 = k0 ^ 0x6c7967656e657261ull;
  __u64 v3 = k1 ^ 0x7465646279746573ull;
  if (len >= 8) {
    v3 ^= m0;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m0;
  }
  __u64 last = ((__u64)len << 56) | tail;
  v3 ^= last;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

/* Byte i of a network-order address or port as it sits in memory. */
static __always_inline __u64 addr_byte(__u32 a, int i) {
  return ((const __u8 *)&a)[i];
}

/* The canonical serialisation of maglev_hash_flow: family(1)=4 src(4)
 * [dst(4) sport(2) dport(2) proto(1)], ports big endian. */
static __always_inline __u64 flow_hash(const struct xlb_config *cfg, const struct xlb_flow *f) {
  __u64 b0 = 4, b1 = addr_byte(f->src, 0), b2 = addr_byte(f->src, 1), b3 = addr_byte(f->src, 2),
        b4 = addr_byte(f->src, 3);
  if (cfg->hash_mode == XLB_HASH_SRC)
    return siphash_short(cfg->hash_k0, cfg->hash_k1, 0,
                         b0 | b1 << 8 | b2 << 16 | b3 << 24 | b4 << 32, 5);
  __u64 m0 = b0 | b1 << 8 | b2 << 16 | b3 << 24 | b4 << 32 | addr_byte(f->dst, 0) << 40 |
             addr_byte(f->dst, 1) << 48 | addr_byte(f->dst, 2) << 56;
  __u16 sp = bpf_ntohs(f->sport), dp = bpf_ntohs(f->dport);
  __u64 tail = addr_byte(f->dst, 3) | (__u64)(sp >> 8) << 8 | (__u64)(sp & 0xff) << 16 |
               (__u64)(dp >> 8) << 24 | (__u64)(dp & 0xff) << 32 | (__u64)f->proto << 40;
  return siphash_short(cfg->hash_k0, cfg->hash_k1, m0, tail, 14);
}

/* The live table's replica for a flow, or NULL when it has no backend. */
static __always_inline struct xlb_real *table_pick(const struct xlb_config *cfg,
                                                   const struct xlb_flow *f) {
  __u32 half = cfg->active & 1;
  __u32 m = cfg->table_size;
  if (m == 0 || cfg->nreals[half] == 0) return 0;
  __u32 slot = (__u32)(flow_hash(cfg, f) % m) + half * m;
  __u32 *idx = bpf_map_lookup_elem(&maglev, &slot);
  if (!idx || *idx >= XLB_MAX_REALS) return 0;
  __u32 ri = *idx + half * XLB_MAX_REALS;
  struct xlb_real *r = bpf_map_lookup_elem(&table_reals, &ri);
  return r && r->addr ? r : 0;
}

/* The replica of a flow: the connection table's when valid (its replica
 * still a member), else the Maglev table's. A new TCP connection (SYN
 * without ACK) always follows the table. remember: write the entry. */
static __always_inline int choose(const struct xlb_config *cfg, const struct xlb_flow *f, int syn,
                                  int remember, __u32 *addr, __u32 *stats_id) {
  if (!syn) {
    __u32 *known = bpf_map_lookup_elem(&conn, f);
    if (known) {
      __u32 a = *known;
      __u32 *id = bpf_map_lookup_elem(&live_reals, &a);
      if (id) {
        *addr = a;
        *stats_id = *id;
        count(XLB_EV_CONN_HIT);
        return 0;
      }
    }
  }
  struct xlb_real *r = table_pick(cfg, f);
  if (!r) return -1;
  *addr = r->addr;
  *stats_id = r->stats_id;
  if (remember) {
    __u32 a = r->addr;
    bpf_map_update_elem(&conn, f, &a, BPF_ANY);
    count(XLB_EV_CONN_NEW);
  }
  return 0;
}

/* ---- checksums ------------------------------------------------------------- */

static __always_inline __u16 fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

static __always_inline __u16 ip_checksum(struct iphdr *ip) {
  __u16 *w = (__u16 *)ip;
  __u32 sum = 0;
  ip->check = 0;
#pragma unroll
  for (int i = 0; i < (int)(sizeof(*ip) / 2); i++) sum += w[i];
  return fold(sum);
}

/* ---- output ---------------------------------------------------------------- */

/* Route towards dst from the tunnel source: fills MACs and egress device.
 * Returns the bpf_fib_lookup result; *mtu is set on FRAG_NEEDED. */
static __always_inline int route(struct xdp_md *ctx, struct bpf_fib_lookup *p, __u32 src, __u32 dst,
                                 __u16 tot_len, __u8 tos) {
  __builtin_memset(p, 0, sizeof(*p));
  p->family = AF_INET;
  p->tos = tos;
  p->l4_protocol = IPPROTO_IPIP;
  p->tot_len = tot_len;
  p->ifindex = ctx->ingress_ifindex;
  p->ipv4_src = src;
  p->ipv4_dst = dst;
  return bpf_fib_lookup(ctx, p, sizeof(*p), 0);
}

static __always_inline int transmit(struct xdp_md *ctx, const struct bpf_fib_lookup *p) {
  if (p->ifindex == ctx->ingress_ifindex) return XDP_TX;
  return bpf_redirect(p->ifindex, 0);
}

/* Prepends the outer IPv4 header (inner packet of tot_len bytes) and sets
 * the next hop's MACs from p. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct bpf_fib_lookup *p,
                                       __u32 src, __u32 dst, __u16 tot_len, __u8 tos, int df) {
  if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr))) return drop(XLB_EV_DROP_ENCAP);
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *outer = data + sizeof(*eth);
  if ((void *)(outer + 1) > end) return drop(XLB_EV_DROP_ENCAP);
  __builtin_memcpy(eth->h_dest, p->dmac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, p->smac, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  outer->version = 4;
  outer->ihl = 5;
  outer->tos = tos;
  outer->tot_len = bpf_htons(tot_len + sizeof(*outer));
  outer->id = 0;
  outer->frag_off = df ? bpf_htons(IP_DF) : 0;
  outer->ttl = IPIP_TTL;
  outer->protocol = IPPROTO_IPIP;
  outer->saddr = src;
  outer->daddr = dst;
  outer->check = ip_checksum(outer);
  return transmit(ctx, p);
}

/* Answers the packet at ip (ihl 5, at least 8 bytes of payload) with ICMP
 * "fragmentation needed", next-hop MTU mtu, quoting its IP header and first
 * 8 bytes, back to the L2 sender (from the VIP address). */
static __always_inline int too_big(struct xdp_md *ctx, __u16 mtu) {
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = data + sizeof(*eth);
  if ((void *)ip + sizeof(*ip) + 8 > end) return drop(XLB_EV_DROP_TOO_BIG);
  unsigned char mac_src[ETH_ALEN], mac_dst[ETH_ALEN];
  __builtin_memcpy(mac_src, eth->h_source, ETH_ALEN);
  __builtin_memcpy(mac_dst, eth->h_dest, ETH_ALEN);
  __u32 client = ip->saddr, vip = ip->daddr;
  const int grow = sizeof(struct iphdr) + sizeof(struct icmphdr);
  const int keep = sizeof(struct ethhdr) + grow + sizeof(struct iphdr) + 8;
  int old_len = (int)(end - data);
  if (bpf_xdp_adjust_head(ctx, -grow)) return drop(XLB_EV_DROP_ENCAP);
  if (bpf_xdp_adjust_tail(ctx, keep - (old_len + grow))) return drop(XLB_EV_DROP_ENCAP);
  data = (void *)(long)ctx->data;
  end = (void *)(long)ctx->data_end;
  eth = data;
  struct iphdr *rip = data + sizeof(*eth);
  struct icmphdr *icmp = (void *)(rip + 1);
  __u16 *quote = (void *)(icmp + 1);
  if ((void *)quote + sizeof(struct iphdr) + 8 > end) return drop(XLB_EV_DROP_ENCAP);
  __builtin_memcpy(eth->h_dest, mac_src, ETH_ALEN);
  __builtin_memcpy(eth->h_source, mac_dst, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  rip->version = 4;
  rip->ihl = 5;
  rip->tos = 0;
  rip->tot_len = bpf_htons(sizeof(*rip) + sizeof(*icmp) + sizeof(struct iphdr) + 8);
  rip->id = 0;
  rip->frag_off = 0;
  rip->ttl = IPIP_TTL;
  rip->protocol = IPPROTO_ICMP;
  rip->saddr = vip;
  rip->daddr = client;
  rip->check = ip_checksum(rip);
  icmp->type = ICMP_DEST_UNREACH;
  icmp->code = ICMP_FRAG_NEEDED;
  icmp->checksum = 0;
  icmp->unused = 0;
  icmp->mtu = bpf_htons(mtu);
  __u16 *w = (__u16 *)icmp;
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < (int)(sizeof(*icmp) + sizeof(struct iphdr) + 8) / 2; i++) sum += w[i];
  icmp->checksum = fold(sum);
  count(XLB_EV_ICMP_TOO_BIG);
  return XDP_TX;
}

/* Routes and encapsulates a packet for replica addr. The packet's IP
 * header is at ip with tot bytes; df: it may not be fragmented. */
static __always_inline int forward(struct xdp_md *ctx, const struct xlb_config *cfg,
                                   struct iphdr *ip, __u16 tot, __u32 addr, int may_reply) {
  struct bpf_fib_lookup p;
  __u8 tos = ip->tos;
  int df = (ip->frag_off & bpf_htons(IP_DF)) != 0;
  int rc = route(ctx, &p, cfg->tunnel_src, addr, tot + sizeof(struct iphdr), tos);
  if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
    __u16 mtu = p.mtu_result;
    if (!df || !may_reply || ip->ihl != 5 || mtu <= sizeof(struct iphdr) + 68)
      return drop(XLB_EV_DROP_TOO_BIG);
    return too_big(ctx, mtu - sizeof(struct iphdr));
  }
  if (rc != BPF_FIB_LKUP_RET_SUCCESS) return drop(XLB_EV_DROP_NO_ROUTE);
  return encapsulate(ctx, &p, cfg->tunnel_src, addr, tot, tos, df);
}

/* ---- per protocol ------------------------------------------------------------ */

static __always_inline int served_vip(__u32 addr, __u16 port, __u8 proto, __u32 *index) {
  struct xlb_vip_key k = {.addr = addr, .port = port, .proto = proto, .pad = 0};
  struct xlb_vip *v = bpf_map_lookup_elem(&vips, &k);
  if (!v) return 0;
  *index = v->index;
  return 1;
}

static __always_inline int handle_l4(struct xdp_md *ctx, const struct xlb_config *cfg,
                                     struct iphdr *ip, void *l4, void *end, __u16 tot) {
  struct xlb_flow f = {.src = ip->saddr, .dst = ip->daddr, .proto = ip->protocol};
  int syn = 0;
  if (ip->protocol == IPPROTO_TCP) {
    struct tcphdr *th = l4;
    if ((void *)(th + 1) > end) return drop(XLB_EV_DROP_MALFORMED);
    f.sport = th->source;
    f.dport = th->dest;
    syn = th->syn && !th->ack;
  } else {
    struct udphdr *uh = l4;
    if ((void *)(uh + 1) > end) return drop(XLB_EV_DROP_MALFORMED);
    f.sport = uh->source;
    f.dport = uh->dest;
  }
  __u32 vip_index;
  if (!served_vip(f.dst, f.dport, f.proto, &vip_index)) return drop(XLB_EV_DROP_NOT_SERVED);
  __u32 addr, stats_id;
  if (choose(cfg, &f, syn, 1, &addr, &stats_id) != 0) return drop(XLB_EV_DROP_NO_BACKEND);
  int act = forward(ctx, cfg, ip, tot, addr, 1);
  if (act != XDP_DROP) {
    account(&vip_stats, vip_index, tot);
    account(&real_stats, stats_id, tot);
  }
  return act;
}

/* ICMP to a VIP address. */
static __always_inline int handle_icmp(struct xdp_md *ctx, const struct xlb_config *cfg,
                                       struct iphdr *ip, void *l4, void *end, __u16 tot) {
  struct icmphdr *icmp = l4;
  if ((void *)(icmp + 1) > end) return drop(XLB_EV_DROP_MALFORMED);
  if (icmp->type == ICMP_ECHO && icmp->code == 0) {
    struct ethhdr *eth = (void *)(long)ctx->data;
    if ((void *)(eth + 1) > end) return drop(XLB_EV_DROP_MALFORMED);
    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
    __u32 a = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = a;
    ip->ttl = IPIP_TTL;
    ip->check = ip_checksum(ip);
    icmp->type = ICMP_ECHOREPLY;
    /* RFC 1624 incremental update: the type word went from 0x0800 to 0 */
    __u32 sum = (__u16)~icmp->checksum + (__u16)~bpf_htons(ICMP_ECHO << 8);
    icmp->checksum = fold(sum);
    count(XLB_EV_ICMP_ECHO);
    return XDP_TX;
  }
  if (icmp->type != ICMP_DEST_UNREACH) return drop(XLB_EV_DROP_NOT_SERVED);
  /* the quoted packet: the replica's reply, from the VIP to the client */
  struct iphdr *in = (void *)(icmp + 1);
  if ((void *)(in + 1) > end || in->ihl != 5) return drop(XLB_EV_DROP_MALFORMED);
  __u16 *ports = (void *)(in + 1);
  if ((void *)(ports + 2) > end) return drop(XLB_EV_DROP_MALFORMED);
  if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
    return drop(XLB_EV_DROP_NOT_SERVED);
  struct xlb_flow f = {.src = in->daddr,
                       .dst = in->saddr,
                       .sport = ports[1],
                       .dport = ports[0],
                       .proto = in->protocol};
  __u32 vip_index;
  if (!served_vip(f.dst, f.dport, f.proto, &vip_index)) return drop(XLB_EV_DROP_NOT_SERVED);
  __u32 addr, stats_id;
  if (choose(cfg, &f, 0, 0, &addr, &stats_id) != 0) return drop(XLB_EV_DROP_NO_BACKEND);
  int act = forward(ctx, cfg, ip, tot, addr, 0);
  if (act != XDP_DROP) {
    count(XLB_EV_ICMP_FORWARDED);
    account(&vip_stats, vip_index, tot);
    account(&real_stats, stats_id, tot);
  }
  return act;
}

SEC("xdp")
int xdp_balancer(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end) return XDP_PASS;
  __u32 daddr = ip->daddr;
  if (!bpf_map_lookup_elem(&vip_addrs, &daddr)) {
    count(XLB_EV_PASSED);
    return XDP_PASS;
  }
  /* from here on the packet is ours: forwarded, answered or dropped */
  __u32 zero = 0;
  struct xlb_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg) return drop(XLB_EV_DROP_NO_BACKEND);
  __u32 hlen = ip->ihl * 4;
  __u16 tot = bpf_ntohs(ip->tot_len);
  if (ip->version != 4 || hlen < sizeof(*ip) || tot < hlen || (void *)ip + tot > end)
    return drop(XLB_EV_DROP_MALFORMED);
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return drop(XLB_EV_DROP_FRAGMENT);
  void *l4 = (void *)ip + hlen;
  if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)
    return handle_l4(ctx, cfg, ip, l4, end, tot);
  if (ip->protocol == IPPROTO_ICMP) return handle_icmp(ctx, cfg, ip, l4, end, tot);
  return drop(XLB_EV_DROP_NOT_SERVED);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
