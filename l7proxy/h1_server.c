/*
 * h1_server — downstream connections and the HTTP/1.1 codec (see
 * h1_server.h). Bytes flow: socket → (PROXY header) → (TLS) → d_on_plain →
 * either the h2 session or the llhttp parser → the exchange; the exchange
 * answers through h1_ops into d->out, flushed after each event.
 */
#include "l7proxy/h1_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/client_hello.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/proxy_proto.h"
#include "l7proxy/h1_client.h"
#include "l7proxy/h2_server.h"
#include "l7proxy/headers.h"
#include "l7proxy/passthrough.h"
#include "l7proxy/tls.h"

#define LINGER_MAX_BYTES (1024 * 1024)

static void d_process(struct dconn *d);
static void d_update_reading(struct dconn *d);
static void d_arm_timer(struct dconn *d);
static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static const struct ex_downstream_ops h1_ops;

/* ---- writing ------------------------------------------------------------ */

/* TCP_NODELAY once it can matter, as nginx does: a response written in one
 * piece on a connection that then closes never waits for Nagle, so a
 * Connection: close request costs no setsockopt; a kept-alive connection,
 * a streamed body, TLS and HTTP/2 get it. */
static void d_nodelay(struct dconn *d) {
  if (d->nodelay) return;
  d->nodelay = 1;
  uv_tcp_nodelay(&d->tcp, 1);
}

static void d_write_done(void *arg);

int dconn_write_out(struct dconn *d) {
  struct buf *b = &d->out;
  int rc = 0;
  if (d->tls) {
    if (b->len > 0 && tls_conn_write(d->tls, b->data, b->len) < 0) rc = UV_EPROTO;
    b->len = 0;
    int frc = worker_tls_flush((uv_stream_t *)&d->tcp, d->tls, d_write_done, d);
    rc = rc ? rc : frc;
  } else if (b->len) {
    rc = worker_write((uv_stream_t *)&d->tcp, b->data, b->len, d_write_done, d);
    b->len = 0;
  }
  /* a buffer that grew for a large head is not kept around */
  if (b->cap > 4 * READ_BUF) buf_free(b);
  return rc;
}

size_t dconn_queued(struct dconn *d) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) + d->out.len;
}

/* The socket took what was queued: the upstream may be read again. */
static void d_write_done(void *arg) {
  struct dconn *d = arg;
  if (d->state == D_CLOSING) return;
  if (d->h2) {
    h2s_send(d);
    return;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) >= LOW_WATER) return;
  if (d->state == D_TUNNEL && d->tunnel)
    h1c_tunnel_resume(d->tunnel);
  else
    ex_resume(&d->ex);
}

static void d_flush(struct dconn *d) {
  if (d->state == D_CLOSING) return;
  if (d->h2) {
    h2s_send(d);
    return;
  }
  if (dconn_write_out(d) != 0) {
    dconn_close(d, 0);
    return;
  }
  d_write_done(d); /* written at once: no callback will release back-pressure */
}

/* ---- closing ------------------------------------------------------------ */

static void d_freed(uv_handle_t *h) {
  struct dconn *d = h->data;
  if (--d->handles > 0) return;
  struct worker *w = d->w;
  ex_free(&d->ex);
  h1_parser_free(&d->parser);
  buf_free(&d->in);
  buf_free(&d->out);
  tls_conn_free(d->tls);
  if (d->evicted) w->n_evicting--;
  free(d);
  atomic_fetch_sub(&w->n_conns, 1);
  if (w->g_active) metrics_gauge_add(w->g_active, -1);
  worker_check_drained(w);
}

/*
 * Lingering close: after a response that ends the connection (an error
 * status, Connection: close), the write side is shut down and whatever
 * the client still sends is read and dropped for a moment. Closing with
 * unread bytes would make the kernel answer RST, and a client still
 * sending its body could lose the response it is about to read.
 */
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
  if (status < 0 || uv_read_start((uv_stream_t *)&d->tcp, worker_alloc_cb, d_linger_read) != 0)
    d_linger_end(d);
}

