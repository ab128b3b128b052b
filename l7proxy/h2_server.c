/*
 * h2_server — HTTP/2 downstream sessions (see h2_server.h). Each stream
 * embeds its exchange; its request head is built from nghttp2's header
 * callbacks straight into a message (strings copied into the stream's
 * arena, cookies joined), and the exchange's response goes back through
 * h2_ops as nghttp2 submissions. The only buffer between the upstream and
 * the client is the stream's response body, read by nghttp2's data
 * provider as the client's window allows.
 */
#include "l7proxy/h2_server.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/metrics.h"

#define H2_MAX_SETTINGS 32
#define H2_MAX_OUTBOUND_ACK 1000
#define H2_RESET_MIN_TOTAL 200
#define H2_MAX_NV 256

struct h2sess;

struct h2stream {
  struct up_link link; /* the session's streams */
  struct h2sess *hs;
  int32_t id;
  struct exchange ex;
  struct msg_arena arena;  /* request head strings */
  struct msg_header *hdrs; /* request headers (in arena) */
  size_t n_hdrs, cap_hdrs;
  struct msg_head req;
  struct buf cookie; /* cookie fields, joined with "; " */
  struct buf body;   /* response body for the data provider */
  size_t body_off;
  size_t hdr_bytes;
  size_t unconsumed; /* request DATA not yet acknowledged */
  uint64_t body_seen;
  uint64_t last_rx; /* loop ms of the last request byte (body timeout) */
  const struct msg_header *trailers;
  size_t n_trailers;
  int begun, submitted, resp_eof, resp_done, closed, req_ended, held;
  int reset_by_us; /* we reset it (upstream failure): not the client's doing */
  int too_big;     /* the header list passed the limits: 431, its rest ignored */
};

struct h2sess {
  nghttp2_session *ng;
  struct dconn *d;
  struct up_link streams;
  int in_recv, sending, goaway, dead;
  size_t buffered;    /* response bytes held for all streams (bounded: H2_CONN_BUFFER) */
  int over;           /* buffered went above H2_CONN_BUFFER: streams wait for half of it */
  uint64_t win_start; /* loop ms of the current one-second window */
  uint32_t win_resets;
  uint64_t total_resets, completed;
  /* client stream ids opened, as a ring of the last 4096 ids: nghttp2
   * cannot tell a HEADERS on a never-opened lower id (a connection error,
   * RFC 9113 §5.1.1) from one on a closed stream and ignores both */
  int32_t last_id;
  uint64_t opened[32];
  struct up_link dirty; /* on the worker's h2_dirty list while output waits */
};

static int opened_bit(const struct h2sess *hs, int32_t id) {
  uint32_t i = ((uint32_t)id >> 1) & 2047;
  return (int)((hs->opened[i / 64] >> (i % 64)) & 1);
}

static void mark_opened(struct h2sess *hs, int32_t id) {
  int32_t from = hs->last_id + 2 > id - 4094 ? hs->last_id + 2 : id - 4094;
  for (int32_t k = from; k < id; k += 2) { /* ids skipped: never opened */
    uint32_t i = ((uint32_t)k >> 1) & 2047;
    hs->opened[i / 64] &= ~(1ull << (i % 64));
  }
  uint32_t i = ((uint32_t)id >> 1) & 2047;
  hs->opened[i / 64] |= 1ull << (i % 64);
  if (id > hs->last_id) hs->last_id = id;
}

static const struct ex_downstream_ops h2_ops;
static void h2s_send_now(struct dconn *d);

static size_t pending(const struct h2stream *s) {
  return s->body.len - s->body_off;
}

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

/* Accounts n response bytes taken (n < 0: handed to nghttp2 or dropped);
 * wakes every stream when the connection's budget frees up. */
static void h2_buffered(struct h2sess *hs, ssize_t n) {
  hs->buffered = (size_t)((ssize_t)hs->buffered + n);
  if (hs->buffered > H2_CONN_BUFFER) hs->over = 1;
  if (!hs->over || hs->buffered > H2_CONN_BUFFER / 2) return;
  hs->over = 0;
  for (struct up_link *l = hs->streams.next; l != &hs->streams; l = l->next) {
    struct h2stream *s = container_of(l, struct h2stream, link);
    if (s->ex.active && pending(s) < H2_STREAM_LOW) ex_resume(&s->ex);
  }
}

