/*
 * worker — the HTTP/1.1 proxy data path of one thread.
 *
 * A downstream connection (struct dconn) runs one request at a time
 * through an exchange: the request head is parsed (http1), routed against
 * the snapshot taken for this request, rewritten (headers) and sent on an
 * upstream connection (struct uconn) taken from the endpoint's keep-alive
 * pool or newly connected. The response head is rewritten on the way back
 * and both bodies stream through: every piece is written as it arrives,
 * and a side stops reading while the other side's write queue is above
 * HIGH_WATER, so no body is ever buffered whole. The request parser pauses
 * after each request; pipelined bytes wait in dconn.in until the response
 * is done, which keeps responses in request order.
 *
 * Invariants: a dconn has at most one exchange, an exchange at most one
 * uconn; a uconn is either owned by one dconn (active), in its endpoint's
 * idle list, or closing. Everything runs on the worker's loop; the only
 * cross-thread inputs are the atomic drain/stop flags behind uv_async.
 *
 * Errors before the response head went out become a local 502/503/504 (or
 * the parser's 400/408/413/414/431); after it, the client connection is
 * closed, since nothing else can tell it the response is incomplete.
 */
#include "l7proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/proxy_proto.h"
#include "l7proxy/headers.h"
#include "l7proxy/http1.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/upstream.h"

#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)
#define READ_BUF (64 * 1024)
#define ROUTE_CACHE 256
#define IN_MAX (64 * 1024)

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

/* Sets the deadline ms from now (0: none). */
static void lazy_set(struct lazy_timer *lt, uint64_t ms) {
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

static void lazy_init(uv_loop_t *loop, struct lazy_timer *lt, void *data,
                      void (*expired)(struct lazy_timer *lt)) {
  uv_timer_init(loop, &lt->t);
  lt->t.data = data;
  lt->deadline = lt->due = 0;
  lt->expired = expired;
}

struct worker;
struct uconn;

struct route_metrics {
  const struct l7_route *route; /* key (NULL slot: empty) */
  const struct l7_cluster *cluster;
  int used;
  struct metrics_counter *by_class[6]; /* index status/100; NULL on allocation failure */
};

struct exchange {
  int active;
  int local; /* answered locally: the request body is discarded */
  const struct l7_route *route;
  const struct l7_cluster *cluster;
  struct up_endpoint *ep;
  struct uconn *uc;
  uint64_t avoid; /* endpoints already tried (bit per index) */
  int retries_left;
  int tries;       /* endpoints tried for this request */
  int outstanding; /* ep->lb.outstanding holds a count for this exchange */
  int idempotent;
  struct h1_buf head;   /* upstream request head, kept for a retry */
  struct h1_buf up_out; /* request body bytes waiting for a connection */
  enum h1_framing req_framing;
  int req_complete;
  int body_flushed; /* request body bytes went to a socket: no retry */
  int head_request;
  int upgrade;
  int client_keep_alive;
  int client_http10;
  int resp_started;
  int resp_complete;
  int resp_keep_alive;
  enum h1_framing down_framing;
  int status;
  uint64_t t_start;  /* uv_hrtime */
  uint64_t deadline; /* loop ms: the route's whole-request timeout; 0 none */
  uint32_t phase_ms; /* the current upstream phase timeout (header or idle) */
  uint64_t bytes_down;
  char method[16];
  char host[128];
  char path[256];
  char request_id[65];
};

enum dstate { D_OPEN = 0, D_TUNNEL, D_CLOSING };

struct dconn {
  uv_tcp_t tcp;
  struct lazy_timer timer;
  struct worker *w;
  struct up_link link; /* worker's connection list */
  int handles;         /* open handles; freed at 0 */
  enum dstate state;
  struct h1_parser parser;
  struct h1_buf in;  /* unparsed input (pipelined requests, PROXY header) */
  struct h1_buf out; /* bytes for the client, flushed after each event */
  int pp_pending;    /* waiting for a PROXY protocol header */
  int reading;
  int paused;     /* parser stopped after a complete request */
  int bp_stopped; /* reading stopped: upstream write queue is full */
  int head_timer; /* the header-read timer is armed */
  int close_after;
  int in_process; /* inside d_process: ex_finish must not recurse */
  int peer_eof;   /* the client half-closed: finish what was asked, then close */
  int linger_done;
  size_t linger_bytes;
  char client[INET6_ADDRSTRLEN];
  struct l7_snapshot *snap;
  struct exchange ex;
};

enum ustate { U_CONNECTING = 0, U_ACTIVE, U_IDLE, U_TUNNEL, U_CLOSING };

struct uconn {
  uv_tcp_t tcp;
  struct lazy_timer timer;
  uv_connect_t creq;
  struct up_link link;  /* endpoint idle list */
  struct up_link wlink; /* worker's upstream list */
  struct worker *w;
  struct up_endpoint *ep;
  struct dconn *d; /* owner while active */
  int handles;
  enum ustate state;
  struct h1_parser parser;
  struct h1_buf out;
  int reused;
  int got_bytes; /* response bytes seen for the current request */
  int bp_stopped;
  uint32_t idle_timeout_ms;
  uint32_t max_idle;
};

struct worker {
  int id;
  const struct worker_config *cfg;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_tcp_t listener;
  int listen_fd;
  int listening;
  uv_async_t async;
  atomic_int drain_req, stop_req, drained;
  atomic_size_t n_conns;
  int draining, stopping;
  struct up_link conns;
  struct up_link uconns;
  struct up_pools pools;
  char rbuf[READ_BUF];
  struct l7_snapshot *snap; /* current as of snap_gen (one ref) */
  uint64_t snap_gen;
  struct l7_snapshot *metrics_snap;
  struct route_metrics rcache[ROUTE_CACHE];
  struct metrics_histogram *duration;
  struct metrics_gauge *g_active, *g_up_active, *g_up_idle;
  struct h1_callbacks dcb, ucb;
};

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

static void d_close(struct dconn *d, int graceful);
static void d_process(struct dconn *d);
static void d_update_reading(struct dconn *d);
static void ex_start_upstream(struct dconn *d);
static void ex_fail(struct dconn *d, int status, const char *why, int retryable);
static void uc_read_start(struct uconn *uc);
static void uc_arm(struct uconn *uc, uint32_t ms);
static void ex_report(struct dconn *d, int failure);
static void ex_response_done(struct dconn *d);
static void uc_close(struct uconn *uc);
static void uc_release(struct uconn *uc, int reusable);
static void w_check_drained(struct worker *w);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ms(struct worker *w) {
  return uv_now(&w->loop);
}

static void copy_str(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

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

/* Writes b to s (try_write first, the rest queued) and empties b. */
static int flush_buf(uv_stream_t *s, struct h1_buf *b, void (*done)(void *), void *arg) {
  if (b->len == 0) return 0;
  size_t off = 0;
  if (uv_stream_get_write_queue_size(s) == 0) {
    uv_buf_t ub = uv_buf_init(b->data, (unsigned)b->len);
    int n = uv_try_write(s, &ub, 1);
    if (n > 0)
      off = (size_t)n;
    else if (n < 0 && n != UV_EAGAIN) {
      b->len = 0;
      return n;
    }
  }
  if (off < b->len) {
    size_t rest = b->len - off;
    struct wreq *wr = malloc(sizeof(*wr) + rest);
    if (!wr) {
      b->len = 0;
      return UV_ENOMEM;
    }
    memcpy(wr->data, b->data + off, rest);
    wr->done = done;
    wr->arg = arg;
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)rest);
    int rc = uv_write(&wr->req, s, &ub, 1, on_written);
    if (rc != 0) {
      free(wr);
      b->len = 0;
      return rc;
    }
  }
  b->len = 0;
  /* a buffer that grew for a large head is not kept around */
  if (b->cap > 4 * READ_BUF) h1_buf_free(b);
  return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct worker *w = h->loop->data;
  (void)suggested;
  *buf = uv_buf_init(w->rbuf, sizeof(w->rbuf));
}

