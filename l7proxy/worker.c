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
 *
 * HTTPS: a connection accepted on the TLS listener gets a tls_conn on the
 * store current at accept (new certificates apply to new handshakes, a
 * connection keeps its store); socket bytes are fed to it and the
 * plaintext runs through the same path (d_on_plain); everything written
 * for the client is encrypted on flush. The handshake is bounded by
 * tls_handshake_timeout_ms.
 *
 * HTTP/2 downstream (h2 by ALPN, h2c by prior knowledge or Upgrade): see
 * "HTTP/2 downstream" below. Each stream runs the HTTP/1.1 exchange above
 * on a virtual dconn, so routing, rewriting, retries, pools and local
 * errors are the same code for both protocols.
 */
#include "l7proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/base64.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/proxy_proto.h"
#include "l7proxy/exchange_obs.h"
#include "l7proxy/headers.h"
#include "l7proxy/http1.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"
#include "l7proxy/upstream.h"
#include "l7proxy/upstream_h2.h"

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
  struct metrics_histogram *duration;  /* latency per route and cluster (dashboards) */
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
  int tries;        /* endpoints tried for this request */
  int outstanding;  /* ep->lb.outstanding holds a count for this exchange */
  char ep_name[64]; /* for the access log: ep may be pruned once released (upstream.h) */
  int idempotent;
  struct buf head;   /* upstream request head, kept for a retry */
  struct buf up_out; /* request body bytes waiting for a connection */
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
  struct uh2_stream *h2; /* H2C/GRPC cluster: the upstream stream (owner: h2up) */
  int grpc;              /* content-type application/grpc: errors as grpc-status */
  int h2_ended;          /* the chunked terminator (with trailers) is written */
  int h2_paused;         /* the client is slow: the stream's window is held */
  char request_id[65];
  struct ex_obs obs; /* tracing + access log (exchange_obs.h); used only when enabled */
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
  struct buf in;  /* unparsed input (pipelined requests, PROXY header) */
  struct buf out; /* bytes for the client, flushed after each event */
  int pp_pending; /* waiting for a PROXY protocol header */
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
  uint16_t client_port;
  struct l7_snapshot *snap;
  struct tls_conn *tls; /* HTTPS: plaintext in and out goes through it */
  int https;
  int n_requests;       /* HTTP/1.1 request heads seen */
  struct h2sess *h2;    /* an h2 connection: the session (see HTTP/2 below) */
  int virt;             /* a virtual dconn serving one h2 stream (no socket) */
  struct h2stream *h2s; /* virt: its stream, NULL once the stream is gone */
  int hs_done;          /* the TLS handshake finished (counted once) */
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
  struct buf out;
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
  uv_tcp_t tls_listener;
  int tls_listen_fd; /* -1: no HTTPS */
  int tls_listening;
  char pbuf[READ_BUF]; /* decrypted plaintext */
  struct metrics_counter *c_hs_ok, *c_hs_failed, *c_req_h1, *c_req_h2;
  uv_async_t async;
  atomic_int drain_req, stop_req, drained;
  atomic_size_t n_conns;
  int draining, stopping;
  struct up_link conns;
  struct up_link uconns;
  struct up_pools pools;
  struct uh2_pool *h2pool; /* H2C/GRPC upstreams, created on first use (owner: h2up) */
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
/* HTTP/2 and gRPC upstreams (owner: h2up), defined before ex_start_upstream */
struct up_endpoint;
static int cluster_is_h2(const struct l7_cluster *c);
static int is_grpc_request(const struct h1_message *m);
static void ex_local_grpc(struct dconn *d, int status, const char *body);
static int ex_start_h2(struct dconn *d, struct up_endpoint *ep);
struct h2sess;
struct h2stream;
static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static size_t h2s_pending(const struct h2stream *s);
static int h2_vd_output(struct dconn *vd);
static void h2_vd_closed(struct dconn *vd, int graceful);
static void h2_vd_consume(struct dconn *vd);
static void h2_send(struct h2sess *hs);
static void h2_on_input(struct dconn *d, ssize_t nread, const char *data);
static int h2_start(struct dconn *d);
static void h2_free_session(struct dconn *d);
static void h2_on_parent_timer(struct dconn *d);
static void h2_drain(struct dconn *d);
/* Response trailers for the h2 stream of virtual dconn d (copied); sent
 * after the body. For upstreams that have trailers (upstream_h2). */
static void h2_vd_trailers(struct dconn *d, const struct h1_header *h, size_t n);
static int h2_try_upgrade(struct dconn *d, const struct h1_message *m);

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

/* Writes data[0..len) to s: try_write first, the rest copied and queued. */
static int write_bytes(uv_stream_t *s, const char *data, size_t len, void (*done)(void *),
                       void *arg) {
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

/* Writes the TLS connection's pending ciphertext to s (copied, so the
 * region is consumed at once). */
static int tls_flush(uv_stream_t *s, struct tls_conn *c, void (*done)(void *), void *arg) {
  for (;;) {
    const uint8_t *p;
    size_t len;
    tls_conn_pending_output(c, &p, &len);
    if (len == 0) return 0;
    int rc = write_bytes(s, (const char *)p, len, done, arg);
    tls_conn_consume_output(c, len);
    if (rc != 0) return rc;
  }
}

/* Writes b to s (through tls when not NULL) and empties b. */
static int flush_buf_tls(uv_stream_t *s, struct tls_conn *tls, struct buf *b, void (*done)(void *),
                         void *arg) {
  if (tls) {
    int rc = 0;
    if (b->len > 0 && tls_conn_write(tls, b->data, b->len) < 0) rc = UV_EPROTO;
    b->len = 0;
    int frc = tls_flush(s, tls, done, arg);
    return rc ? rc : frc;
  }
  if (b->len == 0) return 0;
  int rc = write_bytes(s, b->data, b->len, done, arg);
  b->len = 0;
  if (rc != 0) return rc;
  /* a buffer that grew for a large head is not kept around */
  if (b->cap > 4 * READ_BUF) buf_free(b);
  return 0;
}

static int flush_buf(uv_stream_t *s, struct buf *b, void (*done)(void *), void *arg) {
  return flush_buf_tls(s, NULL, b, done, arg);
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

/* OBS HOOK (end): the facts of the finished exchange for the access log
 * and the span (exchange_obs.h). */
static struct tls_conn *d_tls(struct dconn *d);
static void ex_obs_end(struct dconn *d) {
  struct exchange *ex = &d->ex;
  struct tls_conn *tls = d_tls(d);
  const char *sni = tls ? tls_conn_sni(tls) : NULL;
  struct obs_facts f = {
      .client = d->client,
      .client_port = d->client_port,
      .h2 = d->virt,
      .https = d->https,
      .method = ex->method,
      .authority = ex->host,
      .path = ex->path,
      .status = ex->status,
      .bytes_out = ex->bytes_down,
      .route_host = ex->route ? ex->route->host_pattern : NULL,
      .route_path = ex->route ? ex->route->path : NULL,
      .cluster = ex->cluster ? ex->cluster->name : NULL,
      .upstream = ex->ep_name[0] ? ex->ep_name : NULL, /* ep may be pruned by now */
      .request_id = ex->request_id[0] ? ex->request_id : NULL,
      .tls_version = tls ? tls_conn_version(tls) : NULL,
      .sni = sni && sni[0] ? sni : NULL,
      .alpn = tls ? tls_conn_alpn(tls) : NULL,
  };
  obs_end(&ex->obs, &d->w->cfg->obs, &f);
}

static void record_request(struct dconn *d) {
  struct worker *w = d->w;
  struct exchange *ex = &d->ex;
  double secs = (double)(uv_hrtime() - ex->t_start) / 1e9;
  struct metrics_histogram *duration = w->duration; /* no route series: "_other" */
  if (w->cfg->metrics && d->snap) {
    struct route_metrics *m = route_metrics(w, d->snap, ex->route, ex->cluster);
    int cls = ex->status / 100;
    if (m && cls >= 1 && cls <= 5 && m->by_class[cls]) metrics_counter_inc(m->by_class[cls]);
    if (m && m->duration) duration = m->duration;
  }
  if (duration) metrics_histogram_observe(duration, secs);
  struct metrics_counter *by_proto = d->virt ? w->c_req_h2 : w->c_req_h1;
  if (by_proto) metrics_counter_inc(by_proto);
  if (obs_enabled(&w->cfg->obs)) ex_obs_end(d); /* OBS HOOK: end */
}

/* ---- downstream connection -------------------------------------------- */

static void d_freed(uv_handle_t *h) {
  struct dconn *d = h->data;
  if (--d->handles > 0) return;
  struct worker *w = d->w;
  h1_parser_free(&d->parser);
  buf_free(&d->in);
  buf_free(&d->out);
  buf_free(&d->ex.head);
  buf_free(&d->ex.up_out);
  l7_snapshot_unref(d->snap);
  tls_conn_free(d->tls);
  int virt = d->virt;
  free(d);
  if (virt) return; /* not counted as a connection */
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
  if (ex->h2) { /* H2C/GRPC: reset the stream */
    struct uh2_stream *s = ex->h2;
    ex->h2 = NULL;
    uh2_stream_cancel(s);
  }
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
  if (d->virt) {
    h2_vd_closed(d, graceful);
    lazy_set(&d->timer, 0);
    uv_close((uv_handle_t *)&d->timer.t, d_freed);
    return;
  }
  if (d->h2) h2_free_session(d); /* what it last queued is in d->out */
  uv_read_stop((uv_stream_t *)&d->tcp);
  if (d->tls) {
    /* the alert of a failed handshake, or the rest of the response and a
     * close_notify */
    if (graceful && d->out.len && tls_conn_handshake_done(d->tls))
      tls_conn_write(d->tls, d->out.data, d->out.len);
    d->out.len = 0;
    if (graceful && tls_conn_handshake_done(d->tls)) tls_conn_shutdown(d->tls);
    if (!d->w->stopping) tls_flush((uv_stream_t *)&d->tcp, d->tls, NULL, NULL);
  }
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
  if (d->h2) {
    h2_on_parent_timer(d);
    return;
  }
  if (d->ex.active) return;
  if (d->tls && !tls_conn_handshake_done(d->tls)) {
    LOG_DEBUG("tls_handshake_timeout", "client=%s", d->client);
    if (d->w->c_hs_failed) metrics_counter_inc(d->w->c_hs_failed);
    d_close(d, 0);
    return;
  }
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
  if (d->state == D_CLOSING || d->h2) return;
  const struct l7_limits *l = d->w->cfg->limits;
  if (d->ex.active || d->state == D_TUNNEL) {
    lazy_set(&d->timer, 0);
    d->head_timer = 0;
    return;
  }
  int handshaking = d->tls && !tls_conn_handshake_done(d->tls);
  int started = h1_parser_in_message(&d->parser) || d->in.len > 0 || handshaking;
  if (started && !d->head_timer) {
    d->head_timer = 1;
    uint32_t hs = d->w->cfg->tls_handshake_timeout_ms;
    lazy_set(&d->timer, handshaking && hs ? hs : l->header_timeout_ms);
  } else if (!started) {
    d->head_timer = 0;
    lazy_set(&d->timer, l->idle_timeout_ms);
  }
}

static void d_write_done(void *arg) {
  struct dconn *d = arg;
  if (d->state == D_CLOSING) return;
  if (d->h2) {
    h2_send(d->h2); /* the socket has room again */
    return;
  }
  struct uconn *uc = d->ex.uc;
  size_t q = d->virt ? (d->h2s ? h2s_pending(d->h2s) : 0)
                     : uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp);
  if (d->ex.h2 && d->ex.h2_paused && q < LOW_WATER) { /* H2C/GRPC upstream (owner: h2up) */
    d->ex.h2_paused = 0;
    uh2_stream_pause(d->ex.h2, 0);
  }
  if (uc && uc->bp_stopped && q < LOW_WATER) {
    uc->bp_stopped = 0;
    if (uc->state == U_ACTIVE || uc->state == U_TUNNEL) uc_read_start(uc);
  }
}

static void d_flush(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  if (d->virt) {
    if (h2_vd_output(d) != 0) {
      d_close(d, 0);
      return;
    }
    d_write_done(d);
    return;
  }
  if (d->h2) {
    h2_send(d->h2);
    return;
  }
  if (flush_buf_tls((uv_stream_t *)&d->tcp, d->tls, &d->out, d_write_done, d) != 0) {
    d_close(d, 0);
    return;
  }
  d_write_done(d); /* written at once: no callback will release back-pressure */
}

static size_t d_queued(struct dconn *d) {
  if (d->virt) return (d->h2s ? h2s_pending(d->h2s) : 0) + d->out.len;
  return uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) + d->out.len;
}