void dconn_close(struct dconn *d, int graceful) {
  if (d->state == D_CLOSING) return;
  d->state = D_CLOSING;
  up_link_remove(&d->link);
  up_link_remove(&d->idle_link);
  ex_cancel(&d->ex);
  if (d->tunnel) {
    h1c_close(d->tunnel);
    d->tunnel = NULL;
  }
  if (d->h2) h2s_free(d); /* what it last queued is in d->out */
  uv_read_stop((uv_stream_t *)&d->tcp);
  if (d->tls) {
    /* the alert of a failed handshake, or the rest of the response and a
     * close_notify */
    if (graceful && d->out.len && tls_conn_handshake_done(d->tls))
      tls_conn_write(d->tls, d->out.data, d->out.len);
    d->out.len = 0;
    if (graceful && tls_conn_handshake_done(d->tls)) tls_conn_shutdown(d->tls);
    if (!d->w->stopping) worker_tls_flush((uv_stream_t *)&d->tcp, d->tls, NULL, NULL);
  }
  if (graceful && !d->w->stopping) {
    if (d->out.len) worker_write((uv_stream_t *)&d->tcp, d->out.data, d->out.len, NULL, NULL);
    d->out.len = 0;
    /* Everything the client sent was read and everything for it is in the
     * kernel: close at once, as nginx's lingering heuristic does (no
     * shutdown, no lingering read: two system calls and an epoll change
     * fewer per Connection: close request). */
    if (!d->must_linger && !d->tls && d->in.len == 0 && !h1_parser_in_message(&d->parser) &&
        uv_stream_get_write_queue_size((uv_stream_t *)&d->tcp) == 0) {
      d_linger_end(d);
      return;
    }
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req) {
      req->data = d;
      if (uv_shutdown(req, (uv_stream_t *)&d->tcp, d_shutdown_cb) == 0) {
        d->timer.expired = d_linger_expired;
        lazy_set(&d->timer, d->w->cfg->limits->linger_timeout_ms);
        return;
      }
      free(req);
    }
  }
  d_linger_end(d);
}

/* ---- the idle list ------------------------------------------------------- */

/* Nothing would be lost by closing d now: no exchange, no byte of a next
 * request read (nor buffered, nor a PROXY header begun, nor a TLS
 * handshake begun); HTTP/2: no open stream. */
static int d_is_idle(const struct dconn *d) {
  if (d->state != D_OPEN) return 0;
  if (d->h2) return h2s_idle(d);
  if (d->ex.active || d->in.len > 0 || d->pp_pending == 2 || h1_parser_in_message(&d->parser))
    return 0;
  return !d->tls || d->hs_done || !d->tls_rx;
}

void dconn_idle_update(struct dconn *d) {
  int listed = d->idle_link.next != &d->idle_link;
  int idle = d_is_idle(d);
  if (idle && !listed)
    up_link_insert(&d->w->idle, &d->idle_link); /* the front: newest */
  else if (!idle && listed)
    up_link_remove(&d->idle_link);
}

int dconn_evict_idle(struct worker *w) {
  if (up_link_empty(&w->idle)) return 0;
  struct dconn *d = container_of(w->idle.prev, struct dconn, idle_link);
  LOG_DEBUG("connection_evicted", "client=%s proto=%s requests=%d", d->client, d->h2 ? "h2" : "h1",
            d->n_requests);
  d->evicted = 1;
  if (d->h2)
    h2s_evict(d);
  else if (d->tls && d->hs_done)
    tls_conn_shutdown(d->tls); /* close_notify, flushed by the close */
  dconn_close(d, 0);
  return 1;
}

/* ---- timers ------------------------------------------------------------- */

