/*
 * rpc — the libuv ⇄ gRPC C core bridge (contract in rpc.h).
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
 * Callers: syncd (server), l7proxy and l4lb (client streams), syncctl
 * (rpc_unary_call).
 */
#include "common/rpc.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define RPC_MAX_MESSAGE (64 * 1024 * 1024)
#define RPC_MAX_PEM (1024 * 1024)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- tags and the completion-queue thread ------------------------------ */

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
static void rpc_live_inc(struct rpc_runtime *rt) {
  if (rt->live++ == 0) uv_ref((uv_handle_t *)&rt->async);
}

static void rpc_live_dec(struct rpc_runtime *rt) {
  if (--rt->live == 0) uv_unref((uv_handle_t *)&rt->async);
}

static void rpc_log_setup(void) {
  gpr_set_log_function(rpc_grpc_log);
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
  pthread_once(&rpc_log_once, rpc_log_setup);
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

/* ---- shared helpers ---------------------------------------------------- */

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

static int rpc_sendq_push(struct rpc_sendq *q, const uint8_t *data, size_t len) {
  struct rpc_msg *m = calloc(1, sizeof(*m));
  if (!m) return RPC_ERR_NOMEM;
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, len);
  m->bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->len++;
  return 0;
}

static grpc_byte_buffer *rpc_sendq_pop(struct rpc_sendq *q) {
  struct rpc_msg *m = q->head;
  if (!m) return NULL;
  q->head = m->next;
  if (!q->head) q->tail = NULL;
  grpc_byte_buffer *bb = m->bb;
  free(m);
  q->inflight = bb;
  return bb;
}

/* The in-flight message completed (or failed). */
static void rpc_sendq_done(struct rpc_sendq *q) {
  if (q->inflight) {
    grpc_byte_buffer_destroy(q->inflight);
    q->inflight = NULL;
    q->len--;
  }
}

static void rpc_sendq_clear(struct rpc_sendq *q) {
  struct rpc_msg *m = q->head;
  while (m) {
    struct rpc_msg *next = m->next;
    grpc_byte_buffer_destroy(m->bb);
    free(m);
    m = next;
  }
  q->head = q->tail = NULL;
  q->len = q->inflight ? 1 : 0;
}

/* Copies a received message into one slice; the caller unrefs it. */
static grpc_slice rpc_read_all(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return grpc_empty_slice();
  grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  return s;
}