/* ---- metrics and access log ------------------------------------------- */

static struct route_metrics *route_metrics(struct worker *w, struct l7_snapshot *snap,
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
      return m;
    }
  }
  return NULL;
}

static void record_request(struct dconn *d) {
  struct worker *w = d->w;
  struct exchange *ex = &d->ex;
  double secs = (double)(uv_hrtime() - ex->t_start) / 1e9;
  if (w->cfg->metrics && d->snap) {
    struct route_metrics *m = route_metrics(w, d->snap, ex->route, ex->cluster);
    int cls = ex->status / 100;
    if (m && cls >= 1 && cls <= 5 && m->by_class[cls]) metrics_counter_inc(m->by_class[cls]);
  }
  if (w->duration) metrics_histogram_observe(w->duration, secs);
  if (w->cfg->access_log) {
    LOG_INFO("access",
             "client=%s method=%s host=%s path=%s status=%d bytes=%llu duration_ms=%.3f "
             "route=%s cluster=%s upstream=%s request_id=%s",
             d->client, log_q(ex->method), log_q(ex->host), log_q(ex->path), ex->status,
             (unsigned long long)ex->bytes_down, secs * 1000,
             log_q(ex->route ? ex->route->path : "-"), log_q(ex->cluster ? ex->cluster->name : "-"),
             ex->ep ? ex->ep->name : "-", ex->request_id[0] ? ex->request_id : "-");
  }
}

/* ---- downstream connection -------------------------------------------- */

static void d_freed(uv_handle_t *h) {
  struct dconn *d = h->data;
  if (--d->handles > 0) return;
  struct worker *w = d->w;
  h1_parser_free(&d->parser);
  h1_buf_free(&d->in);
  h1_buf_free(&d->out);
  h1_buf_free(&d->ex.head);
  h1_buf_free(&d->ex.up_out);
  l7_snapshot_unref(d->snap);
  free(d);
  atomic_fetch_sub(&w->n_conns, 1);
  if (w->g_active) metrics_gauge_add(w->g_active, -1);
  w_check_drained(w);
}

/*
 * Lingering close: after a response that ends the connection (an error
 * status, Connection: close), the write side is shut down and whatever
 * the client still sends is read and dropped for a moment. Closing with
 * unread bytes would make the kernel answer RST, and a client still
 * sending its body could lose the response it is about to read.
 */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1024 * 1024)

static void d_linger_end(struct dconn *d) {
  if (d->linger_done) return;
  d->linger_done = 1;
  lazy_set(&d->timer, 0);
  uv_close((uv_handle_t *)&d->timer.t, d_freed);
  uv_close((uv_handle_t *)&d->tcp, d_freed);
}

static void d_linger_expired(struct lazy_timer *t) {
  d_linger_end(t->t.data);
}

static void d_linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct dconn *d = s->data;
  (void)buf;
  if (nread < 0 || (d->linger_bytes += (size_t)nread) > LINGER_MAX_BYTES) d_linger_end(d);
}

static void d_shutdown_cb(uv_shutdown_t *req, int status) {
  struct dconn *d = req->data;
  free(req);
  if (status < 0 || uv_read_start((uv_stream_t *)&d->tcp, alloc_cb, d_linger_read) != 0)
    d_linger_end(d);
}

static void ex_detach_upstream(struct dconn *d, int reusable) {
  struct exchange *ex = &d->ex;
  if (ex->uc) {
    struct uconn *uc = ex->uc;
    ex->uc = NULL;
    uc->d = NULL;
    uc_release(uc, reusable);
  }
}

static void ex_drop_outstanding(struct exchange *ex) {
  if (ex->outstanding && ex->ep && ex->ep->lb.outstanding) ex->ep->lb.outstanding--;
  ex->outstanding = 0;
}

/* Closes d; graceful: after pending writes (and a FIN). */
static void d_close(struct dconn *d, int graceful) {
  if (d->state == D_CLOSING) return;
  d->state = D_CLOSING;
  up_link_remove(&d->link);
  ex_drop_outstanding(&d->ex);
  ex_detach_upstream(d, 0);
  d->ex.active = 0;
  uv_read_stop((uv_stream_t *)&d->tcp);
  if (graceful && !d->w->stopping) {
    flush_buf((uv_stream_t *)&d->tcp, &d->out, NULL, NULL);
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req) {
      req->data = d;
      if (uv_shutdown(req, (uv_stream_t *)&d->tcp, d_shutdown_cb) == 0) {
        d->timer.expired = d_linger_expired;
        lazy_set(&d->timer, LINGER_MS);
        return;
      }
      free(req);
    }
  }
  d_linger_end(d);
}

static void d_on_timer(struct lazy_timer *t) {
  struct dconn *d = t->t.data;
  if (d->ex.active) return;
  if (h1_parser_in_message(&d->parser) || d->in.len > 0 || d->pp_pending == 2) {
    headers_write_local(&d->out, 408, NULL, 1, NULL);
    d_close(d, 1);
  } else {
    d_close(d, 0);
  }
}

/* Between requests: the idle timer, or the header timer once bytes of
 * the next request arrived. */
static void d_arm_timer(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  const struct l7_limits *l = d->w->cfg->limits;
  if (d->ex.active || d->state == D_TUNNEL) {
    lazy_set(&d->timer, 0);
    d->head_timer = 0;
    return;
  }
  int started = h1_parser_in_message(&d->parser) || d->in.len > 0;
  if (started && !d->head_timer) {
    d->head_timer = 1;
    lazy_set(&d->timer, l->header_timeout_ms);
  } else if (!started) {
    d->head_timer = 0;
    lazy_set(&d->timer, l->idle_timeout_ms);
  }
}

