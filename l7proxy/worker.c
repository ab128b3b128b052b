/*
 * worker — one data-path thread: its libuv loop, its SO_REUSEPORT
 * listeners (plain and HTTPS), its lifecycle (drain, stop), and the few
 * things every data-path file of the thread shares (worker_internal.h):
 * lazy timers, the socket write helper, the snapshot requests start on,
 * per-route metrics.
 *
 * The data path itself is split by job (DESIGN §6, the exchange model):
 *   h1_server.c   downstream connections, TLS, PROXY header, HTTP/1.1 codec
 *   h2_server.c   downstream HTTP/2 codec (nghttp2)
 *   exchange.c    routing, policy, retries, timeouts over messages
 *   h1_client.c   upstream HTTP/1.1 codec and keep-alive pools
 *   upstream_h2.c upstream HTTP/2 (h2c, gRPC) codec
 * Invariants: everything runs on the worker's loop; the only cross-thread
 * inputs are the atomic drain/stop flags behind uv_async.
 */
#include "l7proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/base64.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/h1_client.h"
#include "l7proxy/h1_server.h"
#include "l7proxy/h2_server.h"
#include "l7proxy/tls.h"
#include "l7proxy/route_policy.h"
#include "l7proxy/upstream_h2.h"
#include "l7proxy/worker_internal.h"

/* ---- lazy timers --------------------------------------------------------- */

static void lazy_cb(uv_timer_t *t) {
  struct lazy_timer *lt = (struct lazy_timer *)t;
  if (lt->deadline == 0) return;
  uint64_t now = uv_now(t->loop);
  if (now < lt->deadline) {
    lt->due = lt->deadline;
    uv_timer_start(t, lazy_cb, lt->deadline - now, 0);
    return;
  }
  lt->deadline = 0;
  lt->expired(lt);
}

void lazy_set(struct lazy_timer *lt, uint64_t ms) {
  if (ms == 0) {
    lt->deadline = 0;
    return;
  }
  uint64_t now = uv_now(lt->t.loop);
  lt->deadline = now + ms;
  if (!uv_is_active((uv_handle_t *)&lt->t) || lt->due > lt->deadline) {
    lt->due = lt->deadline;
    uv_timer_start(&lt->t, lazy_cb, ms, 0);
  }
}

void lazy_init(uv_loop_t *loop, struct lazy_timer *lt, void *data,
               void (*expired)(struct lazy_timer *lt)) {
  uv_timer_init(loop, &lt->t);
  lt->t.data = data;
  lt->deadline = lt->due = 0;
  lt->expired = expired;
}

/* ---- writing ------------------------------------------------------------- */

struct wreq {
  uv_write_t req;
  void (*done)(void *arg);
  void *arg;
  char data[];
};

static void on_written(uv_write_t *req, int status) {
  struct wreq *wr = container_of(req, struct wreq, req);
  void (*done)(void *) = wr->done;
  void *arg = wr->arg;
  free(wr);
  if (status != UV_ECANCELED && done) done(arg);
}

int worker_write(uv_stream_t *s, const char *data, size_t len, void (*done)(void *), void *arg) {
  size_t off = 0;
  if (uv_stream_get_write_queue_size(s) == 0) {
    uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(s, &ub, 1);
    if (n > 0)
      off = (size_t)n;
    else if (n < 0 && n != UV_EAGAIN)
      return n;
  }
  if (off < len) {
    size_t rest = len - off;
    struct wreq *wr = malloc(sizeof(*wr) + rest);
    if (!wr) return UV_ENOMEM;
    memcpy(wr->data, data + off, rest);
    wr->done = done;
    wr->arg = arg;
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)rest);
    int rc = uv_write(&wr->req, s, &ub, 1, on_written);
    if (rc != 0) {
      free(wr);
      return rc;
    }
  }
  return 0;
}