/* Reads a PEM file (NUL-terminated, malloc'd) or NULL with a reason. */
static char *rpc_read_pem(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(RPC_MAX_PEM + 1);
  size_t n = buf ? fread(buf, 1, RPC_MAX_PEM + 1, f) : 0;
  fclose(f);
  if (!buf || n == 0 || n > RPC_MAX_PEM) {
    snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : n ? "too large" : "empty");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* PEM contents of a struct rpc_creds. */
struct rpc_pems {
  char *cert, *key, *ca;
};

static void rpc_pems_free(struct rpc_pems *p) {
  free(p->cert);
  free(p->key);
  free(p->ca);
  memset(p, 0, sizeof(*p));
}

static int rpc_pems_load(const struct rpc_creds *c, struct rpc_pems *p, char *err, size_t errlen) {
  memset(p, 0, sizeof(*p));
  if ((c->cert_file == NULL) != (c->key_file == NULL)) {
    snprintf(err, errlen, "cert and key must be given together");
    return RPC_ERR_CREDS;
  }
  if ((c->cert_file && !(p->cert = rpc_read_pem(c->cert_file, err, errlen))) ||
      (c->key_file && !(p->key = rpc_read_pem(c->key_file, err, errlen))) ||
      (c->ca_file && !(p->ca = rpc_read_pem(c->ca_file, err, errlen)))) {
    rpc_pems_free(p);
    return RPC_ERR_CREDS;
  }
  return 0;
}

static int rpc_channel_creds(const struct rpc_creds *c, grpc_channel_credentials **out, char *err,
                             size_t errlen) {
  if (c->insecure) {
    *out = grpc_insecure_credentials_create();
    return 0;
  }
  struct rpc_pems p;
  int rc = rpc_pems_load(c, &p, err, errlen);
  if (rc < 0) return rc;
  grpc_ssl_pem_key_cert_pair pair = {p.key, p.cert};
  *out = grpc_ssl_credentials_create(p.ca, p.cert ? &pair : NULL, NULL, NULL);
  rpc_pems_free(&p);
  if (!*out) {
    snprintf(err, errlen, "invalid TLS credentials");
    return RPC_ERR_CREDS;
  }
  return 0;
}

static grpc_arg rpc_int_arg(const char *key, int value) {
  grpc_arg a;
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

/* Channel for one client attempt (or one unary call). */
static grpc_channel *rpc_channel_new(const char *target, grpc_channel_credentials *creds,
                                     const char *name_override) {
  grpc_arg args[9];
  size_t n = 0;
  args[n++] = rpc_int_arg(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  /* Each attempt has its own channel, so gRPC's reconnect backoff only
   * matters within one attempt; keep it short. In 1.51 the MIN value is
   * also the connect timeout (TCP + TLS + SETTINGS): 100 ms made TLS
   * handshakes on a loaded machine fail, so it stays at 10 s. */
  args[n++] = rpc_int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args[n++] = rpc_int_arg(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10000);
  args[n++] = rpc_int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args[n++] = rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, RPC_MAX_MESSAGE);
  args[n++] = rpc_int_arg(GRPC_ARG_ENABLE_RETRIES, 0);
  /* Detects a dead syncd behind a silent network within ~40 s. */
  args[n++] = rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args[n++] = rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  if (name_override && *name_override) {
    grpc_arg a;
    a.type = GRPC_ARG_STRING;
    a.key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    a.value.string = (char *)name_override;
    args[n++] = a;
  }
  grpc_channel_args ca = {n, args};
  return grpc_channel_create(target, creds, &ca);
}

static char *rpc_strdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* ---- client streams ---------------------------------------------------- */

/* One call of a reconnecting stream, on its own channel. */
struct rpc_attempt {
  struct rpc_stream *s;
  grpc_channel *ch;
  grpc_call *call;
  int refs; /* batches in flight */
  struct rpc_tag t_start, t_recv, t_send, t_status;
  grpc_metadata_array md_initial, md_trailing;
  grpc_byte_buffer *recv_bb;
  grpc_status_code status;
  grpc_slice details;
  struct rpc_sendq q;
  int sending, want_half_close, half_close_sent;
  int recv_active, status_done;
  uint64_t connected_at; /* uv_now when the server's headers arrived, 0 before */
  int got_message;
};

struct rpc_stream {
  struct rpc_runtime *rt;
  char *target, *method, *name_override;
  grpc_channel_credentials *creds;
  struct rpc_stream_callbacks cb;
  void *ud;
  uint32_t backoff_initial, backoff_max, backoff_reset, backoff_cur;
  uint64_t rng;
  uv_timer_t timer;
  struct rpc_attempt *cur; /* open attempt: on_open ran, on_close not yet */
  int attempts_live;       /* attempts not yet freed */
  int closing, timer_closed;
  void (*done)(void *arg);
  void *done_arg;
};

static void rpc_stream_maybe_free(struct rpc_stream *s) {
  if (!s->closing || !s->timer_closed || s->attempts_live > 0) return;
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;
  grpc_channel_credentials_release(s->creds);
  free(s->target);
  free(s->method);
  free(s->name_override);
  rpc_live_dec(s->rt);
  free(s);
  if (done) done(arg);
}

static void rpc_attempt_release(struct rpc_attempt *a) {
  if (a->refs > 0) return;
  struct rpc_stream *s = a->s;
  grpc_call_unref(a->call);
  grpc_channel_destroy(a->ch);
  grpc_metadata_array_destroy(&a->md_initial);
  grpc_metadata_array_destroy(&a->md_trailing);
  grpc_slice_unref(a->details);
  rpc_sendq_clear(&a->q);
  rpc_sendq_done(&a->q);
  free(a);
  s->attempts_live--;
  rpc_stream_maybe_free(s);
}

static uint32_t rpc_stream_jitter(struct rpc_stream *s, uint32_t ms) {
  /* xorshift64: enough to spread reconnects of many proxies. */
  s->rng ^= s->rng << 13;
  s->rng ^= s->rng >> 7;
  s->rng ^= s->rng << 17;
  uint64_t span = (uint64_t)ms * 2 / 5; /* ±20 % */
  uint64_t v = (uint64_t)ms - span / 2 + (span ? s->rng % (span + 1) : 0);
  return v > s->backoff_max ? s->backoff_max : (uint32_t)v;
}

static void rpc_stream_on_timer(uv_timer_t *t);

/* The attempt is over (status known and no message left): report it once
 * and schedule the next attempt. */
static void rpc_attempt_end(struct rpc_attempt *a) {
  struct rpc_stream *s = a->s;
  if (s->cur != a) return;
  s->cur = NULL;
  if (s->closing) return;
  uint64_t now = uv_now(s->rt->loop);
  if (a->got_message || (a->connected_at && now - a->connected_at >= s->backoff_reset))
    s->backoff_cur = s->backoff_initial;
  uint32_t delay = rpc_stream_jitter(s, s->backoff_cur);
  uint64_t next = (uint64_t)s->backoff_cur * 2;
  s->backoff_cur = next > s->backoff_max ? s->backoff_max : (uint32_t)next;
  uv_timer_start(&s->timer, rpc_stream_on_timer, delay, 0);
  char *details = grpc_slice_to_c_string(a->details);
  LOG_DEBUG("rpc_stream_closed", "target=%s status=%d details=%s backoff_ms=%u", s->target,
            (int)a->status, log_q(details), delay);
  if (s->cb.on_close) s->cb.on_close(s->ud, (int)a->status, details, delay);
  gpr_free(details);
}

static void rpc_attempt_pump(struct rpc_attempt *a) {
  if (a->sending || a->status_done) return;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  if (a->q.head) {
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = rpc_sendq_pop(&a->q);
  } else if (a->want_half_close && !a->half_close_sent) {
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    a->half_close_sent = 1;
  } else {
    return;
  }
  if (grpc_call_start_batch(a->call, &op, 1, &a->t_send, NULL) != GRPC_CALL_OK) {
    LOG_ERROR("rpc_start_batch_failed", "target=%s op=send", a->s->target);
    rpc_sendq_done(&a->q);
    return;
  }
  a->sending = 1;
  a->refs++;
}

static void rpc_attempt_on_send(struct rpc_tag *tag, int ok) {
  struct rpc_attempt *a = container_of(tag, struct rpc_attempt, t_send);
  a->refs--;
  a->sending = 0;
  rpc_sendq_done(&a->q);
  if (!ok) rpc_sendq_clear(&a->q); /* the call is failing; status follows */
  if (!a->s->closing) rpc_attempt_pump(a);
  rpc_attempt_release(a);
}

static void rpc_attempt_arm_recv(struct rpc_attempt *a) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &a->recv_bb;
  if (grpc_call_start_batch(a->call, &op, 1, &a->t_recv, NULL) != GRPC_CALL_OK) {
    LOG_ERROR("rpc_start_batch_failed", "target=%s op=recv", a->s->target);
    return;
  }
  a->recv_active = 1;
  a->refs++;
}

static void rpc_attempt_on_start(struct rpc_tag *tag, int ok) {
  struct rpc_attempt *a = container_of(tag, struct rpc_attempt, t_start);
  a->refs--;
  if (ok && !a->status_done && !a->s->closing) {
    a->connected_at = uv_now(a->s->rt->loop);
    if (a->connected_at == 0) a->connected_at = 1;
    rpc_attempt_arm_recv(a);
  }
  rpc_attempt_release(a);
}

static void rpc_attempt_on_recv(struct rpc_tag *tag, int ok) {
  struct rpc_attempt *a = container_of(tag, struct rpc_attempt, t_recv);
  struct rpc_stream *s = a->s;
  a->refs--;
  a->recv_active = 0;
  grpc_byte_buffer *bb = a->recv_bb;
  a->recv_bb = NULL;
  if (ok && bb) {
    if (!s->closing && s->cur == a) {
      grpc_slice msg = rpc_read_all(bb);
      a->got_message = 1;
      if (s->cb.on_message)
        s->cb.on_message(s->ud, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
      grpc_slice_unref(msg);
    }
    grpc_byte_buffer_destroy(bb);
    if (!s->closing) rpc_attempt_arm_recv(a);
  } else if (bb) {
    grpc_byte_buffer_destroy(bb);
  }
  if (!a->recv_active && a->status_done) rpc_attempt_end(a);
  rpc_attempt_release(a);
}

static void rpc_attempt_on_status(struct rpc_tag *tag, int ok) {
  struct rpc_attempt *a = container_of(tag, struct rpc_attempt, t_status);
  a->refs--;
  a->status_done = 1;
  if (!ok) a->status = GRPC_STATUS_UNKNOWN;
  rpc_sendq_clear(&a->q);
  /* Messages already received are delivered before on_close. */
  if (!a->recv_active) rpc_attempt_end(a);
  rpc_attempt_release(a);
}

static void rpc_stream_start_attempt(struct rpc_stream *s) {
  struct rpc_attempt *a = calloc(1, sizeof(*a));
  if (!a) goto retry;
  a->s = s;
  a->t_start.fn = rpc_attempt_on_start;
  a->t_recv.fn = rpc_attempt_on_recv;
  a->t_send.fn = rpc_attempt_on_send;
  a->t_status.fn = rpc_attempt_on_status;
  a->details = grpc_empty_slice();
  grpc_metadata_array_init(&a->md_initial);
  grpc_metadata_array_init(&a->md_trailing);
  a->ch = rpc_channel_new(s->target, s->creds, s->name_override);
  a->call = a->ch ? grpc_channel_create_call(a->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->rt->cq,
                                             grpc_slice_from_static_string(s->method), NULL,
                                             gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                  : NULL;
  if (!a->call) {
    LOG_ERROR("rpc_stream_call_failed", "target=%s", s->target);
    if (a->ch) grpc_channel_destroy(a->ch);
    grpc_metadata_array_destroy(&a->md_initial);
    grpc_metadata_array_destroy(&a->md_trailing);
    free(a);
    goto retry;
  }
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &a->md_initial;
  if (grpc_call_start_batch(a->call, ops, 2, &a->t_start, NULL) == GRPC_CALL_OK) a->refs++;
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &a->md_trailing;
  ops[0].data.recv_status_on_client.status = &a->status;
  ops[0].data.recv_status_on_client.status_details = &a->details;
  if (grpc_call_start_batch(a->call, ops, 1, &a->t_status, NULL) != GRPC_CALL_OK) {
    /* Cannot happen on a fresh call; without a status batch the attempt
     * would never end, so give up on it. */
    LOG_ERROR("rpc_start_batch_failed", "target=%s op=status", s->target);
    grpc_call_cancel(a->call, NULL);
    a->status_done = 1;
    s->attempts_live++;
    rpc_attempt_release(a);
    goto retry;
  }
  a->refs++;
  s->attempts_live++;
  s->cur = a;
  if (s->cb.on_open) s->cb.on_open(s->ud);
  return;
retry:
  uv_timer_start(&s->timer, rpc_stream_on_timer, s->backoff_max, 0);
}

static void rpc_stream_on_timer(uv_timer_t *t) {
  struct rpc_stream *s = t->data;
  if (!s->closing && !s->cur) rpc_stream_start_attempt(s);
}

int rpc_stream_open(struct rpc_runtime *rt, const struct rpc_stream_opts *opts,
                    const struct rpc_stream_callbacks *cb, void *ud, struct rpc_stream **out) {
  if (!rt || !opts || !opts->target || !opts->method || !cb || !out) return RPC_ERR_INVALID;
  char err[256];
  grpc_channel_credentials *creds = NULL;
  int rc = rpc_channel_creds(&opts->creds, &creds, err, sizeof(err));
  if (rc < 0) {
    LOG_ERROR("rpc_creds_failed", "target=%s reason=%s", opts->target, log_q(err));
    return rc;
  }
  struct rpc_stream *s = calloc(1, sizeof(*s));
  if (!s) {
    grpc_channel_credentials_release(creds);
    return RPC_ERR_NOMEM;
  }
  s->rt = rt;
  rpc_live_inc(rt);
  s->creds = creds;
  s->target = rpc_strdup(opts->target);
  s->method = rpc_strdup(opts->method);
  s->name_override = rpc_strdup(opts->creds.server_name_override);
  s->cb = *cb;
  s->ud = ud;
  s->backoff_initial = opts->backoff_initial_ms ? opts->backoff_initial_ms : 200;
  s->backoff_max = opts->backoff_max_ms ? opts->backoff_max_ms : 10000;
  if (s->backoff_max < s->backoff_initial) s->backoff_max = s->backoff_initial;
  s->backoff_reset = opts->backoff_reset_ms ? opts->backoff_reset_ms : 5000;
  s->backoff_cur = s->backoff_initial;
  s->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)s) | 1;
  uv_timer_init(rt->loop, &s->timer);
  s->timer.data = s;
  /* The first attempt starts from the loop, so on_open never runs inside
   * this function. */
  uv_timer_start(&s->timer, rpc_stream_on_timer, 0, 0);
  *out = s;
  return 0;
}

int rpc_stream_send(struct rpc_stream *s, const uint8_t *data, size_t len) {
  if (!s || (!data && len)) return RPC_ERR_INVALID;
  struct rpc_attempt *a = s->cur;
  if (s->closing || !a || a->status_done || a->want_half_close) return RPC_ERR_CLOSED;
  int rc = rpc_sendq_push(&a->q, data, len);
  if (rc == 0) rpc_attempt_pump(a);
  return rc;
}

int rpc_stream_close_send(struct rpc_stream *s) {
  if (!s) return RPC_ERR_INVALID;
  struct rpc_attempt *a = s->cur;
  if (s->closing || !a || a->status_done || a->want_half_close) return RPC_ERR_CLOSED;
  a->want_half_close = 1;
  rpc_attempt_pump(a);
  return 0;
}

int rpc_stream_is_open(const struct rpc_stream *s) {
  return s && !s->closing && s->cur != NULL;
}

static void rpc_stream_on_timer_closed(uv_handle_t *h) {
  struct rpc_stream *s = h->data;
  s->timer_closed = 1;
  rpc_stream_maybe_free(s);
}

void rpc_stream_close(struct rpc_stream *s, void (*done)(void *arg), void *arg) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->done = done;
  s->done_arg = arg;
  if (s->cur) {
    grpc_call_cancel(s->cur->call, NULL);
    rpc_sendq_clear(&s->cur->q);
    s->cur = NULL;
  }
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, rpc_stream_on_timer_closed);
}