static void d_write_done(void *arg) {
  struct dconn *d = arg;
  if (d->state == D_CLOSING) return;
  struct uconn *uc = d->ex.uc;
  if (uc && uc->bp_stopped && uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) < LOW_WATER) {
    uc->bp_stopped = 0;
    if (uc->state == U_ACTIVE || uc->state == U_TUNNEL) uc_read_start(uc);
  }
}

static void d_flush(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  if (flush_buf((uv_stream_t *)&d->tcp, &d->out, d_write_done, d) != 0) {
    d_close(d, 0);
    return;
  }
  d_write_done(d); /* written at once: no callback will release back-pressure */
}

static size_t d_queued(struct dconn *d) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) + d->out.len;
}

static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void d_update_reading(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  /* Reading goes on while a pipelined request waits (no epoll change per
   * request), up to IN_MAX bytes of unparsed input. */
  int want = !d->bp_stopped && !d->peer_eof && d->in.len < IN_MAX;
  if (d->ex.active && d->ex.upgrade && d->state != D_TUNNEL && d->ex.req_complete) want = 0;
  if (want && !d->reading) {
    if (uv_read_start((uv_stream_t *)&d->tcp, alloc_cb, d_on_read) == 0) d->reading = 1;
  } else if (!want && d->reading) {
    uv_read_stop((uv_stream_t *)&d->tcp);
    d->reading = 0;
  }
}

/* Starts a fresh exchange, keeping the buffers' memory. */
static void ex_reset(struct exchange *ex) {
  struct h1_buf head = ex->head, up_out = ex->up_out;
  h1_buf_reset(&head);
  h1_buf_reset(&up_out);
  memset(ex, 0, sizeof(*ex));
  ex->head = head;
  ex->up_out = up_out;
  ex->active = 1;
  ex->t_start = uv_hrtime();
}

/* Answers the current request locally; the body (if any) is discarded. */
static void ex_local(struct dconn *d, int status, const char *location, const char *body) {
  struct exchange *ex = &d->ex;
  ex->local = 1;
  ex->status = status;
  int close = d->close_after || !ex->client_keep_alive || ex->upgrade || d->w->draining;
  if (close) d->close_after = 1;
  headers_write_local(&d->out, status, location, close, body);
  ex->bytes_down = d->out.len;
  ex->resp_started = ex->resp_complete = 1;
}

/* The exchange is over (both directions done): log, then next request. */
static void ex_finish(struct dconn *d) {
  struct exchange *ex = &d->ex;
  if (!ex->active) return;
  record_request(d);
  ex->active = 0;
  ex->uc = NULL;
  ex->ep = NULL;
  h1_buf_reset(&ex->head);
  h1_buf_reset(&ex->up_out);
  if (d->close_after || d->w->draining) {
    d_close(d, 1);
    return;
  }
  d_flush(d);
  if (d->paused) {
    d->paused = 0;
    h1_parser_resume(&d->parser);
  }
  d_arm_timer(d);
  if (d->in_process) return; /* the running d_process loop goes on */
  if (d->in.len > 0 || d->peer_eof) d_process(d);
  if (d->state != D_CLOSING) {
    d_update_reading(d);
    d_flush(d);
  }
}

/* ---- request parser callbacks ------------------------------------------ */

static int is_idempotent(int method) {
  return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
         method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
}

/* Host without its port, for redirects. */
static size_t host_sans_port(const char *h, size_t n) {
  if (n > 0 && h[0] == '[') {
    const char *e = memchr(h, ']', n);
    return e ? (size_t)(e - h) + 1 : n;
  }
  const char *c = memchr(h, ':', n);
  return c ? (size_t)(c - h) : n;
}

static int redirect_response(struct dconn *d, const struct h1_message *m,
                             const Edge__V1__Redirect *r, int to_https) {
  char loc[2048];
  const char *scheme = to_https ? "https" : (r && r->scheme && r->scheme[0] ? r->scheme : "http");
  size_t hl = host_sans_port(m->host, m->host_len);
  char host[512];
  if (r && r->host && r->host[0])
    snprintf(host, sizeof(host), "%s", r->host);
  else
    copy_str(host, sizeof(host), m->host, strcmp(scheme, "http") != 0 ? hl : m->host_len);
  if (r && r->port) {
    size_t k = host_sans_port(host, strlen(host));
    host[k] = '\0';
    snprintf(host + k, sizeof(host) - k, ":%u", r->port);
  }
  if (r && r->path && r->path[0])
    snprintf(loc, sizeof(loc), "%s://%s%s", scheme, host, r->path);
  else
    snprintf(loc, sizeof(loc), "%s://%s%.*s", scheme, host, (int)m->target_len, m->target);
  int status = r && r->status ? (int)r->status : 308;
  if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
    status = 308;
  ex_local(d, status, loc, NULL);
  return 0;
}

