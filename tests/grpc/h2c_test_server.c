/*
 * h2c_test_server — an HTTP/2 cleartext (prior knowledge) test backend
 * with nghttp2 on libuv, for proxy tests of H2C upstreams.
 *
 * Usage: h2c_test_server [--port-file=FILE] [--name=NAME]   (listens on 127.0.0.1:0)
 * Prints "PORT <n>" on stdout (and writes n to FILE); runs until killed.
 *
 * Answers every request once its END_STREAM arrives: 200 with headers
 * x-h2c: 1, x-method, x-path, x-authority, x-te (the request's te or "-")
 * x-body-len and x-backend (NAME, default "h2c"). The body is the request
 * body for paths starting with "/echo", N bytes of "0123456789" for
 * "/big/N", otherwise "h2c METHOD PATH\n"; "/trailers" adds the trailer
 * x-trailer: yes after the body.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct st {
  int32_t id;
  char method[16], path[256], authority[128], te[32];
  char *body;
  size_t len, cap, off;
  char hdr_len[24];
};

struct conn {
  uv_tcp_t tcp;
  nghttp2_session *sess;
  int closing;
};

static uv_loop_t *loop;
static const char *g_name = "h2c";
static nghttp2_session_callbacks *cbs;
static char rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  (void)sz;
  *b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void on_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  nghttp2_session_del(c->sess); /* open streams leak at exit only: a test server */
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void flush(struct conn *c) {
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
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
      free(copy);
      free(w);
      conn_close(c);
      return;
    }
  }
  if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess)) conn_close(c);
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)ud;
  struct st *st = src->ptr;
  size_t n = st->len - st->off < len ? st->len - st->off : len;
  if (n) memcpy(buf, st->body + st->off, n);
  st->off += n;
  if (st->off == st->len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!strncmp(st->path, "/trailers", 9)) {
      nghttp2_nv t[] = {{(uint8_t *)"x-trailer", (uint8_t *)"yes", 9, 3, 0}};
      if (nghttp2_submit_trailer(s, id, t, 1) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return (ssize_t)n;
}

static void respond(nghttp2_session *s, struct st *st) {
  snprintf(st->hdr_len, sizeof(st->hdr_len), "%zu", st->len);
  if (!strncmp(st->path, "/echo", 5)) {
    /* body already holds the request */
  } else if (!strncmp(st->path, "/big/", 5)) {
    size_t n = strtoul(st->path + 5, NULL, 10);
    if (n > (64u << 20)) n = 64u << 20;
    free(st->body);
    st->body = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) st->body[i] = (char)('0' + i % 10);
    st->len = n;
  } else {
    free(st->body);
    st->body = malloc(512);
    st->len = (size_t)snprintf(st->body, 512, "h2c %s %s\n", st->method, st->path);
  }
  st->off = 0;
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0}
  nghttp2_nv h[] = {NV(":status", "200"),
                    NV("content-type", "text/plain"),
                    NV("x-h2c", "1"),
                    NV("x-method", st->method),
                    NV("x-path", st->path),
                    NV("x-authority", st->authority),
                    NV("x-te", st->te[0] ? st->te : "-"),
                    NV("x-body-len", st->hdr_len),
                    NV("x-backend", g_name)};
#undef NV
  nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = body_read};
  nghttp2_submit_response(s, st->id, h, sizeof(h) / sizeof(h[0]), &prd);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct st *st = calloc(1, sizeof(*st));
  st->id = f->hd.stream_id;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

static void copy(char *dst, size_t cap, const uint8_t *v, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                     const uint8_t *v, size_t vl, uint8_t flags, void *ud) {
  (void)flags;
  (void)ud;
  struct st *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (!st) return 0;
  if (nl == 7 && !memcmp(n, ":method", 7)) copy(st->method, sizeof(st->method), v, vl);
  if (nl == 5 && !memcmp(n, ":path", 5)) copy(st->path, sizeof(st->path), v, vl);
  if (nl == 10 && !memcmp(n, ":authority", 10)) copy(st->authority, sizeof(st->authority), v, vl);
  if (nl == 2 && !memcmp(n, "te", 2)) copy(st->te, sizeof(st->te), v, vl);
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                   void *ud) {
  (void)flags;
  (void)ud;
  struct st *st = nghttp2_session_get_stream_user_data(s, id);
  if (!st) return 0;
  if (st->len + n > st->cap) {
    st->cap = (st->len + n) * 2;
    st->body = realloc(st->body, st->cap);
  }
  memcpy(st->body + st->len, d, n);
  st->len += n;
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)ud;
  if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  struct st *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (st) respond(s, st);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
  (void)code;
  (void)ud;
  struct st *st = nghttp2_session_get_stream_user_data(s, id);
  if (st) {
    nghttp2_session_set_stream_user_data(s, id, NULL);
    free(st->body);
    free(st);
  }
  return 0;
}

static void on_read(uv_stream_t *t, ssize_t n, const uv_buf_t *b) {
  struct conn *c = t->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (nghttp2_session_mem_recv(c->sess, (const uint8_t *)b->base, (size_t)n) < 0) {
    conn_close(c);
    return;
  }
  flush(c);
}

static void on_conn(uv_stream_t *l, int status) {
  if (status < 0) return;
  struct conn *c = calloc(1, sizeof(*c));
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, NULL);
    free(c);
    return;
  }
  nghttp2_session_server_new(&c->sess, cbs, c);
  nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  flush(c);
}

int main(int argc, char **argv) {
  const char *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "--port-file=", 12)) {
      port_file = argv[i] + 12;
    } else if (!strncmp(argv[i], "--name=", 7)) {
      g_name = argv[i] + 7;
    } else {
      fprintf(stderr, "usage: %s [--port-file=FILE]\n", argv[0]);
      return 2;
    }
  }
  loop = uv_default_loop();
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  uv_tcp_t l;
  uv_tcp_init(loop, &l);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  if (uv_tcp_bind(&l, (const struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&l, 128, on_conn) != 0) {
    fprintf(stderr, "cannot listen\n");
    return 1;
  }
  struct sockaddr_in b;
  int len = sizeof(b);
  uv_tcp_getsockname(&l, (struct sockaddr *)&b, &len);
  int port = ntohs(b.sin_port);
  if (port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%d", port);
      fclose(f);
      rename(tmp, port_file);
    }
  }
  printf("PORT %d\n", port);
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
