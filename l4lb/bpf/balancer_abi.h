/*
 * balancer_abi — the contract between l4lb's XDP program (balancer.bpf.c)
 * and user space (l4lb/xdp.c): map layouts, value structs, counter ids.
 * The maps are the program's only interface; nothing else is shared.
 *
 * Included by the BPF program (clang -target bpf) and by C user space, so
 * it uses only <linux/types.h> types. All addresses are IPv4 in network
 * byte order (as they sit in the packet); ports are network order too.
 *
 * Maps (names as in the object):
 *  - config      array[1] of struct xlb_config: hash key and mode, table
 *                size M, which half of the two table maps is live.
 *  - vips        hash xlb_vip_key -> xlb_vip: VIP:port/proto served.
 *  - vip_addrs   hash __u32 addr -> __u32: addresses that carry a VIP. The
 *                program owns them: a packet to such an address is
 *                forwarded, answered (ICMP echo) or dropped and counted,
 *                never passed to the host (which would route it back to
 *                the VIP's next hop: a loop).
 *  - maglev      array[2*M] of __u32: two halves, each exactly the slots[]
 *                array maglev_build() computed (canonical backend index per
 *                slot), byte-identical to TCP mode's table and between
 *                instances. User space writes the inactive half, then flips
 *                config.active, so a packet sees one whole table.
 *  - table_reals array[2*XLB_MAX_REALS] of xlb_real: canonical index ->
 *                replica address and stats id, per half.
 *  - live_reals  hash __u32 addr -> __u32 stats id: every replica of the
 *                membership (healthy or not, draining or not). A connection
 *                table entry is honoured only while its replica is here.
 *  - conn        LRU hash xlb_flow -> __u32 replica address (Katran's
 *                connection table): a flow keeps its replica when the table
 *                changes; the kernel evicts the least recently used entry
 *                when full, user space ages nothing.
 *  - vip_stats, real_stats  per-CPU arrays of xlb_stats (packets, bytes of
 *                the inner IPv4 packets), by VIP index / stats id.
 *  - events      per-CPU array of __u64 indexed by enum xlb_event.
 */
#ifndef EDGE_L4LB_BPF_BALANCER_ABI_H
#define EDGE_L4LB_BPF_BALANCER_ABI_H

#include <linux/types.h>

#define XLB_MAX_REALS 4096u /* replicas known at once (table entries, stats ids) */
#define XLB_MAX_VIPS 64u
#define XLB_IPIP_OVERHEAD 20u /* outer IPv4 header */

enum xlb_hash_mode {
  XLB_HASH_5TUPLE = 0, /* = MAGLEV_HASH_5TUPLE */
  XLB_HASH_SRC = 1,    /* = MAGLEV_HASH_SRC */
};

struct xlb_config {
  __u64 hash_k0, hash_k1; /* SipHash-2-4 key of maglev_hash_flow (maglev.h) */
  __u32 table_size;       /* M, slots per half of maglev */
  __u32 active;           /* 0 or 1: the live half of maglev and table_reals */
  __u32 nreals[2];        /* backends in each half (0: nothing to send to) */
  __u32 hash_mode;        /* enum xlb_hash_mode */
  __u32 tunnel_src;       /* outer source address */
};

struct xlb_vip_key {
  __u32 addr;
  __u16 port;
  __u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad;   /* always 0 */
};

struct xlb_vip {
  __u32 index; /* into vip_stats, < XLB_MAX_VIPS */
  __u32 flags; /* reserved, 0 */
};

struct xlb_real {
  __u32 addr;     /* replica address: the outer destination */
  __u32 stats_id; /* into real_stats, < XLB_MAX_REALS */
};

/* A flow as the client sent it (for an ICMP error: the flow it is about). */
struct xlb_flow {
  __u32 src, dst;
  __u16 sport, dport;
  __u8 proto;
  __u8 pad[3]; /* always 0 */
};

struct xlb_stats {
  __u64 packets;
  __u64 bytes;
};

enum xlb_event {
  XLB_EV_PASSED = 0,      /* not for a VIP address: handed to the kernel untouched */
  XLB_EV_CONN_HIT,        /* replica taken from the connection table */
  XLB_EV_CONN_NEW,        /* replica taken from the Maglev table (entry written) */
  XLB_EV_ICMP_TOO_BIG,    /* "fragmentation needed" sent back to a client */
  XLB_EV_ICMP_FORWARDED,  /* ICMP error about a VIP flow sent to its replica */
  XLB_EV_ICMP_ECHO,       /* echo request to a VIP address answered */
  XLB_EV_DROP_FRAGMENT,   /* IPv4 fragment to a VIP address */
  XLB_EV_DROP_MALFORMED,  /* bad or truncated header to a VIP address */
  XLB_EV_DROP_NOT_SERVED, /* VIP address, but no VIP for this port/protocol */
  XLB_EV_DROP_NO_BACKEND, /* VIP with an empty table */
  XLB_EV_DROP_TOO_BIG,    /* too big for the tunnel and DF clear (or IP options) */
  XLB_EV_DROP_NO_ROUTE,   /* no route or neighbour towards the replica */
  XLB_EV_DROP_ENCAP,      /* could not grow the packet */
  XLB_EV_MAX
};

#endif
