/*
 * upstream_h2 — HTTP/2 (h2c prior knowledge) upstream connections with
 * nghttp2; see upstream_h2.h for the API and the stream life cycle.
 *
 * Invariants: every uh2_stream is on exactly one connection's stream list
 * until it is closed; a stream is freed only by stream_finish (which runs
 * the caller's on_close unless cancelled). A connection is torn down only
 * when no nghttp2 call is on the stack (conn->depth == 0); failures inside
 * nghttp2 callbacks set conn->fail and conn_settle acts on it afterwards.
 * Output: at most one uv_write in flight per connection, filled from
 * nghttp2_session_mem_send up to OUT_CHUNK bytes, so nghttp2 holds the rest
 * (and flow control) while the socket is slow.
 */
#include "l7proxy/upstream_h2.h"

#include <errno.h>
#include <stddef.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "l7proxy/breaker.h"
#include "l7proxy/tls.h"
#include "l7proxy/upstream_tls.h"

#define OUT_CHUNK (64 * 1024)
#define READ_BUF (64 * 1024)
#define SWEEP_MS 100

struct uh2_conn;

struct uh2_stream {
  struct uh2_stream *next, *prev; /* conn's list */
  struct uh2_conn *conn;
  int32_t id;
  struct uh2_stream_cb cb;
  void *ud;
  int cancelled;
  int reused;
  int body_end;      /* uh2_stream_end called (or no body) */
  int deferred;      /* nghttp2 is waiting for body bytes */
  int paused;        /* the caller holds response DATA: no WINDOW_UPDATE */
  size_t unconsumed; /* response bytes delivered while paused */
  int above_low;     /* buffered reached UH2_LOW_WATER */
  int got_headers;   /* final response headers delivered */
  int resp_end;      /* END_STREAM received */
  int err;           /* error to report on close */
  char *body;        /* queued request body */
  size_t body_off, body_len, body_cap;
  char *hbuf; /* header block being received: name\0value\0... */
  size_t hlen, hcap;
  size_t nh;
  int status;
  uint64_t deadline;   /* loop ms; 0: none */
  int pending;         /* counted by brk while its connection connects */
  struct breaker *brk; /* the target's */
};

enum cstate { C_CONNECTING = 0, C_READY, C_CLOSING };

struct uh2_host {
  struct uh2_host *next;
  char *key;
  struct uh2_conn *conns;
  uint32_t limit_hint; /* the last SETTINGS_MAX_CONCURRENT_STREAMS seen (0: none) */
};

struct uh2_conn {
  struct uh2_conn *next; /* host's list */
  struct uh2_host *host;
  struct uh2_pool *pool;
  uv_tcp_t tcp;
  uv_timer_t timer; /* connect timeout, then idle timeout */
  uv_timer_t kick;  /* deferred flush: API calls never run callbacks */
  uv_connect_t creq;
  uv_write_t wreq;
  nghttp2_session *sess;
  enum cstate state;
  int handles;
  int writing;
  char *wbuf;
  size_t wcap;
  struct uh2_stream *streams; /* sentinel-less list head */
  size_t n_streams;
  int depth;  /* nghttp2 calls on the stack */
  int fail;   /* error to close with (0 none) */
  int goaway; /* received GOAWAY: no new streams */
  int got_settings;
  uint32_t idle_ms;
  int32_t goaway_last;
  int settle_q; /* a settle is pending in conn_settle */
  /* issue 20 */
  struct tls_conn *tls;     /* grpcs: nghttp2's bytes go through it */
  struct utls_ctx *tls_cfg; /* a reference; NULL: h2c */
  size_t wlen;              /* ciphertext bytes of the write in flight */
  struct breaker *brk;      /* counts this connection; NULL: no limits */
};

struct uh2_pool {
  uv_loop_t *loop;
  struct uh2_pool_config cfg;
  struct uh2_host *hosts;
  size_t n_conns, n_streams;
  int closing;
  int handles;      /* open handles (connections' and the sweep timer) */
  uv_timer_t sweep; /* every SWEEP_MS while streams have deadlines */
  int sweeping;
  size_t n_deadlines;
  char rbuf[READ_BUF];
  char pbuf[READ_BUF]; /* plaintext of TLS connections */
};

