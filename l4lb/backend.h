/*
 * backend — the L7 replicas l4lb forwards to, and the immutable snapshot
 * (Maglev table + eligible backends) that workers route with.
 *
 * A struct l4_backend is reference counted: the membership list on the
 * main thread holds one reference, every snapshot that lists it holds one,
 * and every connection to it holds one, so a replica removed from the set
 * stays valid until its last connection ends. Fields are split by owner:
 *  - immutable after l4_backend_new (and l4_backend_set_https, called
 *    before the backend is published): name, address, addr, check
 *    address, https address;
 *  - main thread only: weight, draining, health, checker;
 *  - any thread: the counters (atomics) and the metrics handles.
 *
 * A struct l4_snapshot is immutable once published. Publishing swaps a
 * mutex-protected pointer and bumps an atomic generation; a worker keeps
 * its own reference and re-acquires only when the generation moved, so
 * the accept path takes no lock in the steady state. A connection holds
 * the snapshot only while it connects (retries walk that snapshot's
 * table), then only its backend.
 *
 * Callers: main.c and membership.c build backends and snapshots on the
 * main thread; forward.c (workers) and the admin /lookup handler read.
 */
#ifndef EDGE_L4LB_BACKEND_H
#define EDGE_L4LB_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/health.h"
#include "l4lb/maglev.h"

struct metrics_registry;
struct metrics_gauge;
struct metrics_counter;
struct l4_checker;

struct l4_backend {
  atomic_int refs;
  char *name;          /* node_id from syncd, or "ADDR:PORT" */
  char *address;       /* "ADDR:PORT" connections go to */
  char *check_address; /* "ADDR:PORT" of GET /readyz, or NULL: TCP check */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  struct sockaddr_storage check_addr;
  socklen_t check_addrlen;
  char *https_address; /* "ADDR:PORT" for https listeners, or NULL: none */
  struct sockaddr_storage https_addr;
  socklen_t https_addrlen;

  /* main thread only */
  uint32_t weight;
  int draining;
  struct health_state health;
  struct l4_checker *checker;
  uint64_t failures_seen; /* passive failures already fed to health */

  /* any thread */
  atomic_uint_fast64_t connect_failures; /* passive failures reported by workers */
  struct metrics_gauge *m_up;
  struct metrics_gauge *m_conns;
  struct metrics_counter *m_failures;
  struct metrics_registry *metrics; /* for removing the series */
};

/*
 * Creates a backend (refs = 1, UP per health_init(rise, fall)). address and
 * check_address ("ADDR:PORT", numeric IPv4/IPv6; check may be NULL) are
 * resolved now. Registers its per-backend series in metrics (may be NULL).
 * Returns 0 or -1 with a reason in err.
 */
int l4_backend_new(const char *name, const char *address, const char *check_address,
                   uint32_t weight, int rise, int fall, struct metrics_registry *metrics,
                   struct l4_backend **out, char *err, size_t errlen);
/* Sets where https listeners send this backend's connections ("" or NULL:
 * nowhere, the backend is skipped for them). Only before the backend is
 * shared with workers. 0 or -1 with a reason (b unchanged). */
int l4_backend_set_https(struct l4_backend *b, const char *https_address, char *err, size_t errlen);
void l4_backend_ref(struct l4_backend *b);
/* Drops a reference; the last one frees the backend. */
void l4_backend_unref(struct l4_backend *b);
/* Removes the backend's metric series (when it leaves the set). */
void l4_backend_forget_metrics(struct l4_backend *b);

struct l4_snapshot {
  atomic_int refs;
  uint64_t generation;
  struct maglev_table *table;   /* over backends[0..n) */
  struct l4_backend **backends; /* the eligible (healthy, not draining) set */
  size_t n;
};

/*
 * Builds a snapshot over backends[0..n) (each gains a reference) with a
 * table of size m. Returns 0 or a negative maglev error with a reason.
 */
int l4_snapshot_new(struct l4_backend *const *backends, size_t n, uint32_t m,
                    struct l4_snapshot **out, char *err, size_t errlen);
void l4_snapshot_unref(struct l4_snapshot *s);

/* Makes s the current snapshot (takes over the caller's reference). */
void l4_snapshot_publish(struct l4_snapshot *s);
/* A new reference to the current snapshot, or NULL before the first
 * publish. */
struct l4_snapshot *l4_snapshot_acquire(void);
/* Changes whenever a new snapshot is published (cheap to poll). */
uint64_t l4_snapshot_generation(void);
/* Drops the current snapshot (at exit). */
void l4_snapshot_clear(void);

/* The backend index (into s->backends) a flow maps to and its slot, or -1
 * when the snapshot has no backend. The data path and /lookup both use
 * this, so their answers agree. */
int l4_snapshot_pick(const struct l4_snapshot *s, const struct maglev_flow *flow,
                     enum maglev_hash_mode mode, uint32_t *slot);

/* Rewrites an IPv4-mapped IPv6 address ([::ffff:a.b.c.d]:p) as IPv4 in
 * place, so a dual-stack listener reports clients the way a v4 one does
 * (in PROXY headers too). Other addresses are left alone. */
void l4_unmap_v4(struct sockaddr_storage *ss);

/* Fills a maglev flow from a connection's peer (src) and local (dst)
 * addresses; IPv4-mapped IPv6 becomes IPv4. Returns 0 or -1. */
int l4_flow_from_addrs(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                       struct maglev_flow *flow);

#endif
