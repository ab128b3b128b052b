/*
 * rl_redis — the Redis client of cluster-wide rate limits (see rl_redis.h).
 *
 * Requests are kept in send order (a FIFO): Redis answers in order, so
 * the oldest unanswered request tells whether the connection is stuck.
 * hiredis calls every pending callback with a NULL reply when the
 * connection ends, which is where handles are freed.
 */
#include "l7proxy/rl_redis.h"

#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* GCRA with Redis's clock (µs). ARGV: interval, capacity. 1 allowed, 0 not. */
static const char gcra_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local capacity = tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "local nt = tat + interval\n"
    "if nt - now > capacity then return 0 end\n"
    "redis.call('SET', KEYS[1], string.format('%d', nt), 'PX', math.floor((nt - now) / 1000) + 1)\n"
    "return 1\n";

struct rl_redis_req {
  struct rl_redis_req *next;
  struct rl_redis *r;
  rl_redis_cb cb;
  void *arg;
  uint64_t deadline;
  int done; /* answered (timeout) or cancelled: the reply is dropped */
};

struct rl_redis {
  uv_loop_t *loop;
  char host[64];
  int port;
  uint32_t timeout_ms;
  redisAsyncContext *ac;
  int connected;
  int closing;
  uv_timer_t timer; /* timeouts and reconnects */
  uint64_t next_connect;
  uint32_t backoff_ms;
  struct rl_redis_req *head, *tail;
};

static void rr_connect(struct rl_redis *r);

static void rr_unlink(struct rl_redis *r, struct rl_redis_req *q) {
  struct rl_redis_req **pp = &r->head, *prev = NULL;
  while (*pp && *pp != q) prev = *pp, pp = &(*pp)->next;
  if (!*pp) return;
  *pp = q->next;
  if (r->tail == q) r->tail = prev;
}

static void rr_on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  struct rl_redis_req *q = priv;
  struct rl_redis *r = q->r;
  rr_unlink(r, q);
  if (!q->done) {
    redisReply *rep = reply;
    int v = RL_REDIS_FAILED;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
      v = rep->integer == 1 ? RL_REDIS_ALLOW : RL_REDIS_DENY;
    if (rep && rep->type == REDIS_REPLY_ERROR)
      LOG_WARN("ratelimit_redis_error", "error=%s", log_q(rep->str));
    q->done = 1;
    q->cb(q->arg, v);
  }
  free(q);
}

static void rr_backoff(struct rl_redis *r) {
  r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 100;
  if (r->backoff_ms > 5000) r->backoff_ms = 5000;
  r->next_connect =
      uv_now(r->loop) + r->backoff_ms / 2 + (uint64_t)(rand() % (r->backoff_ms / 2 + 1));
}

static void rr_on_connect(const redisAsyncContext *ac, int status) {
  struct rl_redis *r = ac->data;
  if (status != REDIS_OK) {
    LOG_WARN("ratelimit_redis_connect_failed", "addr=%s:%d error=%s", r->host, r->port,
             log_q(ac->errstr));
    r->ac = NULL; /* hiredis frees it after this callback */
    r->connected = 0;
    rr_backoff(r);
    return;
  }
  r->connected = 1;
  r->backoff_ms = 0;
  LOG_INFO("ratelimit_redis_connected", "addr=%s:%d", r->host, r->port);
}

static void rr_on_disconnect(const redisAsyncContext *ac, int status) {
  struct rl_redis *r = ac->data;
  (void)status;
  if (r->ac == ac) r->ac = NULL;
  r->connected = 0;
  if (!r->closing) {
    LOG_WARN("ratelimit_redis_disconnected", "addr=%s:%d", r->host, r->port);
    rr_backoff(r);
  }
}

static void rr_connect(struct rl_redis *r) {
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac) {
    rr_backoff(r);
    return;
  }
  if (ac->err) {
    LOG_WARN("ratelimit_redis_connect_failed", "addr=%s:%d error=%s", r->host, r->port,
             log_q(ac->errstr));
    redisAsyncFree(ac);
    rr_backoff(r);
    return;
  }
  ac->data = r;
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    rr_backoff(r);
    return;
  }
  redisAsyncSetConnectCallback(ac, rr_on_connect);
  redisAsyncSetDisconnectCallback(ac, rr_on_disconnect);
  r->ac = ac;
}

/* Every tick: answer requests past their deadline, drop a stuck
 * connection, reconnect when due. */