const char *uh2_strerror(int err) {
  switch (err) {
    case 0:
      return "ok";
    case UH2_E_CONNECT:
      return "connect";
    case UH2_E_REFUSED:
      return "refused";
    case UH2_E_RESET:
      return "reset";
    case UH2_E_CONN_LOST:
      return "connection_lost";
    case UH2_E_PROTOCOL:
      return "protocol";
    case UH2_E_TIMEOUT:
      return "timeout";
    default:
      return "error";
  }
}

static void conn_flush(struct uh2_conn *c);
static void conn_settle(struct uh2_conn *c);

/* ---- streams ----------------------------------------------------------- */

static void stream_unlink(struct uh2_stream *s) {
  struct uh2_conn *c = s->conn;
  if (!c) return;
  if (s->prev)
    s->prev->next = s->next;
  else
    c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
  s->conn = NULL;
  c->n_streams--;
  c->pool->n_streams--;
}

/* Reports err (unless cancelled) and frees s. */
static void stream_finish(struct uh2_stream *s, int err) {
  struct uh2_conn *c = s->conn;
  s->unconsumed = 0; /* the connection window was reopened on arrival */
  if (s->deadline && c) c->pool->n_deadlines--;
  s->deadline = 0;
  if (c && c->sess && s->id > 0) nghttp2_session_set_stream_user_data(c->sess, s->id, NULL);
  if (s->pending) breaker_release(s->brk, BREAKER_PENDING);
  s->pending = 0;
  stream_unlink(s);
  if (!s->cancelled && s->cb.on_close) s->cb.on_close(s->ud, err);
  free(s->body);
  free(s->hbuf);
  free(s);
}

static int hbuf_add(struct uh2_stream *s, const uint8_t *p, size_t n) {
  if (s->hlen + n + 1 > s->hcap) {
    size_t cap = s->hcap ? s->hcap * 2 : 512;
    while (cap < s->hlen + n + 1) cap *= 2;
    char *b = realloc(s->hbuf, cap);
    if (!b) return -ENOMEM;
    s->hbuf = b;
    s->hcap = cap;
  }
  memcpy(s->hbuf + s->hlen, p, n);
  s->hbuf[s->hlen + n] = 0;
  s->hlen += n + 1;
  return 0;
}

/* Delivers the collected header block as headers or trailers. */
static void stream_deliver_headers(struct uh2_stream *s, int trailers) {
  struct uh2_header *h = s->nh ? calloc(s->nh, sizeof(*h)) : NULL;
  size_t n = 0;
  if (s->nh && !h) {
    s->err = UH2_E_PROTOCOL;
    return;
  }
  const char *p = s->hbuf;
  for (size_t i = 0; i < s->nh; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    h[n++] = (struct uh2_header){p, nl, v, vl};
    p = v + vl + 1;
  }
  if (!s->cancelled) {
    if (trailers) {
      if (s->cb.on_trailers) s->cb.on_trailers(s->ud, h, n);
    } else if (s->cb.on_headers) {
      s->cb.on_headers(s->ud, s->status, h, n);
    }
  }
  free(h);
  s->hlen = 0;
  s->nh = 0;
}

/* ---- nghttp2 callbacks ------------------------------------------------- */

