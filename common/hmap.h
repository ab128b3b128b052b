/*
 * hmap — a hash map from byte-string keys to pointers, for indexes that
 * must stay O(1) per lookup at 100,000 entries (syncd's translation
 * indexes, its store's version history).
 *
 * Keys are copied into the map (any bytes, any length); values are
 * borrowed pointers the caller owns. Open addressing with linear probing
 * and tombstones; the table doubles past 70 % load (tombstones included)
 * and is rebuilt without tombstones then.
 *
 * Keys often come from tenants (Kubernetes names), so the hash is keyed:
 * SipHash-2-4 with a 128-bit key drawn from getrandom() when the map is
 * initialised. A tenant who names objects to collide cannot predict the
 * key, so lookups stay O(1) however the names are chosen.
 *
 * Iteration order is the table's and says nothing; callers that need an
 * order sort what they collect. A put or delete during an iteration
 * invalidates it (hmap_del is allowed only on the entry just returned).
 *
 * Not thread-safe: one owner thread. Callers: syncd/translate_world.c,
 * syncd/store.c.
 */
#ifndef EDGE_COMMON_HMAP_H
#define EDGE_COMMON_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_slot {
  uint64_t hash;
  uint8_t *key; /* NULL: empty; HMAP_TOMBSTONE: deleted */
  size_t klen;
  void *val;
};

struct hmap {
  struct hmap_slot *slots;
  size_t cap;  /* power of two, 0 before the first put */
  size_t n;    /* live entries */
  size_t used; /* live + tombstones */
  uint64_t k0, k1;
};

/* Initialises an empty map with a fresh random key. Never fails (falls
 * back to a clock-derived key when getrandom is unavailable). */
void hmap_init(struct hmap *m);
/* Frees the map's own memory; values are the caller's (free them first,
 * e.g. while iterating). m may be reused after hmap_init. */
void hmap_free(struct hmap *m);

/* The value stored under key, or NULL when absent. */
void *hmap_get(const struct hmap *m, const void *key, size_t klen);
/* Stores val under key (copied). *old (may be NULL) receives the value it
 * replaced, or NULL. 0, or -1 when out of memory (map unchanged). */
int hmap_put(struct hmap *m, const void *key, size_t klen, void *val, void **old);
/* Removes key; returns its value, or NULL when absent. */
void *hmap_del(struct hmap *m, const void *key, size_t klen);
/* Number of live entries. */
static inline size_t hmap_size(const struct hmap *m) {
  return m->n;
}

/* Iteration: start with *pos = 0; each call returns 1 and the next entry
 * (key, klen, val; any output may be NULL) or 0 at the end. */
int hmap_next(const struct hmap *m, size_t *pos, const void **key, size_t *klen, void **val);

/* Convenience for NUL-terminated string keys. */
static inline void *hmap_gets(const struct hmap *m, const char *key);
static inline int hmap_puts(struct hmap *m, const char *key, void *val, void **old);
static inline void *hmap_dels(struct hmap *m, const char *key);

/* SipHash-2-4 of data under the 128-bit key (k0, k1): exposed for tests
 * (the reference vectors) and for callers that need a keyed hash. */
uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

#include <string.h>
static inline void *hmap_gets(const struct hmap *m, const char *key) {
  return hmap_get(m, key, strlen(key));
}
static inline int hmap_puts(struct hmap *m, const char *key, void *val, void **old) {
  return hmap_put(m, key, strlen(key), val, old);
}
static inline void *hmap_dels(struct hmap *m, const char *key) {
  return hmap_del(m, key, strlen(key));
}

#endif
