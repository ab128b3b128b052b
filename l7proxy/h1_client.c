/*
 * h1_client — upstream HTTP/1.1 connections and their keep-alive pools
 * (see h1_client.h). The exchange's message is written with
 * headers_h1_request; response heads become messages for ex_up_head, the
 * body is de-chunked by the parser and passed on as it arrives, and the
 * socket stops being read while the client side is over its high mark.
 *
 * TLS clusters (https): the connection is U_CONNECTING until the TLS
 * handshake has verified the endpoint (the connect timeout covers both);
 * then every byte goes through uc->tls (l7proxy/tls.h, client side):
 * uc_flush encrypts, uc_on_read decrypts before the parser or a tunnel sees
 * anything. Circuit breakers: a new connection counts against the
 * cluster's max_connections until it closes, and against
 * max_pending_requests while a request waits for it.
 */
#include "l7proxy/h1_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/breaker.h"
#include "l7proxy/exchange.h"
#include "l7proxy/headers.h"
#include "l7proxy/tls.h"
#include "l7proxy/upstream_tls.h"

static void uc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void uc_freed(uv_handle_t *h) {
  struct uconn *uc = h->data;
  if (--uc->handles > 0) return;
  struct worker *w = uc->w;
  tls_conn_free(uc->tls);
  utls_ctx_unref(uc->tls_cfg);
  h1_parser_free(&uc->parser);
  buf_free(&uc->out);
  free(uc);
  worker_check_drained(w);
}

/* The request that waited for this connection is no longer waiting. */
static void uc_unpend(struct uconn *uc) {
  if (uc->pending) breaker_release(uc->brk, BREAKER_PENDING);
  uc->pending = 0;
}

void h1c_close(struct uconn *uc) {
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
  uc_unpend(uc);
  if (uc->brk) breaker_release(uc->brk, BREAKER_CONNECTIONS);
  uc->brk = NULL;
  uc->state = U_CLOSING;
  up_link_remove(&uc->wlink);
  lazy_set(&uc->timer, 0);
  uv_close((uv_handle_t *)&uc->timer.t, uc_freed);
  uv_close((uv_handle_t *)&uc->tcp, uc_freed);
}

static void uc_read_start(struct uconn *uc) {
  uv_read_start((uv_stream_t *)&uc->tcp, worker_alloc_cb, uc_on_read);
}

void h1c_release(struct uconn *uc, int reusable) {
  struct worker *w = uc->w;
  if (uc->state == U_CLOSING) return;
  uc->ex = NULL;
  if (!reusable || uc->state != U_ACTIVE || w->draining || w->stopping ||
      uc->ep->n_idle >= uc->max_idle || uc->out.len > 0 ||
      uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) > 0) {
    h1c_close(uc);
    return;
  }
  uc->state = U_IDLE;
  uc->ep->n_active--;
  uc->ep->n_idle++;
  if (w->g_up_active) metrics_gauge_add(w->g_up_active, -1);
  if (w->g_up_idle) metrics_gauge_add(w->g_up_idle, 1);
  up_link_insert(&uc->ep->idle, &uc->link);
  if (uc->bp_stopped) uc_read_start(uc); /* notice the peer closing while idle */
  uc->bp_stopped = 0;
  lazy_set(&uc->timer, uc->idle_timeout_ms);
}

size_t h1c_queued(struct uconn *uc) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) + uc->out.len;
}

static void uc_write_done(void *arg) {
  struct uconn *uc = arg;
  if (uc->state == U_CLOSING) return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) >= LOW_WATER) return;
  if (uc->ex)
    ex_up_drained(uc->ex);
  else if (uc->state == U_TUNNEL && uc->tunnel_drain)
    uc->tunnel_drain(uc->tunnel_ctx);
}

/* Writes what is queued; a failure fails the exchange (retryable when a
 * reused connection had not answered anything). */
