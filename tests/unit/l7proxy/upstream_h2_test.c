/*
 * upstream_h2 tests: the pool against an in-test nghttp2 server on
 * 127.0.0.1 (port 0) running on the same libuv loop.
 *
 * The server answers by path: "/echo" echoes the request body with
 * trailers (grpc-status: 0, grpc-message: ok); "/hold" keeps the stream
 * open until srv.release is set (then answers 200 "held"); with
 * srv.goaway_at set, the server sends GOAWAY(last_stream_id = the first
 * held stream) once that many streams are held, then closes. Every
 * RST_STREAM the server receives is recorded (srv.rst_*), so a test can
 * check what the client told the server, not only what it told its caller.
 */
#include <CUnit/CUnit.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "l7proxy/upstream_h2.h"

/* ---- the test server --------------------------------------------------- */

struct sstream {
  int32_t id;
  char path[64];
  char *body;
  size_t len, cap, off;
  int held;
};

struct sconn {
  uv_tcp_t tcp;
  nghttp2_session *sess;
  int closing;
  size_t active, max_active;
};

static struct {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t guard;
  int port;
  uint32_t max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS (0: not sent) */
  int goaway_at;        /* held streams that trigger GOAWAY (0: never) */
  int release;
  int held;
  size_t accepted, max_active;
  int rst_received;   /* RST_STREAM frames received */
  int32_t rst_stream; /* ... the last one's stream id */
  uint32_t rst_code;  /* ... and error code */
  char rst_path[64];  /* ... and the :path of that stream */
  struct sconn *conns[16];
  size_t n_conns;
} srv;

static char rbuf[65536];

static void s_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  (void)sz;
  *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void s_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void s_close_cb(uv_handle_t *h) {
  struct sconn *c = h->data;
  for (int32_t id = 1; id < 200; id += 2) {
    struct sstream *st = nghttp2_session_get_stream_user_data(c->sess, id);
    if (st) {
      free(st->body);
      free(st);
    }
  }
  nghttp2_session_del(c->sess);
  for (size_t i = 0; i < srv.n_conns; i++)
    if (srv.conns[i] == c) srv.conns[i] = NULL;
  free(c);
}

static void s_flush(struct sconn *c) {
  if (c->closing) return;
  for (;;) {
    const uint8_t *d;
    ssize_t n = nghttp2_session_mem_send(c->sess, &d);
    if (n <= 0) break;
    uv_write_t *w = malloc(sizeof(*w));
    char *copy = malloc((size_t)n);
    memcpy(copy, d, (size_t)n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, s_written) != 0) {
      free(copy);
      free(w);
      break;
    }
  }
  if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess)) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, s_close_cb);
  }
}

static ssize_t s_body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud) {
  (void)s;
  (void)id;
  (void)ud;
  struct sstream *st = src->ptr;
  size_t n = st->len - st->off < len ? st->len - st->off : len;
  if (n) memcpy(buf, st->body + st->off, n);
  st->off += n;
  if (st->off == st->len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!strcmp(st->path, "/echo")) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv t[] = {
          {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0},
          {(uint8_t *)"grpc-message", (uint8_t *)"ok", 12, 2, 0},
      };
      nghttp2_submit_trailer(s, id, t, 2);
    }
  }
  return (ssize_t)n;
}

static void s_respond(nghttp2_session *sess, struct sstream *st) {
  if (!strncmp(st->path, "/big/", 5)) {
    size_t n = strtoul(st->path + 5, NULL, 10);
    free(st->body);
    st->body = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) st->body[i] = (char)(i % 251);
    st->len = n;
    st->off = 0;
  }
  nghttp2_nv h[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
                    {(uint8_t *)"x-path", (uint8_t *)st->path, 6, strlen(st->path), 0}};
  nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = s_body_read};
  nghttp2_submit_response(sess, st->id, h, 2, &prd);
}

