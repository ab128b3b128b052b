/*
 * grpc_test_client — a gRPC C core test client for proxy tests; talks to
 * grpc_test_server (directly or through l7proxy) and checks the answers.
 *
 * Usage: grpc_test_client --target=HOST:PORT [--authority=NAME] CASE...
 * Cases:
 *   unary          Unary "hello" → "hello", status OK, trailer
 *                  x-echo-trailer: unary
 *   stream         Stream: "a","b","c" echoed one by one, then "count:3" →
 *                  reply-0..2, half-close → status OK, trailer stream
 *   status:N:MSG   Unary "status:N:MSG" → status N with message MSG
 *   expect:N       Unary "hello" → status N (e.g. a proxy's own error)
 * Prints one line per case ("ok unary", "FAIL ... got ...") and exits 1 on
 * the first mismatch, 0 when every case passed. Every wait has a 10 s
 * deadline.
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

#define WAIT_MS 10000

struct cl {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array md_in, trailers;
  grpc_status_code status;
  grpc_slice details;
  int status_done;
  char t_status, t_op;
};

static const char *g_authority;
static const char *g_target;

static int wait_tag(struct cl *c, void *tag) {
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, dl, NULL);
  if (ev.type != GRPC_OP_COMPLETE) return -2;
  return ev.success ? 0 : -1;
}

static int cl_open(struct cl *c, const char *method) {
  memset(c, 0, sizeof(*c));
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create(g_target, creds, NULL);
  grpc_channel_credentials_release(creds);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice m = grpc_slice_from_copied_string(method);
  grpc_slice host = grpc_slice_from_copied_string(g_authority ? g_authority : "");
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(WAIT_MS, GPR_TIMESPAN));
  c->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m,
                                     g_authority ? &host : NULL, dl, NULL);
  grpc_slice_unref(m);
  grpc_slice_unref(host);
  grpc_metadata_array_init(&c->md_in);
  grpc_metadata_array_init(&c->trailers);
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->md_in;
  ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[2].data.recv_status_on_client.trailing_metadata = &c->trailers;
  ops[2].data.recv_status_on_client.status = &c->status;
  ops[2].data.recv_status_on_client.status_details = &c->details;
  return grpc_call_start_batch(c->call, ops, 3, &c->t_status, NULL) == GRPC_CALL_OK ? 0 : -1;
}

static int cl_send(struct cl *c, const char *p, int close_after) {
  grpc_slice s = grpc_slice_from_copied_string(p);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_MESSAGE;
  ops[0].data.send_message.send_message = bb;
  ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  int rc = -1;
  if (grpc_call_start_batch(c->call, ops, close_after ? 2 : 1, &c->t_op, NULL) == GRPC_CALL_OK)
    rc = wait_tag(c, &c->t_op);
  grpc_byte_buffer_destroy(bb);
  return rc;
}

static int cl_close_send(struct cl *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  if (grpc_call_start_batch(c->call, &op, 1, &c->t_op, NULL) != GRPC_CALL_OK) return -1;
  return wait_tag(c, &c->t_op);
}

/* A message into out (NUL-terminated); 1 got one, 0 end of stream, <0 error. */
static int cl_recv(struct cl *c, char *out, size_t cap) {
  grpc_byte_buffer *bb = NULL;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &bb;
  if (grpc_call_start_batch(c->call, &op, 1, &c->t_op, NULL) != GRPC_CALL_OK) return -1;
  int rc = wait_tag(c, &c->t_op);
  if (rc < 0) return rc;
  if (!bb) return 0;
  grpc_byte_buffer_reader r;
  grpc_byte_buffer_reader_init(&r, bb);
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  size_t n = GRPC_SLICE_LENGTH(s) < cap - 1 ? GRPC_SLICE_LENGTH(s) : cap - 1;
  memcpy(out, GRPC_SLICE_START_PTR(s), n);
  out[n] = 0;
  grpc_slice_unref(s);
  grpc_byte_buffer_destroy(bb);
  return 1;
}

/* Waits for the status; copies details and the x-echo-trailer value. */
static int cl_status(struct cl *c, char *details, size_t dlen, char *trailer, size_t tlen) {
  if (wait_tag(c, &c->t_status) == -2) return -1;
  c->status_done = 1;
  char *d = grpc_slice_to_c_string(c->details);
  snprintf(details, dlen, "%s", d);
  gpr_free(d);
  trailer[0] = 0;
  for (size_t i = 0; i < c->trailers.count; i++) {
    grpc_metadata *m = &c->trailers.metadata[i];
    if (GRPC_SLICE_LENGTH(m->key) == 14 &&
        !memcmp(GRPC_SLICE_START_PTR(m->key), "x-echo-trailer", 14)) {
      size_t n = GRPC_SLICE_LENGTH(m->value) < tlen - 1 ? GRPC_SLICE_LENGTH(m->value) : tlen - 1;
      memcpy(trailer, GRPC_SLICE_START_PTR(m->value), n);
      trailer[n] = 0;
    }
  }
  return (int)c->status;
}