static int d_on_head(void *ud, const struct h1_message *m) {
  struct dconn *d = ud;
  struct worker *w = d->w;
  struct exchange *ex = &d->ex;
  ex_reset(ex);
  d->head_timer = 0;
  lazy_set(&d->timer, 0);
  copy_str(ex->method, sizeof(ex->method), m->method_str, m->method_len);
  copy_str(ex->host, sizeof(ex->host), m->host, m->host_len);
  copy_str(ex->path, sizeof(ex->path), m->target, m->path_len);
  ex->client_keep_alive = m->keep_alive;
  ex->client_http10 = m->http_minor == 0;
  ex->head_request = m->method == HTTP_HEAD;
  ex->upgrade = m->upgrade;
  ex->idempotent = is_idempotent(m->method);
  ex->req_framing = m->framing;
  if (!m->keep_alive || w->draining) d->close_after = 1;

  /* The worker re-reads the current snapshot only after a publish (one
   * atomic load per request); the connection holds its own reference for
   * as long as its exchange needs it. */
  uint64_t gen = l7_snapshot_generation();
  if (gen != w->snap_gen || !w->snap) {
    struct l7_snapshot *cur = l7_snapshot_current();
    l7_snapshot_unref(w->snap);
    w->snap = cur;
    w->snap_gen = gen;
  }
  if (w->snap && d->snap != w->snap) {
    l7_snapshot_unref(d->snap);
    d->snap = l7_snapshot_ref(w->snap);
  }
  if (!d->snap) {
    ex_local(d, 503, NULL, "no configuration yet\n");
    return 0;
  }
  const struct l7_route *route =
      l7_snapshot_match(d->snap, m->host, m->host_len, m->target, m->path_len);
  ex->route = route;
  if (route && route->host_has_tls && !route->disable_ssl_redirect &&
      strcmp(w->cfg->proto, "https") != 0)
    return redirect_response(d, m, NULL, 1);
  if (route && route->redirect) return redirect_response(d, m, route->redirect, 0);
  const struct l7_cluster *cluster = route ? route->cluster : l7_snapshot_default_cluster(d->snap);
  ex->cluster = cluster;
  if (!route && !cluster) {
    ex_local(d, 404, NULL, "no route for this host and path\n");
    return 0;
  }
  if (!cluster) {
    ex_local(d, 503, NULL, "route has no backend\n");
    return 0;
  }
  uint64_t body_limit =
      route && route->max_body_bytes ? route->max_body_bytes : w->cfg->limits->max_body_bytes;
  if (body_limit && m->framing == H1_FRAMING_LENGTH && m->content_length > body_limit) return 413;
  h1_parser_set_body_limit(&d->parser, body_limit);
  ex->retries_left = (int)(route && route->retries ? route->retries : w->cfg->limits->retries);
  if (route && route->request_timeout_ms) ex->deadline = now_ms(w) + route->request_timeout_ms;

  /* rewrite_prefix replaces the matched path prefix */
  const char *target = m->target;
  size_t target_len = m->target_len;
  static __thread char rewritten[8192 + 512];
  if (route && route->rewrite_prefix && route->rewrite_prefix[0] &&
      route->path_type != EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT) {
    size_t plen = strlen(route->path);
    while (plen > 0 && route->path[plen - 1] == '/') plen--;
    if (plen <= m->target_len) {
      const char *rest = m->target + plen;
      size_t rest_len = m->target_len - plen;
      const char *rp = route->rewrite_prefix;
      size_t rpl = strlen(rp);
      if (rpl > 0 && rp[rpl - 1] == '/' && rest_len > 0 && rest[0] == '/') rest++, rest_len--;
      if (rpl + rest_len + 1 < sizeof(rewritten)) {
        memcpy(rewritten, rp, rpl);
        memcpy(rewritten + rpl, rest, rest_len);
        target = rewritten;
        target_len = rpl + rest_len;
        if (target_len == 0 || target[0] != '/') {
          memmove(rewritten + 1, rewritten, target_len);
          rewritten[0] = '/';
          target_len++;
        }
      }
    }
  }

  struct headers_request hr = {
      .method = m->method_str,
      .method_len = m->method_len,
      .target = target,
      .target_len = target_len,
      .host = m->host,
      .host_len = m->host_len,
      .headers = m->headers,
      .n_headers = m->n_headers,
      .client_addr = d->client,
      .proto = w->cfg->proto,
      .upgrade = m->upgrade,
      .strip_expect = 1,
      .framing = m->framing,
      .content_length = m->content_length,
  };
  if (headers_write_request(&ex->head, &hr, ex->request_id) != 0) return 500;
  if (m->expect_continue) h1_buf_puts(&d->out, "HTTP/1.1 100 Continue\r\n\r\n");
  ex_start_upstream(d);
  return 0;
}

static int d_on_body(void *ud, const char *p, size_t n) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (!ex->active || ex->local) return 0;
  struct uconn *uc = ex->uc;
  struct h1_buf *dst = (uc && uc->state == U_ACTIVE) ? &uc->out : &ex->up_out;
  if (uc && uc->state == U_ACTIVE) {
    ex->body_flushed = 1;
    if (!ex->resp_started) uc_arm(uc, ex->phase_ms); /* still sending: wait on */
  }
  if (ex->req_framing == H1_FRAMING_CHUNKED) {
    h1_buf_put_hex(dst, n);
    h1_buf_append(dst, "\r\n", 2);
  }
  if (h1_buf_append(dst, p, n) != 0) return -1;
  if (ex->req_framing == H1_FRAMING_CHUNKED) h1_buf_append(dst, "\r\n", 2);
  return 0;
}

static void d_on_complete(void *ud) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (!ex->active) return;
  ex->req_complete = 1;
  if (ex->local) return;
  if (ex->req_framing == H1_FRAMING_CHUNKED) {
    struct uconn *uc = ex->uc;
    struct h1_buf *dst = (uc && uc->state == U_ACTIVE) ? &uc->out : &ex->up_out;
    h1_buf_puts(dst, "0\r\n\r\n");
  }
}

/* ---- downstream input ------------------------------------------------- */

static int cidr_match(const struct worker_cidr *c, const struct sockaddr_storage *ss) {
  const unsigned char *a;
  int bits;
  if (ss->ss_family == AF_INET && c->family == AF_INET) {
    a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    bits = 32;
  } else if (ss->ss_family == AF_INET6 && c->family == AF_INET6) {
    a = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    bits = 128;
  } else {
    return 0;
  }
  int p = c->prefix < bits ? c->prefix : bits;
  for (int i = 0; i < p / 8; i++)
    if (a[i] != c->addr[i]) return 0;
  if (p % 8) {
    unsigned char mask = (unsigned char)(0xff << (8 - p % 8));
    if ((a[p / 8] & mask) != (c->addr[p / 8] & mask)) return 0;
  }
  return 1;
}

static void addr_to_str(const struct sockaddr_storage *ss, char *out, size_t len) {
  out[0] = '\0';
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
  if (!out[0]) snprintf(out, len, "unknown");
}

/* Consumes a PROXY header from d->in. 1 done, 0 need more, -1 close. */
static int d_proxy_header(struct dconn *d) {
  struct proxy_proto_info info;
  int rc = proxy_proto_decode((const uint8_t *)d->in.data, d->in.len, &info);
  if (rc == PROXY_PROTO_NEED_MORE) {
    d->pp_pending = 2;
    return 0;
  }
  if (rc < 0) {
    LOG_WARN("proxy_protocol_rejected", "client=%s reason=%s", d->client,
             log_q(proxy_proto_strerror(rc)));
    return -1;
  }
  if (info.command == PROXY_PROTO_CMD_PROXY &&
      (info.src.ss_family == AF_INET || info.src.ss_family == AF_INET6))
    addr_to_str(&info.src, d->client, sizeof(d->client));
  h1_buf_consume(&d->in, (size_t)rc);
  d->pp_pending = 0;
  return 1;
}

/* Runs the parser over d->in until it needs more input or pauses. */
static void d_process(struct dconn *d) {
  d->in_process = 1;
  while (d->state == D_OPEN && d->in.len > 0 && !d->paused) {
    if (d->pp_pending) {
      int rc = d_proxy_header(d);
      if (rc < 0) {
        d_close(d, 0);
        break;
      }
      if (rc == 0) break;
      continue;
    }
    if (d->ex.active && d->ex.upgrade && d->ex.req_complete) break; /* tunnel bytes wait */
    size_t used = 0;
    enum h1_result r = h1_parser_feed(&d->parser, d->in.data, d->in.len, &used);
    h1_buf_consume(&d->in, used);
    if (d->state == D_CLOSING) break;
    if (r == H1_ERROR) {
      int status = h1_parser_error_status(&d->parser);
      LOG_DEBUG("bad_request", "client=%s status=%d reason=%s", d->client, status,
                log_q(h1_parser_error_reason(&d->parser)));
      if (d->ex.active && d->ex.resp_started && !d->ex.local) {
        d_close(d, 1);
        break;
      }
      if (d->ex.active) {
        ex_drop_outstanding(&d->ex);
        ex_detach_upstream(d, 0);
      } else {
        ex_reset(&d->ex);
      }
      d->close_after = 1;
      ex_local(d, status, NULL, NULL);
      ex_finish(d);
      break;
    }
    if (r == H1_MESSAGE_END || r == H1_UPGRADE) {
      if (r == H1_MESSAGE_END) d->paused = 1;
      if (d->ex.active && d->ex.local && d->ex.req_complete) {
        ex_finish(d); /* resumes the parser; this loop parses on */
        continue;
      }
      if (d->ex.active && d->ex.resp_complete && d->ex.req_complete) {
        ex_response_done(d);
        continue;
      }
      if (r == H1_UPGRADE) break;
    }
  }
  d->in_process = 0;
  if (d->state == D_OPEN && d->peer_eof && !d->ex.active && (d->in.len == 0 || !d->paused)) {
    d_close(d, 1); /* answered all the half-closed client asked for */
    return;
  }
  if (d->state == D_OPEN) d_arm_timer(d);
}

