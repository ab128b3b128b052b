/*
 * rpc_internal — what the parts of the libuv ⇄ gRPC bridge share. Private
 * to //common:rpc (listed in its srcs, never in hdrs): the contract for
 * daemon code is rpc.h.
 *
 * One completion queue per runtime, drained by one thread. That thread does
 * nothing but append each completed tag (struct rpc_tag, embedded in the
 * object that started the batch) to a mutex-protected FIFO and wake the loop
 * with uv_async_send; uv_async_send coalesces, so the async callback drains
 * the whole FIFO. Every gRPC batch is therefore started and completed on the
 * loop thread, and no object state is shared with the queue thread.
 *
 * Invariants:
 *  - each object has at most one batch of each kind in flight, so each kind
 *    owns one embedded tag; `refs` counts batches in flight and the object
 *    (attempt, server call) is freed only when it drops to zero;
 *  - one SEND_MESSAGE in flight per call, further sends wait in a FIFO;
 *  - a client stream makes one attempt at a time, each on a fresh channel
 *    with its own subchannel pool, so gRPC's own reconnect backoff never
 *    delays ours; between attempts a uv timer waits the jittered backoff;
 *  - after rpc_stream_close / rpc_server_shutdown no user callback runs
 *    except the done callback, which always runs from the loop later.
 *
 * The parts: rpc_runtime.c (the completion queue, its thread and the
 * dispatch to the loop), rpc_stream.c (reconnecting client streams),
 * rpc_server.c (the server and its calls), rpc_unary.c (the blocking unary
 * call of command-line tools); rpc_transport.c holds what they share
 * (send queues, byte buffers, credentials, channels). Everything here runs
 * on the loop thread except the queue thread's FIFO append (rt->mu).
 */
#ifndef EDGE_COMMON_RPC_INTERNAL_H
#define EDGE_COMMON_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/rpc.h"

#define RPC_MAX_MESSAGE (64 * 1024 * 1024)
#define RPC_MAX_PEM (1024 * 1024)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- the runtime (rpc_runtime.c) ---------------------------------------- */

/* A batch completion: embedded in the object that started the batch; the
 * queue thread links completed tags into the runtime's FIFO and the loop
 * calls fn. */
struct rpc_tag {
  void (*fn)(struct rpc_tag *tag, int ok);
  struct rpc_tag *next;
  int ok;
};

struct rpc_runtime {
  uv_loop_t *loop;
  uv_async_t async;
  grpc_completion_queue *cq;
  pthread_t thread;
  pthread_mutex_t mu;
  struct rpc_tag *head, *tail; /* completed, not yet dispatched (mu) */
  int async_closed;
  int live; /* streams and servers not yet freed (loop thread only) */
};

/* A stream or server exists (or is still being released): keep the loop alive. */
void rpc_live_inc(struct rpc_runtime *rt);
void rpc_live_dec(struct rpc_runtime *rt);

/* Routes gRPC's own log lines through common/log (once per process). */
void rpc_log_init(void);

/* ---- shared by the parts (rpc_transport.c) ------------------------------- */

struct rpc_msg {
  struct rpc_msg *next;
  grpc_byte_buffer *bb;
};

/* FIFO of outgoing messages of one call; len counts queued + in flight. */
struct rpc_sendq {
  struct rpc_msg *head, *tail;
  size_t len;
  grpc_byte_buffer *inflight;
};

/* Copies data into a new message at the tail. 0 or RPC_ERR_NOMEM. */
int rpc_sendq_push(struct rpc_sendq *q, const uint8_t *data, size_t len);
/* Takes the head message off as the one in flight (NULL when empty). */
grpc_byte_buffer *rpc_sendq_pop(struct rpc_sendq *q);
/* The in-flight message completed (or failed). */
void rpc_sendq_done(struct rpc_sendq *q);
/* Drops every queued message (not the one in flight). */
void rpc_sendq_clear(struct rpc_sendq *q);

/* Copies a received message into one slice; the caller unrefs it. */
grpc_slice rpc_read_all(grpc_byte_buffer *bb);

/* PEM contents of a struct rpc_creds. */
struct rpc_pems {
  char *cert, *key, *ca;
};

/* Reads the PEM files of c (cert and key together). 0 or RPC_ERR_CREDS with a reason. */
int rpc_pems_load(const struct rpc_creds *c, struct rpc_pems *p, char *err, size_t errlen);
void rpc_pems_free(struct rpc_pems *p);

/* Client credentials (mTLS or insecure). 0 or RPC_ERR_CREDS with a reason. */
int rpc_channel_creds(const struct rpc_creds *c, grpc_channel_credentials **out, char *err,
                      size_t errlen);
/* An integer channel argument. */
grpc_arg rpc_int_arg(const char *key, int value);
/* The channel of one client attempt (or one unary call). */
grpc_channel *rpc_channel_new(const char *target, grpc_channel_credentials *creds,
                              const char *name_override);
/* strdup that passes NULL through. */
char *rpc_strdup(const char *s);

#endif