int worker_tls_flush(uv_stream_t *s, struct tls_conn *c, void (*done)(void *), void *arg) {
  for (;;) {
    const uint8_t *p;
    size_t len;
    tls_conn_pending_output(c, &p, &len);
    if (len == 0) return 0;
    int rc = worker_write(s, (const char *)p, len, done, arg);
    tls_conn_consume_output(c, len);
    if (rc != 0) return rc;
  }
}

void worker_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct worker *w = h->loop->data;
  (void)suggested;
  *buf = uv_buf_init(w->rbuf, sizeof(w->rbuf));
}

uint32_t worker_rand(void) {
  static __thread uint64_t s;
  if (!s) {
    if (getrandom(&s, sizeof(s), 0) != sizeof(s) || !s) s = 0x9e3779b97f4a7c15ull;
  }
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return (uint32_t)(s >> 16);
}

/* ---- snapshot and metrics ---------------------------------------------------- */

struct l7_snapshot *worker_snapshot(struct worker *w) {
  /* The worker re-reads the current snapshot only after a publish (one
   * atomic load per request); an exchange holds its own reference. */
  uint64_t gen = l7_snapshot_generation();
  if (gen != w->snap_gen || !w->snap) {
    struct l7_snapshot *cur = l7_snapshot_current();
    l7_snapshot_unref(w->snap);
    w->snap = cur;
    w->snap_gen = gen;
  }
  return w->snap;
}

struct route_metrics *worker_route_metrics(struct worker *w, struct l7_snapshot *snap,
                                           const struct l7_route *route,
                                           const struct l7_cluster *cluster) {
  if (!w->cfg->metrics) return NULL;
  if (snap != w->metrics_snap) {
    l7_snapshot_unref(w->metrics_snap);
    w->metrics_snap = l7_snapshot_ref(snap);
    memset(w->rcache, 0, sizeof(w->rcache));
  }
  size_t h = ((uintptr_t)route >> 4 ^ (uintptr_t)cluster >> 4) % ROUTE_CACHE;
  for (size_t k = 0; k < ROUTE_CACHE; k++) {
    struct route_metrics *m = &w->rcache[(h + k) % ROUTE_CACHE];
    if (m->used && m->route == route && m->cluster == cluster) return m;
    if (!m->used) {
      m->used = 1;
      m->route = route;
      m->cluster = cluster;
      char rname[300], cname[200], labels[1024];
      if (route)
        snprintf(rname, sizeof(rname), "%s%s", route->host_pattern[0] ? route->host_pattern : "*",
                 route->path);
      else
        snprintf(rname, sizeof(rname), "%s", cluster ? "default" : "none");
      char er[400], ec[300];
      snprintf(cname, sizeof(cname), "%s", cluster ? cluster->name : "");
      metrics_escape_label(rname, er, sizeof(er));
      metrics_escape_label(cname, ec, sizeof(ec));
      for (int c = 1; c <= 5; c++) {
        snprintf(labels, sizeof(labels), "route=\"%s\",cluster=\"%s\",code_class=\"%dxx\"", er, ec,
                 c);
        m->by_class[c] =
            metrics_counter(w->cfg->metrics, "edge_l7_requests_total",
                            "HTTP requests by route, cluster and status class.", labels);
      }
      size_t nb;
      const double *b = metrics_default_latency_buckets(&nb);
      snprintf(labels, sizeof(labels), "route=\"%s\",cluster=\"%s\"", er, ec);
      m->duration = metrics_histogram(w->cfg->metrics, "edge_l7_request_duration_seconds",
                                      "Request duration by route and cluster.", labels, b, nb);
      return m;
    }
  }
  return NULL;
}

/* ---- listener, lifecycle -------------------------------------------------- */

static void on_check(uv_check_t *c) {
  h2s_flush_dirty(c->data);
}

