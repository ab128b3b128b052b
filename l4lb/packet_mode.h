/*
 * packet_mode — l4lb --mode=xdp: the daemon's side of the XDP balancer.
 * Turns each published snapshot (the same Maglev table TCP mode routes
 * with) and the membership into the program's maps, exports the
 * program's counters on /metrics and answers /lookup's connection-table
 * question. The data path itself is l4lb/bpf/balancer.bpf.c; map
 * plumbing is xdp_lb.c.
 *
 * Replicas: the outer destination is the IPv4 address of a replica's
 * address (its port is unused: the replica serves the VIP's own port on a
 * local VIP address and answers the client directly). Every member,
 * healthy or not, draining or not, is "live": established flows pinned to
 * it in the connection table stay with it (as TCP mode keeps its
 * connections); new flows follow the table of healthy, non-draining ones.
 * A replica that leaves the membership is no longer live, so its flows
 * follow the table again. Each member gets a stats id (lowest free, its
 * counters zeroed) for per-replica packet and byte counters.
 *
 * Threads: everything runs on l4lb's main loop (snapshot builder, admin
 * handlers, metric rendering). Ownership: l4_packet_start returns an
 * object the caller frees with l4_packet_stop, which detaches the program.
 */
#ifndef EDGE_L4LB_PACKET_MODE_H
#define EDGE_L4LB_PACKET_MODE_H

#include <stddef.h>
#include <stdint.h>

#include "l4lb/backend.h"
#include "l4lb/maglev.h"

struct metrics_registry;
struct l4_packet;

#define L4_PACKET_DEFAULT_CONN_TABLE 262144u

struct l4_packet_vip {
  uint32_t addr; /* network order */
  uint16_t port; /* host order */
  uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
};

/* Parses "ADDR:PORT[/tcp|/udp]" (IPv4 only; tcp by default). 0 or -1 with
 * a one-line reason. Pure. */
int l4_packet_parse_vip(const char *spec, struct l4_packet_vip *out, char *err, size_t errlen);

/* Formats a VIP as "ADDR:PORT/proto". Returns out. */
char *l4_packet_format_vip(const struct l4_packet_vip *v, char *out, size_t len);

struct l4_packet_opts {
  const char *interface;
  const struct l4_packet_vip *vips;
  size_t nvips;
  uint32_t table_size;
  uint32_t conn_table_size;
  enum maglev_hash_mode hash_mode;
  int generic; /* attach in generic (skb) mode instead of native */
  struct metrics_registry *metrics;
};

/*
 * Checks the interface (exists, has an IPv4 address for the tunnel source,
 * forwarding on: the program asks the kernel FIB for next hops), loads the
 * program, adds the VIPs, attaches it and registers the metrics. The table
 * stays empty (VIP packets dropped) until l4_packet_apply. 0 or a negative
 * errno with a one-line reason.
 */
int l4_packet_start(const struct l4_packet_opts *o, struct l4_packet **out, char *err,
                    size_t errlen);

/* Pushes snapshot s (may be NULL: empty) and the whole membership
 * members[0..n) to the program. Problems are logged; the program keeps
 * its last table when a push fails. */
void l4_packet_apply(struct l4_packet *p, const struct l4_snapshot *s,
                     struct l4_backend *const *members, size_t n);

/* The connection table's replica for a flow: 1 and the member's name (or
 * the address when no member has it) in name, 0 when the flow has no
 * valid entry. IPv4 flows only. */
int l4_packet_conn_lookup(struct l4_packet *p, const struct maglev_flow *f, char *name, size_t len);

/* Milliseconds since a VIP packet last arrived, as seen by successive
 * calls (the first call returns 0). For draining. */
uint64_t l4_packet_idle_ms(struct l4_packet *p, uint64_t now_ms);

/* The interface, its tunnel source address and whether it runs native. */
const char *l4_packet_describe(const struct l4_packet *p, char *out, size_t len);

/* Detaches the program and frees everything. NULL is fine. */
void l4_packet_stop(struct l4_packet *p);

#endif