static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void d_update_reading(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  if (d->virt) {
    h2_vd_consume(d); /* "reading" an h2 stream is granting it window */
    return;
  }
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
  struct buf head = ex->head, up_out = ex->up_out;
  buf_reset(&head);
  buf_reset(&up_out);
  memset(ex, 0, sizeof(*ex));
  ex->head = head;
  ex->up_out = up_out;
  ex->active = 1;
  ex->t_start = uv_hrtime();
}

/* Answers the current request locally; the body (if any) is discarded. */
static void ex_local(struct dconn *d, int status, const char *location, const char *body) {
  struct exchange *ex = &d->ex;
  if (ex->grpc && status >= 400) {
    ex_local_grpc(d, status, body); /* 200 with grpc-status, as Envoy does */
    return;
  }
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
  buf_reset(&ex->head);
  buf_reset(&ex->up_out);
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
  } else if (to_https && d->w->cfg->https_port && d->w->cfg->https_port != 443) {
    /* Our choice: the Location names the --https port when it is not the
     * standard one (nginx would drop it and send the client to :443,
     * where nothing may listen). Behind a l4lb on :443 run --https on 443
     * or leave the port out by listening there. */
    size_t k = strlen(host);
    snprintf(host + k, sizeof(host) - k, ":%u", d->w->cfg->https_port);
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
  if (m->upgrade && h2_try_upgrade(d, m)) return 0;
  ex_reset(ex);
  d->n_requests++;
  d->head_timer = 0;
  lazy_set(&d->timer, 0);
  copy_str(ex->method, sizeof(ex->method), m->method_str, m->method_len);
  copy_str(ex->host, sizeof(ex->host), m->host, m->host_len);
  copy_str(ex->path, sizeof(ex->path), m->target, m->path_len);
  if (obs_enabled(&w->cfg->obs)) /* OBS HOOK: start (context, sampling, span id) */
    obs_start(&ex->obs, &w->cfg->obs, m->headers, m->n_headers);
  ex->client_keep_alive = m->keep_alive;
  ex->client_http10 = m->http_minor == 0;
  ex->head_request = m->method == HTTP_HEAD;
  ex->upgrade = m->upgrade;
  ex->idempotent = is_idempotent(m->method);
  ex->req_framing = m->framing;
  ex->grpc = is_grpc_request(m);
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
  if (route && route->host_has_tls && !route->disable_ssl_redirect && !d->https)
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
      .proto = d->https ? "https" : w->cfg->proto,
      .upgrade = m->upgrade,
      .strip_expect = 1,
      .framing = m->framing,
      .content_length = m->content_length,
      .traceparent = ex->obs.traced ? ex->obs.traceparent : NULL,
      .drop_tracestate = ex->obs.drop_tracestate,
  };
  if (headers_write_request(&ex->head, &hr, ex->request_id) != 0) return 500;
  if (m->expect_continue) buf_puts(&d->out, "HTTP/1.1 100 Continue\r\n\r\n");
  ex_start_upstream(d);
  return 0;
}

static int d_on_body(void *ud, const char *p, size_t n) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (!ex->active || ex->local) return 0;
  ex->obs.bytes_in += n;
  struct uconn *uc = ex->uc;
  if (ex->h2) {
    ex->body_flushed = 1;
    return uh2_stream_write(ex->h2, p, n) == 0 ? 0 : -1;
  }
  if (cluster_is_h2(ex->cluster)) return 0; /* the stream is gone: its answer is on the way */
  struct buf *dst = (uc && uc->state == U_ACTIVE) ? &uc->out : &ex->up_out;
  if (uc && uc->state == U_ACTIVE) {
    ex->body_flushed = 1;
    if (!ex->resp_started) uc_arm(uc, ex->phase_ms); /* still sending: wait on */
  }
  if (ex->req_framing == H1_FRAMING_CHUNKED) {
    buf_put_hex(dst, n);
    buf_append(dst, "\r\n", 2);
  }
  if (buf_append(dst, p, n) != 0) return -1;
  if (ex->req_framing == H1_FRAMING_CHUNKED) buf_append(dst, "\r\n", 2);
  return 0;
}