/* ---- server ------------------------------------------------------------ */

struct rpc_method {
  struct rpc_method *next;
  char *name;
  enum rpc_method_kind kind;
  struct rpc_call_handler h;
  void *ud;
};

struct rpc_server {
  struct rpc_runtime *rt;
  grpc_server *server;
  grpc_server_credentials *creds;
  char *listen;
  struct rpc_method *methods;
  int port, started, shutting_down, shutdown_notified;
  struct rpc_tag t_request, t_shutdown;
  grpc_call *new_call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  int request_pending;
  int live_calls;
  void (*done)(void *arg);
  void *done_arg;
};

struct rpc_call {
  struct rpc_server *srv;
  const struct rpc_method *m; /* NULL: unimplemented, answered by us */
  grpc_call *call;
  int refs;
  struct rpc_tag t_meta, t_recv, t_send, t_close, t_finish;
  grpc_byte_buffer *recv_bb;
  int cancelled; /* written by RECV_CLOSE_ON_SERVER */
  struct rpc_sendq q;
  int sending, recv_active, closed, finish_wanted, finish_sent, half_closed;
  int announced; /* on_call ran, so on_done must run */
  grpc_status_code finish_status;
  grpc_slice finish_details;
  char *peer, *identity;
  char **uris; /* URI SANs of the verified client certificate */
  size_t n_uris;
  int secure; /* the call arrived over TLS */
  void *data;
};