static void d_on_timer(struct lazy_timer *t) {
  struct dconn *d = t->t.data;
  if (d->h2) {
    h2s_timer(d);
    return;
  }
  if (d->state == D_TUNNEL) { /* idle both ways for tunnel_idle_timeout */
    LOG_DEBUG("tunnel_idle_timeout", "client=%s", d->client);
    dconn_close(d, 0);
    return;
  }
  if (d->ex.active) {
    /* the client stopped sending the body it announced: 408, never the
     * upstream's fault (no outlier report) */
    if (d->ex.req_complete || d->bp_stopped) return;
    d->close_after = d->must_linger = 1;
    ex_body_timeout(&d->ex);
    return;
  }
  if (d->tls && !tls_conn_handshake_done(d->tls)) {
    LOG_DEBUG("tls_handshake_timeout", "client=%s", d->client);
    if (d->w->c_hs_failed) metrics_counter_inc(d->w->c_hs_failed);
    dconn_close(d, 0);
    return;
  }
  if (h1_parser_in_message(&d->parser) || d->in.len > 0 || d->pp_pending == 2) {
    d->close_after = d->must_linger = 1;
    ex_error(&d->ex, 408);
  } else {
    dconn_close(d, 0);
  }
}

/* The timer for the connection's state: TLS handshake, request head,
 * request body, keep-alive idle or tunnel idle. */