static void d_on_complete(void *ud) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (!ex->active) return;
  ex->req_complete = 1;
  if (ex->local) return;
  if (ex->h2) {
    uh2_stream_end(ex->h2);
    return;
  }
  if (cluster_is_h2(ex->cluster)) return;
  if (ex->req_framing == H1_FRAMING_CHUNKED) {
    struct uconn *uc = ex->uc;
    struct buf *dst = (uc && uc->state == U_ACTIVE) ? &uc->out : &ex->up_out;
    buf_puts(dst, "0\r\n\r\n");
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
      (info.src.ss_family == AF_INET || info.src.ss_family == AF_INET6)) {
    addr_format_ip(&info.src, d->client, sizeof(d->client));
    d->client_port = (uint16_t)addr_port(&info.src);
  }
  buf_consume(&d->in, (size_t)rc);
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
      if (d->in.len && d->n_requests == 0 && !d->https && d->w->cfg->h2c) {
        /* h2c by prior knowledge behind a PROXY header */
        size_t k = d->in.len < 24 ? d->in.len : 24;
        if (k >= 4 && memcmp(d->in.data, H2_PREFACE, k) == 0) {
          if (h2_start(d) != 0) d_close(d, 0);
          break; /* d_on_plain hands d->in to the session */
        }
      }
      continue;
    }
    if (d->ex.active && d->ex.upgrade && d->ex.req_complete) break; /* tunnel bytes wait */
    size_t used = 0;
    enum h1_result r = h1_parser_feed(&d->parser, d->in.data, d->in.len, &used);
    buf_consume(&d->in, used);
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
  if (d->ex.h2) q += uh2_stream_buffered(d->ex.h2);
  if (q > HIGH_WATER) d->bp_stopped = 1;
}

/* Plain bytes from the client (decrypted on HTTPS), or nread < 0 for the
 * end of input. */
static void d_on_plain(struct dconn *d, ssize_t nread, const char *base) {
  if (d->h2) {
    h2_on_input(d, nread, base);
    return;
  }
  if (nread > 0 && !d->virt && !d->https && d->w->cfg->h2c && d->n_requests == 0 &&
      d->in.len == 0 && !d->pp_pending && !h1_parser_in_message(&d->parser)) {
    /* h2c by prior knowledge: the client preface instead of a request */
    size_t k = (size_t)nread < 24 ? (size_t)nread : 24;
    if (k >= 4 && memcmp(base, H2_PREFACE, k) == 0) {
      if (h2_start(d) != 0) {
        d_close(d, 0);
        return;
      }
      h2_on_input(d, nread, base);
      return;
    }
  }
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
    buf_append(&uc->out, base, (size_t)nread);
    uc_flush(uc);
    d_backpressure(d);
    d_update_reading(d);
    return;
  }
  if (d->in.len == 0 && !d->pp_pending) {
    /* usual case: parse straight from the read buffer, keep only the rest */
    struct buf saved = d->in;
    d->in.data = (char *)base;
    d->in.len = d->in.cap = (size_t)nread;
    d_process(d);
    struct buf rest = d->in;
    d->in = saved;
    if (d->h2 && d->state != D_CLOSING) { /* upgraded to h2c: the rest is h2 */
      if (rest.len) h2_on_input(d, (ssize_t)rest.len, rest.data);
      if (d->state != D_CLOSING) h2_send(d->h2);
      return;
    }
    if (rest.len > 0 && buf_append(&d->in, rest.data, rest.len) != 0) {
      d_close(d, 0);
      return;
    }
  } else {
    if (buf_append(&d->in, base, (size_t)nread) != 0) {
      d_close(d, 0);
      return;
    }
    d_process(d);
    if (d->h2 && d->state != D_CLOSING) { /* upgraded to h2c: the rest is h2 */
      struct buf rest = d->in;
      memset(&d->in, 0, sizeof(d->in));
      if (rest.len) h2_on_input(d, (ssize_t)rest.len, rest.data);
      buf_free(&rest);
      if (d->state != D_CLOSING) h2_send(d->h2);
      return;
    }
  }
  if (d->state == D_CLOSING) return;
  if (d->ex.uc) uc_flush(d->ex.uc);
  if (d->state == D_CLOSING) return;
  d_backpressure(d);
  d_update_reading(d);
  d_flush(d);
}

static void d_tls_handshake_check(struct dconn *d) {
  if (d->hs_done || !tls_conn_handshake_done(d->tls)) return;
  d->hs_done = 1;
  if (d->w->c_hs_ok) metrics_counter_inc(d->w->c_hs_ok);
  LOG_DEBUG("tls_handshake", "client=%s sni=%s certificate=%s version=%s alpn=%s resumed=%d",
            d->client, log_q(tls_conn_sni(d->tls)), log_q(tls_conn_certificate_name(d->tls)),
            tls_conn_version(d->tls), log_q(tls_conn_alpn(d->tls)), tls_conn_resumed(d->tls));
  d->head_timer = 0; /* from now on the header/idle timers apply */
  if (strcmp(tls_conn_alpn(d->tls), "h2") == 0) {
    if (h2_start(d) != 0) d_close(d, 0);
    return;
  }
  d_arm_timer(d);
}

/* Ciphertext from the client: decrypt and run the plaintext through. */
static void d_on_tls_read(struct dconn *d, const char *data, size_t n) {
  struct worker *w = d->w;
  if (tls_conn_feed(d->tls, data, n) != 0) {
    d_close(d, 0);
    return;
  }
  for (;;) {
    int r = tls_conn_read(d->tls, w->pbuf, sizeof(w->pbuf));
    d_tls_handshake_check(d);
    if (r > 0) {
      d_on_plain(d, r, w->pbuf);
      if (d->state == D_CLOSING) return;
      continue;
    }
    if (r == TLS_WANT_MORE) break;
    if (r == TLS_CLOSED) {
      d_on_plain(d, UV_EOF, NULL);
      return;
    }
    if (!d->hs_done) {
      if (w->c_hs_failed) metrics_counter_inc(w->c_hs_failed);
      LOG_DEBUG("tls_handshake_failed", "client=%s reason=%s", d->client,
                log_q(tls_conn_error(d->tls)));
    } else {
      LOG_DEBUG("tls_error", "client=%s reason=%s", d->client, log_q(tls_conn_error(d->tls)));
    }
    d_close(d, 0); /* flushes the alert */
    return;
  }
  if (d->state == D_CLOSING) return;
  if (tls_flush((uv_stream_t *)&d->tcp, d->tls, d_write_done, d) != 0) d_close(d, 0);
}

static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct dconn *d = s->data;
  if (nread == 0) return;
  if (d->tls && nread > 0 && d->pp_pending) {
    /* the PROXY header comes before the TLS bytes */
    if (buf_append(&d->in, buf->base, (size_t)nread) != 0) {
      d_close(d, 0);
      return;
    }
    int rc = d_proxy_header(d);
    if (rc < 0) {
      d_close(d, 0);
      return;
    }
    if (rc == 0) return;
    struct buf rest = d->in;
    memset(&d->in, 0, sizeof(d->in));
    if (rest.len) d_on_tls_read(d, rest.data, rest.len);
    buf_free(&rest);
    return;
  }
  if (d->tls && nread > 0) {
    d_on_tls_read(d, buf->base, (size_t)nread);
    return;
  }
  d_on_plain(d, nread, nread > 0 ? buf->base : NULL);
}

/* ---- upstream connections --------------------------------------------- */

static void uc_freed(uv_handle_t *h) {
  struct uconn *uc = h->data;
  if (--uc->handles > 0) return;
  struct worker *w = uc->w;
  h1_parser_free(&uc->parser);
  buf_free(&uc->out);
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
  buf_append(&uc->out, ex->head.data, ex->head.len);
  if (ex->up_out.len) {
    buf_append(&uc->out, ex->up_out.data, ex->up_out.len);
    buf_reset(&ex->up_out);
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
  if (obs_enabled(&d->w->cfg->obs)) obs_upstream_connected(&d->ex.obs); /* OBS HOOK */
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
/* ---- HTTP/2 and gRPC upstreams (owner: h2up) ----------------------------
 * Clusters with protocol H2C or GRPC: the exchange runs as one stream of a
 * per-worker upstream_h2 pool instead of a uconn. The request head built
 * for HTTP/1.1 (ex->head) is converted to HTTP/2 headers; the response
 * comes back through the same downstream writer (d->out, HTTP/1.1 framing,
 * trailers as chunked trailers). Proxy-generated errors for gRPC requests
 * become a 200 with grpc-status / grpc-message (ex_local). */

static int cluster_is_h2(const struct l7_cluster *c) {
  return c && (c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C ||
               c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC);
}

static int is_grpc_request(const struct h1_message *m) {
  for (size_t i = 0; i < m->n_headers; i++)
    if (headers_name_is(m->headers[i].name, m->headers[i].name_len, "content-type"))
      return m->headers[i].value_len >= 16 &&
             strncasecmp(m->headers[i].value, "application/grpc", 16) == 0;
  return 0;
}

/* Envoy's HTTP → gRPC status mapping, except 504 → DEADLINE_EXCEEDED. */
static int grpc_status_for(int http) {
  switch (http) {
    case 400:
      return 13; /* INTERNAL */
    case 401:
      return 16; /* UNAUTHENTICATED */
    case 403:
      return 7; /* PERMISSION_DENIED */
    case 404:
      return 12; /* UNIMPLEMENTED */
    case 413:
      return 8; /* RESOURCE_EXHAUSTED */
    case 504:
    case 408:
      return 4; /* DEADLINE_EXCEEDED */
    case 429:
    case 502:
    case 503:
      return 14; /* UNAVAILABLE */
    default:
      return 2; /* UNKNOWN */
  }
}

/* A proxy error for a gRPC request: "trailers-only" as one HTTP/1.1 head. */
static void ex_local_grpc(struct dconn *d, int status, const char *body) {
  struct exchange *ex = &d->ex;
  char msg[160];
  snprintf(msg, sizeof(msg), "%s", body ? body : http_status_reason(status));
  size_t ml = strlen(msg);
  while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == '\r')) msg[--ml] = '\0';
  for (size_t i = 0; i < ml; i++) /* grpc-message is percent-encoded; keep it plain */
    if (msg[i] < 0x20 || msg[i] > 0x7e || msg[i] == '%') msg[i] = ' ';
  char code[8];
  snprintf(code, sizeof(code), "%d", grpc_status_for(status));
  const struct h1_header hs[] = {
      {"content-type", 12, "application/grpc", 16},
      {"grpc-status", 11, code, strlen(code)},
      {"grpc-message", 12, msg, ml},
  };
  int close = d->close_after || !ex->client_keep_alive || ex->upgrade || d->w->draining;
  if (close) d->close_after = 1;
  struct headers_response hr = {.status = 200,
                                .headers = hs,
                                .n_headers = 3,
                                .framing = H1_FRAMING_LENGTH,
                                .content_length = 0,
                                .close = close,
                                .keep_alive = ex->client_http10 && !close};
  ex->local = 1;
  ex->status = status; /* logs and metrics see what went wrong */
  headers_write_response(&d->out, &hr);
  ex->bytes_down = d->out.len;
  ex->resp_started = ex->resp_complete = 1;
}