static void uc_flush(struct uconn *uc) {
  if (uc->state != U_ACTIVE && uc->state != U_TUNNEL) return;
  if (uc->out.len == 0) return;
  int rc;
  if (uc->tls) {
    rc = tls_conn_write(uc->tls, uc->out.data, uc->out.len) < 0 ? UV_EPROTO : 0;
    if (rc == 0) rc = worker_tls_flush((uv_stream_t *)&uc->tcp, uc->tls, uc_write_done, uc);
  } else {
    rc = worker_write((uv_stream_t *)&uc->tcp, uc->out.data, uc->out.len, uc_write_done, uc);
  }
  uc->out.len = 0;
  if (uc->out.cap > 4 * READ_BUF) buf_free(&uc->out);
  if (rc != 0 && uc->ex) {
    ex_up_failed(uc->ex, 502, "upstream write failed", uc->reused && !uc->got_bytes, 0);
    return;
  }
}

static void uc_on_timer(struct lazy_timer *t) {
  struct uconn *uc = t->t.data;
  struct exchange *ex = uc->ex;
  if (!ex) {
    h1c_close(uc);
    return;
  }
  if (uc->state == U_CONNECTING) {
    ex_up_failed(ex, 504, "upstream connect timeout", 1, 1);
    return;
  }
  /* once the response streams, an idle upstream may be a client that
   * stopped reading (back-pressure): cut it, but do not blame the endpoint */
  ex_up_failed(ex, 504, "upstream response timeout", 0, !ex->resp_started);
}

void h1c_arm(struct uconn *uc, uint32_t ms) {
  struct exchange *ex = uc->ex;
  uint64_t t = ms;
  if (ex) {
    ex->phase_ms = ms;
    if (ex->deadline) {
      uint64_t now = uv_now(&uc->w->loop);
      uint64_t left = ex->deadline > now ? ex->deadline - now : 1;
      if (t == 0 || left < t) t = left;
    }
  }
  lazy_set(&uc->timer, t);
}

/* The request head (and any body that waited) goes out. */
static void uc_send_request(struct uconn *uc) {
  struct exchange *ex = uc->ex;
  uc->got_bytes = 0;
  uc->chunked = ex->up.content_length < 0 && !ex->up.end_stream;
  if (headers_h1_request(&uc->out, &ex->up) != 0) {
    ex_up_failed(ex, 500, "out of memory", 0, 0);
    return;
  }
  int had_pending = ex->pending.len > 0;
  if (had_pending) {
    h1c_body(uc, ex->pending.data, ex->pending.len);
    buf_reset(&ex->pending);
    ex->body_sent = 1;
  }
  if (ex->req_complete) {
    if (!ex->up.end_stream) h1c_end(uc);
    h1c_arm(uc, ex_response_timeout(ex));
  } else {
    lazy_set(&uc->timer, 0); /* the client's body timeout runs meanwhile */
  }
  uc_flush(uc);
  /* the body that waited (past the high mark the client was stopped) left
   * at once: no queued write will call back, so say it here */
  if (had_pending && uc->ex == ex && !ex->req_complete &&
      uv_stream_get_write_queue_size((uv_stream_t *)&uc->tcp) < LOW_WATER)
    ex_up_drained(ex);
}

static void uc_on_connect(uv_connect_t *req, int status) {
  struct uconn *uc = req->data;
  if (uc->state == U_CLOSING) return;
  struct exchange *ex = uc->ex;
  if (status < 0) {
    if (ex) {
      LOG_DEBUG("upstream_connect_failed", "endpoint=%s error=%s", uc->ep->name,
                uv_strerror(status));
      ex_up_failed(ex, 502, "upstream connect failed", 1, 1);
    } else {
      h1c_close(uc);
    }
    return;
  }
  if (!ex) {
    h1c_close(uc);
    return;
  }
  uv_tcp_nodelay(&uc->tcp, 1);
  uc_read_start(uc);
  if (uc->tls_cfg) { /* U_CONNECTING until the endpoint is verified */
    uint8_t none[1];
    if (utls_conn_new(uc->tls_cfg, &uc->tls) != 0 ||
        tls_conn_read(uc->tls, none, sizeof(none)) != TLS_WANT_MORE ||
        worker_tls_flush((uv_stream_t *)&uc->tcp, uc->tls, NULL, NULL) != 0)
      ex_up_failed(ex, 502, "upstream tls failed", 1, 1);
    return;
  }
  uc->state = U_ACTIVE;
  if (obs_enabled(&uc->w->cfg->obs)) obs_upstream_connected(&ex->obs); /* OBS HOOK */
  uc_unpend(uc);
  uc_send_request(uc);
}