static void uc_flush(struct uconn *uc);

static void d_backpressure(struct dconn *d) {
  struct uconn *uc = d->ex.uc;
  size_t q = d->ex.up_out.len;
  if (uc) q += uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) + uc->out.len;
  if (q > HIGH_WATER) d->bp_stopped = 1;
}

static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct dconn *d = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    if (d->state == D_TUNNEL && d->ex.uc) {
      uc_flush(d->ex.uc);
      d_close(d, 0);
      return;
    }
    /* A client that half-closes after its last request still gets the
     * answers (pipelined ones included); one that leaves mid-request
     * does not. */
    if (nread == UV_EOF && ((d->ex.active && d->ex.req_complete) || d->in.len > 0)) {
      d->peer_eof = 1;
      d_update_reading(d);
      d_process(d); /* closes once nothing is left to answer */
      return;
    }
    d_close(d, 0);
    return;
  }
  if (d->state == D_TUNNEL) {
    struct uconn *uc = d->ex.uc;
    if (!uc) {
      d_close(d, 0);
      return;
    }
    h1_buf_append(&uc->out, buf->base, (size_t)nread);
    uc_flush(uc);
    d_backpressure(d);
    d_update_reading(d);
    return;
  }
  if (d->in.len == 0 && !d->pp_pending) {
    /* usual case: parse straight from the read buffer, keep only the rest */
    struct h1_buf saved = d->in;
    d->in.data = buf->base;
    d->in.len = d->in.cap = (size_t)nread;
    d_process(d);
    struct h1_buf rest = d->in;
    d->in = saved;
    if (rest.len > 0 && h1_buf_append(&d->in, rest.data, rest.len) != 0) {
      d_close(d, 0);
      return;
    }
  } else {
    if (h1_buf_append(&d->in, buf->base, (size_t)nread) != 0) {
      d_close(d, 0);
      return;
    }
    d_process(d);
  }
  if (d->state == D_CLOSING) return;
  if (d->ex.uc) uc_flush(d->ex.uc);
  if (d->state == D_CLOSING) return;
  d_backpressure(d);
  d_update_reading(d);
  d_flush(d);
}

/* ---- upstream connections --------------------------------------------- */

static void uc_freed(uv_handle_t *h) {
  struct uconn *uc = h->data;
  if (--uc->handles > 0) return;
  struct worker *w = uc->w;
  h1_parser_free(&uc->parser);
  h1_buf_free(&uc->out);
  free(uc);
  w_check_drained(w);
}

static void uc_close(struct uconn *uc) {
  if (uc->state == U_CLOSING) return;
  struct worker *w = uc->w;
  if (uc->state == U_IDLE) {
    up_link_remove(&uc->link);
    uc->ep->n_idle--;
    if (w->g_up_idle) metrics_gauge_add(w->g_up_idle, -1);
  } else if (w->g_up_active) {
    metrics_gauge_add(w->g_up_active, -1);
  }
  uc->ep->n_active -= uc->state != U_IDLE ? 1 : 0;
  uc->state = U_CLOSING;
  up_link_remove(&uc->wlink);
  lazy_set(&uc->timer, 0);
  uv_close((uv_handle_t *)&uc->timer.t, uc_freed);
  uv_close((uv_handle_t *)&uc->tcp, uc_freed);
}

static void uc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void uc_read_start(struct uconn *uc) {
  uv_read_start((uv_stream_t *)&uc->tcp, alloc_cb, uc_on_read);
}

/* Returns uc to its endpoint's pool, or closes it. */
static void uc_release(struct uconn *uc, int reusable) {
  struct worker *w = uc->w;
  if (uc->state == U_CLOSING) return;
  if (!reusable || uc->state != U_ACTIVE || w->draining || w->stopping ||
      uc->ep->n_idle >= uc->max_idle || uc->out.len > 0 ||
      uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) > 0) {
    uc_close(uc);
    return;
  }
  uc->d = NULL;
  uc->state = U_IDLE;
  uc->ep->n_active--;
  uc->ep->n_idle++;
  if (w->g_up_active) metrics_gauge_add(w->g_up_active, -1);
  if (w->g_up_idle) metrics_gauge_add(w->g_up_idle, 1);
  up_link_insert(&uc->ep->idle, &uc->link);
  uc->bp_stopped = 0;
  uc_read_start(uc); /* notice the peer closing while idle */
  lazy_set(&uc->timer, uc->idle_timeout_ms);
}

static void uc_write_done(void *arg) {
  struct uconn *uc = arg;
  if (uc->state == U_CLOSING || !uc->d) return;
  struct dconn *d = uc->d;
  if (d->bp_stopped && uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) < LOW_WATER) {
    d->bp_stopped = 0;
    d_update_reading(d);
  }
}

static void uc_flush(struct uconn *uc) {
  if (uc->state != U_ACTIVE && uc->state != U_TUNNEL) return;
  int rc = flush_buf((uv_stream_t *)&uc->tcp, &uc->out, uc_write_done, uc);
  if (rc != 0 && uc->d) {
    struct dconn *d = uc->d;
    if (d->ex.resp_started)
      d_close(d, 1);
    else
      ex_fail(d, 502, "upstream write failed", uc->reused && !uc->got_bytes);
    return;
  }
  /* written at once (no write callback will come): release back-pressure */
  uc_write_done(uc);
}

static void uc_on_timer(struct lazy_timer *t) {
  struct uconn *uc = t->t.data;
  struct dconn *d = uc->d;
  if (!d) {
    uc_close(uc);
    return;
  }
  if (uc->state == U_CONNECTING) {
    ex_report(d, 1);
    ex_fail(d, 504, "upstream connect timeout", 1);
    return;
  }
  if (d->ex.resp_started) {
    d_close(d, 1);
    return;
  }
  ex_report(d, 1);
  ex_fail(d, 504, "upstream response timeout", 0);
}

