/*
 * ratelimit — token buckets with burst, as GCRA: one number per key, the
 * "theoretical arrival time" (TAT). A bucket of `burst` tokens refilled
 * at `requests / period` is exactly: a request at `now` is allowed when
 * max(TAT, now) + interval - now <= burst * interval, and then TAT moves
 * to max(TAT, now) + interval. A key whose TAT is in the past holds a full
 * bucket, so forgetting it changes nothing — which is what bounds the
 * table below.
 *
 * rl_gcra is the pure decision (time passed in). The same rule runs in
 * Redis for cluster-wide limits (rl_redis.c's script), so local and
 * cluster-wide buckets behave alike.
 *
 * rl_table is the per-process table of local buckets, shared by all
 * workers so that a local limit is per proxy, not per worker: 64 shards,
 * each a fixed open-addressing array under its own mutex (held for a few
 * loads and stores). Keys are 128-bit keyed SipHash digests of (bucket id,
 * key value) under a random per-process key, so a client cannot aim
 * collisions; when a probe window is full, an expired key (a full bucket)
 * is reused, else the key closest to a full bucket is evicted (memory is
 * bounded: capacity fixed at creation).
 *
 * Callers: l7proxy/route_policy.c, tests/unit/l7proxy/ratelimit_test.c.
 */
#ifndef EDGE_L7PROXY_RATELIMIT_H
#define EDGE_L7PROXY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct rl_params {
  uint64_t interval_us; /* one token every interval */
  uint64_t capacity_us; /* burst * interval */
};

/* requests per period_s seconds (0: 1), burst (0: requests). */
void rl_params_of(uint32_t requests, uint32_t period_s, uint32_t burst, struct rl_params *p);

/* The decision for one request at now_us against *tat (0: new key).
 * 1 allowed (*tat advanced), 0 denied (*tat unchanged; *retry_us, when
 * not NULL, is how long until a token is there). */
int rl_gcra(uint64_t *tat, uint64_t now_us, const struct rl_params *p, uint64_t *retry_us);

struct rl_table;
/* capacity: keys kept (rounded up to a multiple of 64 shards). */
int rl_table_new(size_t capacity, struct rl_table **out);
void rl_table_free(struct rl_table *t);
/* The digest of (bucket, value) for the table (random per-process key). */
void rl_table_key(const struct rl_table *t, const char *bucket, size_t blen, const char *value,
                  size_t vlen, uint64_t key[2]);
/* rl_gcra on key's stored TAT. Thread-safe. */
int rl_table_take(struct rl_table *t, const uint64_t key[2], uint64_t now_us,
                  const struct rl_params *p, uint64_t *retry_us);

#endif