/* The TLS handshake with the endpoint finished: the request goes out. */
static void uc_tls_established(struct uconn *uc) {
  uc->state = U_ACTIVE;
  if (uc->ex && obs_enabled(&uc->w->cfg->obs)) obs_upstream_connected(&uc->ex->obs); /* OBS HOOK */
  uc_unpend(uc);
  if (uc->ex) uc_send_request(uc);
}

static int u_on_head(void *ud, const struct h1_message *m);
static int u_on_body(void *ud, const char *p, size_t n);
static void u_on_complete(void *ud);
static void u_on_trailers(void *ud, const struct h1_header *h, size_t n);
static const struct h1_callbacks u_callbacks = {u_on_head, u_on_body, u_on_complete, u_on_trailers};

static struct uconn *uc_new(struct worker *w, struct up_endpoint *ep, const struct l7_cluster *c,
                            struct breaker *brk) {
  struct uconn *uc = calloc(1, sizeof(*uc));
  if (!uc) {
    if (brk) breaker_release(brk, BREAKER_PENDING);
    if (brk) breaker_release(brk, BREAKER_CONNECTIONS);
    return NULL;
  }
  uc->w = w;
  uc->ep = ep;
  uc->brk = brk; /* its max_connections count is this connection's from now on */
  uc->pending = brk != NULL;
  uc->tls_cfg = utls_ctx_ref(c->tls);
  uc->tls_id = utls_ctx_id(c->tls);
  up_link_init(&uc->link);
  if (h1_parser_init(&uc->parser, H1_RESPONSE, w->cfg->limits, &u_callbacks, uc) != 0) {
    uc_unpend(uc);
    if (brk) breaker_release(brk, BREAKER_CONNECTIONS);
    utls_ctx_unref(uc->tls_cfg);
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
  const struct sockaddr *sa = (const struct sockaddr *)&ep->addr;
  int rc = uv_tcp_connect(&uc->creq, &uc->tcp, sa, uc_on_connect);
  /* out of descriptors: an idle downstream connection gives one back */
  if ((rc == UV_EMFILE || rc == UV_ENFILE) && worker_make_room(w, 1))
    rc = uv_tcp_connect(&uc->creq, &uc->tcp, sa, uc_on_connect);
  if (rc != 0) {
    h1c_close(uc);
    return NULL;
  }
  lazy_set(&uc->timer,
           c->connect_timeout_ms ? c->connect_timeout_ms : L7_DEFAULT_CONNECT_TIMEOUT_MS);
  return uc;
}

int h1c_start(struct exchange *ex, struct up_endpoint *ep) {
  struct worker *w = ex->w;
  const struct l7_cluster *c = ex->cluster;
  uint64_t tls_id = utls_ctx_id(c->tls);
  while (!up_link_empty(&ep->idle)) { /* an idle pooled connection first */
    struct uconn *uc = container_of(ep->idle.next, struct uconn, link);
    if (uc->tls_id != tls_id) { /* made under another TLS configuration */
      h1c_close(uc);
      continue;
    }
    up_link_remove(&uc->link);
    ep->n_idle--;
    ep->n_active++;
    if (w->g_up_idle) metrics_gauge_add(w->g_up_idle, -1);
    if (w->g_up_active) metrics_gauge_add(w->g_up_active, 1);
    lazy_set(&uc->timer, 0);
    uc->state = U_ACTIVE;
    uc->reused = 1;
    uc->ex = ex;
    ex->uc = uc;
    uc_send_request(uc);
    return 0;
  }
  struct breaker *brk = c->breaker;
  if (brk && !breaker_acquire(brk, BREAKER_CONNECTIONS, c->max_connections))
    return BREAKER_E_OVERFLOW(BREAKER_CONNECTIONS);
  if (brk && !breaker_acquire(brk, BREAKER_PENDING, c->max_pending_requests)) {
    breaker_release(brk, BREAKER_CONNECTIONS);
    return BREAKER_E_OVERFLOW(BREAKER_PENDING);
  }
  struct uconn *uc = uc_new(w, ep, c, brk);
  if (!uc) return -ENOMEM;
  uc->ex = ex;
  ex->uc = uc;
  return 0;
}

int h1c_body(struct uconn *uc, const char *p, size_t n) {
  if (uc->chunked) {
    buf_put_hex(&uc->out, n);
    buf_append(&uc->out, "\r\n", 2);
  }
  buf_append(&uc->out, p, n);
  if (uc->chunked) buf_append(&uc->out, "\r\n", 2);
  uc_flush(uc);
  return h1c_queued(uc) > HIGH_WATER;
}

void h1c_end(struct uconn *uc) {
  if (!uc->chunked) return;
  buf_puts(&uc->out, "0\r\n\r\n");
  uc->chunked = 0;
  uc_flush(uc);
}

void h1c_resume(struct uconn *uc) {
  if (uc->bp_stopped && (uc->state == U_ACTIVE || uc->state == U_TUNNEL)) {
    uc->bp_stopped = 0;
    uc_read_start(uc);
  }
}

int h1c_tunnel_write(struct uconn *uc, const char *p, size_t n) {
  buf_append(&uc->out, p, n);
  uc_flush(uc);
  return h1c_queued(uc) > HIGH_WATER;
}

void h1c_tunnel_resume(struct uconn *uc) {
  h1c_resume(uc);
}

void h1c_close_idle(struct up_endpoint *ep, void *arg) {
  (void)arg;
  while (!up_link_empty(&ep->idle)) h1c_close(container_of(ep->idle.next, struct uconn, link));
}

/* ---- responses --------------------------------------------------------- */

static int u_on_head(void *ud, const struct h1_message *m) {
  struct uconn *uc = ud;
  struct exchange *ex = uc->ex;
  if (!ex) return 502;
  if (m->status < 200 && m->status != 101) return 0; /* interim: not forwarded */
  struct msg_head resp;
  h1_message_head(m, NULL, &resp);
  uc->keep_alive_hint = m->keep_alive;
  uc->trailers = NULL;
  uc->n_trailers = 0;
  h1c_arm(uc, ex_idle_timeout(ex));
  if (ex_up_head(ex, &resp) != 0) return 502;
  return ex->head_request ? H1_SKIP_BODY : 0;
}

static int u_on_body(void *ud, const char *p, size_t n) {
  struct uconn *uc = ud;
  if (!uc->ex) return -1;
  return ex_up_data(uc->ex, p, n) < 0 ? -1 : 0;
}

static void u_on_trailers(void *ud, const struct h1_header *h, size_t n) {
  struct uconn *uc = ud;
  uc->trailers = h;
  uc->n_trailers = n;
}

static void u_on_complete(void *ud) {
  (void)ud; /* the end is handled after the feed returns (keep-alive known then) */
}

/* Response bytes (plaintext; nread < 0: the end of the stream). */
static void uc_on_plain(struct uconn *uc, ssize_t nread, const char *base) {
  if (uc->state == U_TUNNEL) {
    if (uc->tunnel_read) uc->tunnel_read(uc->tunnel_ctx, nread, base);
    return;
  }
  struct exchange *ex = uc->ex;
  if (uc->state == U_IDLE || !ex) {
    h1c_close(uc); /* the peer closed (or spoke) while idle */
    return;
  }
  enum h1_result r;
  size_t used = 0;
  int keep_alive = 1;
  if (nread < 0) {
    r = h1_parser_finish(&uc->parser);
    if (r != H1_MESSAGE_END) {
      if (!ex->resp_started)
        ex_up_failed(ex, 502, "upstream closed before responding", uc->reused && !uc->got_bytes, 1);
      else
        ex_up_failed(ex, 502, "upstream closed mid-response", 0, 0);
      return;
    }
    keep_alive = 0;
  } else {
    uc->got_bytes = 1;
    if (ex->resp_started) h1c_arm(uc, ex->phase_ms); /* data flows: not idle */
    const char *p = base;
    size_t len = (size_t)nread;
    for (;;) {
      r = h1_parser_feed(&uc->parser, p, len, &used);
      if (uc->ex != ex || !ex->active) return; /* the exchange went away meanwhile */
      if (r == H1_MESSAGE_END && !ex->resp_started) {
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
      ex_up_failed(ex, 502, "bad upstream response", 0, 1);
      return;
    }
    if (r == H1_UPGRADE) {
      if (ex->status == 101 && ex->upgrade && ex->ds->tunnel) {
        uc->state = U_TUNNEL;
        lazy_set(&uc->timer, 0);
        ex->uc = NULL;
        uc->ex = NULL;
        ex->ds->tunnel(ex, uc, p + used, len - used);
        ex_tunnelled(ex);
        return;
      }
      ex_up_failed(ex, 502, "unexpected upgrade", 0, 0);
      return;
    }
    if (r == H1_MESSAGE_END && len - used > 0) keep_alive = 0; /* extra bytes */
  }
  if (r == H1_MESSAGE_END) {
    h1_parser_resume(&uc->parser);
    keep_alive &= uc->keep_alive_hint;
    ex_up_end(ex, uc->trailers, uc->n_trailers, keep_alive); /* writes head, body and end at once */
    return;
  }
  ex_up_flush(ex);
  if (ex->active && ex->ds->over_high(ex)) {
    uv_read_stop((uv_stream_t *)&uc->tcp);
    uc->bp_stopped = 1;
  }
}

/* Ciphertext from a TLS endpoint: the handshake first, then plaintext for
 * uc_on_plain. A failed handshake fails the attempt (retryable: nothing
 * was sent) and is charged to the endpoint. */
static void uc_on_tls(struct uconn *uc, const char *data, size_t n) {
  struct worker *w = uc->w;
  if (tls_conn_feed(uc->tls, data, n) != 0) {
    if (uc->ex)
      ex_up_failed(uc->ex, 502, "out of memory", 0, 0);
    else
      h1c_close(uc);
    return;
  }
  for (;;) {
    int r = tls_conn_read(uc->tls, w->pbuf, sizeof(w->pbuf));
    if (uc->state == U_CONNECTING && tls_conn_handshake_done(uc->tls)) uc_tls_established(uc);
    if (uc->state == U_CLOSING) return;
    if (r > 0) {
      uc_on_plain(uc, r, w->pbuf);
      if (uc->state == U_CLOSING || !uc->tls) return;
      continue;
    }
    if (r == TLS_WANT_MORE) break;
    if (r == TLS_CLOSED) {
      uc_on_plain(uc, UV_EOF, NULL);
      return;
    }
    if (uc->state == U_CONNECTING) {
      LOG_WARN("upstream_tls_failed", "cluster=%s endpoint=%s reason=%s", log_q(uc->ep->cluster),
               uc->ep->name, log_q(tls_conn_error(uc->tls)));
      if (uc->ex)
        ex_up_failed(uc->ex, 502, "upstream tls handshake failed", 1, 1);
      else
        h1c_close(uc);
    } else {
      uc_on_plain(uc, UV_EPROTO, NULL);
    }
    return;
  }
  if (worker_tls_flush((uv_stream_t *)&uc->tcp, uc->tls, NULL, NULL) != 0 && uc->ex &&
      uc->state == U_CONNECTING)
    ex_up_failed(uc->ex, 502, "upstream tls failed", 1, 1);
}

static void uc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct uconn *uc = s->data;
  if (nread == 0) return;
  if (uc->tls && nread > 0) {
    uc_on_tls(uc, buf->base, (size_t)nread);
    return;
  }
  if (uc->state == U_CONNECTING) { /* the TLS endpoint closed mid-handshake */
    if (uc->ex)
      ex_up_failed(uc->ex, 502, "upstream closed during the tls handshake", 1, 1);
    else
      h1c_close(uc);
    return;
  }
  uc_on_plain(uc, nread, nread > 0 ? buf->base : NULL);
}
