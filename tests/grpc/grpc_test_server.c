/*
 * grpc_test_server — a gRPC C core test server for proxy tests (payloads
 * are raw bytes, independent of edge.v1).
 *
 * Usage: grpc_test_server [--listen=127.0.0.1:0] [--port-file=FILE]
 *                         [--tls-cert=F --tls-key=F [--client-ca=F]]
 * With --tls-cert/--tls-key it serves gRPC over TLS (grpcs); --client-ca
 * then requires and verifies a client certificate from that CA.
 * Prints "PORT <n>" on stdout (and writes n to FILE) once listening; runs
 * until killed.
 *
 * Methods:
 *   /edge.test.Echo/Unary   one request → the same bytes back, trailer
 *                           "x-echo-trailer: unary", status OK. A request
 *                           "status:N:MSG" ends with status N, message MSG.
 *   /edge.test.Echo/Stream  bidi: every request message is echoed at once;
 *                           a request "count:N" gets N replies "reply-<i>"
 *                           (server streaming); after the client half-closes,
 *                           trailer "x-echo-trailer: stream", status OK.
 *   anything else           status UNIMPLEMENTED.
 *
 * One thread drains the completion queue; every call is a small state
 * machine whose operations carry a tag {call, kind}.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { T_NEW = 0, T_RECV, T_SEND, T_STATUS, T_CLOSE };

struct call;
struct tag {
  struct call *c;
  enum kind kind;
};

struct call {
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_byte_buffer *recv;
  int cancelled;
  int pending; /* batches in flight */
  int status_sent;
  int stream;
  int count_left, count_i; /* server streaming "count:N" */
  struct tag t_new, t_recv, t_send, t_status, t_close;
};

static grpc_server *server;
static grpc_completion_queue *cq;

static struct call *call_new(void) {
  struct call *c = calloc(1, sizeof(*c));
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->md);
  c->t_new = (struct tag){c, T_NEW};
  c->t_recv = (struct tag){c, T_RECV};
  c->t_send = (struct tag){c, T_SEND};
  c->t_status = (struct tag){c, T_STATUS};
  c->t_close = (struct tag){c, T_CLOSE};
  return c;
}

static void request_next(void) {
  struct call *c = call_new();
  grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, &c->t_new);
}

static void call_free(struct call *c) {
  if (c->recv) grpc_byte_buffer_destroy(c->recv);
  if (c->call) grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->md);
  free(c);
}

static void start(struct call *c, grpc_op *ops, size_t n, struct tag *t) {
  if (grpc_call_start_batch(c->call, ops, n, t, NULL) == GRPC_CALL_OK) c->pending++;
}

static void post_recv(struct call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv;
  start(c, &op, 1, &c->t_recv);
}

static void send_status(struct call *c, grpc_status_code code, const char *msg, const char *trailer,
                        grpc_byte_buffer *with_message) {
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  grpc_metadata md;
  memset(&md, 0, sizeof(md));
  md.key = grpc_slice_from_static_string("x-echo-trailer");
  md.value = grpc_slice_from_copied_string(trailer ? trailer : "");
  if (with_message) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = with_message;
  }
  grpc_slice details = grpc_slice_from_copied_string(msg);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &details;
  ops[n].data.send_status_from_server.trailing_metadata_count = trailer ? 1 : 0;
  ops[n++].data.send_status_from_server.trailing_metadata = trailer ? &md : NULL;
  start(c, ops, n, &c->t_status);
  c->status_sent = 1;
  grpc_slice_unref(details);
  grpc_slice_unref(md.value);
}

static void send_bytes(struct call *c, const char *p, size_t n) {
  grpc_slice s = grpc_slice_from_copied_buffer(p, n);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  start(c, &op, 1, &c->t_send);
  grpc_byte_buffer_destroy(bb);
}

static int slice_is(grpc_slice s, const char *lit) {
  return GRPC_SLICE_LENGTH(s) == strlen(lit) &&
         !memcmp(GRPC_SLICE_START_PTR(s), lit, GRPC_SLICE_LENGTH(s));
}

static void on_new(struct call *c) {
  request_next();
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[1].data.recv_close_on_server.cancelled = &c->cancelled;
  start(c, ops, 2, &c->t_close);
  if (slice_is(c->details.method, "/edge.test.Echo/Unary")) {
    post_recv(c);
  } else if (slice_is(c->details.method, "/edge.test.Echo/Stream")) {
    c->stream = 1;
    post_recv(c);
  } else {
    send_status(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL, NULL);
  }
}