static void s_release_held(void) {
  for (size_t i = 0; i < srv.n_conns; i++) {
    struct sconn *c = srv.conns[i];
    if (!c || c->closing) continue;
    /* every stream of this connection with held set */
    for (int32_t id = 1; id < 200; id += 2) {
      struct sstream *st = nghttp2_session_get_stream_user_data(c->sess, id);
      if (st && st->held) {
        st->held = 0;
        free(st->body);
        st->body = strdup("held");
        st->len = 4;
        st->off = 0;
        s_respond(c->sess, st);
      }
    }
    s_flush(c);
  }
}

static int s_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  struct sconn *c = ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct sstream *st = calloc(1, sizeof(*st));
  st->id = f->hd.stream_id;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  c->active++;
  if (c->active > c->max_active) c->max_active = c->active;
  if (c->active > srv.max_active) srv.max_active = c->active;
  return 0;
}

static int s_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                    const uint8_t *v, size_t vl, uint8_t flags, void *ud) {
  (void)flags;
  (void)ud;
  struct sstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (st && nl == 5 && !memcmp(n, ":path", 5) && vl < sizeof(st->path)) {
    memcpy(st->path, v, vl);
    st->path[vl] = 0;
  }
  return 0;
}

static int s_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                  void *ud) {
  (void)flags;
  (void)ud;
  struct sstream *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st) return 0;
  if (st->len + n > st->cap) {
    st->cap = (st->len + n) * 2;
    st->body = realloc(st->body, st->cap);
  }
  memcpy(st->body + st->len, d, n);
  st->len += n;
  return 0;
}

static int s_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  struct sconn *c = ud;
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    struct sstream *rs = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    srv.rst_received++;
    srv.rst_stream = f->hd.stream_id;
    srv.rst_code = f->rst_stream.error_code;
    snprintf(srv.rst_path, sizeof(srv.rst_path), "%s", rs ? rs->path : "");
    return 0;
  }
  if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  struct sstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (!st) return 0;
  if (!strcmp(st->path, "/reset")) {
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    return 0;
  }
  if (!strcmp(st->path, "/bighdr")) { /* 20 fields of 2 KiB: over a 16 KiB list limit */
    static char v[2048];
    memset(v, 'v', sizeof(v));
    nghttp2_nv h[21];
    static char names[20][8];
    h[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0};
    for (int i = 0; i < 20; i++) {
      snprintf(names[i], sizeof(names[i]), "x-%d", i);
      h[i + 1] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)v, strlen(names[i]), sizeof(v), 0};
    }
    nghttp2_submit_response(s, st->id, h, 21, NULL);
    return 0;
  }
  if (!strcmp(st->path, "/hold") && !srv.release) {
    st->held = 1;
    srv.held++;
    if (srv.goaway_at && srv.held == srv.goaway_at) {
      int32_t first = 0;
      for (int32_t id = 1; id < 200 && !first; id += 2)
        if (nghttp2_session_get_stream_user_data(s, id)) first = id;
      nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, first, NGHTTP2_NO_ERROR, NULL, 0);
      (void)c;
    }
    return 0;
  }
  s_respond(s, st);
  return 0;
}

static int s_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
  (void)code;
  struct sconn *c = ud;
  struct sstream *st = nghttp2_session_get_stream_user_data(s, id);
  if (st) {
    c->active--;
    free(st->body);
    free(st);
  }
  return 0;
}

static void s_shutdown_cb(uv_shutdown_t *sh, int status) {
  (void)status;
  struct sconn *c = sh->data;
  free(sh);
  uv_close((uv_handle_t *)&c->tcp, s_close_cb);
}

static void s_read(uv_stream_t *t, ssize_t n, const uv_buf_t *b) {
  struct sconn *c = t->data;
  if (c->closing) return;
  if (n < 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, s_close_cb);
    return;
  }
  nghttp2_session_mem_recv(c->sess, (const uint8_t *)b->base, (size_t)n);
  s_flush(c);
  if (srv.goaway_at && srv.held == srv.goaway_at && !c->closing) {
    /* after the GOAWAY is written: drop the connection with a stream open */
    c->closing = 1;
    uv_shutdown_t *sh = malloc(sizeof(*sh));
    sh->data = c;
    if (uv_shutdown(sh, (uv_stream_t *)&c->tcp, s_shutdown_cb) != 0) {
      free(sh);
      uv_close((uv_handle_t *)&c->tcp, s_close_cb);
    }
  }
}