static struct uh2_stream *stream_of(nghttp2_session *sess, int32_t id) {
  return nghttp2_session_get_stream_user_data(sess, id);
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *ud) {
  (void)ud;
  struct uh2_stream *s = stream_of(sess, f->hd.stream_id);
  if (s) {
    s->hlen = 0;
    s->nh = 0;
  }
  return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  (void)flags;
  struct uh2_conn *c = ud;
  struct uh2_stream *s = stream_of(sess, f->hd.stream_id);
  if (!s) return 0;
  if (s->hlen + namelen + valuelen + 2 > c->pool->cfg.max_header_list) {
    s->err = UH2_E_PROTOCOL;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  }
  if (namelen == 7 && !memcmp(name, ":status", 7)) {
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++) st = st * 10 + (value[i] - '0');
    s->status = st;
    return 0;
  }
  if (namelen && name[0] == ':') return 0;
  if (hbuf_add(s, name, namelen) || hbuf_add(s, value, valuelen)) {
    s->err = UH2_E_PROTOCOL;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  s->nh++;
  return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud) {
  struct uh2_conn *c = ud;
  if (f->hd.type == NGHTTP2_GOAWAY) {
    c->goaway = 1;
    c->goaway_last = f->goaway.last_stream_id;
    return 0;
  }
  if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
    c->got_settings = 1;
    c->host->limit_hint =
        nghttp2_session_get_remote_settings(sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return 0;
  }
  struct uh2_stream *s = f->hd.stream_id ? stream_of(sess, f->hd.stream_id) : NULL;
  if (!s) return 0;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (!s->got_headers) {
      if (s->status >= 100 && s->status < 200) { /* interim */
        s->hlen = 0;
        s->nh = 0;
        s->status = 0;
        return 0;
      }
      s->got_headers = 1;
      stream_deliver_headers(s, 0);
    } else {
      stream_deliver_headers(s, 1);
    }
  }
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    s->resp_end = 1;
  return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
  (void)flags;
  (void)ud;
  struct uh2_stream *s = stream_of(sess, id);
  if (!s || s->cancelled) {
    nghttp2_session_consume_connection(sess, len);
    return 0;
  }
  /* the connection window always reopens (a paused stream must not stall
   * the others); the stream's only when the caller is not paused */
  nghttp2_session_consume_connection(sess, len);
  if (s->cb.on_data) s->cb.on_data(s->ud, data, len); /* may pause or cancel s */
  if (s->paused && !s->cancelled)
    s->unconsumed += len;
  else
    nghttp2_session_consume_stream(sess, id, len);
  return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud) {
  struct uh2_conn *c = ud;
  struct uh2_stream *s = stream_of(sess, id);
  if (!s) return 0;
  int err = 0;
  if (s->err)
    err = s->err;
  else if (!s->resp_end || !s->got_headers)
    err = code == NGHTTP2_REFUSED_STREAM     ? UH2_E_REFUSED
          : c->goaway && id > c->goaway_last ? UH2_E_REFUSED
          : code != NGHTTP2_NO_ERROR         ? UH2_E_RESET
                                             : UH2_E_CONN_LOST;
  stream_finish(s, err);
  return 0;
}

static int on_frame_not_send(nghttp2_session *sess, const nghttp2_frame *f, int lib_error,
                             void *ud) {
  (void)lib_error;
  (void)ud;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  struct uh2_stream *s = stream_of(sess, f->hd.stream_id);
  /* the request never left: nothing was processed */
  if (s) {
    if (!s->err) s->err = UH2_E_REFUSED;
    if (!nghttp2_session_find_stream(sess, f->hd.stream_id)) stream_finish(s, s->err);
  }
  return 0;
}

static ssize_t body_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)sess;
  (void)id;
  (void)ud;
  struct uh2_stream *s = src->ptr;
  size_t avail = s->body_len - s->body_off;
  if (avail == 0) {
    if (s->body_end) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = avail < len ? avail : len;
  memcpy(buf, s->body + s->body_off, n);
  s->body_off += n;
  if (s->body_off == s->body_len) s->body_off = s->body_len = 0;
  if (s->body_len - s->body_off == 0 && s->body_end) *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (s->above_low && s->body_len - s->body_off < UH2_LOW_WATER) {
    s->above_low = 0;
    if (!s->cancelled && s->cb.on_drain) s->cb.on_drain(s->ud);
  }
  return (ssize_t)n;
}

/* ---- connections ------------------------------------------------------- */

#define container_of_sweep(h) ((struct uh2_pool *)((char *)(h)-offsetof(struct uh2_pool, sweep)))
static void sweep_closed(uv_handle_t *hd);

static void pool_maybe_free(struct uh2_pool *p) {
  if (!p->closing || p->handles) return;
  if (p->sweep.data) {
    p->sweep.data = NULL;
    p->handles++;
    uv_close((uv_handle_t *)&p->sweep, sweep_closed);
    return;
  }
  struct uh2_host *h = p->hosts;
  while (h) {
    struct uh2_host *nx = h->next;
    free(h->key);
    free(h);
    h = nx;
  }
  free(p);
}

static void sweep_closed(uv_handle_t *hd) {
  struct uh2_pool *p = container_of_sweep(hd);
  p->handles--;
  pool_maybe_free(p);
}