/* The stream's timer: the phase timeout, or the route deadline if sooner. */
static void x2_arm(struct dconn *d, uint32_t ms) {
  struct exchange *ex = &d->ex;
  uint64_t t = ms;
  ex->phase_ms = ms;
  if (ex->deadline) {
    uint64_t now = now_ms(d->w);
    uint64_t left = ex->deadline > now ? ex->deadline - now : 1;
    if (t == 0 || left < t) t = left;
  }
  if (ex->h2) uh2_stream_set_timeout(ex->h2, (uint32_t)t);
}

static void x2_on_headers(void *ud, int status, const struct uh2_header *h, size_t n) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  struct h1_header hv[256];
  if (n > 256) n = 256;
  enum h1_framing f = ex->client_http10 ? H1_FRAMING_CLOSE : H1_FRAMING_CHUNKED;
  uint64_t clen = 0;
  for (size_t i = 0; i < n; i++) {
    hv[i] = (struct h1_header){h[i].name, h[i].name_len, h[i].value, h[i].value_len};
    if (headers_name_is(h[i].name, h[i].name_len, "content-length") && !ex->grpc) {
      char tmp[24];
      copy_str(tmp, sizeof(tmp), h[i].value, h[i].value_len);
      char *end;
      unsigned long long v = strtoull(tmp, &end, 10);
      if (end != tmp && *end == '\0') {
        f = H1_FRAMING_LENGTH;
        clen = v;
      }
    }
  }
  ex->status = status;
  if (obs_enabled(&d->w->cfg->obs)) obs_response_head(&ex->obs); /* OBS HOOK: first byte */
  ex->resp_started = 1;
  ex->resp_keep_alive = 1;
  int close = d->close_after || !ex->client_keep_alive || d->w->draining || ex->upgrade ||
              f == H1_FRAMING_CLOSE;
  if (close) d->close_after = 1;
  if (ex->head_request) f = H1_FRAMING_NONE;
  ex->down_framing = f;
  struct headers_response hr = {.status = status,
                                .headers = hv,
                                .n_headers = n,
                                .framing = f,
                                .content_length = clen,
                                .close = close,
                                .keep_alive = ex->client_http10 && !close};
  size_t before = d->out.len;
  headers_write_response(&d->out, &hr);
  ex->bytes_down += d->out.len - before;
  x2_arm(d, d->w->cfg->limits->idle_timeout_ms);
  d_flush(d);
}

static void x2_on_data(void *ud, const uint8_t *p, size_t n) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (ex->head_request || d->state == D_CLOSING) return;
  if (ex->down_framing == H1_FRAMING_CHUNKED) {
    buf_put_hex(&d->out, n);
    buf_append(&d->out, "\r\n", 2);
  }
  buf_append(&d->out, p, n);
  if (ex->down_framing == H1_FRAMING_CHUNKED) buf_append(&d->out, "\r\n", 2);
  ex->bytes_down += n;
  x2_arm(d, ex->phase_ms); /* data flows: not idle */
  d_flush(d);
  if (d->state != D_CLOSING && ex->h2 && !ex->h2_paused && d_queued(d) > HIGH_WATER) {
    ex->h2_paused = 1; /* resumed by d_write_done below LOW_WATER */
    uh2_stream_pause(ex->h2, 1);
  }
}

static void x2_on_trailers(void *ud, const struct uh2_header *h, size_t n) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  if (d->virt && !ex->h2_ended) { /* an h2 downstream stream takes them as h2 trailers (h2) */
    h2_vd_trailers(d, (const struct h1_header *)h, n);
    if (ex->down_framing == H1_FRAMING_CHUNKED) buf_puts(&d->out, "0\r\n\r\n");
    ex->h2_ended = 1;
    return;
  }
  if (ex->down_framing != H1_FRAMING_CHUNKED || ex->h2_ended) return; /* nowhere to put them */
  buf_puts(&d->out, "0\r\n");
  for (size_t i = 0; i < n; i++) {
    if (headers_is_hop_by_hop(h[i].name, h[i].name_len)) continue;
    buf_append(&d->out, h[i].name, h[i].name_len);
    buf_append(&d->out, ": ", 2);
    buf_append(&d->out, h[i].value, h[i].value_len);
    buf_append(&d->out, "\r\n", 2);
  }
  buf_append(&d->out, "\r\n", 2);
  ex->h2_ended = 1;
}

static void x2_on_drain(void *ud) {
  struct dconn *d = ud;
  if (d->bp_stopped && d->state != D_CLOSING) {
    d->bp_stopped = 0;
    d_update_reading(d);
  }
}

static void x2_on_close(void *ud, int err) {
  struct dconn *d = ud;
  struct exchange *ex = &d->ex;
  ex->h2 = NULL; /* gone: ex_detach_upstream must not cancel it */
  if (err == 0) {
    if (ex->down_framing == H1_FRAMING_CHUNKED && !ex->h2_ended) buf_puts(&d->out, "0\r\n\r\n");
    ex->resp_complete = 1;
    d_flush(d);
    if (d->state == D_CLOSING) return;
    ex_response_done(d);
    return;
  }
  LOG_DEBUG("upstream_h2_failed", "endpoint=%s error=%s", ex->ep ? ex->ep->name : "-",
            uh2_strerror(err));
  switch (err) {
    case UH2_E_CONNECT:
      ex_report(d, 1);
      ex_fail(d, 502, "upstream connect failed", 1);
      break;
    case UH2_E_REFUSED: /* not processed: safe to try elsewhere */
      ex_fail(d, 503, "upstream refused the stream", 1);
      break;
    case UH2_E_TIMEOUT:
      ex_report(d, 1);
      ex_fail(d, 504, "upstream response timeout", 0);
      break;
    default:
      ex_report(d, 1);
      ex_fail(d, 502, "upstream stream failed", 0);
      break;
  }
}

static const struct uh2_stream_cb x2_callbacks = {x2_on_headers, x2_on_data, x2_on_trailers,
                                                  x2_on_drain, x2_on_close};