static nghttp2_session_callbacks *s_cbs;

static void s_accept(uv_stream_t *l, int status) {
  if (status < 0) return;
  struct sconn *c = calloc(1, sizeof(*c));
  uv_tcp_init(&srv.loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, NULL);
    return;
  }
  nghttp2_session_server_new(&c->sess, s_cbs, c);
  nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv.max_streams}};
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, srv.max_streams ? 1 : 0);
  if (srv.n_conns < 16) srv.conns[srv.n_conns++] = c;
  srv.accepted++;
  uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read);
  s_flush(c);
}

static void guard_cb(uv_timer_t *t) {
  (void)t;
}

static void srv_start(uint32_t max_streams, int goaway_at) {
  memset(&srv, 0, sizeof(srv));
  srv.max_streams = max_streams;
  srv.goaway_at = goaway_at;
  if (!s_cbs) {
    nghttp2_session_callbacks_new(&s_cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(s_cbs, s_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(s_cbs, s_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s_cbs, s_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(s_cbs, s_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(s_cbs, s_stream_close);
  }
  uv_loop_init(&srv.loop);
  uv_timer_init(&srv.loop, &srv.guard); /* run_until's UV_RUN_ONCE never blocks long */
  uv_timer_start(&srv.guard, guard_cb, 20, 20);
  uv_tcp_init(&srv.loop, &srv.listener);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&srv.listener, (const struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)&srv.listener, 16, s_accept);
  struct sockaddr_in b;
  int len = sizeof(b);
  uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&b, &len);
  srv.port = ntohs(b.sin_port);
}

/* ---- the client side --------------------------------------------------- */

struct res {
  int status;
  int closed;
  int err;
  char *body;
  size_t len, cap;
  int trailers;
  char grpc_status[8];
  char grpc_message[16];
  char xpath[32];
  int drains;
  struct uh2_stream *s;
  int pause_on_data;
};

static void c_headers(void *ud, int status, const struct uh2_header *h, size_t n) {
  struct res *r = ud;
  r->status = status;
  for (size_t i = 0; i < n; i++)
    if (h[i].name_len == 6 && !memcmp(h[i].name, "x-path", 6) && h[i].value_len < 32)
      memcpy(r->xpath, h[i].value, h[i].value_len);
}

static void c_data(void *ud, const uint8_t *p, size_t n) {
  struct res *r = ud;
  if (r->len + n > r->cap) {
    r->cap = (r->len + n) * 2;
    r->body = realloc(r->body, r->cap);
  }
  memcpy(r->body + r->len, p, n);
  r->len += n;
  if (r->pause_on_data && r->s) uh2_stream_pause(r->s, 1);
}

static void c_trailers(void *ud, const struct uh2_header *h, size_t n) {
  struct res *r = ud;
  r->trailers++;
  for (size_t i = 0; i < n; i++) {
    if (h[i].name_len == 11 && !memcmp(h[i].name, "grpc-status", 11) && h[i].value_len < 8)
      memcpy(r->grpc_status, h[i].value, h[i].value_len);
    if (h[i].name_len == 12 && !memcmp(h[i].name, "grpc-message", 12) && h[i].value_len < 16)
      memcpy(r->grpc_message, h[i].value, h[i].value_len);
  }
}

static void c_drain(void *ud) {
  ((struct res *)ud)->drains++;
}

static void c_close(void *ud, int err) {
  struct res *r = ud;
  r->closed++;
  r->err = err;
}

static const struct uh2_stream_cb cbs = {c_headers, c_data, c_trailers, c_drain, c_close};

static struct sockaddr_in target_addr;

static struct uh2_stream *open_req(struct uh2_pool *p, const char *method, const char *path,
                                   int end, struct res *r) {
  uv_ip4_addr("127.0.0.1", srv.port, &target_addr);
  struct uh2_target t = {.key = "c\nep",
                         .addr = (const struct sockaddr *)&target_addr,
                         .addrlen = sizeof(target_addr)};
  struct uh2_header h[] = {
      {":method", 7, method, strlen(method)},
      {":scheme", 7, "http", 4},
      {":authority", 10, "test", 4},
      {":path", 5, path, strlen(path)},
      {"te", 2, "trailers", 8},
  };
  struct uh2_stream *s = NULL;
  int rv = uh2_stream_open(p, &t, h, 5, end, &cbs, r, &s);
  CU_ASSERT_EQUAL(rv, 0);
  return s;
}

/* Runs the loop until *flag reaches want, at most ~5 s / 200000 turns. */
static int run_until(const int *a, int want) {
  uint64_t start = uv_now(&srv.loop);
  for (int i = 0; i < 200000 && *a < want; i++) {
    if (srv.release && srv.held) {
      srv.held = 0;
      s_release_held();
    }
    uv_run(&srv.loop, UV_RUN_ONCE);
    if (uv_now(&srv.loop) - start > 5000) break;
  }
  return *a >= want;
}

static struct uh2_pool *pool_new(void) {
  struct uh2_pool *p = NULL;
  struct uh2_pool_config cfg = {.connect_timeout_ms = 2000, .idle_timeout_ms = 3000};
  CU_ASSERT_EQUAL_FATAL(uh2_pool_new(&srv.loop, &cfg, &p), 0);
  return p;
}

static void srv_stop(struct uh2_pool *p) {
  uh2_pool_close(p);
  for (size_t i = 0; i < srv.n_conns; i++)
    if (srv.conns[i] && !srv.conns[i]->closing) {
      srv.conns[i]->closing = 1;
      uv_close((uv_handle_t *)&srv.conns[i]->tcp, s_close_cb);
    }
  uv_close((uv_handle_t *)&srv.listener, NULL);
  uv_close((uv_handle_t *)&srv.guard, NULL);
  for (int i = 0; i < 1000 && uv_run(&srv.loop, UV_RUN_NOWAIT); i++) {
  }
  CU_ASSERT_EQUAL(uv_loop_close(&srv.loop), 0);
}

/* ---- tests ------------------------------------------------------------- */

static void multiplexes_requests_over_one_connection(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res warm = {0};
  open_req(p, "GET", "/echo", 1, &warm);
  CU_ASSERT_TRUE(run_until(&warm.closed, 1));
  CU_ASSERT_EQUAL(warm.err, 0);
  CU_ASSERT_EQUAL(warm.status, 200);
  struct res r[10];
  memset(r, 0, sizeof(r));
  int done = 0;
  for (int i = 0; i < 10; i++) {
    struct uh2_stream *s = open_req(p, "POST", "/echo", 0, &r[i]);
    CU_ASSERT_TRUE(uh2_stream_reused(s));
    char b[16];
    int n = snprintf(b, sizeof(b), "body-%d", i);
    CU_ASSERT_EQUAL(uh2_stream_write(s, b, (size_t)n), 0);
    CU_ASSERT_EQUAL(uh2_stream_end(s), 0);
  }
  CU_ASSERT_EQUAL(uh2_pool_streams(p), 10);
  for (int i = 0; i < 10; i++) {
    CU_ASSERT_TRUE(run_until(&r[i].closed, 1));
    done += r[i].closed;
    char b[16];
    int n = snprintf(b, sizeof(b), "body-%d", i);
    CU_ASSERT_EQUAL(r[i].err, 0);
    CU_ASSERT_EQUAL(r[i].len, (size_t)n);
    CU_ASSERT_TRUE(r[i].body && !memcmp(r[i].body, b, (size_t)n));
    free(r[i].body);
  }
  CU_ASSERT_EQUAL(done, 10);
  CU_ASSERT_EQUAL(srv.accepted, 1);
  CU_ASSERT_EQUAL(uh2_pool_connections(p), 1);
  CU_ASSERT_TRUE(srv.max_active > 1);
  free(warm.body);
  srv_stop(p);
}

static void streams_a_large_body_under_flow_control(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res r = {0};
  struct uh2_stream *s = open_req(p, "POST", "/echo", 0, &r);
  size_t total = 3 * 1024 * 1024 + 17;
  char *big = malloc(total);
  for (size_t i = 0; i < total; i++) big[i] = (char)(i * 7 + i / 4096);
  /* in chunks, waiting for the buffer to drain like a proxy would */
  size_t sent = 0;
  while (sent < total) {
    size_t n = total - sent < 100000 ? total - sent : 100000;
    CU_ASSERT_EQUAL_FATAL(uh2_stream_write(s, big + sent, n), 0);
    sent += n;
    uint64_t start = uv_now(&srv.loop);
    while (uh2_stream_buffered(s) >= UH2_HIGH_WATER && uv_now(&srv.loop) - start < 5000)
      uv_run(&srv.loop, UV_RUN_ONCE);
  }
  uh2_stream_end(s);
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_EQUAL(r.err, 0);
  CU_ASSERT_EQUAL(r.len, total);
  CU_ASSERT_TRUE(r.len == total && !memcmp(r.body, big, total));
  CU_ASSERT_TRUE(r.drains >= 1);
  free(big);
  free(r.body);
  srv_stop(p);
}

static void relays_response_trailers(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res r = {0};
  struct uh2_stream *s = open_req(p, "POST", "/echo", 0, &r);
  uh2_stream_write(s, "\0\0\0\0\2hi", 7);
  uh2_stream_end(s);
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_EQUAL(r.err, 0);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_STRING_EQUAL(r.xpath, "/echo");
  CU_ASSERT_EQUAL(r.trailers, 1);
  CU_ASSERT_STRING_EQUAL(r.grpc_status, "0");
  CU_ASSERT_STRING_EQUAL(r.grpc_message, "ok");
  free(r.body);
  srv_stop(p);
}

static void respects_max_concurrent_streams_with_more_connections(void) {
  srv_start(2, 0);
  struct uh2_pool *p = pool_new();
  struct res warm = {0};
  open_req(p, "GET", "/echo", 1, &warm);
  CU_ASSERT_TRUE(run_until(&warm.closed, 1));
  struct res r[5];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < 5; i++) open_req(p, "GET", "/hold", 1, &r[i]);
  CU_ASSERT_EQUAL(uh2_pool_connections(p), 3);
  CU_ASSERT_TRUE(run_until(&srv.held, 5));
  CU_ASSERT_EQUAL(srv.held, 5);
  srv.release = 1;
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_TRUE(run_until(&r[i].closed, 1));
    CU_ASSERT_EQUAL(r[i].err, 0);
    CU_ASSERT_EQUAL(r[i].len, 4);
    free(r[i].body);
  }
  CU_ASSERT_EQUAL(srv.accepted, 3);
  CU_ASSERT_TRUE(srv.max_active <= 2);
  free(warm.body);
  srv_stop(p);
}