static void cl_close(struct cl *c) {
  grpc_call_cancel(c->call, NULL);
  if (!c->status_done) wait_tag(c, &c->t_status);
  grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->md_in);
  grpc_metadata_array_destroy(&c->trailers);
  grpc_slice_unref(c->details);
  grpc_channel_destroy(c->ch);
  grpc_completion_queue_shutdown(c->cq);
  while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(c->cq);
}

#define CHECK(cond, ...)         \
  do {                           \
    if (!(cond)) {               \
      printf("FAIL %s: ", name); \
      printf(__VA_ARGS__);       \
      printf("\n");              \
      ok = 0;                    \
      goto out;                  \
    }                            \
  } while (0)

/* Unary with payload; want_status < 0: expect the echo and OK. */
static int run_unary(const char *name, const char *payload, int want_status, const char *want_msg) {
  struct cl c;
  int ok = 1;
  char msg[512] = "", det[512] = "", tr[64] = "";
  CHECK(cl_open(&c, "/edge.test.Echo/Unary") == 0, "cannot start call");
  cl_send(&c, payload, 1);
  int got = want_status < 0 || want_status == 0 ? cl_recv(&c, msg, sizeof(msg)) : 0;
  int st = cl_status(&c, det, sizeof(det), tr, sizeof(tr));
  if (want_status < 0) {
    CHECK(st == 0, "status %d (%s), want 0", st, det);
    CHECK(got == 1 && !strcmp(msg, payload), "reply \"%s\", want \"%s\"", msg, payload);
    CHECK(!strcmp(tr, "unary"), "trailer x-echo-trailer \"%s\", want \"unary\"", tr);
  } else {
    CHECK(st == want_status, "status %d (%s), want %d", st, det, want_status);
    CHECK(!want_msg || !strcmp(det, want_msg), "message \"%s\", want \"%s\"", det, want_msg);
  }
  printf("ok %s status=%d message=\"%s\"\n", name, st, det);
out:
  cl_close(&c);
  return ok;
}

static int run_stream(void) {
  const char *name = "stream";
  struct cl c;
  int ok = 1;
  char msg[512], det[512], tr[64];
  CHECK(cl_open(&c, "/edge.test.Echo/Stream") == 0, "cannot start call");
  const char *words[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    CHECK(cl_send(&c, words[i], 0) == 0, "send %s failed", words[i]);
    int r = cl_recv(&c, msg, sizeof(msg));
    CHECK(r == 1 && !strcmp(msg, words[i]), "reply %d \"%s\", want \"%s\"", r, msg, words[i]);
  }
  CHECK(cl_send(&c, "count:3", 0) == 0, "send count failed");
  for (int i = 0; i < 3; i++) {
    char want[32];
    snprintf(want, sizeof(want), "reply-%d", i);
    int r = cl_recv(&c, msg, sizeof(msg));
    CHECK(r == 1 && !strcmp(msg, want), "reply %d \"%s\", want \"%s\"", r, msg, want);
  }
  CHECK(cl_close_send(&c) == 0, "half-close failed");
  CHECK(cl_recv(&c, msg, sizeof(msg)) == 0, "a message after the half-close");
  int st = cl_status(&c, det, sizeof(det), tr, sizeof(tr));
  CHECK(st == 0, "status %d (%s), want 0", st, det);
  CHECK(!strcmp(tr, "stream"), "trailer x-echo-trailer \"%s\", want \"stream\"", tr);
  printf("ok stream\n");
out:
  cl_close(&c);
  return ok;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
    if (!strncmp(argv[i], "--target=", 9))
      g_target = argv[i] + 9;
    else if (!strncmp(argv[i], "--authority=", 12))
      g_authority = argv[i] + 12;
    else
      break;
  }
  if (!g_target || i >= argc) {
    fprintf(stderr,
            "usage: %s --target=HOST:PORT [--authority=NAME] "
            "unary|stream|status:N:MSG|expect:N...\n",
            argv[0]);
    return 2;
  }
  grpc_init();
  int ok = 1;
  for (; i < argc && ok; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "unary")) {
      ok = run_unary("unary", "hello", -1, NULL);
    } else if (!strcmp(a, "stream")) {
      ok = run_stream();
    } else if (!strncmp(a, "status:", 7)) {
      int n = atoi(a + 7);
      const char *m = strchr(a + 7, ':');
      ok = run_unary(a, a, n, m ? m + 1 : NULL);
    } else if (!strncmp(a, "expect:", 7)) {
      ok = run_unary(a, "hello", atoi(a + 7), NULL);
    } else {
      fprintf(stderr, "unknown case %s\n", a);
      ok = 0;
    }
  }
  fflush(stdout);
  grpc_shutdown();
  return ok ? 0 : 1;
}
