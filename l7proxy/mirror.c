/*
 * mirror — one copy per request (see mirror.h).
 *
 * HTTP/1.1 clusters: one TCP connection per copy. States: connecting →
 * writing (head, then body as it comes) → reading (discarding until the
 * mirror closes) → closed. One uv_write in flight at a time; what is not
 * written yet waits in `out`. A timer bounds the whole copy.
 *
 * h2c and gRPC clusters: one stream on the worker's HTTP/2 upstream pool
 * (upstream_h2.h, the connections the exchange uses), so a copy costs a
 * stream, not a connection. The body goes through uh2_stream_write while
 * the stream's buffer stays under MIRROR_MAX_BUFFER; the answer is read
 * and dropped; uh2_stream_set_timeout bounds the copy. No uv handle of
 * its own: a cancelled stream runs no callback, a finished one runs
 * on_close once, and the copy is freed when both that and the exchange
 * are done with it.
 */
#include "l7proxy/mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/headers.h"
#include "l7proxy/upstream_h2.h"
#include "l7proxy/worker_internal.h"

struct mirror {
  struct side_task task; /* in worker->side while open */
  struct worker *w;
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_timer_t timer;
  uv_write_t wr;
  struct buf out;        /* not yet handed to uv_write */
  char *inflight;        /* the buffer of the uv_write in flight */
  int connected;         /* the connection is up */
  int writing;           /* a uv_write is in flight */
  int complete;          /* the whole request is in out (or written) */
  int detached;          /* the exchange let go: no more body will come */
  int closing;           /* handles are closing; free after both close */
  int handles;           /* open handles (tcp, timer) */
  int counted;           /* sent/dropped counted */
  struct uh2_stream *h2; /* an h2c/gRPC copy: its stream while open */
};

static __thread struct metrics_counter *c_sent, *c_dropped;
static __thread int counters_ready;

static void count(struct mirror *m, int sent) {
  if (m && m->counted) return;
  if (m) m->counted = 1;
  struct worker *w = m ? m->w : NULL;
  if (!counters_ready && w && w->cfg->metrics) {
    counters_ready = 1;
    c_sent = metrics_counter(w->cfg->metrics, "edge_l7_mirrored_requests_total",
                             "Request copies sent to mirror clusters (Gateway API RequestMirror).",
                             "result=\"sent\"");
    c_dropped = metrics_counter(w->cfg->metrics, "edge_l7_mirrored_requests_total",
                                "Request copies sent to mirror clusters (Gateway API "
                                "RequestMirror).",
                                "result=\"dropped\"");
  }
  if (sent && c_sent) metrics_counter_inc(c_sent);
  if (!sent && c_dropped) metrics_counter_inc(c_dropped);
}

static void m_free(struct mirror *m) {
  buf_free(&m->out);
  free(m->inflight);
  free(m);
}

/* Freed when both handles are closed AND the exchange let go (it may still feed a closed copy,
 * which ignores what it gets). */
static void m_closed(uv_handle_t *h) {
  struct mirror *m = h->data;
  if (--m->handles == 0 && m->detached) m_free(m);
}

/* Closes the copy (sent = it reached the mirror whole). Frees once both handles are closed;
 * the exchange may still hold the pointer until mirror_finish, so a detached flag decides. */
static void m_close(struct mirror *m, int sent) {
  if (m->closing) return;
  m->closing = 1;
  count(m, sent);
  up_link_remove(&m->task.link);
  if (m->handles == 0) {                 /* an HTTP/2 copy: no handle to close */
    if (m->h2) uh2_stream_cancel(m->h2); /* no callback after this */
    m->h2 = NULL;
    if (m->detached) m_free(m);
    return;
  }
  uv_timer_stop(&m->timer);
  uv_close((uv_handle_t *)&m->timer, m_closed);
  uv_close((uv_handle_t *)&m->tcp, m_closed);
}

static void m_task_close(struct side_task *t) {
  struct mirror *m = container_of(t, struct mirror, task);
  m->detached = 1; /* the worker stops: nobody feeds it any more */
  m_close(m, 0);
}

static void m_flush(struct mirror *m);

static void m_written(uv_write_t *wr, int status) {
  struct mirror *m = wr->data;
  m->writing = 0;
  free(m->inflight);
  m->inflight = NULL;
  if (m->closing) return;
  if (status < 0) {
    m_close(m, 0);
    return;
  }
  m_flush(m);
}

