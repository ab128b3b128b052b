/*
 * grpc_sync_client — a synchronous gRPC stream client for tests and
 * benchmarks, on the gRPC C core with a pluck completion queue: the caller
 * decides exactly when it sends and when it reads (a test can play a proxy
 * that stops reading). One stream per struct; not thread-safe, but
 * separate streams may live on separate threads. Plaintext only (tests talk
 * to 127.0.0.1). The caller runs grpc_init() once before use.
 */
#ifndef EDGE_TESTS_GRPC_SYNC_CLIENT_H
#define EDGE_TESTS_GRPC_SYNC_CLIENT_H

#include <grpc/grpc.h>
#include <stddef.h>
#include <stdint.h>

struct gsc_stream {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array md_in, trailers;
  grpc_status_code status;
  grpc_slice details;
  grpc_byte_buffer *recv;
  int recv_pending, got_md, ended, status_done;
  char tag_status, tag_send, tag_recv, tag_close;
};

/* Starts a call of method on target ("127.0.0.1:PORT"). 0 or -1. */
int gsc_open(struct gsc_stream *g, const char *target, const char *method);
/* Sends one message and waits (5 s at most) until gRPC accepted it. */
int gsc_send(struct gsc_stream *g, const uint8_t *data, size_t len);
/* Half-closes (server-streaming calls: after the request). */
int gsc_close_send(struct gsc_stream *g);
/* 1: a message in *out (malloc'd, caller frees); 0: none within
 * timeout_ms (the read stays pending); -1: the stream ended. */
int gsc_recv(struct gsc_stream *g, int timeout_ms, uint8_t **out, size_t *len);
/* Reads until the end and returns the call's grpc status with its details,
 * or -1 when it does not end within timeout_ms. */
int gsc_wait_status(struct gsc_stream *g, int timeout_ms, char *details, size_t dlen);
/* Cancels the call and frees everything. */
void gsc_close(struct gsc_stream *g);

#endif