/* Opens the exchange's stream to ep. 0, or negative (nothing started). */
static int ex_start_h2(struct dconn *d, struct up_endpoint *ep) {
  struct worker *w = d->w;
  struct exchange *ex = &d->ex;
  if (!w->h2pool) {
    struct uh2_pool_config cfg = {.idle_timeout_ms = ex->cluster->idle_timeout_ms};
    if (uh2_pool_new(&w->loop, &cfg, &w->h2pool) != 0) return -ENOMEM;
  }
  /* ex->head is the well-formed head headers_write_request produced:
   * "METHOD SP target SP HTTP/1.1" CRLF, then "Name: value" CRLF lines */
  struct h1_header hv[260];
  size_t n = 0;
  const char *p = ex->head.data, *end = p + ex->head.len;
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol) return -EINVAL;
  const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  if (!sp2) return -EINVAL;
  const char *auth = "";
  size_t auth_len = 0;
  int has_te = 0;
  for (p = eol + 1; p < end && n < 256; p = eol + 1) {
    eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) break;
    size_t ll = (size_t)(eol - p);
    if (ll && p[ll - 1] == '\r') ll--;
    if (ll == 0) break;
    const char *colon = memchr(p, ':', ll);
    if (!colon) continue;
    const char *v = colon + 1, *ve = p + ll;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    hv[n] = (struct h1_header){p, (size_t)(colon - p), v, (size_t)(ve - v)};
    if (headers_name_is(p, (size_t)(colon - p), "host")) {
      auth = v;
      auth_len = (size_t)(ve - v);
    }
    if (headers_name_is(p, (size_t)(colon - p), "te")) has_te = 1;
    n++;
  }
  if (ex->cluster->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC && !has_te)
    hv[n++] = (struct h1_header){"te", 2, "trailers", 8};
  struct uh2_request rq;
  if (uh2_request_from_h1(&rq, ex->head.data, (size_t)(sp1 - ex->head.data), "http", auth, auth_len,
                          sp1 + 1, (size_t)(sp2 - sp1 - 1), hv, n) != 0)
    return -ENOMEM;
  char key[sizeof(ep->cluster) + sizeof(ep->name) + 2];
  snprintf(key, sizeof(key), "%s\n%s", ep->cluster, ep->name);
  struct uh2_target t = {.key = key,
                         .addr = (const struct sockaddr *)&ep->addr,
                         .addrlen = ep->addrlen,
                         .connect_timeout_ms = ex->cluster->connect_timeout_ms,
                         .idle_timeout_ms = ex->cluster->idle_timeout_ms};
  int end_stream = ex->req_complete || ex->req_framing == H1_FRAMING_NONE;
  int rc = uh2_stream_open(w->h2pool, &t, rq.h, rq.n, end_stream, &x2_callbacks, d, &ex->h2);
  uh2_request_free(&rq);
  if (rc != 0) {
    ex->h2 = NULL;
    return rc;
  }
  if (ex->up_out.len) { /* body that arrived before a retry: none is kept */
    buf_reset(&ex->up_out);
  }
  ex->h2_ended = 0;
  ex->h2_paused = 0;
  x2_arm(d, ex->route && ex->route->response_header_timeout_ms
                ? ex->route->response_header_timeout_ms
                : w->cfg->limits->response_header_timeout_ms);
  return 0;
}

/* ---- end HTTP/2 and gRPC upstreams (owner: h2up) ---- */

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
    snprintf(ex->ep_name, sizeof(ex->ep_name), "%s", ep->name);
    ex->tries++;
    ep->lb.outstanding++;
    if (cluster_is_h2(ex->cluster)) { /* H2C/GRPC: a stream on a shared connection */
      if (ex_start_h2(d, ep) == 0) return;
      ex_drop_outstanding(ex);
      ex_report(d, 1);
      if (ex->tries > 64) {
        ex_fail(d, 502, "cannot open an upstream stream", 0);
        return;
      }
      continue;
    }
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
    if (obs_enabled(&w->cfg->obs)) obs_upstream_connecting(&ex->obs); /* OBS HOOK */
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
    if (obs_enabled(&d->w->cfg->obs)) /* OBS HOOK: retry (span event) */
      obs_retry(&ex->obs, ex->ep ? ex->ep->name : NULL, why);
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
  if (obs_enabled(&d->w->cfg->obs)) obs_response_head(&ex->obs); /* OBS HOOK: first byte */
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
    buf_put_hex(&d->out, n);
    buf_append(&d->out, "\r\n", 2);
  }
  if (buf_append(&d->out, p, n) != 0) return -1;
  if (ex->down_framing == H1_FRAMING_CHUNKED) buf_append(&d->out, "\r\n", 2);
  ex->bytes_down += n;
  return 0;
}

static void u_on_complete(void *ud) {
  struct uconn *uc = ud;
  struct dconn *d = uc->d;
  if (!d || !d->ex.resp_started) return;
  if (d->ex.status == 101) return;
  if (d->ex.down_framing == H1_FRAMING_CHUNKED) buf_puts(&d->out, "0\r\n\r\n");
  d->ex.resp_complete = 1;
}