/* Reports the outcome for the exchange's endpoint to the outlier detector. */
static void ex_report(struct dconn *d, int failure) {
  struct exchange *ex = &d->ex;
  if (!ex->ep || !ex->cluster || !d->snap) return;
  const struct up_cluster_view *v = up_pools_view(&d->w->pools, d->snap, ex->cluster);
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->eps[i] != ex->ep) continue;
    if (lb_report(v->lbs, v->n, i, failure, now_ms(d->w))) {
      LOG_WARN("upstream_ejected", "cluster=%s endpoint=%s ejections=%u for_ms=%llu",
               log_q(ex->cluster->name), ex->ep->name, ex->ep->lb.ejections,
               (unsigned long long)(ex->ep->lb.ejected_until - now_ms(d->w)));
      if (d->w->cfg->metrics) { /* rare: the registry lookup is fine here */
        char ec[300], labels[400];
        metrics_escape_label(ex->cluster->name, ec, sizeof(ec));
        snprintf(labels, sizeof(labels), "cluster=\"%s\"", ec);
        struct metrics_counter *c =
            metrics_counter(d->w->cfg->metrics, "edge_l7_upstream_ejections_total",
                            "Endpoints ejected by outlier detection.", labels);
        if (c) metrics_counter_inc(c);
      }
    }
    return;
  }
}

/* (Re)sets the upstream timer to ms from now (the phase timeout), or to
 * the request's deadline when that comes first. Cheap: called per read. */
static void uc_arm(struct uconn *uc, uint32_t ms) {
  struct dconn *d = uc->d;
  uint64_t t = ms;
  if (d) {
    d->ex.phase_ms = ms;
    if (d->ex.deadline) {
      uint64_t now = uv_now(&uc->w->loop);
      uint64_t left = d->ex.deadline > now ? d->ex.deadline - now : 1;
      if (t == 0 || left < t) t = left;
    }
  }
  lazy_set(&uc->timer, t);
}

static void uc_send_request(struct uconn *uc) {
  struct dconn *d = uc->d;
  struct exchange *ex = &d->ex;
  uc->got_bytes = 0;
  h1_buf_append(&uc->out, ex->head.data, ex->head.len);
  if (ex->up_out.len) {
    h1_buf_append(&uc->out, ex->up_out.data, ex->up_out.len);
    h1_buf_reset(&ex->up_out);
    ex->body_flushed = 1;
  }
  uc_arm(uc, ex->route && ex->route->response_header_timeout_ms
                 ? ex->route->response_header_timeout_ms
                 : d->w->cfg->limits->response_header_timeout_ms);
  uc_flush(uc);
}

static void uc_on_connect(uv_connect_t *req, int status) {
  struct uconn *uc = req->data;
  if (uc->state == U_CLOSING) return;
  struct dconn *d = uc->d;
  if (status < 0) {
    if (d) {
      LOG_DEBUG("upstream_connect_failed", "endpoint=%s error=%s", uc->ep->name,
                uv_strerror(status));
      ex_report(d, 1);
      ex_fail(d, 502, "upstream connect failed", 1);
    } else {
      uc_close(uc);
    }
    return;
  }
  if (!d) {
    uc_close(uc);
    return;
  }
  uv_tcp_nodelay(&uc->tcp, 1);
  uc->state = U_ACTIVE;
  uc_read_start(uc);
  uc_send_request(uc);
}

static int u_on_head(void *ud, const struct h1_message *m);
static int u_on_body(void *ud, const char *p, size_t n);
static void u_on_complete(void *ud);

static struct uconn *uc_new(struct worker *w, struct up_endpoint *ep, const struct l7_cluster *c) {
  struct uconn *uc = calloc(1, sizeof(*uc));
  if (!uc) return NULL;
  uc->w = w;
  uc->ep = ep;
  up_link_init(&uc->link);
  if (h1_parser_init(&uc->parser, H1_RESPONSE, w->cfg->limits, &w->ucb, uc) != 0) {
    free(uc);
    return NULL;
  }
  uv_tcp_init(&w->loop, &uc->tcp);
  lazy_init(&w->loop, &uc->timer, uc, uc_on_timer);
  uc->tcp.data = uc->creq.data = uc;
  uc->handles = 2;
  uc->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : L7_DEFAULT_IDLE_TIMEOUT_MS;
  uc->max_idle = c->max_idle_per_endpoint;
  up_link_insert(&w->uconns, &uc->wlink);
  ep->n_active++;
  if (w->g_up_active) metrics_gauge_add(w->g_up_active, 1);
  if (uv_tcp_connect(&uc->creq, &uc->tcp, (const struct sockaddr *)&ep->addr, uc_on_connect) != 0) {
    uc_close(uc);
    return NULL;
  }
  lazy_set(&uc->timer,
           c->connect_timeout_ms ? c->connect_timeout_ms : L7_DEFAULT_CONNECT_TIMEOUT_MS);
  return uc;
}

static uint32_t w_rand(void) {
  static __thread uint64_t s;
  if (!s) {
    if (getrandom(&s, sizeof(s), 0) != sizeof(s) || !s) s = 0x9e3779b97f4a7c15ull;
  }
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return (uint32_t)(s >> 16);
}

/* Picks an endpoint and sends the request head there (or connects). */
static void ex_start_upstream(struct dconn *d) {
  struct worker *w = d->w;
  struct exchange *ex = &d->ex;
  const struct up_cluster_view *v = up_pools_view(&w->pools, d->snap, ex->cluster);
  if (!v || v->n == 0) {
    ex_fail(d, 503, "no endpoints", 0);
    return;
  }
  for (;;) {
    int i = lb_pick(v->policy, (const struct lb_state *const *)v->lbs, v->n, ex->avoid,
                    v->rr_cursor, w_rand(), now_ms(w));
    if (i < 0) {
      ex_fail(d, ex->tries ? 502 : 503,
              ex->tries ? "no endpoint answered" : "all endpoints ejected", 0);
      return;
    }
    struct up_endpoint *ep = v->eps[i];
    if (i < 64) ex->avoid |= 1ull << i;
    ex->ep = ep;
    ex->tries++;
    ep->lb.outstanding++;
    ex->outstanding = 1;
    /* an idle pooled connection first */
    if (!up_link_empty(&ep->idle)) {
      struct uconn *uc = container_of(ep->idle.next, struct uconn, link);
      up_link_remove(&uc->link);
      ep->n_idle--;
      ep->n_active++;
      if (w->g_up_idle) metrics_gauge_add(w->g_up_idle, -1);
      if (w->g_up_active) metrics_gauge_add(w->g_up_active, 1);
      lazy_set(&uc->timer, 0);
      uc->state = U_ACTIVE;
      uc->reused = 1;
      uc->d = d;
      ex->uc = uc;
      uc_send_request(uc);
      return;
    }
    struct uconn *uc = uc_new(w, ep, ex->cluster);
    if (uc) {
      uc->d = d;
      ex->uc = uc;
      return;
    }
    ex_drop_outstanding(ex);
    ex_report(d, 1);
    if (ex->tries > 64) {
      ex_fail(d, 502, "cannot connect", 0);
      return;
    }
  }
}