static void m_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  static __thread char sink[16384];
  *b = uv_buf_init(sink, sizeof(sink));
}

/* The mirror's answer is not wanted: read until it closes. */
static void m_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  struct mirror *m = s->data;
  if (n < 0) m_close(m, m->complete && !m->writing && m->out.len == 0);
}

static void m_flush(struct mirror *m) {
  if (!m->connected || m->writing || m->closing || m->out.len == 0) return;
  m->inflight = malloc(m->out.len);
  if (!m->inflight) {
    m_close(m, 0);
    return;
  }
  memcpy(m->inflight, m->out.data, m->out.len);
  uv_buf_t b = uv_buf_init(m->inflight, (unsigned)m->out.len);
  m->wr.data = m;
  buf_reset(&m->out);
  if (uv_write(&m->wr, (uv_stream_t *)&m->tcp, &b, 1, m_written) != 0) {
    free(m->inflight);
    m->inflight = NULL;
    m_close(m, 0);
    return;
  }
  m->writing = 1;
}

static void m_connected(uv_connect_t *c, int status) {
  struct mirror *m = c->data;
  if (m->closing) return;
  if (status < 0) {
    m_close(m, 0);
    return;
  }
  m->connected = 1;
  uv_read_start((uv_stream_t *)&m->tcp, m_alloc, m_read);
  m_flush(m);
}

static void m_timeout(uv_timer_t *t) {
  struct mirror *m = t->data;
  m_close(m, m->complete && !m->writing && m->out.len == 0);
}

/* ---- HTTP/2 copies -------------------------------------------------------------------- */

static void m_h2_headers(void *ud, int status, const struct uh2_header *h, size_t n) {
  (void)ud, (void)status, (void)h, (void)n;
}

static void m_h2_data(void *ud, const uint8_t *p, size_t n) {
  (void)ud, (void)p, (void)n;
}

static void m_h2_closed(void *ud, int err) {
  struct mirror *m = ud;
  m->h2 = NULL; /* gone: m_close must not cancel it */
  m_close(m, err == 0 && m->complete);
}

static const struct uh2_stream_cb m_h2_cb = {
    .on_headers = m_h2_headers, .on_data = m_h2_data, .on_close = m_h2_closed};

/* A copy over a stream of the worker's HTTP/2 pool; ep is the chosen endpoint. */
static struct mirror *m_h2_start(struct worker *w, const struct l7_cluster *c,
                                 const struct l7_endpoint *ep, const struct msg_head *up) {
  struct mirror tmp = {.w = w};
  if (!w->h2pool) {
    struct uh2_pool_config cfg = {.idle_timeout_ms = c->idle_timeout_ms};
    if (uh2_pool_new(&w->loop, &cfg, &w->h2pool) != 0) {
      count(&tmp, 0);
      return NULL;
    }
  }
  struct mirror *m = calloc(1, sizeof(*m));
  struct uh2_header *hv = malloc((up->n_headers + 5) * sizeof(*hv));
  if (!m || !hv) {
    free(m), free(hv);
    count(&tmp, 0);
    return NULL;
  }
  size_t k = 0;
  hv[k++] = (struct uh2_header){":method", 7, up->method_str, up->method_len};
  hv[k++] = (struct uh2_header){":scheme", 7, "http", 4};
  if (up->authority_len)
    hv[k++] = (struct uh2_header){":authority", 10, up->authority, up->authority_len};
  hv[k++] = (struct uh2_header){":path", 5, up->target, up->target_len};
  int has_te = 0;
  for (size_t i = 0; i < up->n_headers; i++) {
    const struct msg_header *h = &up->headers[i];
    if (headers_name_is(h->name, h->name_len, "upgrade") ||
        headers_name_is(h->name, h->name_len, "expect") ||
        headers_name_is(h->name, h->name_len, "connection"))
      continue; /* not in HTTP/2, or not for a copy nobody answers */
    has_te |= headers_name_is(h->name, h->name_len, "te");
    hv[k++] = (struct uh2_header){h->name, h->name_len, h->value, h->value_len};
  }
  if (c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC && !has_te)
    hv[k++] = (struct uh2_header){"te", 2, "trailers", 8};
  char key[300];
  snprintf(key, sizeof(key), "%s\n%s", c->name, ep->name);
  struct uh2_target t = {.key = key,
                         .addr = (const struct sockaddr *)&ep->addr,
                         .addrlen = ep->addrlen,
                         .connect_timeout_ms = c->connect_timeout_ms,
                         .idle_timeout_ms = c->idle_timeout_ms};
  m->w = w;
  m->complete = up->end_stream;
  int rc = uh2_stream_open(w->h2pool, &t, hv, k, up->end_stream, &m_h2_cb, m, &m->h2);
  free(hv);
  if (rc != 0) {
    free(m);
    count(&tmp, 0);
    return NULL;
  }
  uh2_stream_set_timeout(m->h2, MIRROR_TIMEOUT_MS);
  up_link_insert(&w->side, &m->task.link);
  m->task.close = m_task_close;
  return m;
}