/*
 * Accepting. Room for a new connection is made by evicting the oldest idle
 * connection (nginx closes its "reusable" connections the same way) when
 * the worker is at --max-connections or accept fails for lack of
 * descriptors; a connection with a request in progress is never evicted.
 * Out of descriptors with nothing idle, accepting pauses for
 * ACCEPT_PAUSE_MS (the listener is level-triggered: no spinning) and new
 * clients wait in the backlog instead of being reset.
 */
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

int worker_make_room(struct worker *w, int out_of_fds) {
  if (!dconn_evict_idle(w)) return 0;
  w->n_evicting++;
  struct metrics_counter *c = out_of_fds ? w->c_evicted_fds : w->c_evicted_max;
  if (c) metrics_counter_inc(c);
  return 1;
}

static void on_listener_readable(uv_poll_t *p, int status, int events);

static void on_accept_resume(uv_timer_t *t) {
  struct worker *w = t->data;
  if (w->listening) uv_poll_start(&w->listener, UV_READABLE, on_listener_readable);
  if (w->tls_listening) uv_poll_start(&w->tls_listener, UV_READABLE, on_listener_readable);
}

static void pause_accepting(struct worker *w, int err) {
  LOG_WARN("accept_paused", "worker=%d reason=%s", w->id, log_q(strerror(err)));
  if (w->listening) uv_poll_stop(&w->listener);
  if (w->tls_listening) uv_poll_stop(&w->tls_listener);
  uv_timer_start(&w->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
}

static void on_listener_readable(uv_poll_t *p, int status, int events) {
  struct worker *w = p->data;
  int https = p == &w->tls_listener;
  int lfd = https ? w->tls_listen_fd : w->listen_fd;
  (void)events;
  if (status < 0) return;
  for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      dconn_accept(w, fd, &peer, https);
      continue;
    }
    int e = errno;
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EMFILE || e == ENFILE) {
      /* accept4 fails so whether or not a client waits: room is made for
       * the first of a batch only, which epoll said waits (level-triggered,
       * it says so again next turn for the others) */
      if (i > 0) return;
      if (worker_make_room(w, 1)) continue; /* one descriptor is free again */
      pause_accepting(w, e);
    } else if (e == ENOBUFS || e == ENOMEM) {
      pause_accepting(w, e); /* level-triggered: no spinning */
    }
    return; /* EAGAIN: nothing more waits */
  }
}

static void on_listener_closed(uv_handle_t *h) {
  struct worker *w = h->loop->data;
  if (h == (uv_handle_t *)&w->listener) {
    close(w->listen_fd);
    w->listen_fd = -1;
  } else if (w->tls_listen_fd >= 0) {
    close(w->tls_listen_fd);
    w->tls_listen_fd = -1;
  }
}

static void w_close_listeners(struct worker *w) {
  if (w->listening) {
    uv_close((uv_handle_t *)&w->listener, on_listener_closed);
    w->listening = 0;
  }
  if (w->tls_listening) {
    uv_close((uv_handle_t *)&w->tls_listener, on_listener_closed);
    w->tls_listening = 0;
  }
  uv_timer_stop(&w->accept_pause);
}

static void w_close_all(struct worker *w) {
  w_close_listeners(w);
  while (!up_link_empty(&w->conns)) dconn_close(container_of(w->conns.next, struct dconn, link), 0);
  while (!up_link_empty(&w->uconns)) h1c_close(container_of(w->uconns.next, struct uconn, wlink));
  while (!up_link_empty(&w->side)) { /* mirrors and passthrough tunnels */
    struct side_task *t = container_of(w->side.next, struct side_task, link);
    up_link_remove(&t->link);
    up_link_init(&t->link);
    t->close(t);
  }
  if (w->h2pool) {
    uh2_pool_close(w->h2pool);
    w->h2pool = NULL;
  }
  rp_worker_close(w);
  if (!uv_is_closing((uv_handle_t *)&w->async)) uv_close((uv_handle_t *)&w->async, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->h2_check)) uv_close((uv_handle_t *)&w->h2_check, NULL);
  if (!uv_is_closing((uv_handle_t *)&w->accept_pause))
    uv_close((uv_handle_t *)&w->accept_pause, NULL);
}

