/*
 * rl_redis — cluster-wide token buckets in Redis, one client per worker,
 * asynchronous on the worker's libuv loop (hiredis + its libuv adapter).
 *
 * Each decision is one EVAL of a GCRA script (ratelimit.h's rule, with
 * Redis's own clock, so proxies with skewed clocks agree): the bucket is
 * shared by every proxy that names the same key, and the limit does not
 * multiply with the replica count. Keys are "edge:rl:" + 32 hex digits of
 * SHA-256(bucket id, key value): fixed size whatever the client sends,
 * and they expire when the bucket is full again.
 *
 * Failure is open (the request passes, the caller counts it): no
 * connection, a Redis error, or no answer within the timeout. A request
 * that timed out is answered then and there; its late reply is dropped. A
 * connection whose oldest request is 4 timeouts late is dropped and
 * reconnected with jittered exponential backoff (100 ms .. 5 s).
 *
 * Ownership: the client is the worker's; a request handle belongs to the
 * client until its reply (or the connection's end) frees it — the caller
 * may only cancel it (then its callback never runs). Single-threaded: the
 * worker's loop. Callers: l7proxy/route_policy.c.
 */
#ifndef EDGE_L7PROXY_RL_REDIS_H
#define EDGE_L7PROXY_RL_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "l7proxy/ratelimit.h"

struct rl_redis;
struct rl_redis_req;

enum { RL_REDIS_DENY = 0, RL_REDIS_ALLOW = 1, RL_REDIS_FAILED = -1 };

/* verdict: RL_REDIS_ALLOW, RL_REDIS_DENY or RL_REDIS_FAILED. */
typedef void (*rl_redis_cb)(void *arg, int verdict);

/* addr "HOST:PORT" (an IPv4 or IPv6 literal, or localhost). Connects at
 * once and keeps reconnecting. 0 or negative. */
int rl_redis_new(uv_loop_t *loop, const char *addr, uint32_t timeout_ms, struct rl_redis **out);
/* Cancels every request (no callback runs), closes the connection and
 * frees the client once its handles are closed (the loop must run). */
void rl_redis_close(struct rl_redis *r);

/* Takes one token from the bucket (bucket, value) with parameters p. NULL
 * when it cannot be asked (not connected): the caller fails open. */
struct rl_redis_req *rl_redis_take(struct rl_redis *r, const char *bucket, size_t blen,
                                   const char *value, size_t vlen, const struct rl_params *p,
                                   rl_redis_cb cb, void *arg);
void rl_redis_cancel(struct rl_redis_req *q);

/* The key a (bucket, value) pair has in Redis ("edge:rl:" + 32 hex). */
void rl_redis_key(const char *bucket, size_t blen, const char *value, size_t vlen, char out[41]);

/* 1 while connected (for tests and /readyz-like reporting). */
int rl_redis_connected(const struct rl_redis *r);

#endif
