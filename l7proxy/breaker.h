/*
 * breaker — per-cluster circuit breakers (Envoy's cluster circuit
 * breakers): how many upstream connections are open, how many requests
 * wait for a connection or stream, how many retries are in flight, each
 * against the cluster's limit (Edge__V1__CircuitBreakers; 0 unlimited).
 *
 * One struct breaker per cluster name for the whole process, so the
 * limits hold across workers (a per-worker limit would multiply with
 * --workers). Records are interned by name and never freed while the
 * process runs (a cluster that leaves the configuration keeps its small
 * record, like upstream.c's endpoint records); only clusters that set
 * limits get one, so the snapshot's cluster->breaker is NULL and costs
 * nothing on the data path for every other cluster.
 *
 * Counting is lock-free: breaker_acquire is a compare-and-swap loop that
 * never lets a counter pass its limit; every successful acquire is paired
 * with one breaker_release by its owner (a connection, a pending attempt,
 * a retry). Threads: any. Callers: snapshot.c (lookup), h1_client.c,
 * upstream_h2.c, exchange.c; unit tests.
 */
#ifndef EDGE_L7PROXY_BREAKER_H
#define EDGE_L7PROXY_BREAKER_H

#include <stdatomic.h>
#include <stdint.h>

enum breaker_limit {
  BREAKER_CONNECTIONS = 0, /* max_connections */
  BREAKER_PENDING,         /* max_pending_requests */
  BREAKER_RETRIES,         /* max_retries */
  BREAKER_N_LIMITS,
};

struct breaker {
  struct breaker *next; /* intern list */
  char *name;           /* cluster name */
  atomic_uint count[BREAKER_N_LIMITS];
  /* times a limit refused something (for /metrics; also counted in the
   * edge_l7_circuit_breaker_overflow_total series) */
  atomic_ulong overflows[BREAKER_N_LIMITS];
};

/* The process-wide record of cluster name (created on first use). NULL
 * only when out of memory. */
struct breaker *breaker_get(const char *cluster);

/* Counts one more for limit l when that stays within max (0: unlimited).
 * 1 when counted (release it later), 0 when the limit is reached (the
 * overflow is counted). */
int breaker_acquire(struct breaker *b, enum breaker_limit l, uint32_t max);
void breaker_release(struct breaker *b, enum breaker_limit l);
unsigned breaker_count(const struct breaker *b, enum breaker_limit l);

/* The error an upstream codec returns when limit l refused a new
 * connection or a waiting request (-2000 - l); BREAKER_LIMIT_OF maps it
 * back, or -1 for any other value. */
#define BREAKER_E_OVERFLOW(l) (-2000 - (int)(l))
#define BREAKER_LIMIT_OF(rc) \
  ((rc) <= -2000 && (rc) > -2000 - (int)BREAKER_N_LIMITS ? -2000 - (rc) : -1)

/* "max_connections", "max_pending_requests", "max_retries": the value of
 * the x-edge-circuit-breaker response header and of the metric's label. */
const char *breaker_limit_name(enum breaker_limit l);

#endif
