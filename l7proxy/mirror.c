/*
 * mirror — one TCP connection per copy (see mirror.h). States: connecting
 * → writing (head, then body as it comes) → reading (discarding until the
 * mirror closes) → closed. One uv_write in flight at a time; what is not
 * written yet waits in `out`. A timer bounds the whole copy.
 */
#include "l7proxy/mirror.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/headers.h"
#include "l7proxy/worker_internal.h"

struct mirror {
  struct side_task task; /* in worker->side while open */
  struct worker *w;
  uv_tcp_t tcp;
  uv_connect_t conn;
  uv_timer_t timer;
  uv_write_t wr;
  struct buf out; /* not yet handed to uv_write */
  char *inflight; /* the buffer of the uv_write in flight */
  int connected;  /* the connection is up */
  int writing;    /* a uv_write is in flight */
  int complete;   /* the whole request is in out (or written) */
  int detached;   /* the exchange let go: no more body will come */
  int closing;    /* handles are closing; free after both close */
  int handles;    /* open handles (tcp, timer) */
  int counted;    /* sent/dropped counted */
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

struct mirror *mirror_start(struct worker *w, const struct l7_cluster *c,
                            const struct msg_head *up) {
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
  m_flush(m);
}