static void d_arm_timer(struct dconn *d) {
  if (d->state == D_CLOSING || d->h2) return;
  const struct l7_limits *l = d->w->cfg->limits;
  dconn_idle_update(d);
  if (d->state == D_TUNNEL) {
    d->head_timer = 0;
    lazy_set(&d->timer, l->tunnel_idle_timeout_ms);
    return;
  }
  if (d->ex.active) {
    /* The request body is the client's to send: while it is due (and the
     * proxy is not the one holding it back) the body timeout runs. */
    d->head_timer = 0;
    lazy_set(&d->timer, d->ex.req_complete || d->bp_stopped ? 0 : l->body_timeout_ms);
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

static void d_update_reading(struct dconn *d) {
  if (d->state == D_CLOSING || d->h2) return;
  /* Reading goes on while a pipelined request waits (no epoll change per
   * request), up to IN_MAX bytes of unparsed input. */
  int want = !d->bp_stopped && !d->peer_eof && d->in.len < IN_MAX;
  if (d->ex.active && d->ex.upgrade && d->state != D_TUNNEL && d->ex.req_complete) want = 0;
  if (want && !d->reading) {
    if (uv_read_start((uv_stream_t *)&d->tcp, worker_alloc_cb, d_on_read) == 0) d->reading = 1;
  } else if (!want && d->reading) {
    uv_read_stop((uv_stream_t *)&d->tcp);
    d->reading = 0;
  }
}

/* ---- the exchange's answer, as HTTP/1.1 ---------------------------------- */

static int h1_head(struct exchange *ex, const struct msg_head *h) {
  struct dconn *d = ex->ds_ctx;
  int close = d->close_after || !d->req_keep_alive || d->w->draining;
  int upgrade = h->status == 101 && ex->upgrade;
  if (ex->upgrade && !upgrade) close = 1; /* the client wanted another protocol */
  struct headers_h1_framing f = {.framing = H1_FRAMING_NONE};
  int bodyless_status = h->status == 204 || h->status < 200;
  if (upgrade) {
    f.framing = H1_FRAMING_NONE;
  } else if (h->content_length >= 0 && !bodyless_status) {
    f.framing = H1_FRAMING_LENGTH; /* kept on HEAD and 304: it describes the representation */
    f.content_length = (uint64_t)h->content_length;
  } else if (h->end_stream) {
    f.framing = H1_FRAMING_NONE;
  } else if (d->http10) {
    f.framing = H1_FRAMING_CLOSE;
    close = 1;
  } else {
    f.framing = H1_FRAMING_CHUNKED;
  }
  if (ex->local && !ex->req_complete) /* the rest of the body is not read */
    close = d->must_linger = 1;
  f.close = close && !upgrade;
  f.keep_alive = d->http10 && !close;
  f.upgrade = upgrade;
  if (close) d->close_after = 1;
  d->down_framing = h->end_stream ? H1_FRAMING_NONE : f.framing;
  size_t before = d->out.len;
  if (headers_h1_response(&d->out, h, &f) != 0) return -1;
  ex->bytes_down += d->out.len - before;
  return 0; /* written with the first body bytes, or at the event's end (flush) */
}

static int h1_data(struct exchange *ex, const char *p, size_t n) {
  struct dconn *d = ex->ds_ctx;
  if (d->down_framing == H1_FRAMING_NONE || d->state == D_CLOSING) return 0;
  if (d->down_framing == H1_FRAMING_CHUNKED) {
    buf_put_hex(&d->out, n);
    buf_append(&d->out, "\r\n", 2);
  }
  if (buf_append(&d->out, p, n) != 0) return -1;
  if (d->down_framing == H1_FRAMING_CHUNKED) buf_append(&d->out, "\r\n", 2);
  if (d->out.len >= READ_BUF) {
    d_nodelay(d); /* a streamed body: the next piece must not wait for an ACK */
    d_flush(d);
  }
  return 0;
}

static void h1_end(struct exchange *ex, const struct msg_header *t, size_t n) {
  struct dconn *d = ex->ds_ctx;
  if (d->state == D_CLOSING) return;
  if (d->down_framing == H1_FRAMING_CHUNKED) {
    buf_puts(&d->out, "0\r\n");
    for (size_t i = 0; i < n; i++) {
      if (headers_is_hop_by_hop(t[i].name, t[i].name_len)) continue;
      buf_append(&d->out, t[i].name, t[i].name_len);
      buf_append(&d->out, ": ", 2);
      buf_append(&d->out, t[i].value, t[i].value_len);
      buf_append(&d->out, "\r\n", 2);
    }
    buf_append(&d->out, "\r\n", 2);
  }
  d->down_framing = H1_FRAMING_NONE;
  if (ex->local && !ex->req_complete)
    ex_abandon_body(ex); /* closes: nothing more is read */
  else
    d_flush(d);
}

static int h1_over_high(struct exchange *ex) {
  return dconn_queued(ex->ds_ctx) > HIGH_WATER;
}

static void h1_finished(struct exchange *ex) {
  struct dconn *d = ex->ds_ctx;
  if (d->state != D_OPEN) return;
  if (d->close_after || d->w->draining) {
    dconn_close(d, 1);
    return;
  }
  d_nodelay(d); /* kept alive: the next responses must not wait for ACKs */
  d_flush(d);
  if (d->in_process || d->state != D_OPEN) return; /* d_process resumes the parser */
  if (d->paused) {
    d->paused = 0;
    h1_parser_resume(&d->parser);
  }
  d->bp_stopped = 0;
  d_arm_timer(d);
  if (d->in.len > 0 || d->peer_eof) d_process(d);
  if (d->state == D_OPEN) {
    d_update_reading(d);
    d_flush(d);
  }
}

static void h1_abort(struct exchange *ex) {
  struct dconn *d = ex->ds_ctx;
  d->close_after = 1;
  d_flush(d);
  dconn_close(d, 1);
}

static void tunnel_from_upstream(void *ctx, ssize_t nread, const char *p) {
  struct dconn *d = ctx;
  if (nread < 0) {
    d_flush(d);
    dconn_close(d, 1);
    return;
  }
  buf_append(&d->out, p, (size_t)nread);
  lazy_set(&d->timer, d->w->cfg->limits->tunnel_idle_timeout_ms); /* not idle */
  d_flush(d);
  if (d->state == D_TUNNEL && d->tunnel && dconn_queued(d) > HIGH_WATER) {
    uv_read_stop((uv_stream_t *)&d->tunnel->tcp);
    d->tunnel->bp_stopped = 1;
  }
}

static void tunnel_upstream_drained(void *ctx) {
  struct dconn *d = ctx;
  if (d->bp_stopped && d->state == D_TUNNEL) {
    d->bp_stopped = 0;
    d_update_reading(d);
  }
}

/* 101 from upstream: bytes are spliced both ways from now on. */
static void h1_tunnel(struct exchange *ex, struct uconn *uc, const char *extra, size_t n) {
  struct dconn *d = ex->ds_ctx;
  d->state = D_TUNNEL;
  d->tunnel = uc;
  uc->tunnel_read = tunnel_from_upstream;
  uc->tunnel_drain = tunnel_upstream_drained;
  uc->tunnel_ctx = d;
  if (n) buf_append(&d->out, extra, n);
  if (d->in.len) {
    h1c_tunnel_write(uc, d->in.data, d->in.len);
    buf_reset(&d->in);
  }
  d->paused = 0;
  lazy_set(&d->timer, d->w->cfg->limits->tunnel_idle_timeout_ms);
  d_flush(d);
  d_update_reading(d);
}

static void h1_resume_body(struct exchange *ex) {
  struct dconn *d = ex->ds_ctx;
  if (!d->bp_stopped || d->state != D_OPEN) return;
  d->bp_stopped = 0;
  d_update_reading(d);
  d_arm_timer(d);
}

static void h1_flush(struct exchange *ex) {
  struct dconn *d = ex->ds_ctx;
  if (!ex->resp_complete) d_nodelay(d); /* more pieces of this response follow */
  d_flush(d);
}

static const struct ex_downstream_ops h1_ops = {h1_head,      h1_data,        h1_end,
                                                h1_over_high, h1_finished,    h1_abort,
                                                h1_tunnel,    h1_resume_body, h1_flush};

/* ---- request parser callbacks -------------------------------------------- */

static int d_on_head(void *ud, const struct h1_message *m) {
  struct dconn *d = ud;
  if (m->upgrade && h2s_try_upgrade(d, m)) return 0;
  d->n_requests++;
  d->head_timer = 0;
  lazy_set(&d->timer, 0);
  d->req_keep_alive = m->keep_alive;
  d->http10 = m->http_minor == 0;
  /* after an Upgrade request the connection is a tunnel or it closes */
  if (!m->keep_alive || d->w->draining || m->upgrade) d->close_after = 1;
  if (m->upgrade) d->must_linger = 1; /* tunnel bytes may follow a refused upgrade */
  struct msg_head head;
  h1_message_head(m, d->https ? "https" : "http", &head);
  ex_begin(&d->ex, &head);
  struct exchange *ex = &d->ex;
  if (!ex->active || ex->local || d->state != D_OPEN) return 0;
  h1_parser_set_body_limit(&d->parser, ex->body_limit);
  if (ex->expect_continue && !ex->req_complete) buf_puts(&d->out, "HTTP/1.1 100 Continue\r\n\r\n");
  return 0;
}

static int d_on_body(void *ud, const char *p, size_t n) {
  struct dconn *d = ud;
  int rc = ex_body(&d->ex, p, n);
  if (rc > 0) d->bp_stopped = 1;
  return rc < 0 ? -1 : 0;
}

static void d_on_complete(void *ud) {
  struct dconn *d = ud;
  ex_body_end(&d->ex, NULL, 0);
}

static const struct h1_callbacks d_callbacks = {d_on_head, d_on_body, d_on_complete};

/* ---- downstream input ---------------------------------------------------- */

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
    d->ex.client_port = (uint16_t)addr_port(&info.src);
  }
  buf_consume(&d->in, (size_t)rc);
  d->pp_pending = 0;
  return 1;
}