static void conn_freed(uv_handle_t *hd) {
  struct uh2_conn *c = hd->data;
  if (--c->handles > 0) return;
  struct uh2_pool *p = c->pool;
  tls_conn_free(c->tls);
  utls_ctx_unref(c->tls_cfg);
  free(c->wbuf);
  free(c);
  p->handles--;
  pool_maybe_free(p);
}

/* Fails every stream and closes c. Only with depth == 0. */
static void conn_destroy(struct uh2_conn *c, int err) {
  if (c->state == C_CLOSING && !c->sess) return;
  struct uh2_conn **pp = &c->host->conns;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  c->state = C_CLOSING;
  c->pool->n_conns--;
  nghttp2_session *sess = c->sess;
  c->sess = NULL;
  while (c->streams) {
    struct uh2_stream *s = c->streams;
    int e = err;
    if (err == UH2_E_CONN_LOST && (c->goaway && s->id > c->goaway_last)) e = UH2_E_REFUSED;
    if (s->err) e = s->err;
    s->id = 0;
    stream_finish(s, e);
  }
  if (sess) nghttp2_session_del(sess);
  if (c->brk) breaker_release(c->brk, BREAKER_CONNECTIONS);
  c->brk = NULL;
  uv_close((uv_handle_t *)&c->tcp, conn_freed);
  uv_close((uv_handle_t *)&c->timer, conn_freed);
  uv_close((uv_handle_t *)&c->kick, conn_freed);
}

static void conn_idle_cb(uv_timer_t *t) {
  struct uh2_conn *c = t->data;
  if (c->state == C_CONNECTING) {
    conn_destroy(c, UH2_E_CONNECT);
    return;
  }
  if (c->n_streams == 0 || c->fail) conn_destroy(c, c->fail ? c->fail : UH2_E_CONN_LOST);
}

/* Acts on failure or idleness once no nghttp2 call is on the stack. */
static void conn_settle(struct uh2_conn *c) {
  if (c->depth > 0 || c->state == C_CLOSING) return;
  if (c->fail) {
    conn_destroy(c, c->fail);
    return;
  }
  if (c->sess && !nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess) &&
      !c->writing) {
    conn_destroy(c, UH2_E_CONN_LOST);
    return;
  }
  if (c->state == C_READY && c->n_streams == 0) {
    if (c->goaway) {
      conn_destroy(c, UH2_E_CONN_LOST);
      return;
    }
    uv_timer_start(&c->timer, conn_idle_cb, c->idle_ms, 0);
  } else if (c->state == C_READY) {
    uv_timer_stop(&c->timer);
  }
}

static void on_write_done(uv_write_t *req, int status) {
  struct uh2_conn *c = req->data;
  c->writing = 0;
  if (c->tls && c->state != C_CLOSING) tls_conn_consume_output(c->tls, c->wlen);
  c->wlen = 0;
  if (c->state == C_CLOSING) return;
  if (status < 0) {
    c->fail = UH2_E_CONN_LOST;
    conn_settle(c);
    return;
  }
  conn_flush(c);
}

/* TLS: encrypts what nghttp2 produced (len bytes of wbuf) and writes the
 * pending ciphertext (the handshake's too); one write in flight. */
static void conn_flush_tls(struct uh2_conn *c, size_t len) {
  if (len && tls_conn_write(c->tls, c->wbuf, len) < 0) {
    c->fail = UH2_E_CONN_LOST;
    return;
  }
  const uint8_t *p;
  size_t n;
  tls_conn_pending_output(c->tls, &p, &n);
  if (n == 0) return;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
    c->fail = UH2_E_CONN_LOST;
    return;
  }
  c->writing = 1;
  c->wlen = n;
}