/* The upstream attempt failed before any response: retry or answer. */
static void ex_fail(struct dconn *d, int status, const char *why, int retryable) {
  struct exchange *ex = &d->ex;
  struct uconn *uc = ex->uc;
  int reused_early = uc && uc->reused && !uc->got_bytes;
  ex_drop_outstanding(ex);
  ex_detach_upstream(d, 0);
  if (d->state == D_CLOSING) return;
  int can_retry = retryable && ex->idempotent && !ex->body_flushed && !ex->resp_started;
  if (can_retry && (reused_early || ex->retries_left > 0)) {
    if (!reused_early)
      ex->retries_left--;
    else if (ex->ep) {
      /* a stale pooled connection: the same endpoint may be tried again */
      const struct up_cluster_view *v = up_pools_view(&d->w->pools, d->snap, ex->cluster);
      for (size_t i = 0; v && i < v->n && i < 64; i++)
        if (v->eps[i] == ex->ep) ex->avoid &= ~(1ull << i);
    }
    ex_start_upstream(d);
    return;
  }
  if (ex->resp_started) {
    d_close(d, 1);
    return;
  }
  LOG_DEBUG("upstream_failed", "status=%d reason=%s endpoint=%s", status, log_q(why),
            ex->ep ? ex->ep->name : "-");
  ex_local(d, status, NULL, NULL);
  d_flush(d);
  if (ex->req_complete && !d->in_process) ex_finish(d);
}

/* Response complete and request complete: recycle and go on. */
static void ex_response_done(struct dconn *d) {
  struct exchange *ex = &d->ex;
  struct uconn *uc = ex->uc;
  ex_drop_outstanding(ex);
  ex_report(d, ex->status >= 500);
  if (uc) {
    ex->uc = NULL;
    uc->d = NULL;
    uc_release(uc, ex->resp_keep_alive && ex->req_complete);
  }
  if (!ex->req_complete) d->close_after = 1;
  ex_finish(d);
}

/* ---- response parser callbacks ---------------------------------------- */

static int u_on_head(void *ud, const struct h1_message *m) {
  struct uconn *uc = ud;
  struct dconn *d = uc->d;
  if (!d) return 502;
  struct exchange *ex = &d->ex;
  if (m->status < 200 && m->status != 101) return 0; /* interim: not forwarded */
  ex->status = m->status;
  ex->resp_started = 1;
  ex->resp_keep_alive = m->keep_alive;
  uc_arm(uc, d->w->cfg->limits->idle_timeout_ms);
  int close = d->close_after || !ex->client_keep_alive || d->w->draining;
  enum h1_framing f = m->framing;
  if (ex->head_request) {
    /* the head says what a GET would get; no body follows */
  } else if (f == H1_FRAMING_CHUNKED || f == H1_FRAMING_CLOSE) {
    if (ex->client_http10) {
      f = H1_FRAMING_CLOSE;
      close = 1;
    } else {
      f = H1_FRAMING_CHUNKED;
    }
  }
  int upgrade = m->upgrade && ex->upgrade;
  if (ex->upgrade && !upgrade) close = 1; /* the client wanted another protocol */
  if (close) d->close_after = 1;
  ex->down_framing = ex->head_request ? H1_FRAMING_NONE : f;
  struct headers_response hr = {
      .status = m->status,
      .reason = m->reason,
      .reason_len = m->reason_len,
      .headers = m->headers,
      .n_headers = m->n_headers,
      .framing = f,
      .content_length = m->content_length,
      .close = close,
      .keep_alive = ex->client_http10,
      .upgrade = upgrade,
  };
  size_t before = d->out.len;
  if (headers_write_response(&d->out, &hr) != 0) return 502;
  ex->bytes_down += d->out.len - before;
  return ex->head_request ? H1_SKIP_BODY : 0;
}

static int u_on_body(void *ud, const char *p, size_t n) {
  struct uconn *uc = ud;
  struct dconn *d = uc->d;
  if (!d) return -1;
  struct exchange *ex = &d->ex;
  if (ex->down_framing == H1_FRAMING_CHUNKED) {
    h1_buf_put_hex(&d->out, n);
    h1_buf_append(&d->out, "\r\n", 2);
  }
  if (h1_buf_append(&d->out, p, n) != 0) return -1;
  if (ex->down_framing == H1_FRAMING_CHUNKED) h1_buf_append(&d->out, "\r\n", 2);
  ex->bytes_down += n;
  return 0;
}

static void u_on_complete(void *ud) {
  struct uconn *uc = ud;
  struct dconn *d = uc->d;
  if (!d || !d->ex.resp_started) return;
  if (d->ex.status == 101) return;
  if (d->ex.down_framing == H1_FRAMING_CHUNKED) h1_buf_puts(&d->out, "0\r\n\r\n");
  d->ex.resp_complete = 1;
}

/* 101 from upstream: splice bytes both ways from now on. */
static void start_tunnel(struct dconn *d, struct uconn *uc) {
  d->state = D_TUNNEL;
  uc->state = U_TUNNEL;
  lazy_set(&uc->timer, 0);
  lazy_set(&d->timer, 0);
  if (d->in.len) {
    h1_buf_append(&uc->out, d->in.data, d->in.len);
    h1_buf_reset(&d->in);
  }
  d->paused = 0;
  uc_flush(uc);
  d_update_reading(d);
}

static void uc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct uconn *uc = s->data;
  if (nread == 0) return;
  struct dconn *d = uc->d;
  if (uc->state == U_IDLE || !d) {
    uc_close(uc); /* the peer closed (or spoke) while idle */
    return;
  }
  if (uc->state == U_TUNNEL) {
    if (nread < 0) {
      d_flush(d);
      d_close(d, 1);
      return;
    }
    h1_buf_append(&d->out, buf->base, (size_t)nread);
    d_flush(d);
    if (d->state != D_CLOSING && d_queued(d) > HIGH_WATER) {
      uv_read_stop(s);
      uc->bp_stopped = 1;
    }
    return;
  }
  enum h1_result r;
  size_t used = 0;
  if (nread < 0) {
    r = h1_parser_finish(&uc->parser);
    if (r != H1_MESSAGE_END) {
      if (!d->ex.resp_started) {
        ex_report(d, 1);
        ex_fail(d, 502, "upstream closed before responding", uc->reused && !uc->got_bytes);
      } else {
        d_flush(d);
        d_close(d, 1);
      }
      return;
    }
    d->ex.resp_keep_alive = 0;
  } else {
    uc->got_bytes = 1;
    if (d->ex.resp_started) uc_arm(uc, d->ex.phase_ms); /* data flows: not idle */
    const char *p = buf->base;
    size_t len = (size_t)nread;
    for (;;) {
      r = h1_parser_feed(&uc->parser, p, len, &used);
      if (r == H1_MESSAGE_END && !d->ex.resp_complete && d->ex.status != 101) {
        /* an interim 1xx response: parse on */
        h1_parser_resume(&uc->parser);
        p += used;
        len -= used;
        if (len == 0) {
          r = H1_MORE;
          break;
        }
        continue;
      }
      break;
    }
    if (r == H1_ERROR) {
      LOG_DEBUG("upstream_bad_response", "endpoint=%s reason=%s", uc->ep->name,
                log_q(h1_parser_error_reason(&uc->parser)));
      if (!d->ex.resp_started) {
        ex_report(d, 1);
        ex_fail(d, 502, "bad upstream response", 0);
      } else {
        d_flush(d);
        d_close(d, 1);
      }
      return;
    }
    if (r == H1_UPGRADE) {
      if (d->ex.status == 101 && d->ex.upgrade) {
        h1_buf_append(&d->out, p + used, len - used);
        d_flush(d);
        start_tunnel(d, uc);
        return;
      }
      d_flush(d);
      d_close(d, 1);
      return;
    }
    if (r == H1_MESSAGE_END && len - used > 0) d->ex.resp_keep_alive = 0; /* extra bytes */
  }
  if (r == H1_MESSAGE_END) {
    h1_parser_resume(&uc->parser);
    if (!d->ex.req_complete) {
      /* the upstream answered before the whole request arrived */
      d->close_after = 1;
    }
    d_flush(d);
    ex_response_done(d);
    return;
  }
  d_flush(d);
  if (d->state != D_CLOSING && d_queued(d) > HIGH_WATER) {
    uv_read_stop(s);
    uc->bp_stopped = 1;
  }
}