static void reports_goaway_per_stream(void) {
  srv_start(0, 2);
  struct uh2_pool *p = pool_new();
  struct res a = {0}, b = {0};
  open_req(p, "GET", "/hold", 1, &a);
  open_req(p, "GET", "/hold", 1, &b);
  CU_ASSERT_TRUE(run_until(&a.closed, 1));
  CU_ASSERT_TRUE(run_until(&b.closed, 1));
  /* stream 1 was accepted then lost; stream 3 is above last_stream_id */
  CU_ASSERT_EQUAL(a.err, UH2_E_CONN_LOST);
  CU_ASSERT_EQUAL(b.err, UH2_E_REFUSED);
  /* a new request opens a new connection */
  srv.goaway_at = 0;
  struct res c = {0};
  open_req(p, "GET", "/echo", 1, &c);
  CU_ASSERT_TRUE(run_until(&c.closed, 1));
  CU_ASSERT_EQUAL(c.err, 0);
  CU_ASSERT_EQUAL(srv.accepted, 2);
  srv_stop(p);
}

static void reports_connect_failure(void) {
  srv_start(0, 0);
  /* a port nobody listens on: bind, read the port, close */
  uv_tcp_t t;
  uv_tcp_init(&srv.loop, &t);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
  int len = sizeof(a);
  uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&srv.loop, UV_RUN_NOWAIT);
  int real = srv.port;
  srv.port = ntohs(a.sin_port);
  struct uh2_pool *p = pool_new();
  struct res r = {0};
  open_req(p, "GET", "/echo", 1, &r);
  CU_ASSERT_EQUAL(r.closed, 0); /* never from inside open */
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_EQUAL(r.closed, 1);
  CU_ASSERT_EQUAL(r.err, UH2_E_CONNECT);
  srv.port = real;
  srv_stop(p);
}