/* 101 from upstream: splice bytes both ways from now on. */
static void start_tunnel(struct dconn *d, struct uconn *uc) {
  d->state = D_TUNNEL;
  uc->state = U_TUNNEL;
  lazy_set(&uc->timer, 0);
  lazy_set(&d->timer, 0);
  if (d->in.len) {
    buf_append(&uc->out, d->in.data, d->in.len);
    buf_reset(&d->in);
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
    buf_append(&d->out, buf->base, (size_t)nread);
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
        buf_append(&d->out, p + used, len - used);
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

/* ---- HTTP/2 downstream ------------------------------------------------- */

/*
 * An h2 connection (h2 by ALPN, h2c by prior knowledge or Upgrade) is a
 * dconn whose bytes go to an nghttp2 server session instead of the HTTP/1.1
 * parser. Each stream is served by a virtual dconn (no socket: d->h2s set)
 * that runs the very same HTTP/1.1 exchange as a real connection: the
 * stream's request head is written as an HTTP/1.1 request (":authority" as
 * Host, cookies joined, connection-specific fields dropped) and fed to its
 * parser, so routing, header rewriting, retries and local errors are
 * shared. What that exchange writes for the client (an HTTP/1.1 response)
 * is parsed back by a response parser and submitted as h2 HEADERS and DATA.
 *
 * Flow control: request DATA is acknowledged (nghttp2_session_consume,
 * automatic window updates are off) only while the upstream write queue is
 * below HIGH_WATER; the stream's response buffer counts as the virtual
 * dconn's write queue, so the upstream stops being read while the stream's
 * window is exhausted (the data provider defers) and resumes when the
 * buffer drains below LOW_WATER.
 *
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS, a header list bound (the
 * HTTP/1.1 header byte limit; beyond it the stream is reset), client
 * resets and streams cancelled before their response above
 * h2_max_resets_sec in a second or beyond twice the completed streams (at
 * least 200) → GOAWAY ENHANCE_YOUR_CALM (CVE-2023-44487); SETTINGS/PING
 * floods via nghttp2's max_settings and max_outbound_ack → GOAWAY
 * ENHANCE_YOUR_CALM. Session output is generated only while the socket
 * write queue is below HIGH_WATER.
 */
#define H2_MAX_SETTINGS 32
#define H2_MAX_OUTBOUND_ACK 1000
#define H2_RESET_MIN_TOTAL 200
#define H2_MAX_NV 256

struct h2stream {
  struct up_link link; /* the session's streams */
  struct h2sess *hs;
  int32_t id;
  struct dconn *vd; /* the exchange; NULL once it is done */
  struct buf req;   /* header lines of the HTTP/1.1 request */
  struct buf method, path;
  struct buf cookie; /* cookie fields, joined with "; " */
  struct buf body;   /* response body for the data provider */
  size_t body_off;
  size_t hdr_bytes;
  size_t unconsumed; /* request DATA not yet acknowledged */
  int have_host, have_length, chunked, head_request;
  int parser_ready, submitted, resp_eof, resp_done, closed, req_ended;
  int reset_by_us;     /* we reset it (upstream failure): not the client's doing */
  struct buf trailers; /* name\0value\0 pairs, sent after the body */
  size_t n_trailers;
  struct h1_parser rp; /* parses the virtual dconn's HTTP/1.1 response */
};

struct h2sess {
  nghttp2_session *ng;
  struct dconn *d;
  struct up_link streams;
  int in_recv, sending, goaway, dead;
  uint64_t win_start; /* loop ms of the current one-second window */
  uint32_t win_resets;
  uint64_t total_resets, completed;
};

static struct dconn *vd_new(struct dconn *parent, struct h2stream *s);
static ssize_t h2_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud);

static void h2_goaway(struct h2sess *hs, uint32_t code, const char *reason) {
  if (hs->goaway) return;
  hs->goaway = 1;
  struct worker *w = hs->d->w;
  int32_t last = nghttp2_session_get_last_proc_stream_id(hs->ng);
  if (code == NGHTTP2_NO_ERROR) /* graceful: streams in flight finish */
    nghttp2_submit_goaway(hs->ng, NGHTTP2_FLAG_NONE, last, code, NULL, 0);
  else /* the connection closes once the GOAWAY is out */
    nghttp2_session_terminate_session2(hs->ng, last, code);
  if (code != NGHTTP2_NO_ERROR)
    LOG_WARN("h2_goaway", "client=%s reason=%s code=%u", hs->d->client, reason, code);
  if (w->cfg->metrics) { /* rare: the registry lookup is fine here */
    char labels[128];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    struct metrics_counter *c = metrics_counter(w->cfg->metrics, "edge_l7_h2_goaway_total",
                                                "HTTP/2 GOAWAY frames sent by reason.", labels);
    if (c) metrics_counter_inc(c);
  }
}

/* Counts a client reset or a stream cancelled before its response. */
static void h2_count_reset(struct h2sess *hs) {
  struct worker *w = hs->d->w;
  uint64_t now = now_ms(w);
  if (now - hs->win_start >= 1000) {
    hs->win_start = now;
    hs->win_resets = 0;
  }
  hs->win_resets++;
  hs->total_resets++;
  uint32_t limit = w->cfg->h2_max_resets_sec ? w->cfg->h2_max_resets_sec : 100;
  if (hs->win_resets > limit ||
      (hs->total_resets > H2_RESET_MIN_TOTAL && hs->total_resets > 2 * hs->completed + 1))
    h2_goaway(hs, NGHTTP2_ENHANCE_YOUR_CALM, "reset_flood");
}

static size_t h2s_pending(const struct h2stream *s) {
  return s->body.len - s->body_off;
}

static int is_conn_specific(const char *n, size_t len) {
  static const char *const names[] = {"connection",        "keep-alive", "proxy-connection",
                                      "transfer-encoding", "upgrade",    "te",
                                      "http2-settings",    "expect"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strlen(names[i]) == len && strncasecmp(names[i], n, len) == 0) return 1;
  return 0;
}

/* ---- the response of a virtual dconn, back to h2 ---- */

static int rp_on_head(void *ud, const struct h1_message *m) {
  struct h2stream *s = ud;
  if (m->status < 200) return 0; /* interim: dropped */
  if (s->submitted || s->closed) return 0;
  nghttp2_nv nva[H2_MAX_NV];
  char status[4];
  snprintf(status, sizeof(status), "%03d", m->status);
  size_t n = 0;
  nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
  static __thread char lower[65536];
  size_t used = 0;
  for (size_t i = 0; i < m->n_headers && n < H2_MAX_NV; i++) {
    const struct h1_header *h = &m->headers[i];
    if (is_conn_specific(h->name, h->name_len)) continue;
    if (used + h->name_len > sizeof(lower)) break;
    char *ln = lower + used;
    for (size_t k = 0; k < h->name_len; k++)
      ln[k] = (char)((h->name[k] >= 'A' && h->name[k] <= 'Z') ? h->name[k] + 32 : h->name[k]);
    used += h->name_len;
    nva[n++] = (nghttp2_nv){(uint8_t *)ln, (uint8_t *)h->value, h->name_len, h->value_len,
                            NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = h2_data_read};
  /* no body (HEAD, 204, 304, Content-Length: 0, e.g. a gRPC trailers-only
   * error): END_STREAM on the HEADERS frame */
  int bodyless = s->head_request || m->status == 204 || m->status == 304 ||
                 (m->framing == H1_FRAMING_LENGTH && m->content_length == 0) ||
                 m->framing == H1_FRAMING_NONE;
  if (nghttp2_submit_response(s->hs->ng, s->id, nva, n, bodyless ? NULL : &prd) != 0) return -1;
  s->submitted = 1;
  if (bodyless) s->resp_done = 1;
  return s->head_request ? H1_SKIP_BODY : 0;
}

static int rp_on_body(void *ud, const char *p, size_t n) {
  struct h2stream *s = ud;
  if (s->body_off == s->body.len) s->body.len = s->body_off = 0;
  return buf_append(&s->body, p, n) == 0 ? 0 : -1;
}

static void rp_on_complete(void *ud) {
  struct h2stream *s = ud;
  if (s->submitted) s->resp_eof = 1;
}

static const struct h1_callbacks rp_callbacks = {rp_on_head, rp_on_body, rp_on_complete};

/* Moves what the virtual dconn wrote (HTTP/1.1) into the h2 stream. */
static int h2_vd_output(struct dconn *vd) {
  struct h2stream *s = vd->h2s;
  if (!s || s->closed) {
    vd->out.len = 0;
    return 0;
  }
  const char *p = vd->out.data;
  size_t len = vd->out.len;
  int rc = 0;
  while (len > 0 && !s->resp_eof) {
    size_t used = 0;
    enum h1_result r = h1_parser_feed(&s->rp, p, len, &used);
    p += used;
    len -= used;
    if (r == H1_ERROR) {
      rc = -1;
      break;
    }
    if (r == H1_MESSAGE_END && !s->resp_eof) {
      h1_parser_resume(&s->rp); /* an interim response: parse on */
      continue;
    }
    if (r != H1_MESSAGE_END) break;
  }
  vd->out.len = 0;
  if (vd->out.cap > 4 * READ_BUF) buf_free(&vd->out);
  if (s->submitted) nghttp2_session_resume_data(s->hs->ng, s->id);
  h2_send(s->hs);
  return rc;
}

static ssize_t h2_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)ud;
  struct h2stream *s = src->ptr;
  size_t avail = h2s_pending(s);
  size_t n = avail < length ? avail : length;
  if (n) memcpy(buf, s->body.data + s->body_off, n);
  s->body_off += n;
  if (s->body_off == s->body.len) s->body.len = s->body_off = 0;
  if (h2s_pending(s) == 0) {
    if (s->resp_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      s->resp_done = 1;
      if (s->n_trailers) {
        nghttp2_nv nva[H2_MAX_NV];
        size_t k = 0;
        const char *p = s->trailers.data, *e = p + s->trailers.len;
        while (p < e && k < H2_MAX_NV) {
          size_t nl = strlen(p);
          const char *v = p + nl + 1;
          size_t vl = strlen(v);
          nva[k++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE};
          p = v + vl + 1;
        }
        if (nghttp2_submit_trailer(ng, id, nva, k) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  if (s->vd && h2s_pending(s) < LOW_WATER) d_write_done(s->vd); /* upstream may read on */
  return (ssize_t)n;
}

/* The virtual dconn is closing: its stream ends here. */
static void h2_vd_closed(struct dconn *vd, int graceful) {
  struct h2stream *s = vd->h2s;
  vd->h2s = NULL;
  if (!s) return;
  if (graceful && vd->out.len) {
    vd->h2s = s;
    h2_vd_output(vd);
    vd->h2s = NULL;
  }
  s->vd = NULL;
  if (s->closed) return;
  if (!s->resp_eof) {
    s->reset_by_us = 1;
    nghttp2_submit_rst_stream(s->hs->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  } else if (s->unconsumed) {
    nghttp2_session_consume(s->hs->ng, s->id, s->unconsumed);
    s->unconsumed = 0;
  }
  h2_send(s->hs);
}

static void h2_vd_trailers(struct dconn *d, const struct h1_header *h, size_t n) {
  struct h2stream *s = d->h2s;
  if (!s || s->closed) return;
  for (size_t i = 0; i < n; i++) {
    if (is_conn_specific(h[i].name, h[i].name_len)) continue;
    for (size_t k = 0; k < h[i].name_len; k++) {
      char c = h[i].name[k];
      c = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
      buf_append(&s->trailers, &c, 1);
    }
    buf_append(&s->trailers, "", 1);
    buf_append(&s->trailers, h[i].value, h[i].value_len);
    buf_append(&s->trailers, "", 1);
    s->n_trailers++;
  }
}

/* Acknowledges request DATA the upstream has room for. */
static void h2_vd_consume(struct dconn *vd) {
  struct h2stream *s = vd->h2s;
  if (!s || s->closed || !s->unconsumed || vd->bp_stopped) return;
  nghttp2_session_consume(s->hs->ng, s->id, s->unconsumed);
  s->unconsumed = 0;
  h2_send(s->hs);
}

/* ---- nghttp2 callbacks ---- */

static struct h2stream *h2_stream(nghttp2_session *ng, int32_t id) {
  return nghttp2_session_get_stream_user_data(ng, id);
}

static int h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2sess *hs = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct h2stream *s = calloc(1, sizeof(*s));
  if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
  s->hs = hs;
  s->id = f->hd.stream_id;
  up_link_insert(&hs->streams, &s->link);
  nghttp2_session_set_stream_user_data(ng, s->id, s);
  return 0;
}

static int h2_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud) {
  struct h2sess *hs = ud;
  (void)flags;
  struct h2stream *s = h2_stream(ng, f->hd.stream_id);
  if (!s || f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: dropped */
  s->hdr_bytes += namelen + valuelen + 32;
  if (s->hdr_bytes > hs->d->w->cfg->limits->max_header_bytes)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  const char *n = (const char *)name, *v = (const char *)value;
  struct buf *b = &s->req;
  if (namelen > 0 && n[0] == ':') {
    if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
      buf_reset(&s->method);
      buf_append(&s->method, v, valuelen);
      s->head_request = valuelen == 4 && memcmp(v, "HEAD", 4) == 0;
    } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
      buf_reset(&s->path);
      buf_append(&s->path, v, valuelen);
    } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
      if (s->have_host) return 0;
      s->have_host = 1;
      buf_puts(b, "Host: ");
      buf_append(b, v, valuelen);
      buf_puts(b, "\r\n");
    }
    return 0;
  }
  if (is_conn_specific(n, namelen)) return 0;
  if (namelen == 4 && memcmp(n, "host", 4) == 0) {
    if (s->have_host) return 0;
    s->have_host = 1;
  }
  if (namelen == 6 && memcmp(n, "cookie", 6) == 0) {
    if (s->cookie.len) buf_puts(&s->cookie, "; ");
    buf_append(&s->cookie, v, valuelen);
    return 0;
  }
  if (namelen == 14 && memcmp(n, "content-length", 14) == 0) s->have_length = 1;
  buf_append(b, n, namelen);
  buf_puts(b, ": ");
  buf_append(b, v, valuelen);
  buf_puts(b, "\r\n");
  return 0;
}

/* Feeds bytes of the stream's HTTP/1.1 request to its virtual dconn. */
static void h2_feed(struct h2stream *s, const char *p, size_t n) {
  if (!s->vd || n == 0) return;
  d_on_plain(s->vd, (ssize_t)n, p);
}

static void h2_end_request(struct h2stream *s) {
  if (s->req_ended) return;
  s->req_ended = 1;
  if (s->chunked) h2_feed(s, "0\r\n\r\n", 5);
}

static int h2_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2sess *hs = ud;
  struct h2stream *s = h2_stream(ng, f->hd.stream_id);
  if (!s) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && !s->vd &&
      !s->closed) {
    if (!s->have_host || !s->method.len || !s->path.len)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    struct buf head = {0}, *b = &head;
    buf_append(b, s->method.data, s->method.len);
    buf_puts(b, " ");
    buf_append(b, s->path.data, s->path.len);
    buf_puts(b, " HTTP/1.1\r\n");
    if (s->req.len) buf_append(b, s->req.data, s->req.len);
    if (s->cookie.len) {
      buf_puts(b, "cookie: ");
      buf_append(b, s->cookie.data, s->cookie.len);
      buf_puts(b, "\r\n");
    }
    int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!end && !s->have_length) {
      s->chunked = 1;
      buf_puts(b, "transfer-encoding: chunked\r\n");
    }
    buf_puts(b, "\r\n");
    if (h1_parser_init(&s->rp, H1_RESPONSE, hs->d->w->cfg->limits, &rp_callbacks, s) != 0) {
      buf_free(&head);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    s->parser_ready = 1;
    s->vd = vd_new(hs->d, s);
    if (!s->vd) {
      buf_free(&head);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    h2_feed(s, head.data, head.len);
    buf_free(&head);
    buf_free(&s->req);
    buf_free(&s->method);
    buf_free(&s->path);
    buf_free(&s->cookie);
    if (end) h2_end_request(s);
    return 0;
  }
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    h2_end_request(s);
  return 0;
}

