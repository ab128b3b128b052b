/*
 * pset — pointer sets and string-keyed indexes of them (see pset.h).
 */
#include "syncd/pset.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t pset_find(const struct pset *s, const void *p) {
  if (s->idx) {
    uintptr_t at = (uintptr_t)hmap_get(s->idx, &p, sizeof(p));
    return at ? at - 1 : (size_t)-1;
  }
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == p) return i;
  return (size_t)-1;
}

int pset_has(const struct pset *s, const void *p) {
  return pset_find(s, p) != (size_t)-1;
}

int pset_add(struct pset *s, void *p) {
  if (pset_has(s, p)) return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    void **nv = realloc(s->v, cap * sizeof(*nv));
    if (!nv) return -ENOMEM;
    s->v = nv;
    s->cap = cap;
  }
  if (!s->idx && s->n >= PSET_INDEX_AT) {
    if (!(s->idx = malloc(sizeof(*s->idx)))) return -ENOMEM;
    hmap_init(s->idx);
    for (size_t i = 0; i < s->n; i++)
      if (hmap_put(s->idx, &s->v[i], sizeof(void *), (void *)(uintptr_t)(i + 1), NULL) != 0)
        return -ENOMEM;
  }
  if (s->idx && hmap_put(s->idx, &p, sizeof(p), (void *)(uintptr_t)(s->n + 1), NULL) != 0)
    return -ENOMEM;
  s->v[s->n++] = p;
  return 0;
}

void pset_del(struct pset *s, const void *p) {
  size_t i = pset_find(s, p);
  if (i == (size_t)-1) return;
  if (s->idx) hmap_del(s->idx, &p, sizeof(p));
  s->v[i] = s->v[--s->n];
  if (s->idx && i < s->n)
    hmap_put(s->idx, &s->v[i], sizeof(void *), (void *)(uintptr_t)(i + 1), NULL);
}

void pset_free(struct pset *s) {
  free(s->v);
  if (s->idx) {
    hmap_free(s->idx);
    free(s->idx);
  }
  memset(s, 0, sizeof(*s));
}

/* A map from string keys to psets (created on demand, freed when empty). */
struct pset *index_get(struct hmap *m, const char *key, int create) {
  struct pset *s = hmap_gets(m, key);
  if (!s && create) {
    s = calloc(1, sizeof(*s));
    if (s && hmap_puts(m, key, s, NULL) != 0) {
      free(s);
      s = NULL;
    }
  }
  return s;
}

int index_add(struct hmap *m, const char *key, void *p) {
  struct pset *s = index_get(m, key, 1);
  return s ? pset_add(s, p) : -ENOMEM;
}

void index_del(struct hmap *m, const char *key, const void *p) {
  struct pset *s = index_get(m, key, 0);
  if (!s) return;
  pset_del(s, p);
  if (s->n == 0) {
    hmap_dels(m, key);
    pset_free(s);
    free(s);
  }
}

void index_free(struct hmap *m) {
  size_t pos = 0;
  void *v;
  while (hmap_next(m, &pos, NULL, NULL, &v)) {
    pset_free(v);
    free(v);
  }
  hmap_free(m);
}

/* A string set as a map to (void *)1. */
int sset_add(struct hmap *m, const char *key) {
  return hmap_gets(m, key) ? 0 : hmap_puts(m, key, (void *)1, NULL);
}
