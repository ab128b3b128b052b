/* pool — see pool.h. */
#include "syncd/pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *pool_keep(struct pool *p, void *ptr) {
  if (!ptr) {
    p->oom = 1;
    return NULL;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    void **np = realloc(p->ptrs, cap * sizeof(*np));
    if (!np) {
      free(ptr);
      p->oom = 1;
      return NULL;
    }
    p->ptrs = np;
    p->cap = cap;
  }
  p->ptrs[p->n++] = ptr;
  return ptr;
}

void *pool_alloc(struct pool *p, size_t n) {
  return pool_keep(p, calloc(1, n ? n : 1));
}

char *pool_printf(struct pool *p, const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return pool_keep(p, s);
}

char *pool_strdup(struct pool *p, const char *s) {
  return pool_keep(p, strdup(s ? s : ""));
}

void pool_free(struct pool *p) {
  for (size_t i = 0; i < p->n; i++) free(p->ptrs[i]);
  free(p->ptrs);
  memset(p, 0, sizeof(*p));
}
