/*
 * pset — sets of pointers for dependency indexes: a vector while small, a
 * vector plus a hash index (common/hmap) once it holds more than
 * PSET_INDEX_AT members, so adding, removing and testing stay O(1) for a
 * Service that 100,000 Ingresses use, while the many one-member sets (a
 * host and its one Ingress) stay a few words. Members are visited as
 * v[0..n); removal moves the last member into the hole.
 *
 * index_*: a map from string keys to psets, made on first add and freed
 * when emptied. sset_add: a string set kept as a map to (void *)1.
 *
 * Not thread-safe; the caller owns the sets. Callers: syncd/translate*.c.
 */
#ifndef EDGE_SYNCD_PSET_H
#define EDGE_SYNCD_PSET_H

#include <stddef.h>

#include "common/hmap.h"

#define PSET_INDEX_AT 16

struct pset {
  void **v;
  size_t n, cap;
  struct hmap *idx; /* pointer → position + 1, once n passed PSET_INDEX_AT */
};

int pset_has(const struct pset *s, const void *p);
/* Adds p (once). 0 or -ENOMEM. */
int pset_add(struct pset *s, void *p);
void pset_del(struct pset *s, const void *p);
void pset_free(struct pset *s);

/* The set under key; created when create is set (NULL when out of memory). */
struct pset *index_get(struct hmap *m, const char *key, int create);
int index_add(struct hmap *m, const char *key, void *p);
void index_del(struct hmap *m, const char *key, const void *p);
/* Frees every set and the map. */
void index_free(struct hmap *m);
/* Adds key to a string set. 0 or -ENOMEM. */
int sset_add(struct hmap *m, const char *key);

#endif
