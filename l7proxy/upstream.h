/*
 * upstream — per-worker upstream state: endpoints (keep-alive pools and
 * outlier state) and per-cluster load-balancing cursors.
 *
 * Keyed by names, not by snapshot pointers: an endpoint is identified by
 * "cluster name" + "endpoint name", a cluster by its name, so idle
 * connections, round-robin cursors and ejections survive snapshot swaps.
 * For speed a worker asks for a cluster view (the endpoints of one
 * l7_cluster resolved to their state), cached per cluster object: a
 * cluster a push did not change is the same object in the next snapshot,
 * so its view survives the push, and a push that changes one cluster
 * costs one view rebuild, on the first request that uses it. Views sit in
 * a table by cluster slot with two ways per slot (old and new object of a
 * changed cluster serve side by side during a swap); a view holds its
 * cluster (l7_cluster_hold), so a cached address is never reused.
 *
 * Records are pruned: an endpoint or cluster record that no cached view
 * refers to, with no connection (active or idle) and no outstanding
 * request, is freed once it has stayed so for UP_PRUNE_GRACE_MS (checked
 * at most once a second when a view is built), so endpoint churn does not
 * grow a worker's memory forever. Contract for callers: an up_endpoint
 * pointer may be kept only while it holds a connection (n_active/n_idle)
 * or an outstanding request (lb.outstanding); anything needed later (the
 * name for the access log) must be copied.
 * Single-threaded: one up_pools per worker. Callers: worker.c.
 */
#ifndef EDGE_L7PROXY_UPSTREAM_H
#define EDGE_L7PROXY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "l7proxy/snapshot.h"
#include "l7proxy/upstream_lb.h"

/* Intrusive doubly-linked list link (circular, with a sentinel head). */
struct up_link {
  struct up_link *prev, *next;
};

static inline void up_link_init(struct up_link *l) {
  l->prev = l->next = l;
}
static inline int up_link_empty(const struct up_link *l) {
  return l->next == l;
}
static inline void up_link_insert(struct up_link *head, struct up_link *l) {
  l->next = head->next;
  l->prev = head;
  head->next->prev = l;
  head->next = l;
}
static inline void up_link_remove(struct up_link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = l;
}

struct up_endpoint {
  struct up_endpoint *hnext;
  char *key; /* "cluster\nendpoint" (owned) */
  char cluster[128];
  char name[64];
  struct sockaddr_storage addr;
  socklen_t addrlen;
  struct lb_state lb;
  struct up_link idle; /* idle keep-alive connections (worker's up_conn links) */
  uint32_t n_idle;
  uint32_t n_active;
  uint64_t unused_since; /* ms (monotonic) since unreferenced and unused; 0: in use */
  uint64_t mark;         /* prune pass that saw it in a cached view */
};

#define UP_PRUNE_GRACE_MS (10u * 60 * 1000)

struct up_cluster_view {
  const struct l7_cluster *cluster;
  uint32_t *rr_cursor;
  enum lb_policy policy;
  size_t n;
  struct up_endpoint **eps;
  struct lb_state **lbs;
};

struct up_cstate;

/* The two views of one cluster slot. */
struct up_view_slot {
  struct up_cluster_view way[2]; /* .cluster held; NULL: empty */
  uint64_t used[2];
};

struct up_pools {
  struct up_endpoint **ep_tab;
  size_t ep_buckets;
  struct up_cstate **cl_tab;
  size_t cl_buckets;
  struct up_view_slot *views; /* by cluster slot */
  size_t n_views;
  uint64_t clock;
  uint64_t prune_pass, last_prune_ms;
  size_t n_endpoints, n_clusters; /* records held */
  uint64_t view_builds;           /* views made (tests, metrics) */
};

int up_pools_init(struct up_pools *p);
/* Frees every record; the caller has closed all connections first. */
void up_pools_free(struct up_pools *p);

/* The view of cluster c (from a snapshot the caller holds). Built when
 * not cached: O(endpoints of c). NULL on allocation failure. The
 * pointer is valid until the next call (which may evict it). */
const struct up_cluster_view *up_pools_view(struct up_pools *p, const struct l7_cluster *c);

/* Frees the records unused for UP_PRUNE_GRACE_MS at now_ms (monotonic
 * ms); up_pools_view does this itself when it builds views for a new
 * snapshot. Returns how many records were freed. */
size_t up_pools_prune(struct up_pools *p, uint64_t now_ms);

/* Calls fn for every endpoint (e.g. to close idle connections). */
void up_pools_foreach(struct up_pools *p, void (*fn)(struct up_endpoint *ep, void *arg), void *arg);

#endif