/* The client preface begins (a broken one too: "PRI * HTTP/2.0" is not
 * HTTP/1.1, and nghttp2 answers a bad rest with GOAWAY). */
static int is_preface_start(const char *p, size_t n) {
  size_t k = n < 14 ? n : 14;
  return k >= 4 && memcmp(p, H2_PREFACE, k) == 0;
}

/* Runs the parser over d->in until it needs more input or pauses. */
static void d_process(struct dconn *d) {
  d->in_process = 1;
  while (d->state == D_OPEN && d->in.len > 0 && !d->paused && !d->h2) {
    if (d->pp_pending) {
      int rc = d_proxy_header(d);
      if (rc < 0) {
        dconn_close(d, 0);
        break;
      }
      if (rc == 0) break;
      /* h2c by prior knowledge behind a PROXY header */
      if (d->in.len && d->n_requests == 0 && !d->https && d->w->cfg->h2c &&
          is_preface_start(d->in.data, d->in.len)) {
        if (h2s_start(d) != 0) dconn_close(d, 0);
        break; /* d_on_plain hands d->in to the session */
      }
      continue;
    }
    if (d->ex.active && d->ex.upgrade && d->ex.req_complete) break; /* tunnel bytes wait */
    size_t used = 0;
    enum h1_result r = h1_parser_feed(&d->parser, d->in.data, d->in.len, &used);
    buf_consume(&d->in, used);
    if (d->state != D_OPEN || d->h2) break;
    if (r == H1_ERROR) {
      int status = h1_parser_error_status(&d->parser);
      LOG_DEBUG("bad_request", "client=%s status=%d reason=%s", d->client, status,
                log_q(h1_parser_error_reason(&d->parser)));
      d->close_after = d->must_linger = 1;
      ex_error(&d->ex, status);
      if (d->state == D_OPEN) dconn_close(d, 1);
      break;
    }
    if (r == H1_MESSAGE_END) {
      if (!d->ex.active) { /* answered already: on to the next request */
        h1_parser_resume(&d->parser);
        continue;
      }
      d->paused = 1;
    }
    if (r == H1_UPGRADE) break;
  }
  d->in_process = 0;
  if (d->state == D_OPEN && !d->h2 && d->peer_eof && !d->ex.active &&
      (d->in.len == 0 || !d->paused)) {
    dconn_close(d, 1); /* answered all the half-closed client asked for */
    return;
  }
  if (d->state == D_OPEN) d_arm_timer(d);
}