static void cancel_suppresses_callbacks(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res r = {0}, r2 = {0};
  struct uh2_stream *s = open_req(p, "GET", "/hold", 1, &r);
  uh2_stream_cancel(s);
  open_req(p, "GET", "/echo", 1, &r2);
  CU_ASSERT_TRUE(run_until(&r2.closed, 1));
  CU_ASSERT_EQUAL(r2.err, 0);
  CU_ASSERT_EQUAL(r.closed, 0);
  CU_ASSERT_EQUAL(uh2_pool_streams(p), 0);
  free(r2.body);
  srv_stop(p);
}

static void paused_stream_stops_the_server_at_the_window(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res r = {0};
  size_t total = 3 * UH2_STREAM_WINDOW + 5;
  char path[32];
  snprintf(path, sizeof(path), "/big/%zu", total);
  r.pause_on_data = 1;
  r.s = open_req(p, "GET", path, 1, &r);
  int got_window = 0;
  uint64_t start = uv_now(&srv.loop);
  while (!got_window && uv_now(&srv.loop) - start < 5000) {
    uv_run(&srv.loop, UV_RUN_ONCE);
    got_window = r.len >= UH2_STREAM_WINDOW;
  }
  CU_ASSERT_TRUE(got_window);
  /* more loop turns: no WINDOW_UPDATE went out, so nothing more arrives */
  for (int i = 0; i < 50; i++) uv_run(&srv.loop, UV_RUN_NOWAIT);
  CU_ASSERT_EQUAL(r.len, UH2_STREAM_WINDOW);
  CU_ASSERT_EQUAL(r.closed, 0);
  r.pause_on_data = 0;
  uh2_stream_pause(r.s, 0);
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_EQUAL(r.err, 0);
  CU_ASSERT_EQUAL(r.len, total);
  int same = r.len == total;
  for (size_t i = 0; same && i < total; i++) same = r.body[i] == (char)(i % 251);
  CU_ASSERT_TRUE(same);
  free(r.body);
  srv_stop(p);
}