static void rpc_server_request(struct rpc_server *srv);

static void rpc_server_maybe_free(struct rpc_server *srv) {
  if (!srv->shutdown_notified || srv->request_pending || srv->live_calls > 0) return;
  void (*done)(void *) = srv->done;
  void *arg = srv->done_arg;
  grpc_server_destroy(srv->server);
  if (srv->creds) grpc_server_credentials_release(srv->creds);
  grpc_call_details_destroy(&srv->details);
  grpc_metadata_array_destroy(&srv->request_md);
  while (srv->methods) {
    struct rpc_method *m = srv->methods;
    srv->methods = m->next;
    free(m->name);
    free(m);
  }
  free(srv->listen);
  rpc_live_dec(srv->rt);
  free(srv);
  if (done) done(arg);
}

static void rpc_call_release(struct rpc_call *c) {
  if (c->refs > 0) return;
  struct rpc_server *srv = c->srv;
  if (c->announced && c->m->h.on_done) c->m->h.on_done(c->m->ud, c);
  grpc_call_unref(c->call);
  rpc_sendq_clear(&c->q);
  rpc_sendq_done(&c->q);
  grpc_slice_unref(c->finish_details);
  free(c->peer);
  free(c->identity);
  for (size_t i = 0; i < c->n_uris; i++) free(c->uris[i]);
  free(c->uris);
  free(c);
  srv->live_calls--;
  rpc_server_maybe_free(srv);
}

