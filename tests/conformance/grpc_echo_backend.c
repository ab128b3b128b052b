/*
 * grpc_echo_backend — the gRPC backends of the Gateway API conformance
 * runner: h2c (prior knowledge) servers that answer every gRPC call with
 * who served it, like upstream's echo-basic in gRPC mode.
 *
 * Usage: grpc_echo_backend POD=NAMESPACE=ADDR:PORT ...   (prints READY)
 *
 * Any POST answers 200, content-type application/grpc, one message and the
 * trailer grpc-status: 0. The message is protobuf field 1 (a string)
 * holding JSON: {"pod", "namespace", "method" (the :path), "authority",
 * "headers": {name: [values]}} — the runner decodes it to check the
 * backend, the method and the metadata that reached it. Request messages
 * are read and ignored. One libuv loop, nghttp2 sessions, one process for
 * every pod; killed by the runner.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_HDRS 64

struct pod {
  uv_tcp_t tcp;
  char name[128], ns[128];
};

struct stream {
  int32_t id;
  char path[512], authority[256];
  char names[MAX_HDRS][64], values[MAX_HDRS][256];
  int n;
  char *out;
  size_t len, off;
};

struct conn {
  uv_tcp_t tcp;
  nghttp2_session *sess;
  struct pod *pod;
  int closing;
};

static uv_loop_t *loop;
static nghttp2_session_callbacks *cbs;

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  b->base = malloc(sz);
  b->len = b->base ? sz : 0;
}

static void on_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  nghttp2_session_del(c->sess);
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void flush(struct conn *c) {
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->sess, &data);
    if (n <= 0) break;
    uv_write_t *w = malloc(sizeof(*w));
    char *copy = malloc((size_t)n);
    if (!w || !copy) {
      free(w), free(copy);
      conn_close(c);
      return;
    }
    memcpy(copy, data, (size_t)n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
      free(copy), free(w);
      conn_close(c);
      return;
    }
  }
  if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess)) conn_close(c);
}

/* Appends s to buf as a JSON string (escaping what JSON needs). */
static size_t json_str(char *buf, size_t cap, size_t o, const char *s) {
  if (o < cap) buf[o++] = '"';
  for (; *s && o + 7 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      buf[o++] = '\\', buf[o++] = (char)ch;
    else if (ch < 0x20)
      o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", ch);
    else
      buf[o++] = (char)ch;
  }
  if (o < cap) buf[o++] = '"';
  return o;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)s, (void)id, (void)ud;
  struct stream *st = src->ptr;
  size_t n = st->len - st->off < len ? st->len - st->off : len;
  memcpy(buf, st->out + st->off, n);
  st->off += n;
  if (st->off == st->len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_trailer(s, id, tr, 1);
  }
  return (ssize_t)n;
}

static void answer(struct conn *c, struct stream *st) {
  char json[16384];
  size_t o = 0;
  o += (size_t)snprintf(json + o, sizeof(json) - o, "{\"pod\":");
  o = json_str(json, sizeof(json), o, c->pod->name);
  o += (size_t)snprintf(json + o, sizeof(json) - o, ",\"namespace\":");
  o = json_str(json, sizeof(json), o, c->pod->ns);
  o += (size_t)snprintf(json + o, sizeof(json) - o, ",\"method\":");
  o = json_str(json, sizeof(json), o, st->path);
  o += (size_t)snprintf(json + o, sizeof(json) - o, ",\"authority\":");
  o = json_str(json, sizeof(json), o, st->authority);
  o += (size_t)snprintf(json + o, sizeof(json) - o, ",\"headers\":{");
  for (int i = 0; i < st->n && o + 600 < sizeof(json); i++) {
    if (i) json[o++] = ',';
    o = json_str(json, sizeof(json), o, st->names[i]);
    json[o++] = ':', json[o++] = '[';
    o = json_str(json, sizeof(json), o, st->values[i]);
    json[o++] = ']';
  }
  o += (size_t)snprintf(json + o, sizeof(json) - o, "}}");
  /* protobuf: field 1, wire type 2, varint length, bytes; inside a gRPC frame */
  uint8_t pb[16400];
  size_t p = 0;
  pb[p++] = 0x0a;
  size_t l = o;
  do {
    pb[p++] = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
    l >>= 7;
  } while (l);
  memcpy(pb + p, json, o);
  p += o;
  st->out = malloc(5 + p);
  if (!st->out) return;
  st->out[0] = 0;
  st->out[1] = (char)(p >> 24), st->out[2] = (char)(p >> 16), st->out[3] = (char)(p >> 8);
  st->out[4] = (char)p;
  memcpy(st->out + 5, pb, p);
  st->len = 5 + p;
  nghttp2_nv hdrs[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
  };
  nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
  nghttp2_submit_response(c->sess, st->id, hdrs, 2, &dp);
}

static int on_begin(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)ud;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  struct stream *st = calloc(1, sizeof(*st));
  if (!st) return NGHTTP2_ERR_CALLBACK_FAILURE;
  st->id = f->hd.stream_id;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
  (void)flags, (void)ud;
  struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (!st) return 0;
  if (nl == 5 && !memcmp(name, ":path", 5))
    snprintf(st->path, sizeof(st->path), "%.*s", (int)vl, value);
  else if (nl == 10 && !memcmp(name, ":authority", 10))
    snprintf(st->authority, sizeof(st->authority), "%.*s", (int)vl, value);
  else if (nl > 0 && name[0] != ':' && st->n < MAX_HDRS) {
    snprintf(st->names[st->n], sizeof(st->names[0]), "%.*s", (int)nl, name);
    snprintf(st->values[st->n], sizeof(st->values[0]), "%.*s", (int)vl, value);
    st->n++;
  }
  return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  struct conn *c = ud;
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st) answer(c, st);
  }
  return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
  (void)code, (void)ud;
  struct stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (st) {
    free(st->out);
    free(st);
    nghttp2_session_set_stream_user_data(s, id, NULL);
  }
  return 0;
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  struct conn *c = h->data;
  if (n > 0 && nghttp2_session_mem_recv(c->sess, (const uint8_t *)b->base, (size_t)n) >= 0) {
    flush(c);
  } else if (n < 0 || n > 0) {
    conn_close(c);
  }
  free(b->base);
}

static void on_connection(uv_stream_t *srv, int status) {
  if (status < 0) return;
  struct conn *c = calloc(1, sizeof(*c));
  if (!c) return;
  c->pod = srv->data;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 || nghttp2_session_server_new(&c->sess, cbs, c)) {
    conn_close(c);
    return;
  }
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 1);
  flush(c);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
  loop = uv_default_loop();
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
  for (int i = 1; i < argc; i++) {
    struct pod *p = calloc(1, sizeof(*p));
    char addr[64];
    int port;
    if (!p || sscanf(argv[i], "%127[^=]=%127[^=]=%63[^:]:%d", p->name, p->ns, addr, &port) != 4) {
      fprintf(stderr, "bad spec %s (want POD=NAMESPACE=ADDR:PORT)\n", argv[i]);
      return 2;
    }
    struct sockaddr_in sa;
    uv_ip4_addr(addr, port, &sa);
    uv_tcp_init(loop, &p->tcp);
    p->tcp.data = p;
    if (uv_tcp_bind(&p->tcp, (const struct sockaddr *)&sa, 0) ||
        uv_listen((uv_stream_t *)&p->tcp, 128, on_connection)) {
      fprintf(stderr, "cannot listen on %s:%d\n", addr, port);
      return 1;
    }
  }
  printf("READY\n");
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