static void reports_a_server_reset_and_an_oversized_head(void) {
  srv_start(0, 0);
  struct uh2_pool *p = NULL;
  struct uh2_pool_config cfg = {.max_header_list = 16384};
  CU_ASSERT_EQUAL_FATAL(uh2_pool_new(&srv.loop, &cfg, &p), 0);
  struct res r = {0}, big = {0}, ok = {0};
  open_req(p, "GET", "/reset", 1, &r);
  open_req(p, "GET", "/bighdr", 1, &big);
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_TRUE(run_until(&big.closed, 1));
  CU_ASSERT_EQUAL(r.err, UH2_E_RESET);
  CU_ASSERT_EQUAL(big.err, UH2_E_PROTOCOL);
  CU_ASSERT_EQUAL(big.status, 0); /* no headers delivered */
  /* both failures are per stream: the connection goes on */
  open_req(p, "GET", "/echo", 1, &ok);
  CU_ASSERT_TRUE(run_until(&ok.closed, 1));
  CU_ASSERT_EQUAL(ok.err, 0);
  CU_ASSERT_EQUAL(srv.accepted, 1);
  free(ok.body);
  srv_stop(p);
}

static void paused_streams_do_not_stall_the_connection(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res big[5], ok = {0};
  memset(big, 0, sizeof(big));
  char path[32];
  snprintf(path, sizeof(path), "/big/%d", 2 * UH2_STREAM_WINDOW);
  for (int i = 0; i < 5; i++) { /* 5 held windows: more than the connection window */
    big[i].pause_on_data = 1;
    big[i].s = open_req(p, "GET", path, 1, &big[i]);
  }
  for (int i = 0; i < 5; i++) {
    int full = 0;
    uint64_t start = uv_now(&srv.loop);
    while (!full && uv_now(&srv.loop) - start < 5000) {
      uv_run(&srv.loop, UV_RUN_ONCE);
      full = big[i].len >= UH2_STREAM_WINDOW;
    }
    CU_ASSERT_TRUE(full);
  }
  open_req(p, "POST", "/echo", 1, &ok);
  CU_ASSERT_TRUE(run_until(&ok.closed, 1));
  CU_ASSERT_EQUAL(ok.err, 0);
  CU_ASSERT_EQUAL(srv.accepted, 1);
  for (int i = 0; i < 5; i++) {
    big[i].pause_on_data = 0;
    uh2_stream_pause(big[i].s, 0);
  }
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_TRUE(run_until(&big[i].closed, 1));
    CU_ASSERT_EQUAL(big[i].len, 2 * UH2_STREAM_WINDOW);
    free(big[i].body);
  }
  free(ok.body);
  srv_stop(p);
}

