/*
 * pool — an arena of heap blocks freed together: the translators (Ingress
 * in translate*.c, Gateway API in gateway*.c) allocate every string and
 * struct of one translation from a pool and drop it with one pool_free.
 *
 * Contract: pool_keep takes ownership of ptr (NULL, or a failed growth,
 * sets p->oom and returns NULL, freeing ptr); callers check p->oom once at
 * the end instead of after every allocation. A zeroed struct pool is empty
 * and valid. Not thread-safe: one pool per translation, one thread.
 */
#ifndef EDGE_SYNCD_POOL_H
#define EDGE_SYNCD_POOL_H

#include <stddef.h>

struct pool {
  void **ptrs;
  size_t n, cap;
  int oom;
};

void *pool_keep(struct pool *p, void *ptr);
void *pool_alloc(struct pool *p, size_t n);
char *pool_printf(struct pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *pool_strdup(struct pool *p, const char *s);
/* Frees every block and leaves p empty (zeroed). */
void pool_free(struct pool *p);

#endif