/* Plain bytes from the client (decrypted on HTTPS), or nread < 0 for the
 * end of input. */
static void d_on_plain(struct dconn *d, ssize_t nread, const char *base) {
  if (d->h2) {
    h2s_input(d, nread, base);
    return;
  }
  if (nread > 0 && !d->https && d->w->cfg->h2c && d->n_requests == 0 && d->in.len == 0 &&
      !d->pp_pending && !h1_parser_in_message(&d->parser) &&
      is_preface_start(base, (size_t)nread)) {
    /* h2c by prior knowledge: the client preface instead of a request */
    if (h2s_start(d) != 0) {
      dconn_close(d, 0);
      return;
    }
    h2s_input(d, nread, base);
    return;
  }
  if (nread < 0) {
    if (d->state == D_TUNNEL) {
      dconn_close(d, 0);
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
    dconn_close(d, 0);
    return;
  }
  if (d->state == D_TUNNEL) {
    if (!d->tunnel) {
      dconn_close(d, 0);
      return;
    }
    lazy_set(&d->timer, d->w->cfg->limits->tunnel_idle_timeout_ms); /* not idle */
    if (h1c_tunnel_write(d->tunnel, base, (size_t)nread)) d->bp_stopped = 1;
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
      if (rest.len) h2s_input(d, (ssize_t)rest.len, rest.data);
      if (d->state != D_CLOSING) h2s_send(d);
      return;
    }
    if (rest.len > 0 && d->state != D_CLOSING && buf_append(&d->in, rest.data, rest.len) != 0) {
      dconn_close(d, 0);
      return;
    }
  } else {
    if (buf_append(&d->in, base, (size_t)nread) != 0) {
      dconn_close(d, 0);
      return;
    }
    d_process(d);
    if (d->h2 && d->state != D_CLOSING) { /* upgraded or prior knowledge: the rest is h2 */
      struct buf rest = d->in;
      memset(&d->in, 0, sizeof(d->in));
      if (rest.len) h2s_input(d, (ssize_t)rest.len, rest.data);
      buf_free(&rest);
      if (d->state != D_CLOSING) h2s_send(d);
      return;
    }
  }
  if (d->state != D_OPEN) return;
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
    if (h2s_start(d) != 0) dconn_close(d, 0);
    return;
  }
  d_arm_timer(d);
}