static void times_out_a_stream_and_resets_it(void) {
  srv_start(0, 0);
  struct uh2_pool *p = pool_new();
  struct res r = {0}, r2 = {0};
  struct uh2_stream *s = open_req(p, "GET", "/hold", 1, &r);
  uh2_stream_set_timeout(s, 150);
  CU_ASSERT_TRUE(run_until(&r.closed, 1));
  CU_ASSERT_EQUAL(r.err, UH2_E_TIMEOUT);
  CU_ASSERT_STRING_EQUAL(uh2_strerror(r.err), "timeout");
  /* the server is told: RST_STREAM(CANCEL) on the held stream */
  CU_ASSERT_TRUE(run_until(&srv.rst_received, 1));
  CU_ASSERT_EQUAL(srv.rst_received, 1);
  CU_ASSERT_EQUAL(srv.rst_code, NGHTTP2_CANCEL);
  CU_ASSERT_STRING_EQUAL(srv.rst_path, "/hold");
  /* the connection stays usable */
  open_req(p, "GET", "/echo", 1, &r2);
  CU_ASSERT_TRUE(run_until(&r2.closed, 1));
  CU_ASSERT_EQUAL(r2.err, 0);
  CU_ASSERT_EQUAL(srv.accepted, 1);
  free(r2.body);
  srv_stop(p);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("upstream_h2", NULL, NULL);
  CU_add_test(s, "multiplexes_requests_over_one_connection",
              multiplexes_requests_over_one_connection);
  CU_add_test(s, "streams_a_large_body_under_flow_control",
              streams_a_large_body_under_flow_control);
  CU_add_test(s, "relays_response_trailers", relays_response_trailers);
  CU_add_test(s, "respects_max_concurrent_streams_with_more_connections",
              respects_max_concurrent_streams_with_more_connections);
  CU_add_test(s, "reports_goaway_per_stream", reports_goaway_per_stream);
  CU_add_test(s, "reports_connect_failure", reports_connect_failure);
  CU_add_test(s, "cancel_suppresses_callbacks", cancel_suppresses_callbacks);
  CU_add_test(s, "times_out_a_stream_and_resets_it", times_out_a_stream_and_resets_it);
  CU_add_test(s, "reports_a_server_reset_and_an_oversized_head",
              reports_a_server_reset_and_an_oversized_head);
  CU_add_test(s, "paused_stream_stops_the_server_at_the_window",
              paused_stream_stops_the_server_at_the_window);
  CU_add_test(s, "paused_streams_do_not_stall_the_connection",
              paused_streams_do_not_stall_the_connection);
}