/* Streams are recycled per worker thread (their arenas and buffers kept),
 * so a multiplexed connection allocates nothing per stream once warm. */
#define STREAM_CACHE 128
static __thread struct h2stream *g_free_streams[STREAM_CACHE];
static __thread int g_n_free;

static void stream_free(struct h2stream *s) {
  up_link_remove(&s->link);
  if (up_link_empty(&s->hs->streams) && !s->hs->dead) dconn_idle_update(s->hs->d);
  s->hs->buffered -= pending(s);
  ex_cancel(&s->ex);
  if (g_n_free < STREAM_CACHE && s->body.cap <= 4 * H2_STREAM_HIGH) {
    g_free_streams[g_n_free++] = s;
    return;
  }
  ex_free(&s->ex);
  msg_arena_free(&s->arena);
  buf_free(&s->cookie);
  buf_free(&s->body);
  free(s);
}

void h2s_thread_cleanup(void) {
  while (g_n_free > 0) {
    struct h2stream *s = g_free_streams[--g_n_free];
    ex_free(&s->ex);
    msg_arena_free(&s->arena);
    buf_free(&s->cookie);
    buf_free(&s->body);
    free(s);
  }
}

/* A zeroed stream, from the cache when there is one. */
static struct h2stream *stream_new(void) {
  if (g_n_free == 0) return calloc(1, sizeof(struct h2stream));
  struct h2stream *s = g_free_streams[--g_n_free];
  struct msg_arena arena = s->arena, ex_arena = s->ex.arena;
  struct buf cookie = s->cookie, body = s->body, pend = s->ex.pending;
  memset(s, 0, sizeof(*s));
  msg_arena_reset(&arena);
  buf_reset(&cookie);
  buf_reset(&body);
  s->arena = arena;
  s->ex.arena = ex_arena;
  s->ex.pending = pend;
  s->cookie = cookie;
  s->body = body;
  return s;
}

static struct h2stream *stream_of(nghttp2_session *ng, int32_t id) {
  return nghttp2_session_get_stream_user_data(ng, id);
}