static void on_recv(struct call *c, int ok) {
  if (!ok || c->status_sent) return;
  if (!c->recv) { /* the client half-closed */
    send_status(c, GRPC_STATUS_OK, "", c->stream ? "stream" : "unary", NULL);
    return;
  }
  grpc_byte_buffer_reader r;
  grpc_byte_buffer_reader_init(&r, c->recv);
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  size_t len = GRPC_SLICE_LENGTH(s);
  char *p = malloc(len + 1);
  memcpy(p, GRPC_SLICE_START_PTR(s), len);
  p[len] = 0;
  grpc_slice_unref(s);
  if (!c->stream) {
    int code;
    char msg[256];
    if (sscanf(p, "status:%d:%255[^\n]", &code, msg) == 2) {
      send_status(c, (grpc_status_code)code, msg, "unary", NULL);
    } else {
      send_status(c, GRPC_STATUS_OK, "", "unary", c->recv);
    }
  } else {
    int n;
    if (sscanf(p, "count:%d", &n) == 1 && n > 0) {
      c->count_left = n;
      c->count_i = 0;
      char b[32];
      int bl = snprintf(b, sizeof(b), "reply-%d", c->count_i++);
      c->count_left--;
      send_bytes(c, b, (size_t)bl);
    } else {
      send_bytes(c, p, len);
    }
  }
  free(p);
  grpc_byte_buffer_destroy(c->recv);
  c->recv = NULL;
}

static void on_sent(struct call *c, int ok) {
  if (!ok || c->status_sent) return;
  if (c->count_left > 0) {
    char b[32];
    int bl = snprintf(b, sizeof(b), "reply-%d", c->count_i++);
    c->count_left--;
    send_bytes(c, b, (size_t)bl);
    return;
  }
  post_recv(c); /* one message in flight each way */
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 1 << 20);
  if (buf) fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  return buf;
}

/* TLS server credentials from PEM files (client certificates required
 * when client_ca is set). NULL on failure. */
static grpc_server_credentials *tls_creds(const char *cert, const char *key,
                                          const char *client_ca) {
  char *c = read_file(cert), *k = read_file(key), *ca = client_ca ? read_file(client_ca) : NULL;
  if (!c || !k || (client_ca && !ca)) return NULL;
  grpc_ssl_pem_key_cert_pair pair = {k, c};
  return grpc_ssl_server_credentials_create_ex(
      ca, &pair, 1,
      ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
         : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      NULL);
}

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:0";
  const char *port_file = NULL;
  const char *cert = NULL, *key = NULL, *client_ca = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "--listen=", 9))
      listen = argv[i] + 9;
    else if (!strncmp(argv[i], "--port-file=", 12))
      port_file = argv[i] + 12;
    else if (!strncmp(argv[i], "--tls-cert=", 11))
      cert = argv[i] + 11;
    else if (!strncmp(argv[i], "--tls-key=", 10))
      key = argv[i] + 10;
    else if (!strncmp(argv[i], "--client-ca=", 12))
      client_ca = argv[i] + 12;
    else {
      fprintf(stderr, "usage: %s [--listen=HOST:PORT] [--port-file=FILE]\n", argv[0]);
      return 2;
    }
  }
  grpc_init();
  cq = grpc_completion_queue_create_for_next(NULL);
  server = grpc_server_create(NULL, NULL);
  grpc_server_register_completion_queue(server, cq, NULL);
  grpc_server_credentials *creds =
      cert && key ? tls_creds(cert, key, client_ca) : grpc_insecure_server_credentials_create();
  if (!creds) {
    fprintf(stderr, "cannot load the TLS certificate, key or client CA\n");
    return 1;
  }
  int port = grpc_server_add_http2_port(server, listen, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0) {
    fprintf(stderr, "cannot listen on %s\n", listen);
    return 1;
  }
  grpc_server_start(server);
  for (int i = 0; i < 8; i++) request_next();
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
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) break;
    struct tag *t = ev.tag;
    struct call *c = t->c;
    if (t->kind == T_NEW) {
      if (!ev.success) {
        call_free(c);
        continue;
      }
      on_new(c);
      continue;
    }
    c->pending--;
    if (t->kind == T_RECV) on_recv(c, ev.success);
    if (t->kind == T_SEND) on_sent(c, ev.success);
    if (c->pending == 0) call_free(c);
  }
  return 0;
}