static void conn_flush(struct uh2_conn *c) {
  if (c->tls && c->state == C_CONNECTING && !c->writing && !c->fail) {
    conn_flush_tls(c, 0); /* the handshake */
    return;
  }
  if (c->writing || c->state != C_READY || !c->sess || c->fail) {
    conn_settle(c);
    return;
  }
  size_t len = 0;
  c->depth++;
  while (len < OUT_CHUNK) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->sess, &data);
    if (n < 0) {
      c->fail = UH2_E_CONN_LOST;
      break;
    }
    if (n == 0) break;
    if (len + (size_t)n > c->wcap) {
      size_t cap = c->wcap ? c->wcap : OUT_CHUNK + 1024;
      while (cap < len + (size_t)n) cap *= 2;
      char *b = realloc(c->wbuf, cap);
      if (!b) {
        c->fail = UH2_E_CONN_LOST;
        break;
      }
      c->wbuf = b;
      c->wcap = cap;
    }
    memcpy(c->wbuf + len, data, (size_t)n);
    len += (size_t)n;
  }
  c->depth--;
  if (c->tls && !c->fail) {
    conn_flush_tls(c, len);
  } else if (len && !c->fail) {
    uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) == 0)
      c->writing = 1;
    else
      c->fail = UH2_E_CONN_LOST;
  }
  conn_settle(c);
}

static void on_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *buf) {
  (void)sz;
  struct uh2_conn *c = hd->data;
  *buf = uv_buf_init(c->pool->rbuf, sizeof(c->pool->rbuf));
}

/* The connection can carry streams: the ones waiting stop counting as
 * pending. */
static void conn_ready(struct uh2_conn *c) {
  c->state = C_READY;
  uv_timer_stop(&c->timer);
  for (struct uh2_stream *s = c->streams; s; s = s->next) {
    if (s->pending) breaker_release(s->brk, BREAKER_PENDING);
    s->pending = 0;
  }
}

/* Ciphertext: the handshake (then ALPN must be h2), then plaintext for
 * nghttp2. 0, or -1 when the connection failed (c->fail set). */
static int conn_on_tls(struct uh2_conn *c, const char *data, size_t n) {
  if (tls_conn_feed(c->tls, data, n) != 0) {
    c->fail = UH2_E_CONN_LOST;
    return -1;
  }
  for (;;) {
    int r = tls_conn_read(c->tls, c->pool->pbuf, sizeof(c->pool->pbuf));
    if (c->state == C_CONNECTING && tls_conn_handshake_done(c->tls)) {
      if (strcmp(tls_conn_alpn(c->tls), "h2") != 0) {
        LOG_WARN("upstream_tls_failed", "endpoint=%s reason=%s", log_q(c->host->key),
                 "the endpoint did not agree on ALPN h2");
        c->fail = UH2_E_CONNECT;
        return -1;
      }
      conn_ready(c);
    }
    if (r > 0) {
      c->depth++;
      ssize_t rv = nghttp2_session_mem_recv(c->sess, (const uint8_t *)c->pool->pbuf, (size_t)r);
      c->depth--;
      if (rv < 0) {
        c->fail = UH2_E_CONN_LOST;
        return -1;
      }
      continue;
    }
    if (r == TLS_WANT_MORE) return 0;
    if (r != TLS_CLOSED && c->state == C_CONNECTING)
      LOG_WARN("upstream_tls_failed", "endpoint=%s reason=%s", log_q(c->host->key),
               log_q(tls_conn_error(c->tls)));
    c->fail = c->state == C_CONNECTING ? UH2_E_CONNECT : UH2_E_CONN_LOST;
    return -1;
  }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct uh2_conn *c = st->data;
  if (c->state == C_CLOSING) return;
  if (nread < 0) {
    c->fail = c->state == C_CONNECTING ? UH2_E_CONNECT : UH2_E_CONN_LOST;
    conn_settle(c);
    return;
  }
  if (nread == 0) return;
  if (c->tls) {
    conn_on_tls(c, buf->base, (size_t)nread);
    conn_flush(c);
    return;
  }
  c->depth++;
  ssize_t rv = nghttp2_session_mem_recv(c->sess, (const uint8_t *)buf->base, (size_t)nread);
  c->depth--;
  if (rv < 0) c->fail = UH2_E_CONN_LOST;
  conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status) {
  struct uh2_conn *c = req->data;
  if (c->state == C_CLOSING) return;
  if (status < 0) {
    conn_destroy(c, UH2_E_CONNECT);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_destroy(c, UH2_E_CONNECT);
    return;
  }
  if (c->tls_cfg) { /* ready once the handshake is done (the connect timer runs on) */
    uint8_t none[1];
    if (utls_conn_new(c->tls_cfg, &c->tls) != 0 ||
        tls_conn_read(c->tls, none, sizeof(none)) != TLS_WANT_MORE) {
      conn_destroy(c, UH2_E_CONNECT);
      return;
    }
    conn_flush(c);
    return;
  }
  conn_ready(c);
  conn_flush(c);
}