struct mirror *mirror_start(struct worker *w, const struct l7_cluster *c,
                            const struct msg_head *up) {
  if (c && c->n_endpoints &&
      (c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C ||
       c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC))
    return m_h2_start(w, c, &c->endpoints[headers_rand64() % c->n_endpoints], up);
  int h1 = c && (c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_UNSPECIFIED ||
                 c->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1);
  struct mirror tmp = {.w = w};
  if (!h1 || c->n_endpoints == 0 || (up->content_length < 0 && !up->end_stream)) {
    count(&tmp, 0);
    return NULL;
  }
  struct mirror *m = calloc(1, sizeof(*m));
  struct msg_header *hs = malloc((up->n_headers + 1) * sizeof(*hs));
  if (!m || !hs) {
    free(m), free(hs);
    count(&tmp, 0);
    return NULL;
  }
  m->w = w;
  /* the same head, closed after one answer, never an upgrade or a 100-continue wait */
  size_t k = 0;
  for (size_t i = 0; i < up->n_headers; i++) {
    const struct msg_header *h = &up->headers[i];
    if (headers_name_is(h->name, h->name_len, "expect") ||
        headers_name_is(h->name, h->name_len, "connection") ||
        headers_name_is(h->name, h->name_len, "upgrade"))
      continue;
    hs[k++] = *h;
  }
  hs[k++] = (struct msg_header){"connection", 10, "close", 5};
  struct msg_head head = *up;
  head.headers = hs;
  head.n_headers = k;
  head.flags &= ~(unsigned)(MSG_F_UPGRADE | MSG_F_EXPECT_CONTINUE);
  int rc = headers_h1_request(&m->out, &head);
  free(hs);
  const struct l7_endpoint *ep = &c->endpoints[headers_rand64() % c->n_endpoints];
  if (rc != 0 || uv_tcp_init(&w->loop, &m->tcp) != 0) {
    buf_free(&m->out);
    free(m);
    count(&tmp, 0);
    return NULL;
  }
  m->tcp.data = m;
  uv_timer_init(&w->loop, &m->timer);
  m->timer.data = m;
  m->handles = 2;
  up_link_insert(&w->side, &m->task.link);
  m->task.close = m_task_close;
  m->complete = up->end_stream;
  m->conn.data = m;
  uv_timer_start(&m->timer, m_timeout, MIRROR_TIMEOUT_MS, 0);
  if (uv_tcp_connect(&m->conn, &m->tcp, (const struct sockaddr *)&ep->addr, m_connected) != 0)
    m_close(m, 0);
  return m;
}

void mirror_body(struct mirror *m, const char *p, size_t n) {
  if (!m || m->closing || m->complete) return;
  if (m->handles == 0) { /* HTTP/2: the stream's buffer is the bound */
    if (uh2_stream_buffered(m->h2) + n > MIRROR_MAX_BUFFER || uh2_stream_write(m->h2, p, n) != 0)
      m_close(m, 0);
    return;
  }
  if (m->out.len + n > MIRROR_MAX_BUFFER || buf_append(&m->out, p, n) != 0) {
    m_close(m, 0); /* the mirror cannot keep up: dropped, the client never waits */
    return;
  }
  m_flush(m);
}

void mirror_finish(struct mirror *m, int complete) {
  if (!m) return;
  m->detached = 1;
  if (m->closing) {
    if (m->handles == 0) m_free(m);
    return;
  }
  if (!complete) {
    m_close(m, 0);
    return;
  }
  m->complete = 1;
  if (m->handles == 0) {
    if (uh2_stream_end(m->h2) != 0) m_close(m, 0);
    return;
  }
  m_flush(m);
}