/* Ciphertext from the client: decrypt and run the plaintext through. */
static void d_on_tls_read(struct dconn *d, const char *data, size_t n) {
  struct worker *w = d->w;
  if (tls_conn_feed(d->tls, data, n) != 0) {
    dconn_close(d, 0);
    return;
  }
  for (;;) {
    int r = tls_conn_read(d->tls, w->pbuf, sizeof(w->pbuf));
    d_tls_handshake_check(d);
    if (d->state == D_CLOSING) return;
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
    dconn_close(d, 0); /* flushes the alert */
    return;
  }
  if (d->state == D_CLOSING) return;
  if (d->h2) {
    h2s_send(d);
    return;
  }
  if (worker_tls_flush((uv_stream_t *)&d->tcp, d->tls, d_write_done, d) != 0) dconn_close(d, 0);
}

/*
 * TLS passthrough (Gateway API TLSRoute): the ClientHello's server name decides, before any TLS
 * work, whether the connection is spliced to a backend (passthrough.c) or terminated here. The
 * bytes read so far (in d->in) go to whichever takes the connection.
 */
static void d_peek_hello(struct dconn *d) {
  char sni[256];
  enum client_hello_result r =
      client_hello_sni((const uint8_t *)d->in.data, d->in.len, sni, sizeof(sni));
  if (r == CLIENT_HELLO_NEED_MORE && d->in.len <= CLIENT_HELLO_MAX + 5 * 64) return;
  d->peek = 0;
  const struct l7_passthrough *pt = NULL;
  struct l7_snapshot *snap = worker_snapshot(d->w);
  if (r == CLIENT_HELLO_SNI) pt = l7_snapshot_passthrough(snap, sni, strlen(sni));
  if (pt) {
    /* the tunnel takes a duplicate of the socket; this connection closes without a byte */
    uv_os_fd_t fd;
    int dup_fd = uv_fileno((uv_handle_t *)&d->tcp, &fd) == 0 ? dup(fd) : -1;
    LOG_DEBUG("passthrough", "client=%s sni=%s host=%s", d->client, log_q(sni), log_q(pt->name));
    if (dup_fd < 0 || passthrough_start(d->w, dup_fd, snap, pt, d->in.data, d->in.len) != 0) {
      if (dup_fd >= 0) close(dup_fd);
    }
    tls_conn_free(d->tls);
    d->tls = NULL;
    d->ex.tls = NULL;
    d->in.len = 0;
    dconn_close(d, 0);
    return;
  }
  struct buf rest = d->in; /* terminated here as usual */
  memset(&d->in, 0, sizeof(d->in));
  if (rest.len) d->tls_rx = 1; /* the handshake begins (not idle: h1_server.h) */
  if (rest.len) d_on_tls_read(d, rest.data, rest.len);
  buf_free(&rest);
}

static void d_on_read_bytes(struct dconn *d, ssize_t nread, const uv_buf_t *buf) {
  if (d->tls && nread > 0 && d->pp_pending) {
    /* the PROXY header comes before the TLS bytes */
    if (buf_append(&d->in, buf->base, (size_t)nread) != 0) {
      dconn_close(d, 0);
      return;
    }
    int rc = d_proxy_header(d);
    if (rc < 0) {
      dconn_close(d, 0);
      return;
    }
    if (rc == 0) return;
    if (d->peek) { /* the ClientHello follows the PROXY header */
      d_peek_hello(d);
      return;
    }
    struct buf rest = d->in;
    memset(&d->in, 0, sizeof(d->in));
    if (rest.len) d->tls_rx = 1; /* the handshake begins behind the header */
    if (rest.len) d_on_tls_read(d, rest.data, rest.len);
    buf_free(&rest);
    return;
  }
  if (d->tls && nread > 0 && d->peek) {
    if (buf_append(&d->in, buf->base, (size_t)nread) != 0) {
      dconn_close(d, 0);
      return;
    }
    d_peek_hello(d);
    return;
  }
  if (d->tls && nread > 0) {
    d_on_tls_read(d, buf->base, (size_t)nread);
    return;
  }
  d_on_plain(d, nread, nread > 0 ? buf->base : NULL);
}