/* ---- the exchange's answer, as HTTP/2 ------------------------------------ */

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)ud;
  struct h2stream *s = src->ptr;
  size_t avail = pending(s);
  size_t n = avail < length ? avail : length;
  if (n) memcpy(buf, s->body.data + s->body_off, n);
  s->body_off += n;
  if (n) h2_buffered(s->hs, -(ssize_t)n);
  if (s->body_off == s->body.len) s->body.len = s->body_off = 0;
  if (pending(s) == 0) {
    if (s->resp_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      s->resp_done = 1;
      if (s->n_trailers) {
        nghttp2_nv nva[H2_MAX_NV];
        size_t k = 0;
        for (size_t i = 0; i < s->n_trailers && k < H2_MAX_NV; i++) {
          const struct msg_header *t = &s->trailers[i];
          if (headers_is_hop_by_hop(t->name, t->name_len)) continue;
          nva[k++] = (nghttp2_nv){(uint8_t *)t->name, (uint8_t *)t->value, t->name_len,
                                  t->value_len, NGHTTP2_NV_FLAG_NONE};
        }
        if (nghttp2_submit_trailer(ng, id, nva, k) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    } else if (n == 0) {
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  if (s->ex.active && pending(s) < H2_STREAM_LOW && !s->hs->over) ex_resume(&s->ex);
  return (ssize_t)n;
}

static int h2_head(struct exchange *ex, const struct msg_head *h) {
  struct h2stream *s = ex->ds_ctx;
  if (s->submitted || s->closed) return s->closed ? -1 : 0;
  if (h->te_codings_len) { /* HTTP/2 has no transfer codings: cannot be relayed */
    s->reset_by_us = 1;
    nghttp2_submit_rst_stream(s->hs->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    return -1;
  }
  nghttp2_nv nva[H2_MAX_NV];
  char status[4], clen[24];
  snprintf(status, sizeof(status), "%03d", h->status);
  size_t n = 0;
  nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
  for (size_t i = 0; i < h->n_headers && n < H2_MAX_NV - 1; i++) {
    const struct msg_header *f = &h->headers[i];
    nva[n++] = (nghttp2_nv){(uint8_t *)f->name, (uint8_t *)f->value, f->name_len, f->value_len,
                            NGHTTP2_NV_FLAG_NONE};
  }
  if (h->content_length >= 0 && h->status != 204 && h->status >= 200) {
    int k = snprintf(clen, sizeof(clen), "%lld", (long long)h->content_length);
    nva[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)clen, 14, (size_t)k,
                            NGHTTP2_NV_FLAG_NONE};
  }
  /* no body (HEAD, 204, 304, a gRPC trailers-only answer): END_STREAM on HEADERS */
  int bodyless = h->end_stream || h->content_length == 0;
  nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read};
  if (nghttp2_submit_response(s->hs->ng, s->id, nva, n, bodyless ? NULL : &prd) != 0) return -1;
  s->submitted = 1;
  if (bodyless) s->resp_done = s->resp_eof = 1;
  return 0;
}

static int h2_data(struct exchange *ex, const char *p, size_t n) {
  struct h2stream *s = ex->ds_ctx;
  if (s->closed || s->resp_eof) return 0;
  if (s->body_off == s->body.len) s->body.len = s->body_off = 0;
  if (buf_append(&s->body, p, n) != 0) return -1;
  h2_buffered(s->hs, (ssize_t)n);
  nghttp2_session_resume_data(s->hs->ng, s->id);
  return 0;
}

static void h2_end(struct exchange *ex, const struct msg_header *t, size_t n) {
  struct h2stream *s = ex->ds_ctx;
  if (s->closed) return;
  if (s->resp_eof) { /* a bodyless response: HEADERS carried END_STREAM */
    if (ex->local && !ex->req_complete) ex_abandon_body(ex);
    h2s_send(s->hs->d);
    return;
  }
  if (n) { /* kept until the data provider reaches them */
    struct msg_header *c = msg_arena_alloc(&s->arena, n * sizeof(*c));
    size_t k = 0;
    for (size_t i = 0; c && i < n; i++) {
      char *name = msg_arena_strdup(&s->arena, t[i].name, t[i].name_len);
      char *value = msg_arena_strdup(&s->arena, t[i].value, t[i].value_len);
      if (!name || !value) break;
      for (size_t j = 0; j < t[i].name_len; j++)
        if (name[j] >= 'A' && name[j] <= 'Z') name[j] = (char)(name[j] + 32);
      c[k++] = (struct msg_header){name, t[i].name_len, value, t[i].value_len};
    }
    s->trailers = c;
    s->n_trailers = k;
  }
  s->resp_eof = 1;
  if (ex->local && !ex->req_complete) ex_abandon_body(ex); /* RST NO_ERROR follows the end */
  nghttp2_session_resume_data(s->hs->ng, s->id);
  h2s_send(s->hs->d);
}

static int h2_over_high(struct exchange *ex) {
  struct h2stream *s = ex->ds_ctx;
  return pending(s) > H2_STREAM_HIGH || s->hs->over;
}

static void h2_finished(struct exchange *ex) {
  struct h2stream *s = ex->ds_ctx;
  if (s->unconsumed && !s->closed) {
    nghttp2_session_consume(s->hs->ng, s->id, s->unconsumed);
    s->unconsumed = 0;
  }
  if (s->closed) stream_free(s); /* nghttp2 is done with it too */
}

static void h2_abort(struct exchange *ex) {
  struct h2stream *s = ex->ds_ctx;
  if (s->closed) return;
  s->reset_by_us = 1;
  nghttp2_submit_rst_stream(s->hs->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  h2s_send(s->hs->d);
}

/* The upstream takes request DATA again: acknowledge what was held. */
static void h2_resume_body(struct exchange *ex) {
  struct h2stream *s = ex->ds_ctx;
  s->held = 0;
  if (s->closed || !s->unconsumed) return;
  nghttp2_session_consume(s->hs->ng, s->id, s->unconsumed);
  s->unconsumed = 0;
  h2s_send(s->hs->d);
}

static void h2_flush(struct exchange *ex) {
  struct h2stream *s = ex->ds_ctx;
  h2s_send(s->hs->d);
}

static const struct ex_downstream_ops h2_ops = {
    h2_head, h2_data, h2_end, h2_over_high, h2_finished, h2_abort, NULL, h2_resume_body, h2_flush};

/* ---- nghttp2 callbacks: the request ---------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  struct h2sess *hs = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct h2stream *s = stream_new();
  if (!s) return NGHTTP2_ERR_CALLBACK_FAILURE;
  s->hs = hs;
  s->id = f->hd.stream_id;
  mark_opened(hs, s->id);
  s->req.content_length = -1;
  s->last_rx = now_ms(hs->d->w);
  ex_init(&s->ex, hs->d->w, &h2_ops, s, hs->d->client, hs->d->https, 1);
  s->ex.client_port = hs->d->ex.client_port;
  s->ex.tls = hs->d->tls;
  up_link_insert(&hs->streams, &s->link);
  dconn_idle_update(hs->d); /* a stream is open: not evictable */
  nghttp2_session_set_stream_user_data(ng, s->id, s);
  return 0;
}

static int add_header(struct h2stream *s, const char *n, size_t nl, const char *v, size_t vl) {
  if (s->n_hdrs == s->cap_hdrs) {
    size_t cap = s->cap_hdrs ? s->cap_hdrs * 2 : 16;
    struct msg_header *a = msg_arena_alloc(&s->arena, cap * sizeof(*a));
    if (!a) return -1;
    if (s->n_hdrs) memcpy(a, s->hdrs, s->n_hdrs * sizeof(*a));
    s->hdrs = a;
    s->cap_hdrs = cap;
  }
  char *cn = msg_arena_strdup(&s->arena, n, nl), *cv = msg_arena_strdup(&s->arena, v, vl);
  if (!cn || !cv) return -1;
  s->hdrs[s->n_hdrs++] = (struct msg_header){cn, nl, cv, vl};
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  struct h2sess *hs = ud;
  (void)flags;
  struct h2stream *s = stream_of(ng, f->hd.stream_id);
  if (!s || f->hd.type != NGHTTP2_HEADERS || s->begun) return 0; /* trailers: dropped */
  const struct l7_limits *lim = hs->d->w->cfg->limits;
  s->hdr_bytes += namelen + valuelen + 32;
  if (s->too_big || s->hdr_bytes > lim->max_header_bytes || s->n_hdrs >= lim->max_headers) {
    s->too_big = 1; /* decoded (HPACK state) but not kept: answered 431 */
    return 0;
  }
  const char *n = (const char *)name, *v = (const char *)value;
  struct msg_head *r = &s->req;
  if (namelen > 0 && n[0] == ':') {
    char *copy = msg_arena_strdup(&s->arena, v, valuelen);
    if (!copy) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
      r->method_str = copy, r->method_len = valuelen;
      r->method = msg_method_of(copy, valuelen);
    } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
      r->target = copy, r->target_len = valuelen;
    } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
      r->authority = copy, r->authority_len = valuelen;
    }
    return 0;
  }
  if (namelen == 4 && memcmp(n, "host", 4) == 0) { /* :authority wins */
    if (!r->authority) {
      char *copy = msg_arena_strdup(&s->arena, v, valuelen);
      if (!copy) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      r->authority = copy, r->authority_len = valuelen;
    }
    return 0;
  }
  if (namelen == 6 && memcmp(n, "cookie", 6) == 0) { /* joined (RFC 9113 §8.2.3) */
    if (s->cookie.len) buf_puts(&s->cookie, "; ");
    buf_append(&s->cookie, v, valuelen);
    return 0;
  }
  if (namelen == 14 && memcmp(n, "content-length", 14) == 0) {
    int64_t cl = 0;
    for (size_t i = 0; i < valuelen; i++) cl = cl * 10 + (v[i] - '0'); /* nghttp2 checked it */
    r->content_length = cl;
  }
  if (namelen == 12 && memcmp(n, "content-type", 12) == 0 && valuelen >= 16 &&
      strncasecmp(v, "application/grpc", 16) == 0)
    r->flags |= MSG_F_GRPC;
  if (add_header(s, n, namelen, v, valuelen) != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

static void stream_end_request(struct h2stream *s) {
  if (s->req_ended) return;
  s->req_ended = 1;
  ex_body_end(&s->ex, NULL, 0);
}

/* The request head is complete: the stream's exchange starts. */
static int stream_begin(struct h2stream *s, int end_stream) {
  struct msg_head *r = &s->req;
  if (s->too_big) {
    s->begun = 1;
    if (end_stream) s->req_ended = 1;
    ex_error(&s->ex, 431);
    return 0;
  }
  if (!r->authority || !r->method_str || !r->target) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (s->cookie.len) add_header(s, "cookie", 6, s->cookie.data, s->cookie.len);
  r->headers = s->hdrs;
  r->n_headers = s->n_hdrs;
  r->scheme = s->hs->d->https ? "https" : "http";
  const char *q = memchr(r->target, '?', r->target_len);
  r->path_len = q ? (size_t)(q - r->target) : r->target_len;
  r->end_stream = end_stream;
  s->begun = 1;
  if (end_stream) s->req_ended = 1;
  const struct l7_limits *lim = s->hs->d->w->cfg->limits;
  if (r->target_len > lim->max_uri_bytes) { /* the limit HTTP/1.1 has */
    ex_error(&s->ex, 414);
    return 0;
  }
  ex_begin(&s->ex, r);
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  (void)ud;
  struct h2stream *s = stream_of(ng, f->hd.stream_id);
  if (!s) return 0;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && !s->begun &&
      !s->closed)
    return stream_begin(s, end);
  if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) stream_end_request(s);
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud) {
  (void)flags, (void)ud;
  struct h2stream *s = stream_of(ng, id);
  if (!s || !s->ex.active || s->ex.local || s->ex.resp_complete) {
    nghttp2_session_consume(ng, id, len); /* nobody wants it */
    return 0;
  }
  s->last_rx = now_ms(s->hs->d->w);
  s->body_seen += len;
  if (s->ex.body_limit && s->body_seen > s->ex.body_limit) {
    nghttp2_session_consume(ng, id, len);
    ex_error(&s->ex, 413);
    return 0;
  }
  int rc = ex_body(&s->ex, (const char *)data, len);
  if (rc < 0) {
    nghttp2_session_consume(ng, id, len);
    ex_error(&s->ex, 502);
    return 0;
  }
  /* acknowledged now, or once the upstream drains (h2_resume_body) */
  if (rc > 0 || s->held) {
    s->held = 1;
    s->unconsumed += len;
  } else {
    nghttp2_session_consume(ng, id, len);
  }
  return 0;
}