static void rpc_call_pump(struct rpc_call *c) {
  if (c->sending || c->closed || c->finish_sent) return;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  struct rpc_tag *tag = &c->t_send;
  if (c->q.head) {
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = rpc_sendq_pop(&c->q);
  } else if (c->finish_wanted) {
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = c->finish_status;
    op.data.send_status_from_server.status_details = &c->finish_details;
    tag = &c->t_finish;
    c->finish_sent = 1;
  } else {
    return;
  }
  if (grpc_call_start_batch(c->call, &op, 1, tag, NULL) != GRPC_CALL_OK) {
    LOG_ERROR("rpc_start_batch_failed", "peer=%s op=%s", c->peer,
              tag == &c->t_send ? "send" : "finish");
    rpc_sendq_done(&c->q);
    grpc_call_cancel(c->call, NULL);
    return;
  }
  if (tag == &c->t_send) c->sending = 1;
  c->refs++;
}

static void rpc_call_on_send(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_send);
  c->refs--;
  c->sending = 0;
  rpc_sendq_done(&c->q);
  if (!ok) rpc_sendq_clear(&c->q);
  rpc_call_pump(c);
  if (ok && c->q.len == 0 && !c->closed && !c->finish_wanted && c->m->h.on_drained &&
      !c->srv->shutting_down)
    c->m->h.on_drained(c->m->ud, c);
  rpc_call_release(c);
}

static void rpc_call_on_finish(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_finish);
  c->refs--;
  if (!c->m) c->closed = 1; /* the unimplemented batch carried RECV_CLOSE */
  rpc_call_release(c);
}

static void rpc_call_on_meta(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_meta);
  c->refs--;
  rpc_call_release(c);
}

static void rpc_call_on_close(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_close);
  c->refs--;
  c->closed = 1;
  rpc_sendq_clear(&c->q);
  rpc_call_release(c);
}

static void rpc_call_arm_recv(struct rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) return;
  c->recv_active = 1;
  c->refs++;
}