static void d_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct dconn *d = s->data;
  if (nread == 0) return;
  if (nread > 0 && d->tls && !d->pp_pending) d->tls_rx = 1;
  d_on_read_bytes(d, nread, buf);
  if (d->state == D_OPEN) dconn_idle_update(d);
}

/* ---- accept, drain -------------------------------------------------------- */

void dconn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer, int https) {
  /* at the limit, an idle connection makes room (evicted ones no longer
   * hold a descriptor, only a struct until their close callbacks) */
  if (w->draining || (atomic_load(&w->n_conns) - w->n_evicting >= w->cfg->limits->max_connections &&
                      !worker_make_room(w, 0))) {
    close(fd);
    return;
  }
  struct dconn *d = calloc(1, sizeof(*d));
  if (!d) {
    close(fd);
    return;
  }
  uv_tcp_init(&w->loop, &d->tcp);
  d->tcp.data = d;
  if (uv_tcp_open(&d->tcp, fd) != 0) {
    close(fd); /* not the handle's: uv_tcp_open failed */
    uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
    return;
  }
  if (https) {
    /* certificates as of now (the snapshot's generation); the conn keeps
     * this store to its end */
    struct l7_snapshot *snap = l7_snapshot_current();
    struct tls_store *store = l7_snapshot_tls(snap);
    int rc = store ? tls_conn_new(store, &d->tls) : TLS_ERR_CONFIG;
    struct tls_client_auth_source src;
    if (rc == 0 && l7_snapshot_client_auth_source(snap, &src)) /* some host asks for one */
      tls_conn_set_client_auth(d->tls, &src);
    l7_snapshot_unref(snap);
    if (rc != 0) {
      if (w->c_hs_failed) metrics_counter_inc(w->c_hs_failed);
      uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
      return;
    }
    d->https = 1;
    /* read the ClientHello first only when some host is passed through */
    d->peek = l7_snapshot_n_passthrough(worker_snapshot(w)) > 0;
  }
  d->w = w;
  if (h1_parser_init(&d->parser, H1_REQUEST, w->cfg->limits, &d_callbacks, d) != 0) {
    tls_conn_free(d->tls);
    uv_close((uv_handle_t *)&d->tcp, (uv_close_cb)free);
    return;
  }
  lazy_init(&w->loop, &d->timer, d, d_on_timer);
  d->handles = 2;
  atomic_fetch_add(&w->n_conns, 1);
  if (w->g_active) metrics_gauge_add(w->g_active, 1);
  up_link_insert(&w->conns, &d->link);
  up_link_init(&d->idle_link);
  if (https) d_nodelay(d);
  uint16_t client_port = 0;
  if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
    addr_format_ip(peer, d->client, sizeof(d->client));
    client_port = (uint16_t)addr_port(peer);
  } else {
    snprintf(d->client, sizeof(d->client), "unknown");
  }
  ex_init(&d->ex, w, &h1_ops, d, d->client, d->https, 0);
  d->ex.client_port = client_port;
  d->ex.tls = d->tls;
  if (w->cfg->proxy_protocol) {
    d->pp_pending = 1;
    if (w->cfg->n_trusted) {
      int ok = 0;
      for (size_t i = 0; i < w->cfg->n_trusted && !ok; i++)
        ok = cidr_match(&w->cfg->trusted[i], peer);
      d->pp_pending = ok;
    }
  }
  d_arm_timer(d); /* puts it on the idle list: nothing read yet */
  d_update_reading(d);
}

void dconn_drain(struct dconn *d) {
  d->close_after = 1;
  if (d->h2)
    h2s_drain(d);
  else if (!d->ex.active && d->in.len == 0 && !h1_parser_in_message(&d->parser) &&
           d->state == D_OPEN)
    dconn_close(d, 0);
}