void worker_check_drained(struct worker *w) {
  if (!w->draining || w->stopping) return;
  if (atomic_load(&w->n_conns) == 0) {
    atomic_store(&w->drained, 1);
  }
}

static void on_async(uv_async_t *a) {
  struct worker *w = a->data;
  if (atomic_load(&w->stop_req) && !w->stopping) {
    w->draining = 1;
    w->stopping = 1;
    up_pools_foreach(&w->pools, h1c_close_idle, NULL);
    w_close_all(w);
    return;
  }
  if (atomic_load(&w->drain_req) && !w->draining) {
    w->draining = 1;
    w_close_listeners(w);
    up_pools_foreach(&w->pools, h1c_close_idle, NULL);
    /* idle keep-alive connections go now; busy ones after their response */
    struct up_link *l = w->conns.next;
    while (l != &w->conns) {
      struct dconn *d = container_of(l, struct dconn, link);
      l = l->next;
      dconn_drain(d);
    }
    worker_check_drained(w);
  }
}

static void worker_main(void *arg) {
  struct worker *w = arg;
  rp_worker_start(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* every handle is closed: let close callbacks finish */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  h2s_thread_cleanup();
  msg_arena_thread_cleanup();
}

int worker_start(int id, const struct worker_config *cfg, int listen_fd, int tls_listen_fd,
                 struct worker **out) {
  struct worker *w = calloc(1, sizeof(*w));
  if (!w) return -ENOMEM;
  w->id = id;
  w->cfg = cfg;
  w->listen_fd = listen_fd;
  w->tls_listen_fd = tls_listen_fd;
  up_link_init(&w->conns);
  up_link_init(&w->idle);
  up_link_init(&w->uconns);
  up_link_init(&w->side);
  if (up_pools_init(&w->pools) != 0) {
    free(w);
    return -ENOMEM;
  }
  uv_loop_init(&w->loop);
  w->loop.data = w;
  uv_async_init(&w->loop, &w->async, on_async);
  up_link_init(&w->h2_dirty);
  uv_check_init(&w->loop, &w->h2_check);
  w->h2_check.data = w;
  uv_check_start(&w->h2_check, on_check);
  uv_unref((uv_handle_t *)&w->h2_check);
  w->async.data = w;
  uv_timer_init(&w->loop, &w->accept_pause);
  w->accept_pause.data = w;
  /* the fds come from main.c bound but not listening (addr_bind_reuseport) */
  int plain_ok = 0, tls_ok = 0;
  int rc = listen(listen_fd, 1024) == 0 ? 0 : -errno;
  if (rc == 0) rc = uv_poll_init(&w->loop, &w->listener, listen_fd);
  plain_ok = rc == 0;
  if (rc == 0 && tls_listen_fd >= 0) {
    rc = listen(tls_listen_fd, 1024) == 0 ? 0 : -errno;
    if (rc == 0) rc = uv_poll_init(&w->loop, &w->tls_listener, tls_listen_fd);
    tls_ok = rc == 0;
  }
  if (rc != 0) {
    LOG_ERROR("listen_failed", "worker=%d error=%s", id, uv_strerror(rc));
    if (plain_ok) uv_close((uv_handle_t *)&w->listener, NULL);
    if (tls_ok) uv_close((uv_handle_t *)&w->tls_listener, NULL);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_close((uv_handle_t *)&w->h2_check, NULL);
    uv_close((uv_handle_t *)&w->accept_pause, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    up_pools_free(&w->pools);
    free(w);
    return rc; /* the fds stay the caller's to close: the process exits */
  }
  w->listener.data = w;
  uv_poll_start(&w->listener, UV_READABLE, on_listener_readable);
  w->listening = 1;
  if (tls_listen_fd >= 0) {
    w->tls_listener.data = w;
    uv_poll_start(&w->tls_listener, UV_READABLE, on_listener_readable);
    w->tls_listening = 1;
  }
  if (cfg->metrics) {
    w->c_hs_ok =
        metrics_counter(cfg->metrics, "edge_l7_tls_handshakes_total",
                        "TLS handshakes on the HTTPS listener by result.", "result=\"ok\"");
    w->c_hs_failed =
        metrics_counter(cfg->metrics, "edge_l7_tls_handshakes_total",
                        "TLS handshakes on the HTTPS listener by result.", "result=\"failed\"");
    w->c_req_h1 = metrics_counter(cfg->metrics, "edge_l7_requests_by_protocol_total",
                                  "Requests by downstream protocol.", "proto=\"h1\"");
    w->c_req_h2 = metrics_counter(cfg->metrics, "edge_l7_requests_by_protocol_total",
                                  "Requests by downstream protocol.", "proto=\"h2\"");
    size_t nb;
    const double *b = metrics_default_latency_buckets(&nb);
    w->duration = metrics_histogram(cfg->metrics, "edge_l7_request_duration_seconds",
                                    "Request duration by route and cluster.",
                                    "route=\"_other\",cluster=\"_other\"", b, nb);
    w->g_active = metrics_gauge(cfg->metrics, "edge_l7_active_connections",
                                "Open downstream connections.", "");
    w->c_evicted_max = metrics_counter(
        cfg->metrics, "edge_l7_connections_evicted_total",
        "Idle downstream connections closed to make room for a new one, by what was short.",
        "reason=\"max_connections\"");
    w->c_evicted_fds = metrics_counter(
        cfg->metrics, "edge_l7_connections_evicted_total",
        "Idle downstream connections closed to make room for a new one, by what was short.",
        "reason=\"file_descriptors\"");
    w->g_up_active = metrics_gauge(cfg->metrics, "edge_l7_upstream_connections",
                                   "Upstream connections by state.", "state=\"active\"");
    w->g_up_idle = metrics_gauge(cfg->metrics, "edge_l7_upstream_connections",
                                 "Upstream connections by state.", "state=\"idle\"");
  }
  rc = uv_thread_create(&w->thread, worker_main, w);
  if (rc != 0) {
    LOG_ERROR("thread_failed", "worker=%d error=%s", id, uv_strerror(rc));
    return rc; /* leaks the half-built worker: the process exits */
  }
  *out = w;
  return 0;
}

void worker_drain(struct worker *w) {
  atomic_store(&w->drain_req, 1);
  uv_async_send(&w->async);
}

int worker_drained(struct worker *w) {
  return atomic_load(&w->drained);
}

void worker_stop(struct worker *w) {
  atomic_store(&w->stop_req, 1);
  uv_async_send(&w->async);
}

void worker_join(struct worker *w) {
  uv_thread_join(&w->thread);
  uv_loop_close(&w->loop);
  up_pools_free(&w->pools);
  rp_worker_free(w);
  l7_snapshot_unref(w->metrics_snap);
  l7_snapshot_unref(w->snap);
  free(w);
}

size_t worker_connections(struct worker *w) {
  return atomic_load(&w->n_conns);
}

int worker_parse_cidr(const char *s, struct worker_cidr *out) {
  char buf[128];
  snprintf(buf, sizeof(buf), "%s", s);
  char *slash = strchr(buf, '/');
  int prefix = -1;
  if (slash) {
    *slash = '\0';
    char *end;
    long p = strtol(slash + 1, &end, 10);
    if (*end || p < 0 || p > 128) return -1;
    prefix = (int)p;
  }
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, buf, out->addr) == 1) {
    out->family = AF_INET;
    if (prefix > 32) return -1;
    out->prefix = prefix < 0 ? 32 : prefix;
    return 0;
  }
  if (inet_pton(AF_INET6, buf, out->addr) == 1) {
    out->family = AF_INET6;
    out->prefix = prefix < 0 ? 128 : prefix;
    return 0;
  }
  return -1;
}