static void rpc_call_on_recv(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_recv);
  c->refs--;
  c->recv_active = 0;
  grpc_byte_buffer *bb = c->recv_bb;
  c->recv_bb = NULL;
  /* After rpc_call_finish the handler has said its last word. */
  int live = !c->closed && !c->finish_wanted && !c->srv->shutting_down;
  if (ok && bb) {
    if (live && c->m->h.on_message) {
      grpc_slice msg = rpc_read_all(bb);
      c->m->h.on_message(c->m->ud, c, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
      grpc_slice_unref(msg);
    }
    grpc_byte_buffer_destroy(bb);
    if (!c->closed) rpc_call_arm_recv(c);
  } else {
    if (bb) grpc_byte_buffer_destroy(bb);
    if (ok && live && !c->half_closed) {
      c->half_closed = 1;
      if (c->m->h.on_half_close) c->m->h.on_half_close(c->m->ud, c);
    }
  }
  rpc_call_release(c);
}

/* CN of the verified client certificate, or "". */
static char *rpc_call_identity_of(grpc_call *call) {
  grpc_auth_context *ctx = grpc_call_auth_context(call);
  char *out = NULL;
  if (ctx) {
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p && p->value) out = strndup(p->value, p->value_length);
    grpc_auth_context_release(ctx);
  }
  return out ? out : strdup("");
}

/* The URI SANs of the verified client certificate (gRPC's "peer_uri"
 * properties) and whether the transport is TLS at all. */
static void rpc_call_uris_of(struct rpc_call *c) {
  grpc_auth_context *ctx = grpc_call_auth_context(c->call);
  if (!ctx) return;
  grpc_auth_property_iterator it =
      grpc_auth_context_find_properties_by_name(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  c->secure = p && p->value && p->value_length == strlen(GRPC_SSL_TRANSPORT_SECURITY_TYPE) &&
              memcmp(p->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE, p->value_length) == 0;
  it = grpc_auth_context_find_properties_by_name(ctx, GRPC_PEER_URI_PROPERTY_NAME);
  while ((p = grpc_auth_property_iterator_next(&it)) != NULL && c->n_uris < 16) {
    char **grown = realloc(c->uris, (c->n_uris + 1) * sizeof(*grown));
    if (!grown) break;
    c->uris = grown;
    if (!(c->uris[c->n_uris] = strndup(p->value ? p->value : "", p->value_length))) break;
    c->n_uris++;
  }
  grpc_auth_context_release(ctx);
}

static void rpc_server_accept(struct rpc_server *srv, grpc_call *call) {
  struct rpc_call *c = calloc(1, sizeof(*c));
  if (!c) {
    grpc_call_cancel(call, NULL);
    grpc_call_unref(call);
    return;
  }
  c->srv = srv;
  c->call = call;
  c->finish_details = grpc_empty_slice();
  c->t_meta.fn = rpc_call_on_meta;
  c->t_recv.fn = rpc_call_on_recv;
  c->t_send.fn = rpc_call_on_send;
  c->t_close.fn = rpc_call_on_close;
  c->t_finish.fn = rpc_call_on_finish;
  char *peer = grpc_call_get_peer(call);
  c->peer = rpc_strdup(peer ? peer : "");
  gpr_free(peer);
  c->identity = rpc_call_identity_of(call);
  rpc_call_uris_of(c);
  srv->live_calls++;
  for (const struct rpc_method *m = srv->methods; m; m = m->next) {
    if (grpc_slice_str_cmp(srv->details.method, m->name) == 0) {
      c->m = m;
      break;
    }
  }
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  if (!c->m) {
    char *name = grpc_slice_to_c_string(srv->details.method);
    LOG_INFO("rpc_unknown_method", "method=%s peer=%s", log_q(name), log_q(c->peer));
    gpr_free(name);
    c->finish_sent = c->finish_wanted = 1;
    c->finish_details = grpc_slice_from_static_string("unknown method");
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &c->finish_details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(call, ops, 3, &c->t_finish, NULL) == GRPC_CALL_OK) c->refs++;
    rpc_call_release(c);
    return;
  }
  /* Initial metadata goes out at once: it tells the client the server is
   * really there (the client's backoff resets only after that). */
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (grpc_call_start_batch(call, ops, 1, &c->t_meta, NULL) == GRPC_CALL_OK) c->refs++;
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
  if (grpc_call_start_batch(call, ops, 1, &c->t_close, NULL) == GRPC_CALL_OK)
    c->refs++;
  else
    c->closed = 1;
  if (!c->closed) rpc_call_arm_recv(c);
  if (!c->closed) {
    c->announced = 1;
    if (c->m->h.on_call) c->m->h.on_call(c->m->ud, c);
  }
  rpc_call_release(c);
}