/* ---- listener, lifecycle ------------------------------------------------ */

static void on_connection(uv_stream_t *server, int status) {
  struct worker *w = server->data;
  if (status < 0) return;
  struct dconn *d = calloc(1, sizeof(*d));
  if (!d) return;
  uv_tcp_init(&w->loop, &d->tcp);
  d->tcp.data = d;
  if (uv_accept(server, (uv_stream_t *)&d->tcp) != 0 || w->draining ||
      atomic_load(&w->n_conns) >= w->cfg->limits->max_connections) {
    uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
    return;
  }
  d->w = w;
  if (h1_parser_init(&d->parser, H1_REQUEST, w->cfg->limits, &w->dcb, d) != 0) {
    uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
    return;
  }
  lazy_init(&w->loop, &d->timer, d, d_on_timer);
  d->handles = 2;
  atomic_fetch_add(&w->n_conns, 1);
  if (w->g_active) metrics_gauge_add(w->g_active, 1);
  up_link_insert(&w->conns, &d->link);
  uv_tcp_nodelay(&d->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&d->tcp, (struct sockaddr *)&ss, &len) == 0)
    addr_to_str(&ss, d->client, sizeof(d->client));
  else
    snprintf(d->client, sizeof(d->client), "unknown");
  if (w->cfg->proxy_protocol) {
    d->pp_pending = 1;
    if (w->cfg->n_trusted) {
      int ok = 0;
      for (size_t i = 0; i < w->cfg->n_trusted && !ok; i++)
        ok = cidr_match(&w->cfg->trusted[i], &ss);
      d->pp_pending = ok;
    }
  }
  d_arm_timer(d);
  d_update_reading(d);
}

static void close_idle_ep(struct up_endpoint *ep, void *arg) {
  (void)arg;
  while (!up_link_empty(&ep->idle)) uc_close(container_of(ep->idle.next, struct uconn, link));
}

static void w_close_all(struct worker *w) {
  if (w->listening) {
    uv_close((uv_handle_t *)&w->listener, NULL);
    w->listening = 0;
  }
  while (!up_link_empty(&w->conns)) d_close(container_of(w->conns.next, struct dconn, link), 0);
  while (!up_link_empty(&w->uconns)) uc_close(container_of(w->uconns.next, struct uconn, wlink));
  if (!uv_is_closing((uv_handle_t *)&w->async)) uv_close((uv_handle_t *)&w->async, NULL);
}

static void w_check_drained(struct worker *w) {
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
    up_pools_foreach(&w->pools, close_idle_ep, NULL);
    w_close_all(w);
    return;
  }
  if (atomic_load(&w->drain_req) && !w->draining) {
    w->draining = 1;
    if (w->listening) {
      uv_close((uv_handle_t *)&w->listener, NULL);
      w->listening = 0;
    }
    up_pools_foreach(&w->pools, close_idle_ep, NULL);
    /* idle keep-alive connections go now; busy ones after their response */
    struct up_link *l = w->conns.next;
    while (l != &w->conns) {
      struct dconn *d = container_of(l, struct dconn, link);
      l = l->next;
      d->close_after = 1;
      if (!d->ex.active && d->in.len == 0 && !h1_parser_in_message(&d->parser)) d_close(d, 0);
    }
    w_check_drained(w);
  }
}

static void worker_main(void *arg) {
  struct worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* every handle is closed: let close callbacks finish */
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

int worker_start(int id, const struct worker_config *cfg, int listen_fd, struct worker **out) {
  struct worker *w = calloc(1, sizeof(*w));
  if (!w) return -ENOMEM;
  w->id = id;
  w->cfg = cfg;
  w->listen_fd = listen_fd;
  up_link_init(&w->conns);
  up_link_init(&w->uconns);
  if (up_pools_init(&w->pools) != 0) {
    free(w);
    return -ENOMEM;
  }
  w->dcb.on_head = d_on_head;
  w->dcb.on_body = d_on_body;
  w->dcb.on_complete = d_on_complete;
  w->ucb.on_head = u_on_head;
  w->ucb.on_body = u_on_body;
  w->ucb.on_complete = u_on_complete;
  uv_loop_init(&w->loop);
  w->loop.data = w;
  uv_async_init(&w->loop, &w->async, on_async);
  w->async.data = w;
  uv_tcp_init(&w->loop, &w->listener);
  w->listener.data = w;
  int rc = uv_tcp_open(&w->listener, listen_fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
  if (rc != 0) {
    LOG_ERROR("listen_failed", "worker=%d error=%s", id, uv_strerror(rc));
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    up_pools_free(&w->pools);
    free(w);
    return rc;
  }
  w->listening = 1;
  if (cfg->metrics) {
    size_t nb;
    const double *b = metrics_default_latency_buckets(&nb);
    w->duration = metrics_histogram(cfg->metrics, "edge_l7_request_duration_seconds",
                                    "Time from request head to response end.", "", b, nb);
    w->g_active = metrics_gauge(cfg->metrics, "edge_l7_active_connections",
                                "Open downstream connections.", "");
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

int worker_listen_socket(const char *host, uint16_t port, uint16_t *port_out) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t sl;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    sl = sizeof(*s4);
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    sl = sizeof(*s6);
  } else {
    return -EINVAL;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  socklen_t gl = sizeof(ss);
  getsockname(fd, (struct sockaddr *)&ss, &gl);
  *port_out = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
  return fd;
}
