/*
 * hmap — keyed open-addressing hash map (see hmap.h).
 *
 * Each slot caches its key's 64-bit hash, so probing compares hashes
 * before bytes and growing never rehashes. A key lives in its own small
 * allocation; HMAP_TOMBSTONE marks a deleted slot so probe chains through
 * it stay intact until the next rebuild.
 */
#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint8_t hmap_tombstone_byte;
#define HMAP_TOMBSTONE (&hmap_tombstone_byte)

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) \
  do {                           \
    v0 += v1;                    \
    v1 = ROTL(v1, 13);           \
    v1 ^= v0;                    \
    v0 = ROTL(v0, 32);           \
    v2 += v3;                    \
    v3 = ROTL(v3, 16);           \
    v3 ^= v2;                    \
    v0 += v3;                    \
    v3 = ROTL(v3, 21);           \
    v3 ^= v0;                    \
    v2 += v1;                    \
    v1 = ROTL(v1, 17);           \
    v1 ^= v2;                    \
    v2 = ROTL(v2, 32);           \
  } while (0)

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  size_t whole = len & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = load_le64(p + i);
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < (len & 7); i++) b |= (uint64_t)p[whole + i] << (8 * i);
  v3 ^= b;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; i++) SIPROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

void hmap_init(struct hmap *m) {
  memset(m, 0, sizeof(*m));
  uint64_t k[2];
  if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)m;
    k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL ^ (uint64_t)(uintptr_t)&ts;
  }
  m->k0 = k[0];
  m->k1 = k[1];
}

void hmap_free(struct hmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key && m->slots[i].key != HMAP_TOMBSTONE) free(m->slots[i].key);
  free(m->slots);
  m->slots = NULL;
  m->cap = m->n = m->used = 0;
}

/* Slot holding key, or (with *found = 0) the first free slot of its chain. */
static size_t probe(const struct hmap *m, uint64_t h, const void *key, size_t klen, int *found) {
  size_t mask = m->cap - 1, i = (size_t)h & mask, first_free = (size_t)-1;
  for (;;) {
    const struct hmap_slot *s = &m->slots[i];
    if (!s->key) {
      *found = 0;
      return first_free != (size_t)-1 ? first_free : i;
    }
    if (s->key == HMAP_TOMBSTONE) {
      if (first_free == (size_t)-1) first_free = i;
    } else if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) {
      *found = 1;
      return i;
    }
    i = (i + 1) & mask;
  }
}

static int rebuild(struct hmap *m, size_t cap) {
  struct hmap_slot *ns = calloc(cap, sizeof(*ns));
  if (!ns) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    struct hmap_slot *s = &m->slots[i];
    if (!s->key || s->key == HMAP_TOMBSTONE) continue;
    size_t j = (size_t)s->hash & (cap - 1);
    while (ns[j].key) j = (j + 1) & (cap - 1);
    ns[j] = *s;
  }
  free(m->slots);
  m->slots = ns;
  m->cap = cap;
  m->used = m->n;
  return 0;
}

void *hmap_get(const struct hmap *m, const void *key, size_t klen) {
  if (m->n == 0) return NULL;
  int found;
  size_t i = probe(m, hmap_siphash(m->k0, m->k1, key, klen), key, klen, &found);
  return found ? m->slots[i].val : NULL;
}

int hmap_put(struct hmap *m, const void *key, size_t klen, void *val, void **old) {
  if (old) *old = NULL;
  if ((m->used + 1) * 10 > m->cap * 7) {
    /* grow when live entries fill it; only sweep tombstones otherwise */
    size_t cap = m->cap ? m->cap : 16;
    while ((m->n + 1) * 10 > cap * 5) cap *= 2;
    if (rebuild(m, cap) != 0) return -1;
  }
  uint64_t h = hmap_siphash(m->k0, m->k1, key, klen);
  int found;
  size_t i = probe(m, h, key, klen, &found);
  struct hmap_slot *s = &m->slots[i];
  if (found) {
    if (old) *old = s->val;
    s->val = val;
    return 0;
  }
  uint8_t *copy = malloc(klen ? klen : 1);
  if (!copy) return -1;
  if (klen) memcpy(copy, key, klen);
  if (!s->key) m->used++; /* a reused tombstone was counted already */
  s->hash = h;
  s->key = copy;
  s->klen = klen;
  s->val = val;
  m->n++;
  return 0;
}

void *hmap_del(struct hmap *m, const void *key, size_t klen) {
  if (m->n == 0) return NULL;
  int found;
  size_t i = probe(m, hmap_siphash(m->k0, m->k1, key, klen), key, klen, &found);
  if (!found) return NULL;
  struct hmap_slot *s = &m->slots[i];
  void *val = s->val;
  free(s->key);
  s->key = HMAP_TOMBSTONE;
  s->val = NULL;
  m->n--;
  return val;
}

int hmap_next(const struct hmap *m, size_t *pos, const void **key, size_t *klen, void **val) {
  for (size_t i = *pos; i < m->cap; i++) {
    const struct hmap_slot *s = &m->slots[i];
    if (!s->key || s->key == HMAP_TOMBSTONE) continue;
    if (key) *key = s->key;
    if (klen) *klen = s->klen;
    if (val) *val = s->val;
    *pos = i + 1;
    return 1;
  }
  *pos = m->cap;
  return 0;
}
