/*
 * health_check — active HTTP health checks of the endpoints of clusters
 * that ask for them (Edge__V1__HealthCheck: path, host, interval, timeout,
 * rise/fall, expected statuses; off by default).
 *
 * One checker per process, on the main thread's loop, not one per worker:
 * N workers checking on their own would send N times the check traffic and
 * could disagree about an endpoint. The checker's verdict is published per
 * endpoint as an atomic flag (struct hc_flag) that every worker reads when
 * it picks an endpoint (upstream_lb skips an endpoint whose flag is down),
 * so a verdict reaches all workers at once without a lock.
 *
 * Each checked endpoint runs one check at a time: every interval (±10 %
 * jitter) it connects to the endpoint (or to its health port when the
 * check names one) (TLS when the cluster speaks TLS, with the cluster's
 * context), sends "GET path HTTP/1.1" with Host (the configured host, else
 * the endpoint's address) and Connection: close, and reads the status line
 * (common/health's parser); a status in the expected range passes, any
 * other status, a connect or TLS failure, a bad response or the timeout
 * fails. Rise/fall is common/health's state machine, shared with l4lb. An
 * endpoint starts UP (like l4lb's replicas): checks only ever take away.
 * When a cluster stops asking for checks (or an endpoint leaves), its
 * flags go back to up.
 *
 * Flags are interned by "cluster\nendpoint" and never freed while the
 * process runs, so a worker's pointer to one can never dangle; only
 * endpoints of clusters with health checks get one.
 *
 * Threads: hc_flag_get / hc_flag_is_down from any thread; the checker
 * (hc_checker_*) on the loop it was created on. Callers: main.c (sync on
 * every published snapshot), upstream.c (flags into lb_state), tests.
 */
#ifndef EDGE_L7PROXY_HEALTH_CHECK_H
#define EDGE_L7PROXY_HEALTH_CHECK_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

struct l7_snapshot;
struct metrics_registry;

/* The verdict workers read. down: 1 when the checker took the endpoint out. */
struct hc_flag {
  atomic_int down;
};

/* The process-wide flag of endpoint (its name, "10.0.0.1:8080") of
 * cluster, created UP on first use; NULL only when out of memory. */
struct hc_flag *hc_flag_get(const char *cluster, const char *endpoint);

static inline int hc_flag_is_down(const struct hc_flag *f) {
  return f && atomic_load_explicit(&((struct hc_flag *)f)->down, memory_order_relaxed);
}

struct hc_checker;

/* A checker on loop (metrics may be NULL). 0 or -ENOMEM. */
int hc_checker_new(uv_loop_t *loop, struct metrics_registry *metrics, struct hc_checker **out);
/* Checks exactly the endpoints of snap's clusters that have a health
 * check: new ones start (first check within a random part of one
 * interval), changed settings apply from the next check, the rest stop
 * and their flags go back to up. snap may be NULL (stops everything). */
void hc_checker_sync(struct hc_checker *k, struct l7_snapshot *snap);
/* Endpoints being checked, and how many are down (tests, /config). */
size_t hc_checker_targets(const struct hc_checker *k, size_t *down);
/* Stops every check; the checker frees itself once its handles closed
 * (run the loop). */
void hc_checker_close(struct hc_checker *k);

#endif