/* The response ended (END_STREAM sent) while the client never ended its
 * request (a body timed out, or answered early): RST_STREAM NO_ERROR tells
 * it to stop sending (RFC 9113 §8.1) and frees the stream, so a client
 * cannot keep streams, and with them the connection, open for good. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  (void)ud;
  if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  struct h2stream *s = stream_of(ng, f->hd.stream_id);
  if (s && !s->req_ended) {
    s->req_ended = 1;
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
  struct h2sess *hs = ud;
  struct h2stream *s = stream_of(ng, id);
  if (!s) return 0;
  s->closed = 1;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  /* client resets, streams cancelled before their response and streams
   * refused for their headers all count toward the reset limit */
  if (s->resp_done && code == NGHTTP2_NO_ERROR)
    hs->completed++;
  else if (!s->reset_by_us)
    h2_count_reset(hs);
  /* A stream whose response went out whole may close while its exchange
   * is still finishing (the request end, logging, returning the upstream
   * connection): it is freed when the exchange finishes. Anything else is
   * cancelled now. */
  if (s->ex.active && !(s->resp_done && s->ex.resp_complete)) ex_cancel(&s->ex);
  if (!s->ex.active) stream_free(s);
  return 0;
}

/* ---- the connection -------------------------------------------------------- */

/* Output is written once per loop turn (h2s_flush_dirty, from the
 * worker's check handle): every stream answered in the turn shares one
 * write. */
