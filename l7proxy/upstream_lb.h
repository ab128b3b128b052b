/*
 * upstream_lb — endpoint selection and passive outlier ejection, as pure
 * functions over plain per-endpoint state with the time passed in.
 *
 * Policies: round robin (a cursor per cluster), least request (power of
 * two choices on outstanding requests) and consistent hashing (weighted
 * rendezvous over a key the caller derives). Ejected endpoints are skipped until
 * their ejection ends; endpoints an active health check took out are
 * skipped while it says so. Ejection (Envoy's defaults): 5 consecutive failures
 * (5xx answers or connect failures) eject an endpoint for 30 s × the number
 * of times it has been ejected, at most 300 s (Envoy's max_ejection_time);
 * at most 10 % of a cluster's endpoints are ejected at once, but at least
 * one may be. A success resets the streak. The count decays: every 30 s
 * an endpoint spends out of ejection takes one off, so an endpoint that
 * misbehaved once last week starts again from 30 s.
 *
 * The state lives in the caller (one lb_state per endpoint per worker);
 * nothing here allocates or reads a clock. Callers: upstream.c, unit tests.
 */
#ifndef EDGE_L7PROXY_UPSTREAM_LB_H
#define EDGE_L7PROXY_UPSTREAM_LB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LB_EJECT_CONSECUTIVE 5
#define LB_EJECT_BASE_MS 30000u
#define LB_EJECT_MAX_PERCENT 10
#define LB_EJECT_MAX_MS 300000u
#define LB_EJECT_DECAY_MS LB_EJECT_BASE_MS

struct lb_state {
  uint32_t outstanding;   /* requests in flight (least request) */
  uint32_t consecutive;   /* failures in a row */
  uint32_t ejections;     /* how many times ejected so far */
  uint64_t ejected_until; /* ms; 0 = not ejected */
  /* The active health check's verdict (l7proxy/health_check.h, written by
   * the process's checker, read here): non-zero = down, never picked.
   * NULL: the cluster has no health check. */
  const atomic_int *hc_down;
  uint64_t decay_from; /* ms from which the ejection count decays */
};

enum lb_policy { LB_ROUND_ROBIN = 0, LB_LEAST_REQUEST };

/* 1 if st is ejected at now (an expired ejection counts as not ejected). */
int lb_is_ejected(const struct lb_state *st, uint64_t now_ms);

/*
 * Picks an endpoint among st[0..n) that is not ejected and not in the
 * avoid bitmask (bit i set: skip endpoint i; i < 64 — endpoints past 63
 * cannot be avoided). rnd is a random 32-bit value (for P2C). *cursor is
 * the round-robin cursor of the cluster. Returns the index, or -1 when no
 * endpoint may be used.
 */
int lb_pick(enum lb_policy policy, const struct lb_state *const *st, size_t n, uint64_t avoid,
            uint32_t *cursor, uint32_t rnd, uint64_t now_ms);

/*
 * Consistent hashing (weighted rendezvous / highest random weight): every
 * endpoint i scores mix(key, seeds[i]) scaled by weights[i] (NULL: all
 * equal); the best usable endpoint (not ejected, not avoided) wins, so
 * when an endpoint leaves or is ejected only its keys move, each to its
 * own next best. O(n) per pick, no state. -1 when none may be used.
 */
int lb_pick_hash(uint64_t key, const uint64_t *seeds, const uint32_t *weights,
                 const struct lb_state *const *st, size_t n, uint64_t avoid, uint64_t now_ms);

/*
 * Records an outcome for endpoint i of a cluster (st[0..n)). failure is 1
 * for a 5xx or a connect failure. Returns 1 if this outcome ejected the
 * endpoint now, else 0.
 */
int lb_report(struct lb_state *const *st, size_t n, size_t i, int failure, uint64_t now_ms);

#endif
