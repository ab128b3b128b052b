/*
 * xdp_lb — the XDP balancer program (l4lb/bpf/balancer.bpf.c, embedded in
 * the binary as a libbpf skeleton) as user space sees it: load it, attach
 * it to an interface, write its maps, read its counters. No policy lives
 * here: which replicas, which table, which VIPs is packet_mode.c's job.
 *
 * Map contract: l4lb/bpf/balancer_abi.h. Tables are double-buffered: a
 * push writes the half the program is not reading and then flips
 * config.active, so every packet sees one whole table.
 *
 * Threads: one owner thread (l4lb's main loop, or a test); libbpf calls
 * block briefly in bpf(2). Errors: 0 or a negative errno, with a one-line
 * reason in err when err is given.
 */
#ifndef EDGE_L4LB_XDP_LB_H
#define EDGE_L4LB_XDP_LB_H

#include <stddef.h>
#include <stdint.h>

#include "l4lb/bpf/balancer_abi.h"

struct xdp_lb;

struct xdp_lb_opts {
  uint32_t table_size;      /* M, the Maglev table size (prime) */
  uint32_t conn_table_size; /* LRU connection table entries */
  int hash_mode;            /* enum maglev_hash_mode (5tuple or src) */
  uint32_t tunnel_src;      /* outer source address, network order */
};

/* Loads the program and creates its maps (the kernel verifies it now).
 * Needs bpf(2) (root or CAP_BPF + CAP_NET_ADMIN). The caller owns *out
 * (xdp_lb_close). */
int xdp_lb_open(const struct xdp_lb_opts *o, struct xdp_lb **out, char *err, size_t errlen);

/* Detaches (when attached) and frees everything. NULL is fine. */
void xdp_lb_close(struct xdp_lb *x);

/*
 * Attaches to ifindex in native (driver) mode, or generic (skb) mode when
 * generic is set. An XDP program already there is replaced only when it is
 * a balancer left by an earlier l4lb (same program name), never another
 * tool's program.
 */
int xdp_lb_attach(struct xdp_lb *x, int ifindex, int generic, char *err, size_t errlen);
/* Removes the program from its interface if it is still ours. */
int xdp_lb_detach(struct xdp_lb *x);

/* The program's fd, for BPF_PROG_TEST_RUN in tests. */
int xdp_lb_prog_fd(const struct xdp_lb *x);

/* Serves addr:port/proto (network-order address, host-order port,
 * IPPROTO_TCP|UDP) with counters at index (< XLB_MAX_VIPS). */
int xdp_lb_add_vip(struct xdp_lb *x, uint32_t addr, uint16_t port, uint8_t proto, uint32_t index,
                   char *err, size_t errlen);

/*
 * Publishes a table: slots[0..m) are maglev_build()'s canonical indices
 * (m must equal the table size given at open), reals[0..n) the replica of
 * each canonical index. n == 0 publishes "no backend" (slots and m unused).
 */
int xdp_lb_push_table(struct xdp_lb *x, const uint32_t *slots, uint32_t m,
                      const struct xlb_real *reals, uint32_t n, char *err, size_t errlen);

/* A replica is a member (connection table entries towards it are kept). */
int xdp_lb_set_live(struct xdp_lb *x, uint32_t addr, uint32_t stats_id);
/* It left: flows pinned to it are sent by the table again. */
int xdp_lb_clear_live(struct xdp_lb *x, uint32_t addr);

/* Counters summed over CPUs. */
int xdp_lb_vip_stats(const struct xdp_lb *x, uint32_t index, struct xlb_stats *out);
int xdp_lb_real_stats(const struct xdp_lb *x, uint32_t stats_id, struct xlb_stats *out);
/* Zeroes a stats id's counters (before it is given to another replica). */
int xdp_lb_reset_real_stats(struct xdp_lb *x, uint32_t stats_id);
uint64_t xdp_lb_event(const struct xdp_lb *x, enum xlb_event ev);
/* Stable lower-case name of an event, for metric labels. */
const char *xdp_lb_event_name(enum xlb_event ev);

/* The connection table's replica for a flow: 0 and *addr, 1 when the flow
 * has no entry, or a negative errno. */
int xdp_lb_conn_get(const struct xdp_lb *x, const struct xlb_flow *f, uint32_t *addr);
/* Writes an entry (tests; flows normally enter from the data path). */
int xdp_lb_conn_put(struct xdp_lb *x, const struct xlb_flow *f, uint32_t addr);

#endif