static void rpc_server_on_request(struct rpc_tag *tag, int ok) {
  struct rpc_server *srv = container_of(tag, struct rpc_server, t_request);
  srv->request_pending = 0;
  grpc_call *call = srv->new_call;
  srv->new_call = NULL;
  if (ok && call) {
    if (srv->shutting_down) {
      grpc_call_cancel(call, NULL);
      grpc_call_unref(call);
    } else {
      rpc_server_accept(srv, call);
    }
  }
  grpc_call_details_destroy(&srv->details);
  grpc_metadata_array_destroy(&srv->request_md);
  grpc_call_details_init(&srv->details);
  grpc_metadata_array_init(&srv->request_md);
  if (!srv->shutting_down && ok) rpc_server_request(srv);
  rpc_server_maybe_free(srv);
}

static void rpc_server_request(struct rpc_server *srv) {
  grpc_call_error e =
      grpc_server_request_call(srv->server, &srv->new_call, &srv->details, &srv->request_md,
                               srv->rt->cq, srv->rt->cq, &srv->t_request);
  if (e == GRPC_CALL_OK)
    srv->request_pending = 1;
  else
    LOG_ERROR("rpc_request_call_failed", "listen=%s error=%d", srv->listen, (int)e);
}

static void rpc_server_on_shutdown(struct rpc_tag *tag, int ok) {
  struct rpc_server *srv = container_of(tag, struct rpc_server, t_shutdown);
  srv->shutdown_notified = 1;
  rpc_server_maybe_free(srv);
}

int rpc_server_new(struct rpc_runtime *rt, const struct rpc_server_opts *opts,
                   struct rpc_server **out, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (!rt || !opts || !opts->listen || !out) {
    snprintf(err, errlen, "missing runtime, options or listen address");
    return RPC_ERR_INVALID;
  }
  grpc_server_credentials *creds = NULL;
  if (opts->creds.insecure) {
    creds = grpc_insecure_server_credentials_create();
  } else {
    if (!opts->creds.cert_file || !opts->creds.key_file) {
      snprintf(err, errlen, "a TLS server needs cert and key (or insecure)");
      return RPC_ERR_CREDS;
    }
    struct rpc_pems p;
    int rc = rpc_pems_load(&opts->creds, &p, err, errlen);
    if (rc < 0) return rc;
    grpc_ssl_pem_key_cert_pair pair = {p.key, p.cert};
    creds = grpc_ssl_server_credentials_create_ex(
        p.ca, &pair, 1,
        p.ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    rpc_pems_free(&p);
    if (!creds) {
      snprintf(err, errlen, "invalid TLS server credentials");
      return RPC_ERR_CREDS;
    }
  }
  struct rpc_server *srv = calloc(1, sizeof(*srv));
  if (!srv) {
    grpc_server_credentials_release(creds);
    return RPC_ERR_NOMEM;
  }
  grpc_arg args[3] = {
      rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0), /* a second server must fail to bind */
      rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, RPC_MAX_MESSAGE),
      rpc_int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000),
  };
  grpc_channel_args ca = {3, args};
  srv->rt = rt;
  rpc_live_inc(rt);
  srv->creds = creds;
  srv->listen = rpc_strdup(opts->listen);
  srv->server = grpc_server_create(&ca, NULL);
  grpc_server_register_completion_queue(srv->server, rt->cq, NULL);
  srv->t_request.fn = rpc_server_on_request;
  srv->t_shutdown.fn = rpc_server_on_shutdown;
  grpc_call_details_init(&srv->details);
  grpc_metadata_array_init(&srv->request_md);
  *out = srv;
  return 0;
}

int rpc_server_add_method(struct rpc_server *srv, const char *method, enum rpc_method_kind kind,
                          const struct rpc_call_handler *h, void *ud) {
  if (!srv || !method || !h || srv->started) return RPC_ERR_INVALID;
  struct rpc_method *m = calloc(1, sizeof(*m));
  if (!m) return RPC_ERR_NOMEM;
  m->name = rpc_strdup(method);
  m->kind = kind;
  m->h = *h;
  m->ud = ud;
  m->next = srv->methods;
  srv->methods = m;
  return 0;
}

int rpc_server_start(struct rpc_server *srv, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (!srv || srv->started) {
    snprintf(err, errlen, "server missing or already started");
    return RPC_ERR_INVALID;
  }
  int port = grpc_server_add_http2_port(srv->server, srv->listen, srv->creds);
  if (port <= 0) {
    snprintf(err, errlen, "cannot listen on %s", srv->listen);
    return RPC_ERR_BIND;
  }
  srv->port = port;
  grpc_server_start(srv->server);
  srv->started = 1;
  rpc_server_request(srv);
  LOG_INFO("rpc_server_listening", "listen=%s port=%d", srv->listen, port);
  return 0;
}

int rpc_server_port(const struct rpc_server *srv) {
  return srv ? srv->port : 0;
}