static int h2_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *ud) {
  (void)flags, (void)ud;
  struct h2stream *s = h2_stream(ng, id);
  if (!s || !s->vd) {
    nghttp2_session_consume(ng, id, len);
    return 0;
  }
  s->unconsumed += len;
  if (s->chunked) {
    char hex[24];
    int k = snprintf(hex, sizeof(hex), "%zx\r\n", len);
    h2_feed(s, hex, (size_t)k);
    h2_feed(s, (const char *)data, len);
    h2_feed(s, "\r\n", 2);
  } else {
    h2_feed(s, (const char *)data, len);
  }
  if (!s->vd && s->unconsumed) { /* answered meanwhile: drop the rest */
    nghttp2_session_consume(ng, id, s->unconsumed);
    s->unconsumed = 0;
  }
  return 0;
}

static void h2_stream_free(struct h2stream *s) {
  up_link_remove(&s->link);
  if (s->parser_ready) h1_parser_free(&s->rp);
  buf_free(&s->req);
  buf_free(&s->method);
  buf_free(&s->path);
  buf_free(&s->cookie);
  buf_free(&s->body);
  buf_free(&s->trailers);
  free(s);
}

static int h2_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
  struct h2sess *hs = ud;
  struct h2stream *s = h2_stream(ng, id);
  if (!s) return 0;
  s->closed = 1;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  /* client resets, streams cancelled before their response and streams
   * refused for their headers all count toward the reset limit */
  if (s->resp_done && code == NGHTTP2_NO_ERROR)
    hs->completed++;
  else if (!s->reset_by_us)
    h2_count_reset(hs);
  if (s->vd) {
    struct dconn *vd = s->vd;
    vd->h2s = NULL;
    s->vd = NULL;
    /* A stream whose response went out whole closes while its exchange is
     * still finishing (logging, returning the upstream connection to the
     * pool): let it finish detached. Anything else is aborted. */
    if (!(s->resp_done && vd->ex.active && vd->ex.resp_complete && vd->ex.req_complete))
      d_close(vd, 0);
  }
  h2_stream_free(s);
  return 0;
}

/* ---- the h2 connection ---- */

/* Writes session output while the socket has room; closes when done. */
static void h2_send(struct h2sess *hs) {
  struct dconn *d = hs->d;
  if (hs->in_recv || hs->sending || hs->dead || d->state == D_CLOSING) return;
  hs->sending = 1;
  int fail = 0;
  while (uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) < HIGH_WATER) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(hs->ng, &data);
    if (n < 0) {
      fail = 1;
      break;
    }
    if (n == 0) break;
    if (buf_append(&d->out, data, (size_t)n) != 0) {
      fail = 1;
      break;
    }
    if (d->out.len >= READ_BUF &&
        flush_buf_tls((uv_stream_t *)&d->tcp, d->tls, &d->out, d_write_done, d) != 0) {
      fail = 1;
      break;
    }
  }
  if (!fail && flush_buf_tls((uv_stream_t *)&d->tcp, d->tls, &d->out, d_write_done, d) != 0)
    fail = 1;
  hs->sending = 0;
  if (fail) {
    hs->dead = 1;
    d_close(d, 0);
    return;
  }
  if (!nghttp2_session_want_read(hs->ng) && !nghttp2_session_want_write(hs->ng)) {
    hs->dead = 1;
    d_close(d, 1);
    return;
  }
  if ((hs->goaway || d->w->draining) && up_link_empty(&hs->streams) &&
      !nghttp2_session_want_write(hs->ng)) {
    hs->dead = 1;
    d_close(d, 1);
  }
}

static void h2_free_session(struct dconn *d) {
  struct h2sess *hs = d->h2;
  if (!hs) return;
  hs->dead = 1;
  while (!up_link_empty(&hs->streams)) {
    struct h2stream *s = container_of(hs->streams.next, struct h2stream, link);
    s->closed = 1;
    if (s->vd) {
      struct dconn *vd = s->vd;
      vd->h2s = NULL;
      s->vd = NULL;
      d_close(vd, 0);
    }
    h2_stream_free(s);
  }
  nghttp2_session_del(hs->ng);
  free(hs);
  d->h2 = NULL;
}

/* Bytes from the client of an h2 connection (nread < 0: end of input). */
static void h2_on_input(struct dconn *d, ssize_t nread, const char *data) {
  struct h2sess *hs = d->h2;
  if (nread < 0) {
    d_close(d, 0);
    return;
  }
  lazy_set(&d->timer, d->w->cfg->limits->idle_timeout_ms);
  hs->in_recv = 1;
  ssize_t rc = nghttp2_session_mem_recv(hs->ng, (const uint8_t *)data, (size_t)nread);
  hs->in_recv = 0;
  if (d->state == D_CLOSING) return;
  if (rc < 0) {
    const char *reason = rc == NGHTTP2_ERR_FLOODED ? "flood" : "protocol_error";
    uint32_t code = rc == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
    if (rc == NGHTTP2_ERR_BAD_CLIENT_MAGIC) reason = "bad_preface";
    LOG_DEBUG("h2_recv_failed", "client=%s error=%s", d->client, nghttp2_strerror((int)rc));
    h2_goaway(hs, code, reason);
    /* one last attempt to tell the client, then close */
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(hs->ng, &out)) > 0) buf_append(&d->out, out, (size_t)n);
    hs->dead = 1;
    d_close(d, 1);
    return;
  }
  h2_send(hs);
}

static void h2_on_parent_timer(struct dconn *d) {
  struct h2sess *hs = d->h2;
  if (!up_link_empty(&hs->streams)) {
    lazy_set(&d->timer, d->w->cfg->limits->idle_timeout_ms);
    return;
  }
  h2_goaway(hs, NGHTTP2_NO_ERROR, "idle");
  h2_send(hs);
  if (d->state != D_CLOSING) d_close(d, 1);
}

static void h2_drain(struct dconn *d) {
  h2_goaway(d->h2, NGHTTP2_NO_ERROR, "draining");
  h2_send(d->h2);
}

/* Turns d into an h2 connection. settings/len: an Upgrade's HTTP2-Settings
 * payload (NULL: not an upgrade). 0 or -1. */