void h2s_send(struct dconn *d) {
  struct h2sess *hs = d->h2;
  if (!hs || hs->dead || d->state == D_CLOSING || !up_link_empty(&hs->dirty)) return;
  up_link_insert(&d->w->h2_dirty, &hs->dirty);
}

void h2s_flush_dirty(struct worker *w) {
  while (!up_link_empty(&w->h2_dirty)) {
    struct h2sess *hs = container_of(w->h2_dirty.next, struct h2sess, dirty);
    up_link_remove(&hs->dirty);
    h2s_send_now(hs->d);
  }
}

static void h2s_send_now(struct dconn *d) {
  struct h2sess *hs = d->h2;
  if (!hs || hs->in_recv || hs->sending || hs->dead || d->state == D_CLOSING) return;
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
    if (d->out.len >= READ_BUF && dconn_write_out(d) != 0) {
      fail = 1;
      break;
    }
  }
  if (!fail && dconn_write_out(d) != 0) fail = 1;
  hs->sending = 0;
  if (fail) {
    hs->dead = 1;
    dconn_close(d, 0);
    return;
  }
  if (!nghttp2_session_want_read(hs->ng) && !nghttp2_session_want_write(hs->ng)) {
    hs->dead = 1;
    dconn_close(d, 1);
    return;
  }
  if ((hs->goaway || d->w->draining) && up_link_empty(&hs->streams) &&
      !nghttp2_session_want_write(hs->ng)) {
    hs->dead = 1;
    dconn_close(d, 1);
  }
}

