/*
 * ratelimit — GCRA decisions and the sharded table of local buckets (see
 * ratelimit.h).
 */
#include "l7proxy/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/hmap.h"

#define RL_SHARDS 64
#define RL_PROBE 8

void rl_params_of(uint32_t requests, uint32_t period_s, uint32_t burst, struct rl_params *p) {
  if (requests == 0) requests = 1;
  if (period_s == 0) period_s = 1;
  if (burst == 0) burst = requests;
  p->interval_us = (uint64_t)period_s * 1000000u / requests;
  if (p->interval_us == 0) p->interval_us = 1;
  p->capacity_us = p->interval_us * burst;
}

int rl_gcra(uint64_t *tat, uint64_t now_us, const struct rl_params *p, uint64_t *retry_us) {
  uint64_t t = *tat > now_us ? *tat : now_us;
  uint64_t next = t + p->interval_us;
  if (next - now_us > p->capacity_us) {
    if (retry_us) *retry_us = next - now_us - p->capacity_us;
    return 0;
  }
  *tat = next;
  return 1;
}

struct rl_slot {
  uint64_t k0, k1;
  uint64_t tat; /* 0: empty */
};

struct rl_shard {
  pthread_mutex_t mu;
  struct rl_slot *slots;
  size_t n;
} __attribute__((aligned(64)));

struct rl_table {
  uint64_t seed[2];
  struct rl_shard shards[RL_SHARDS];
};

int rl_table_new(size_t capacity, struct rl_table **out) {
  struct rl_table *t = aligned_alloc(64, sizeof(*t));
  if (!t) return -ENOMEM;
  memset(t, 0, sizeof(*t));
  if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) {
    free(t);
    return -EIO;
  }
  size_t per = (capacity + RL_SHARDS - 1) / RL_SHARDS;
  if (per < RL_PROBE) per = RL_PROBE;
  for (size_t i = 0; i < RL_SHARDS; i++) {
    pthread_mutex_init(&t->shards[i].mu, NULL);
    t->shards[i].n = per;
    t->shards[i].slots = calloc(per, sizeof(struct rl_slot));
    if (!t->shards[i].slots) {
      rl_table_free(t);
      return -ENOMEM;
    }
  }
  *out = t;
  return 0;
}

void rl_table_free(struct rl_table *t) {
  if (!t) return;
  for (size_t i = 0; i < RL_SHARDS; i++) {
    free(t->shards[i].slots);
    pthread_mutex_destroy(&t->shards[i].mu);
  }
  free(t);
}

void rl_table_key(const struct rl_table *t, const char *bucket, size_t blen, const char *value,
                  size_t vlen, uint64_t key[2]) {
  /* bucket and value hashed separately, then combined: no (bucket, value)
   * pair can be shifted into another */
  uint64_t b0 = hmap_siphash(t->seed[0], t->seed[1], bucket, blen);
  uint64_t v0 = hmap_siphash(t->seed[0] ^ b0, t->seed[1], value, vlen);
  uint64_t v1 = hmap_siphash(t->seed[1], t->seed[0] ^ b0, value, vlen);
  key[0] = v0;
  key[1] = v1 ? v1 : 1;
}

int rl_table_take(struct rl_table *t, const uint64_t key[2], uint64_t now_us,
                  const struct rl_params *p, uint64_t *retry_us) {
  struct rl_shard *s = &t->shards[key[0] % RL_SHARDS];
  size_t start = (size_t)((key[0] / RL_SHARDS) % s->n);
  pthread_mutex_lock(&s->mu);
  struct rl_slot *hit = NULL, *free_slot = NULL, *victim = NULL;
  for (size_t k = 0; k < RL_PROBE; k++) {
    struct rl_slot *sl = &s->slots[(start + k) % s->n];
    if (sl->tat && sl->k0 == key[0] && sl->k1 == key[1]) {
      hit = sl;
      break;
    }
    if (!free_slot && sl->tat <= now_us) free_slot = sl; /* empty, or a full bucket */
    if (!victim || sl->tat < victim->tat) victim = sl;
  }
  if (!hit) {
    hit = free_slot ? free_slot : victim;
    hit->k0 = key[0];
    hit->k1 = key[1];
    hit->tat = 0;
  }
  int ok = rl_gcra(&hit->tat, now_us, p, retry_us);
  if (hit->tat == 0) hit->tat = 1; /* denied on a fresh slot cannot happen, keep it non-empty */
  pthread_mutex_unlock(&s->mu);
  return ok;
}
