/*
 * rpc_runtime — the completion queue of the libuv ⇄ gRPC bridge (rpc.h,
 * rpc_internal.h): one queue per runtime, drained by one thread that only
 * appends completed tags to a FIFO and wakes the loop; the loop runs every
 * completion. Also gRPC's log routing and rpc_strerror.
 */
#include "common/rpc_internal.h"

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* gRPC's own log lines become logfmt lines (msg=grpc). gRPC logs at error
 * level things a daemon expects, such as a rejected client handshake, so
 * they are warnings here. */
static void rpc_grpc_log(gpr_log_func_args *a) {
  const char *file = a->file ? strrchr(a->file, '/') : NULL;
  file = file ? file + 1 : a->file ? a->file : "";
  if (a->severity == GPR_LOG_SEVERITY_DEBUG)
    LOG_DEBUG("grpc", "src=%s:%d detail=%s", file, a->line, log_q(a->message));
  else if (a->severity == GPR_LOG_SEVERITY_INFO)
    LOG_INFO("grpc", "src=%s:%d detail=%s", file, a->line, log_q(a->message));
  else
    LOG_WARN("grpc", "src=%s:%d detail=%s", file, a->line, log_q(a->message));
}

static pthread_once_t rpc_log_once = PTHREAD_ONCE_INIT;

/* The async handle keeps the loop alive only while a stream or server
 * exists (or is still being released), so uv_run returns once the daemon
 * has closed everything. */
void rpc_live_inc(struct rpc_runtime *rt) {
  if (rt->live++ == 0) uv_ref((uv_handle_t *)&rt->async);
}

void rpc_live_dec(struct rpc_runtime *rt) {
  if (--rt->live == 0) uv_unref((uv_handle_t *)&rt->async);
}

static void rpc_log_setup(void) {
  gpr_set_log_function(rpc_grpc_log);
}

void rpc_log_init(void) {
  pthread_once(&rpc_log_once, rpc_log_setup);
}

const char *rpc_strerror(int err) {
  switch (err) {
    case 0:
      return "ok";
    case RPC_ERR_INVALID:
      return "invalid argument";
    case RPC_ERR_CREDS:
      return "credentials could not be loaded";
    case RPC_ERR_BIND:
      return "could not listen";
    case RPC_ERR_CLOSED:
      return "call closed";
    case RPC_ERR_NOMEM:
      return "out of memory";
    default:
      return "unknown error";
  }
}

static void *rpc_cq_thread(void *arg) {
  struct rpc_runtime *rt = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(rt->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    struct rpc_tag *tag = ev.tag;
    tag->ok = ev.success;
    tag->next = NULL;
    pthread_mutex_lock(&rt->mu);
    if (rt->tail)
      rt->tail->next = tag;
    else
      rt->head = tag;
    rt->tail = tag;
    pthread_mutex_unlock(&rt->mu);
    uv_async_send(&rt->async);
  }
  return NULL;
}

static void rpc_dispatch(struct rpc_runtime *rt) {
  pthread_mutex_lock(&rt->mu);
  struct rpc_tag *tag = rt->head;
  rt->head = rt->tail = NULL;
  pthread_mutex_unlock(&rt->mu);
  while (tag) {
    struct rpc_tag *next = tag->next; /* fn may free the tag's owner */
    tag->fn(tag, tag->ok);
    tag = next;
  }
}

static void rpc_on_async(uv_async_t *h) {
  rpc_dispatch(h->data);
}

int rpc_runtime_new(uv_loop_t *loop, struct rpc_runtime **out) {
  if (!loop || !out) return RPC_ERR_INVALID;
  struct rpc_runtime *rt = calloc(1, sizeof(*rt));
  if (!rt) return RPC_ERR_NOMEM;
  rt->loop = loop;
  if (uv_async_init(loop, &rt->async, rpc_on_async) != 0) {
    free(rt);
    return RPC_ERR_INVALID;
  }
  rt->async.data = rt;
  uv_unref((uv_handle_t *)&rt->async);
  pthread_mutex_init(&rt->mu, NULL);
  rpc_log_init();
  grpc_init();
  rt->cq = grpc_completion_queue_create_for_next(NULL);
  if (pthread_create(&rt->thread, NULL, rpc_cq_thread, rt) != 0) {
    grpc_completion_queue_shutdown(rt->cq);
    grpc_completion_queue_destroy(rt->cq);
    grpc_shutdown();
    /* The async handle must be closed on the loop; leak rt to it. */
    uv_close((uv_handle_t *)&rt->async, NULL);
    return RPC_ERR_NOMEM;
  }
  *out = rt;
  return 0;
}

static void rpc_on_async_closed(uv_handle_t *h) {
  struct rpc_runtime *rt = h->data;
  rt->async_closed = 1;
}

void rpc_runtime_free(struct rpc_runtime *rt) {
  if (!rt) return;
  /* Objects closed but not yet released finish here; one never closed
   * would keep the queue from draining, which is a caller bug. */
  if (rt->live > 0) LOG_DEBUG("rpc_runtime_draining", "objects=%d", rt->live);
  while (rt->live > 0) uv_run(rt->loop, UV_RUN_ONCE);
  grpc_completion_queue_shutdown(rt->cq);
  pthread_join(rt->thread, NULL);
  rpc_dispatch(rt);
  grpc_completion_queue_destroy(rt->cq);
  uv_close((uv_handle_t *)&rt->async, rpc_on_async_closed);
  while (!rt->async_closed) uv_run(rt->loop, UV_RUN_NOWAIT);
  pthread_mutex_destroy(&rt->mu);
  grpc_shutdown();
  free(rt);
}
