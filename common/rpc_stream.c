/*
 * rpc_stream — reconnecting client streams (rpc.h): one attempt at a time,
 * each on a fresh channel with its own subchannel pool, so gRPC's own
 * reconnect backoff never delays ours; between attempts a uv timer waits
 * the jittered backoff. An attempt is freed when its last batch completes.
 */
#include "common/rpc_internal.h"

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

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
