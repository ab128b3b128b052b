/*
 * grpc_sync_client — see grpc_sync_client.h. Each operation is one batch
 * with its own tag, plucked with a deadline; a read that times out stays
 * pending and is collected by the next gsc_recv.
 */
#include "tests/integration/grpc_sync_client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_tag(struct gsc_stream *g, void *tag, int timeout_ms) {
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_pluck(g->cq, tag, dl, NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT) return 0;
  return ev.type == GRPC_OP_COMPLETE && ev.success ? 1 : -1;
}

int gsc_open(struct gsc_stream *g, const char *target, const char *method) {
  memset(g, 0, sizeof(*g));
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  /* Like common/rpc: full states of 10,000 certificates exceed gRPC's
   * default 4 MiB receive limit. */
  grpc_arg arg = {.type = GRPC_ARG_INTEGER,
                  .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = 64 * 1024 * 1024};
  grpc_channel_args args = {.num_args = 1, .args = &arg};
  g->ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  g->cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice m = grpc_slice_from_static_string(method);
  g->call = grpc_channel_create_call(g->ch, NULL, GRPC_PROPAGATE_DEFAULTS, g->cq, m, NULL,
                                     gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_metadata_array_init(&g->md_in);
  grpc_metadata_array_init(&g->trailers);
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[1].data.recv_status_on_client.trailing_metadata = &g->trailers;
  ops[1].data.recv_status_on_client.status = &g->status;
  ops[1].data.recv_status_on_client.status_details = &g->details;
  return grpc_call_start_batch(g->call, ops, 2, &g->tag_status, NULL) == GRPC_CALL_OK ? 0 : -1;
}

int gsc_send(struct gsc_stream *g, const uint8_t *data, size_t len) {
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  int rc = -1;
  if (grpc_call_start_batch(g->call, &op, 1, &g->tag_send, NULL) == GRPC_CALL_OK)
    rc = wait_tag(g, &g->tag_send, 5000) == 1 ? 0 : -1;
  grpc_byte_buffer_destroy(bb);
  return rc;
}

int gsc_close_send(struct gsc_stream *g) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  if (grpc_call_start_batch(g->call, &op, 1, &g->tag_close, NULL) != GRPC_CALL_OK) return -1;
  return wait_tag(g, &g->tag_close, 5000) == 1 ? 0 : -1;
}

/* 1: a message in *out (malloc'd); 0: none within timeout; -1: stream ended. */
int gsc_recv(struct gsc_stream *g, int timeout_ms, uint8_t **out, size_t *len) {
  if (g->ended) return -1;
  if (!g->recv_pending) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    int n = 0;
    if (!g->got_md) {
      ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
      ops[n++].data.recv_initial_metadata.recv_initial_metadata = &g->md_in;
      g->got_md = 1;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &g->recv;
    if (grpc_call_start_batch(g->call, ops, (size_t)n, &g->tag_recv, NULL) != GRPC_CALL_OK)
      return -1;
    g->recv_pending = 1;
  }
  int w = wait_tag(g, &g->tag_recv, timeout_ms);
  if (w == 0) return 0;
  g->recv_pending = 0;
  if (w < 0 || !g->recv) {
    g->ended = 1;
    return -1;
  }
  grpc_byte_buffer_reader r;
  grpc_byte_buffer_reader_init(&r, g->recv);
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  grpc_byte_buffer_destroy(g->recv);
  g->recv = NULL;
  *len = GRPC_SLICE_LENGTH(s);
  *out = malloc(*len ? *len : 1);
  memcpy(*out, GRPC_SLICE_START_PTR(s), *len);
  grpc_slice_unref(s);
  return 1;
}

/* Waits for the call's final status (after the server finished it). */
int gsc_wait_status(struct gsc_stream *g, int timeout_ms, char *details, size_t dlen) {
  /* gRPC delivers the status once the messages before it are read. */
  int64_t deadline = now_ms() + timeout_ms;
  uint8_t *buf;
  size_t len;
  int r;
  while ((r = gsc_recv(g, timeout_ms, &buf, &len)) == 1 && now_ms() < deadline) free(buf);
  if (r == 1) free(buf);
  if (wait_tag(g, &g->tag_status, timeout_ms) == 0) return -1;
  char *d = grpc_slice_to_c_string(g->details);
  snprintf(details, dlen, "%s", d);
  gpr_free(d);
  g->status_done = 1;
  return (int)g->status;
}

void gsc_close(struct gsc_stream *g) {
  grpc_call_cancel(g->call, NULL);
  if (g->recv_pending) wait_tag(g, &g->tag_recv, 5000);
  if (!g->status_done) wait_tag(g, &g->tag_status, 5000);
  if (g->recv) grpc_byte_buffer_destroy(g->recv);
  grpc_call_unref(g->call);
  grpc_metadata_array_destroy(&g->md_in);
  grpc_metadata_array_destroy(&g->trailers);
  grpc_slice_unref(g->details);
  grpc_channel_destroy(g->ch);
  grpc_completion_queue_shutdown(g->cq);
  while (grpc_completion_queue_pluck(g->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(g->cq);
}
