/*
 * worker_internal — what the data-path files of one worker thread share:
 * the worker itself, lazy timers, socket write helpers and the snapshot
 * the worker serves. Not a public interface: only worker.c, h1_server.c,
 * h2_server.c, exchange.c and h1_client.c include it.
 *
 * Threads: everything here belongs to one worker's loop; the only fields
 * other threads touch are the atomics (drain/stop requests, n_conns).
 */
#ifndef EDGE_L7PROXY_WORKER_INTERNAL_H
#define EDGE_L7PROXY_WORKER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "l7proxy/http1.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/upstream.h"
#include "l7proxy/worker.h"

#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)
#define READ_BUF (64 * 1024)
#define ROUTE_CACHE 256
#define IN_MAX (64 * 1024)

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

/*
 * Lazy timers: a connection keeps one uv timer and a deadline. Moving the
 * deadline later (every request does) only writes the field; the timer,
 * when it fires early, re-arms itself for what is left. Only a deadline
 * earlier than the armed one restarts the timer. This keeps timer-heap
 * work off the per-request path.
 */
struct lazy_timer {
  uv_timer_t t;
  uint64_t deadline; /* loop ms; 0: none */
  uint64_t due;      /* when the uv timer is armed to fire */
  void (*expired)(struct lazy_timer *lt);
};
void lazy_init(uv_loop_t *loop, struct lazy_timer *lt, void *data,
               void (*expired)(struct lazy_timer *lt));
/* Sets the deadline ms from now (0: none). */
void lazy_set(struct lazy_timer *lt, uint64_t ms);

struct route_metrics {
  const struct l7_route *route; /* key (NULL slot: empty) */
  const struct l7_cluster *cluster;
  int used;
  struct metrics_counter *by_class[6]; /* index status/100; NULL on allocation failure */
  struct metrics_histogram *duration;  /* latency per route and cluster (dashboards) */
};

struct uh2_pool;
struct rp_worker;

struct worker {
  int id;
  const struct worker_config *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  /* Listeners are watched with uv_poll and accepted here (accept4), not
   * with uv_listen: libuv answers EMFILE by accepting and closing every
   * waiting client, where the worker first evicts an idle connection of
   * its own (worker.c). */
  uv_poll_t listener;
  int listen_fd;
  int listening;
  uv_poll_t tls_listener;
  int tls_listen_fd; /* -1: no HTTPS */
  int tls_listening;
  uv_timer_t accept_pause; /* out of descriptors with nothing to evict */
  char pbuf[READ_BUF];     /* decrypted plaintext */
  struct metrics_counter *c_hs_ok, *c_hs_failed, *c_req_h1, *c_req_h2;
  uv_async_t async;
  atomic_int drain_req, stop_req, drained;
  atomic_size_t n_conns;
  int draining, stopping;
  struct up_link conns; /* downstream connections (struct dconn) */
  /* Evictable downstream connections (struct dconn idle_link): HTTP/1.1
   * with no exchange and no byte of the next request, HTTP/2 with no open
   * stream. Newest first: the oldest is idle.prev. */
  struct up_link idle;
  size_t n_evicting; /* evicted, descriptor closed, not yet freed */
  struct metrics_counter *c_evicted_max, *c_evicted_fds;
  struct up_link uconns;   /* upstream HTTP/1.1 connections (struct uconn) */
  struct up_pools pools;   /* endpoints, keep-alive pools, outlier state */
  struct uh2_pool *h2pool; /* H2C/GRPC upstreams, created on first use */
  char rbuf[READ_BUF];
  struct l7_snapshot *snap; /* current as of snap_gen (one ref) */
  uint64_t snap_gen;
  struct l7_snapshot *metrics_snap;
  struct route_metrics rcache[ROUTE_CACHE];
  struct metrics_histogram *duration;
  struct metrics_gauge *g_active, *g_up_active, *g_up_idle;
  /* HTTP/2 sessions with output to write: written once per loop turn, after
   * every event of the turn (one write per connection for all the streams
   * answered in it), by the check handle */
  uv_check_t h2_check;
  struct up_link h2_dirty;
  struct rp_worker *policy; /* route policies' state (route_policy.c), created on first use */
  /* Work that outlives its exchange or connection — request mirrors (mirror.c), TLS
   * passthrough tunnels (passthrough.c) — closed with the worker */
  struct up_link side;
};

/* One item of worker->side: closed (and unlinked) by close() when the worker stops. */
struct side_task {
  struct up_link link;
  void (*close)(struct side_task *t);
};

static inline uint64_t now_ms(struct worker *w) {
  return uv_now(&w->loop);
}

/* The snapshot requests start on now (no reference: the worker holds one
 * until the next publish is seen). One relaxed atomic load per call. */
struct l7_snapshot *worker_snapshot(struct worker *w);
/* Per-route request counters (cached per snapshot); NULL without metrics. */
struct route_metrics *worker_route_metrics(struct worker *w, struct l7_snapshot *snap,
                                           const struct l7_route *route,
                                           const struct l7_cluster *cluster);
/* Makes room for one more connection: evicts the oldest idle downstream
 * connection (h1_server.c dconn_evict_idle), counting it under
 * edge_l7_connections_evicted_total{reason}. out_of_fds: accept failed
 * with EMFILE/ENFILE (else: at --max-connections). 1 if one was evicted
 * (its descriptor is closed on return), 0 if none is idle. */
int worker_make_room(struct worker *w, int out_of_fds);
/* A draining worker notices when its last connection is gone. */
void worker_check_drained(struct worker *w);
uint32_t worker_rand(void);

/* libuv read buffer: the worker's (one read at a time per loop). */
void worker_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* Writes data[0..len) to s: try_write first, the rest copied and queued
 * (done(arg) after a queued write completes). 0 or a libuv error. */
int worker_write(uv_stream_t *s, const char *data, size_t len, void (*done)(void *), void *arg);
/* Writes a TLS connection's pending ciphertext to s (copied, so the region
 * is consumed at once): downstream HTTPS and TLS upstreams. 0 or a libuv
 * error. */
struct tls_conn;
int worker_tls_flush(uv_stream_t *s, struct tls_conn *c, void (*done)(void *), void *arg);

#endif