void h2s_free(struct dconn *d) {
  struct h2sess *hs = d->h2;
  if (!hs) return;
  hs->dead = 1;
  while (!up_link_empty(&hs->streams)) {
    struct h2stream *s = container_of(hs->streams.next, struct h2stream, link);
    s->closed = 1;
    ex_cancel(&s->ex);
    stream_free(s);
  }
  up_link_remove(&hs->dirty);
  nghttp2_session_del(hs->ng);
  free(hs);
  d->h2 = NULL;
}

void h2s_input(struct dconn *d, ssize_t nread, const char *data) {
  struct h2sess *hs = d->h2;
  if (nread < 0) {
    dconn_close(d, 0);
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
    dconn_close(d, 1);
    return;
  }
  h2s_send(d);
}

/* Idle without streams → GOAWAY and close; stalled request bodies → 408. */
void h2s_timer(struct dconn *d) {
  struct h2sess *hs = d->h2;
  struct worker *w = d->w;
  uint64_t now = now_ms(w), next = w->cfg->limits->idle_timeout_ms;
  uint32_t body_ms = w->cfg->limits->body_timeout_ms;
  if (!up_link_empty(&hs->streams)) {
    struct up_link *l = hs->streams.next;
    while (l != &hs->streams) {
      struct h2stream *s = container_of(l, struct h2stream, link);
      l = l->next;
      if (!s->begun || s->req_ended || !s->ex.active || s->held) continue;
      if (now - s->last_rx >= body_ms) {
        ex_body_timeout(&s->ex); /* 408, then RST_STREAM NO_ERROR */
        if (d->state == D_CLOSING) return;
        continue;
      }
      if (body_ms - (now - s->last_rx) < next) next = body_ms - (now - s->last_rx);
    }
    h2s_send(d);
    if (d->state == D_CLOSING) return;
    lazy_set(&d->timer, next ? next : 1);
    return;
  }
  h2_goaway(hs, NGHTTP2_NO_ERROR, "idle");
  h2s_send(d);
  if (d->state != D_CLOSING) dconn_close(d, 1);
}

int h2s_idle(const struct dconn *d) {
  return d->h2 && !d->h2->dead && up_link_empty(&d->h2->streams);
}

void h2s_evict(struct dconn *d) {
  struct h2sess *hs = d->h2;
  h2_goaway(hs, NGHTTP2_NO_ERROR, "evicted");
  /* written now: the caller closes the socket right after */
  const uint8_t *out;
  ssize_t n;
  while ((n = nghttp2_session_mem_send(hs->ng, &out)) > 0) buf_append(&d->out, out, (size_t)n);
  hs->dead = 1;
  dconn_write_out(d);
}

void h2s_drain(struct dconn *d) {
  h2_goaway(d->h2, NGHTTP2_NO_ERROR, "draining");
  h2s_send(d);
}

static nghttp2_session_callbacks *g_cbs;
static uv_once_t g_cbs_once = UV_ONCE_INIT;