static int h2_start(struct dconn *d) {
  struct worker *w = d->w;
  struct h2sess *hs = calloc(1, sizeof(*hs));
  if (!hs) return -1;
  hs->d = d;
  up_link_init(&hs->streams);
  hs->win_start = now_ms(w);
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    free(hs);
    return -1;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
  nghttp2_option *opt;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    free(hs);
    return -1;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
  nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
  int rc = nghttp2_session_server_new2(&hs->ng, cb, hs, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rc != 0) {
    free(hs);
    return -1;
  }
  uint32_t streams = w->cfg->h2_max_streams ? w->cfg->h2_max_streams : 100;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, w->cfg->limits->max_header_bytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(hs->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0) {
    nghttp2_session_del(hs->ng);
    free(hs);
    return -1;
  }
  d->h2 = hs;
  d->head_timer = 0;
  lazy_set(&d->timer, w->cfg->limits->idle_timeout_ms);
  return 0;
}

static int token_in(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i + tl <= n; i++) {
    if (strncasecmp(v + i, tok, tl) != 0) continue;
    int before_ok = i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t';
    size_t e = i + tl;
    int after_ok = e == n || v[e] == ',' || v[e] == ' ' || v[e] == '\t';
    if (before_ok && after_ok) return 1;
  }
  return 0;
}

/*
 * "Upgrade: h2c" with HTTP2-Settings on a plain connection, for a request
 * without a body: answers 101, turns d into an h2 connection and serves
 * the request as stream 1. Returns 1 when upgraded (the HTTP/1.1 exchange
 * does not start), 0 to serve the request as HTTP/1.1 (the Upgrade is then
 * dropped like any other).
 */
static int h2_try_upgrade(struct dconn *d, const struct h1_message *m) {
  if (!m->upgrade || d->https || d->virt || !d->w->cfg->h2c || d->h2) return 0;
  if (m->framing != H1_FRAMING_NONE && !(m->framing == H1_FRAMING_LENGTH && !m->content_length))
    return 0;
  const struct h1_header *settings = NULL;
  int want = 0;
  for (size_t i = 0; i < m->n_headers; i++) {
    const struct h1_header *h = &m->headers[i];
    if (h->name_len == 7 && strncasecmp(h->name, "upgrade", 7) == 0)
      want = token_in(h->value, h->value_len, "h2c");
    else if (h->name_len == 14 && strncasecmp(h->name, "http2-settings", 14) == 0)
      settings = h;
  }
  if (!want || !settings) return 0;
  uint8_t payload[512];
  ssize_t plen = base64_decode(settings->value, settings->value_len, payload, sizeof(payload), 0);
  if (plen < 0 || plen % 6 != 0) return 0;
  if (h2_start(d) != 0) return 0;
  struct h2sess *hs = d->h2;
  int head = m->method == HTTP_HEAD;
  if (nghttp2_session_upgrade2(hs->ng, payload, (size_t)plen, head, NULL) != 0) {
    h2_free_session(d);
    return 0;
  }
  buf_puts(&d->out,
           "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  struct h2stream *s = calloc(1, sizeof(*s));
  if (!s) return 1; /* the stream gets no answer; the session goes on */
  s->hs = hs;
  s->id = 1;
  s->head_request = head;
  up_link_insert(&hs->streams, &s->link);
  nghttp2_session_set_stream_user_data(hs->ng, 1, s);
  struct buf req = {0};
  buf_append(&req, m->method_str, m->method_len);
  buf_puts(&req, " ");
  buf_append(&req, m->target, m->target_len);
  buf_puts(&req, " HTTP/1.1\r\n");
  for (size_t i = 0; i < m->n_headers; i++) {
    const struct h1_header *h = &m->headers[i];
    if (is_conn_specific(h->name, h->name_len)) continue;
    buf_append(&req, h->name, h->name_len);
    buf_puts(&req, ": ");
    buf_append(&req, h->value, h->value_len);
    buf_puts(&req, "\r\n");
  }
  buf_puts(&req, "\r\n");
  if (h1_parser_init(&s->rp, H1_RESPONSE, d->w->cfg->limits, &rp_callbacks, s) == 0) {
    s->parser_ready = 1;
    s->vd = vd_new(d, s);
  }
  hs->in_recv = 1; /* no session output before the 101 is queued whole */
  if (s->vd) h2_feed(s, req.data, req.len);
  buf_free(&req);
  s->req_ended = 1;
  hs->in_recv = 0;
  if (!s->vd && !s->closed)
    nghttp2_submit_rst_stream(hs->ng, NGHTTP2_FLAG_NONE, 1, NGHTTP2_INTERNAL_ERROR);
  return 1;
}

/* A virtual dconn serving stream s of parent. */
/* The TLS connection a request arrived on (an h2 stream: its session's). */
static struct tls_conn *d_tls(struct dconn *d) {
  if (!d->virt) return d->tls;
  return d->h2s && d->h2s->hs ? d->h2s->hs->d->tls : NULL;
}

static struct dconn *vd_new(struct dconn *parent, struct h2stream *s) {
  struct worker *w = parent->w;
  struct dconn *vd = calloc(1, sizeof(*vd));
  if (!vd) return NULL;
  vd->w = w;
  if (h1_parser_init(&vd->parser, H1_REQUEST, w->cfg->limits, &w->dcb, vd) != 0) {
    free(vd);
    return NULL;
  }
  lazy_init(&w->loop, &vd->timer, vd, d_on_timer);
  vd->handles = 1;
  up_link_init(&vd->link);
  vd->h2s = s;
  vd->virt = 1;
  vd->https = parent->https;
  vd->close_after = 1; /* one request per stream */
  vd->reading = 1;
  memcpy(vd->client, parent->client, sizeof(vd->client));
  vd->client_port = parent->client_port;
  return vd;
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
  if (server == (uv_stream_t *)&w->tls_listener) {
    /* certificates as of now; the conn keeps this store to its end */
    struct tls_store *store = tls_store_current();
    int rc = store ? tls_conn_new(store, &d->tls) : TLS_ERR_CONFIG;
    tls_store_unref(store);
    if (rc != 0) {
      if (w->c_hs_failed) metrics_counter_inc(w->c_hs_failed);
      uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
      return;
    }
    d->https = 1;
  }
  d->w = w;
  if (h1_parser_init(&d->parser, H1_REQUEST, w->cfg->limits, &w->dcb, d) != 0) {
    tls_conn_free(d->tls);
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
  if (uv_tcp_getpeername(&d->tcp, (struct sockaddr *)&ss, &len) == 0) {
    addr_format_ip(&ss, d->client, sizeof(d->client));
    d->client_port = (uint16_t)addr_port(&ss);
  } else
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

static void w_close_listeners(struct worker *w) {
  if (w->listening) {
    uv_close((uv_handle_t *)&w->listener, NULL);
    w->listening = 0;
  }
  if (w->tls_listening) {
    uv_close((uv_handle_t *)&w->tls_listener, NULL);
    w->tls_listening = 0;
  }
}

static void w_close_all(struct worker *w) {
  w_close_listeners(w);
  while (!up_link_empty(&w->conns)) d_close(container_of(w->conns.next, struct dconn, link), 0);
  while (!up_link_empty(&w->uconns)) uc_close(container_of(w->uconns.next, struct uconn, wlink));
  if (w->h2pool) {
    uh2_pool_close(w->h2pool);
    w->h2pool = NULL;
  }
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
    w_close_listeners(w);
    up_pools_foreach(&w->pools, close_idle_ep, NULL);
    /* idle keep-alive connections go now; busy ones after their response */
    struct up_link *l = w->conns.next;
    while (l != &w->conns) {
      struct dconn *d = container_of(l, struct dconn, link);
      l = l->next;
      d->close_after = 1;
      if (d->h2)
        h2_drain(d);
      else if (!d->ex.active && d->in.len == 0 && !h1_parser_in_message(&d->parser))
        d_close(d, 0);
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

int worker_start(int id, const struct worker_config *cfg, int listen_fd, int tls_listen_fd,
                 struct worker **out) {
  struct worker *w = calloc(1, sizeof(*w));
  if (!w) return -ENOMEM;
  w->id = id;
  w->cfg = cfg;
  w->listen_fd = listen_fd;
  w->tls_listen_fd = tls_listen_fd;
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
  uv_tcp_init(&w->loop, &w->tls_listener);
  w->tls_listener.data = w;
  int rc = uv_tcp_open(&w->listener, listen_fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
  if (rc == 0 && tls_listen_fd >= 0) {
    rc = uv_tcp_open(&w->tls_listener, tls_listen_fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&w->tls_listener, 1024, on_connection);
  }
  if (rc != 0) {
    LOG_ERROR("listen_failed", "worker=%d error=%s", id, uv_strerror(rc));
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->tls_listener, NULL);
    uv_close((uv_handle_t *)&w->async, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    up_pools_free(&w->pools);
    free(w);
    return rc;
  }
  w->listening = 1;
  if (tls_listen_fd >= 0)
    w->tls_listening = 1;
  else
    uv_close((uv_handle_t *)&w->tls_listener, NULL);
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