static nghttp2_session_callbacks *g_cbs;
static nghttp2_option *g_opt; /* response flow control follows the caller (pause) */
static uv_once_t g_cbs_once = UV_ONCE_INIT;

static void make_callbacks(void) {
  if (nghttp2_session_callbacks_new(&g_cbs) != 0) return;
  nghttp2_session_callbacks_set_on_begin_headers_callback(g_cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(g_cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(g_cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(g_cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(g_cbs, on_frame_not_send);
  if (nghttp2_option_new(&g_opt) != 0) {
    nghttp2_session_callbacks_del(g_cbs);
    g_cbs = NULL;
    return;
  }
  nghttp2_option_set_no_auto_window_update(g_opt, 1);
}

/* A new connection to t (counted against t's max_connections by the
 * caller: it owns that count from now on, even when NULL is returned). */
static struct uh2_conn *conn_new(struct uh2_pool *p, struct uh2_host *h,
                                 const struct uh2_target *t) {
  uv_once(&g_cbs_once, make_callbacks);
  struct uh2_conn *c = g_cbs ? calloc(1, sizeof(*c)) : NULL;
  if (!c) {
    breaker_release(t->brk, BREAKER_CONNECTIONS);
    return NULL;
  }
  c->brk = t->brk;
  c->tls_cfg = utls_ctx_ref(t->tls);
  c->pool = p;
  c->host = h;
  c->idle_ms = t->idle_timeout_ms ? t->idle_timeout_ms : p->cfg.idle_timeout_ms;
  if (nghttp2_session_client_new2(&c->sess, g_cbs, c, g_opt) != 0) {
    breaker_release(c->brk, BREAKER_CONNECTIONS);
    utls_ctx_unref(c->tls_cfg);
    free(c);
    return NULL;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UH2_STREAM_WINDOW},
  };
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, 4 << 20);
  if (uv_tcp_init(p->loop, &c->tcp) != 0) {
    nghttp2_session_del(c->sess);
    breaker_release(c->brk, BREAKER_CONNECTIONS);
    utls_ctx_unref(c->tls_cfg);
    free(c);
    return NULL;
  }
  uv_timer_init(p->loop, &c->timer);
  uv_timer_init(p->loop, &c->kick);
  c->tcp.data = c;
  c->timer.data = c;
  c->kick.data = c;
  c->handles = 3;
  p->handles++;
  p->n_conns++;
  c->next = h->conns;
  h->conns = c;
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->tcp, t->addr, on_connect) != 0) {
    c->fail = UH2_E_CONNECT;
    /* reported from the loop: the timer fires at once */
    uv_timer_start(&c->timer, conn_idle_cb, 0, 0);
    return c;
  }
  uv_timer_start(&c->timer, conn_idle_cb,
                 t->connect_timeout_ms ? t->connect_timeout_ms : p->cfg.connect_timeout_ms, 0);
  return c;
}