static void rr_tick(uv_timer_t *t) {
  struct rl_redis *r = t->data;
  uint64_t now = uv_now(r->loop);
  for (struct rl_redis_req *q = r->head; q; q = q->next) {
    if (q->done || q->deadline > now) continue;
    q->done = 1;
    q->cb(q->arg, RL_REDIS_FAILED);
  }
  if (r->ac && r->head && r->head->deadline + 3ull * r->timeout_ms < now) {
    LOG_WARN("ratelimit_redis_stuck", "addr=%s:%d", r->host, r->port);
    redisAsyncDisconnect(r->ac); /* replies pending: every callback runs with NULL */
  }
  if (!r->ac && now >= r->next_connect) rr_connect(r);
}

int rl_redis_new(uv_loop_t *loop, const char *addr, uint32_t timeout_ms, struct rl_redis **out) {
  struct rl_redis *r = calloc(1, sizeof(*r));
  if (!r) return -ENOMEM;
  const char *colon = strrchr(addr, ':');
  size_t hl = colon ? (size_t)(colon - addr) : 0;
  if (!colon || hl == 0 || hl >= sizeof(r->host) || atoi(colon + 1) <= 0 ||
      atoi(colon + 1) > 65535) {
    free(r);
    return -EINVAL;
  }
  if (addr[0] == '[' && hl > 2 && addr[hl - 1] == ']')
    memcpy(r->host, addr + 1, hl - 2);
  else
    memcpy(r->host, addr, hl);
  r->port = atoi(colon + 1);
  r->loop = loop;
  r->timeout_ms = timeout_ms ? timeout_ms : 100;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uint64_t tick = r->timeout_ms / 4 ? r->timeout_ms / 4 : 1;
  uv_timer_start(&r->timer, rr_tick, tick, tick);
  uv_unref((uv_handle_t *)&r->timer); /* never keeps a stopping loop alive */
  rr_connect(r);
  *out = r;
  return 0;
}

static void rr_free_cb(uv_handle_t *h) {
  free(h->data);
}

void rl_redis_close(struct rl_redis *r) {
  if (!r) return;
  r->closing = 1;
  for (struct rl_redis_req *q = r->head; q; q = q->next) q->done = 1;
  if (r->ac) {
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    redisAsyncFree(ac); /* pending callbacks run with NULL and free their handles */
  }
  uv_close((uv_handle_t *)&r->timer, rr_free_cb);
}

void rl_redis_key(const char *bucket, size_t blen, const char *value, size_t vlen, char out[41]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  uint64_t lens[2] = {blen, vlen};
  unsigned char *buf = malloc(sizeof(lens) + blen + vlen);
  if (buf) {
    memcpy(buf, lens, sizeof(lens));
    memcpy(buf + sizeof(lens), bucket, blen);
    memcpy(buf + sizeof(lens) + blen, value, vlen);
    SHA256(buf, sizeof(lens) + blen + vlen, md);
    free(buf);
  } else {
    memset(md, 0, sizeof(md));
  }
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "edge:rl:", 8);
  for (int i = 0; i < 16; i++) {
    out[8 + 2 * i] = hex[md[i] >> 4];
    out[9 + 2 * i] = hex[md[i] & 15];
  }
  out[40] = '\0';
}

struct rl_redis_req *rl_redis_take(struct rl_redis *r, const char *bucket, size_t blen,
                                   const char *value, size_t vlen, const struct rl_params *p,
                                   rl_redis_cb cb, void *arg) {
  if (!r || !r->ac || !r->connected) return NULL;
  struct rl_redis_req *q = calloc(1, sizeof(*q));
  if (!q) return NULL;
  char key[41], interval[24], capacity[24];
  rl_redis_key(bucket, blen, value, vlen, key);
  snprintf(interval, sizeof(interval), "%llu", (unsigned long long)p->interval_us);
  snprintf(capacity, sizeof(capacity), "%llu", (unsigned long long)p->capacity_us);
  const char *argv[] = {"EVAL", gcra_script, "1", key, interval, capacity};
  size_t lens[] = {4, sizeof(gcra_script) - 1, 1, 40, strlen(interval), strlen(capacity)};
  q->r = r;
  q->cb = cb;
  q->arg = arg;
  q->deadline = uv_now(r->loop) + r->timeout_ms;
  if (redisAsyncCommandArgv(r->ac, rr_on_reply, q, 6, argv, lens) != REDIS_OK) {
    free(q);
    return NULL;
  }
  if (r->tail)
    r->tail->next = q;
  else
    r->head = q;
  r->tail = q;
  return q;
}

void rl_redis_cancel(struct rl_redis_req *q) {
  if (q) q->done = 1;
}

int rl_redis_connected(const struct rl_redis *r) {
  return r && r->connected;
}