void rpc_server_shutdown(struct rpc_server *srv, void (*done)(void *arg), void *arg) {
  if (!srv || srv->shutting_down) return;
  srv->shutting_down = 1;
  srv->done = done;
  srv->done_arg = arg;
  grpc_server_shutdown_and_notify(srv->server, srv->rt->cq, &srv->t_shutdown);
  grpc_server_cancel_all_calls(srv->server);
}

int rpc_call_send(struct rpc_call *c, const uint8_t *data, size_t len) {
  if (!c || !c->m || (!data && len)) return RPC_ERR_INVALID;
  if (c->closed || c->finish_wanted || c->srv->shutting_down) return RPC_ERR_CLOSED;
  int rc = rpc_sendq_push(&c->q, data, len);
  if (rc == 0) rpc_call_pump(c);
  return rc;
}

size_t rpc_call_pending(const struct rpc_call *c) {
  return c ? c->q.len : 0;
}

int rpc_call_finish(struct rpc_call *c, int status, const char *details) {
  if (!c || !c->m || status < 0 || status > 16) return RPC_ERR_INVALID;
  if (c->closed || c->finish_wanted) return RPC_ERR_CLOSED;
  c->finish_wanted = 1;
  c->finish_status = (grpc_status_code)status;
  grpc_slice_unref(c->finish_details);
  c->finish_details = grpc_slice_from_copied_string(details ? details : "");
  rpc_call_pump(c);
  return 0;
}

const char *rpc_call_peer(const struct rpc_call *c) {
  return c && c->peer ? c->peer : "";
}

const char *rpc_call_peer_identity(const struct rpc_call *c) {
  return c && c->identity ? c->identity : "";
}

int rpc_call_peer_is_tls(const struct rpc_call *c) {
  return c && c->secure;
}

size_t rpc_call_peer_uris(const struct rpc_call *c, const char *const **uris) {
  *uris = c ? (const char *const *)c->uris : NULL;
  return c ? c->n_uris : 0;
}

void rpc_call_set_data(struct rpc_call *c, void *data) {
  if (c) c->data = data;
}

void *rpc_call_get_data(const struct rpc_call *c) {
  return c ? c->data : NULL;
}

/* ---- blocking unary client --------------------------------------------- */

int rpc_unary_call(const char *target, const char *method, const struct rpc_creds *creds,
                   const uint8_t *req, size_t req_len, uint32_t deadline_ms, uint8_t **resp,
                   size_t *resp_len, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  err[0] = '\0';
  if (!target || !method || !creds || (!req && req_len) || !resp || !resp_len) {
    snprintf(err, errlen, "invalid argument");
    return RPC_ERR_INVALID;
  }
  *resp = NULL;
  *resp_len = 0;
  pthread_once(&rpc_log_once, rpc_log_setup);
  grpc_init();
  grpc_channel_credentials *cc = NULL;
  int rc = rpc_channel_creds(creds, &cc, err, errlen);
  if (rc < 0) {
    grpc_shutdown();
    return rc;
  }
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_channel *ch = rpc_channel_new(target, cc, creds->server_name_override);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(deadline_ms ? deadline_ms : 10000, GPR_TIMESPAN));
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                               grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_metadata_array md_initial, md_trailing;
  grpc_metadata_array_init(&md_initial);
  grpc_metadata_array_init(&md_trailing);
  grpc_slice payload = grpc_slice_from_copied_buffer((const char *)req, req_len);
  grpc_byte_buffer *send_bb = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
  grpc_byte_buffer *recv_bb = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &md_trailing;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  int tag = 0;
  if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
    snprintf(err, errlen, "cannot start the call");
    rc = RPC_ERR_INVALID;
  } else {
    /* The call's own deadline ends it; the queue only waits for that. */
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
      snprintf(err, errlen, "call failed");
      rc = GRPC_STATUS_INTERNAL;
    } else if (status != GRPC_STATUS_OK) {
      char *d = grpc_slice_to_c_string(details);
      snprintf(err, errlen, "%s", d);
      gpr_free(d);
      rc = (int)status;
    } else if (!recv_bb) {
      snprintf(err, errlen, "no response message");
      rc = GRPC_STATUS_INTERNAL;
    } else {
      grpc_slice msg = rpc_read_all(recv_bb);
      size_t n = GRPC_SLICE_LENGTH(msg);
      *resp = malloc(n ? n : 1);
      if (!*resp) {
        rc = RPC_ERR_NOMEM;
      } else {
        memcpy(*resp, GRPC_SLICE_START_PTR(msg), n);
        *resp_len = n;
        rc = 0;
      }
      grpc_slice_unref(msg);
    }
  }
  if (recv_bb) grpc_byte_buffer_destroy(recv_bb);
  grpc_byte_buffer_destroy(send_bb);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md_initial);
  grpc_metadata_array_destroy(&md_trailing);
  grpc_call_unref(call);
  grpc_channel_destroy(ch);
  grpc_channel_credentials_release(cc);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_shutdown();
  return rc;
}