static uint32_t conn_limit(const struct uh2_conn *c) {
  uint32_t lim = c->pool->cfg.max_streams;
  /* before the server's SETTINGS: assume what this endpoint said last */
  if (!c->got_settings)
    return c->host->limit_hint && c->host->limit_hint < lim ? c->host->limit_hint : lim;
  uint32_t r =
      nghttp2_session_get_remote_settings(c->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return r < lim ? r : lim;
}

/* ---- public API -------------------------------------------------------- */

int uh2_pool_new(uv_loop_t *loop, const struct uh2_pool_config *cfg, struct uh2_pool **out) {
  struct uh2_pool *p = calloc(1, sizeof(*p));
  if (!p) return -ENOMEM;
  p->loop = loop;
  if (cfg) p->cfg = *cfg;
  if (!p->cfg.connect_timeout_ms) p->cfg.connect_timeout_ms = 5000;
  if (!p->cfg.idle_timeout_ms) p->cfg.idle_timeout_ms = 60000;
  if (!p->cfg.max_streams) p->cfg.max_streams = 100;
  if (!p->cfg.max_header_list) p->cfg.max_header_list = 65536;
  uv_timer_init(loop, &p->sweep);
  p->sweep.data = p;
  *out = p;
  return 0;
}

void uh2_pool_close(struct uh2_pool *p) {
  if (!p) return;
  p->closing = 1;
  for (struct uh2_host *h = p->hosts; h; h = h->next)
    while (h->conns) conn_destroy(h->conns, UH2_E_CONN_LOST);
  pool_maybe_free(p);
}

size_t uh2_pool_connections(const struct uh2_pool *p) {
  return p->n_conns;
}

size_t uh2_pool_streams(const struct uh2_pool *p) {
  return p->n_streams;
}

static void kick_cb(uv_timer_t *t) {
  conn_flush(t->data);
}

/* Flushes from the loop, so API calls never run the caller's callbacks. */
static void conn_kick(struct uh2_conn *c) {
  if (c->state == C_READY) uv_timer_start(&c->kick, kick_cb, 0, 0);
}

static int submit(struct uh2_conn *c, struct uh2_stream *s, const struct uh2_header *h, size_t n,
                  int end_stream) {
  nghttp2_nv *nv = calloc(n ? n : 1, sizeof(*nv));
  if (!nv) return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    nv[i] = (nghttp2_nv){(uint8_t *)h[i].name, (uint8_t *)h[i].value, h[i].name_len, h[i].value_len,
                         NGHTTP2_NV_FLAG_NONE};
  nghttp2_data_provider prd = {.source = {.ptr = s}, .read_callback = body_read};
  c->depth++;
  int32_t id = nghttp2_submit_request(c->sess, NULL, nv, n, end_stream ? NULL : &prd, s);
  c->depth--;
  free(nv);
  if (id < 0) return id == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EINVAL;
  s->id = id;
  return 0;
}

int uh2_stream_open(struct uh2_pool *p, const struct uh2_target *t, const struct uh2_header *h,
                    size_t n, int end_stream, const struct uh2_stream_cb *cb, void *ud,
                    struct uh2_stream **out) {
  if (!p || p->closing || !t || !t->key || !t->addr || !cb) return -EINVAL;
  struct uh2_host *host = p->hosts;
  while (host && strcmp(host->key, t->key)) host = host->next;
  if (!host) {
    host = calloc(1, sizeof(*host));
    if (!host || !(host->key = strdup(t->key))) {
      free(host);
      return -ENOMEM;
    }
    host->next = p->hosts;
    p->hosts = host;
  }
  struct uh2_conn *c = host->conns;
  for (; c; c = c->next)
    if (c->state != C_CLOSING && !c->goaway && !c->fail && c->n_streams < conn_limit(c) &&
        nghttp2_session_check_request_allowed(c->sess))
      break;
  int reused = c && c->state == C_READY;
  int waits = !reused; /* on a connection that is still connecting */
  if (!c && t->brk && !breaker_acquire(t->brk, BREAKER_CONNECTIONS, t->max_connections))
    return BREAKER_E_OVERFLOW(BREAKER_CONNECTIONS);
  if (waits && t->brk && !breaker_acquire(t->brk, BREAKER_PENDING, t->max_pending)) {
    if (!c) breaker_release(t->brk, BREAKER_CONNECTIONS);
    return BREAKER_E_OVERFLOW(BREAKER_PENDING);
  }
  if (!c && !(c = conn_new(p, host, t))) {
    if (waits) breaker_release(t->brk, BREAKER_PENDING);
    return -ENOMEM;
  }
  struct uh2_stream *s = calloc(1, sizeof(*s));
  if (!s) {
    if (waits) breaker_release(t->brk, BREAKER_PENDING);
    return -ENOMEM;
  }
  s->pending = waits && t->brk;
  s->brk = t->brk;
  s->cb = *cb;
  s->ud = ud;
  s->reused = reused;
  s->body_end = end_stream;
  int rv = submit(c, s, h, n, end_stream);
  if (rv < 0) {
    if (s->pending) breaker_release(t->brk, BREAKER_PENDING);
    free(s);
    conn_settle(c);
    return rv;
  }
  s->conn = c;
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  c->n_streams++;
  p->n_streams++;
  if (c->state == C_READY) uv_timer_stop(&c->timer);
  conn_kick(c);
  *out = s;
  return 0;
}

int uh2_stream_write(struct uh2_stream *s, const void *data, size_t n) {
  if (s->body_end) return -EPIPE;
  if (n == 0) return 0;
  if (s->body_off > 0 && s->body_off == s->body_len) s->body_off = s->body_len = 0;
  if (s->body_len + n > s->body_cap) {
    if (s->body_off) {
      memmove(s->body, s->body + s->body_off, s->body_len - s->body_off);
      s->body_len -= s->body_off;
      s->body_off = 0;
    }
    if (s->body_len + n > s->body_cap) {
      size_t cap = s->body_cap ? s->body_cap * 2 : 16384;
      while (cap < s->body_len + n) cap *= 2;
      char *b = realloc(s->body, cap);
      if (!b) return -ENOMEM;
      s->body = b;
      s->body_cap = cap;
    }
  }
  memcpy(s->body + s->body_len, data, n);
  s->body_len += n;
  if (s->body_len - s->body_off >= UH2_LOW_WATER) s->above_low = 1;
  struct uh2_conn *c = s->conn;
  if (c && c->sess && s->deferred) {
    s->deferred = 0;
    nghttp2_session_resume_data(c->sess, s->id);
  }
  if (c) conn_kick(c);
  return 0;
}

int uh2_stream_end(struct uh2_stream *s) {
  if (s->body_end) return 0;
  s->body_end = 1;
  struct uh2_conn *c = s->conn;
  if (c && c->sess && s->deferred) {
    s->deferred = 0;
    nghttp2_session_resume_data(c->sess, s->id);
  }
  if (c) conn_kick(c);
  return 0;
}

size_t uh2_stream_buffered(const struct uh2_stream *s) {
  return s->body_len - s->body_off;
}

int uh2_stream_reused(const struct uh2_stream *s) {
  return s->reused;
}

static void sweep_cb(uv_timer_t *t) {
  struct uh2_pool *p = t->data;
  uint64_t now = uv_now(p->loop);
  for (struct uh2_host *h = p->hosts; h; h = h->next)
    for (struct uh2_conn *c = h->conns; c; c = c->next) {
      if (c->state == C_CLOSING || !c->sess) continue;
      int reset = 0;
      for (struct uh2_stream *s = c->streams; s; s = s->next) {
        if (!s->deadline || s->deadline > now || s->cancelled || s->err) continue;
        s->err = UH2_E_TIMEOUT;
        nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        reset = 1;
      }
      if (reset) conn_kick(c);
    }
  if (p->n_deadlines == 0) {
    uv_timer_stop(&p->sweep);
    p->sweeping = 0;
  }
}

void uh2_stream_pause(struct uh2_stream *s, int paused) {
  s->paused = paused;
  struct uh2_conn *c = s->conn;
  if (paused || !s->unconsumed || !c || !c->sess) return;
  nghttp2_session_consume_stream(c->sess, s->id, s->unconsumed);
  s->unconsumed = 0;
  conn_kick(c); /* the WINDOW_UPDATE goes out from the loop */
}

void uh2_stream_set_timeout(struct uh2_stream *s, uint32_t ms) {
  struct uh2_conn *c = s->conn;
  if (!c) return;
  struct uh2_pool *p = c->pool;
  if (s->deadline) p->n_deadlines--;
  s->deadline = ms ? uv_now(p->loop) + ms : 0;
  if (!s->deadline) return;
  p->n_deadlines++;
  if (!p->sweeping) {
    p->sweeping = 1;
    uv_timer_start(&p->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
  }
}

void uh2_stream_cancel(struct uh2_stream *s) {
  if (!s || s->cancelled) return;
  s->cancelled = 1;
  struct uh2_conn *c = s->conn;
  if (!c || !c->sess) return;
  int rv = nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
  if (rv != 0) {
    stream_finish(s, UH2_E_CONN_LOST); /* cancelled: no callback */
    return;
  }
  /* the stream struct is freed by on_stream_close (or conn_destroy) */
  conn_kick(c);
}