/* A HEADERS frame on a client stream id below the last one that was never
 * opened: connection error PROTOCOL_ERROR (h2spec 5.1.1/2). */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud) {
  struct h2sess *hs = ud;
  int32_t id = hd->stream_id;
  if (hd->type != NGHTTP2_HEADERS || id <= 0 || !(id & 1) || id >= hs->last_id) return 0;
  if (hs->last_id - id >= 4096 || nghttp2_session_find_stream(ng, id) || opened_bit(hs, id))
    return 0;
  h2_goaway(hs, NGHTTP2_PROTOCOL_ERROR, "stream_id_reused");
  return 0;
}

static void make_callbacks(void) {
  if (nghttp2_session_callbacks_new(&g_cbs) != 0) return;
  nghttp2_session_callbacks_set_on_begin_headers_callback(g_cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(g_cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(g_cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g_cbs, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(g_cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(g_cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_begin_frame_callback(g_cbs, on_begin_frame);
}

int h2s_start(struct dconn *d) {
  struct worker *w = d->w;
  uv_once(&g_cbs_once, make_callbacks);
  if (!g_cbs) return -1;
  struct h2sess *hs = calloc(1, sizeof(*hs));
  if (!hs) return -1;
  hs->d = d;
  up_link_init(&hs->streams);
  hs->win_start = now_ms(w);
  nghttp2_option *opt;
  if (nghttp2_option_new(&opt) != 0) {
    free(hs);
    return -1;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
  nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
  int rc = nghttp2_session_server_new2(&hs->ng, g_cbs, hs, opt);
  nghttp2_option_del(opt);
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
  up_link_init(&hs->dirty);
  d->h2 = hs;
  d->head_timer = 0;
  if (!d->nodelay) {
    d->nodelay = 1;
    uv_tcp_nodelay(&d->tcp, 1);
  }
  lazy_set(&d->timer, w->cfg->limits->idle_timeout_ms);
  return 0;
}

int h2s_try_upgrade(struct dconn *d, const struct h1_message *m) {
  if (!m->upgrade || d->https || !d->w->cfg->h2c || d->h2) return 0;
  if (m->framing != H1_FRAMING_NONE && !(m->framing == H1_FRAMING_LENGTH && !m->content_length))
    return 0;
  const struct h1_header *settings = NULL;
  int want = 0;
  for (size_t i = 0; i < m->n_headers; i++) {
    const struct h1_header *h = &m->headers[i];
    if (headers_name_is(h->name, h->name_len, "upgrade"))
      want = headers_list_has_token(h->value, h->value_len, "h2c");
    else if (headers_name_is(h->name, h->name_len, "http2-settings"))
      settings = h;
  }
  if (!want || !settings) return 0;
  uint8_t payload[512];
  ssize_t plen = base64_decode(settings->value, settings->value_len, payload, sizeof(payload), 0);
  if (plen < 0 || plen % 6 != 0) return 0;
  if (h2s_start(d) != 0) return 0;
  struct h2sess *hs = d->h2;
  int head = m->method == HTTP_HEAD;
  if (nghttp2_session_upgrade2(hs->ng, payload, (size_t)plen, head, NULL) != 0) {
    h2s_free(d);
    return 0;
  }
  buf_puts(&d->out,
           "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  struct h2stream *s = stream_new();
  if (!s) return 1; /* the stream gets no answer; the session goes on */
  s->hs = hs;
  s->id = 1;
  mark_opened(hs, 1);
  s->last_rx = now_ms(d->w);
  ex_init(&s->ex, d->w, &h2_ops, s, d->client, d->https, 1);
  s->ex.client_port = d->ex.client_port;
  s->ex.tls = d->tls;
  up_link_insert(&hs->streams, &s->link);
  dconn_idle_update(d);
  nghttp2_session_set_stream_user_data(hs->ng, 1, s);
  /* the request of the upgrade is stream 1: its head (in the HTTP/1.1
   * parser's buffer, which is not used again) as a message */
  h1_message_head(m, "http", &s->req);
  s->req.flags &= ~(unsigned)MSG_F_UPGRADE;
  s->req.end_stream = 1;
  s->begun = s->req_ended = 1;
  hs->in_recv = 1; /* no session output before the 101 is queued whole */
  ex_begin(&s->ex, &s->req);
  hs->in_recv = 0;
  return 1;
}
