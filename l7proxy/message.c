/*
 * message — method lookup, header search and the arena of message.h.
 */
#include "l7proxy/message.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 4096

struct msg_arena_block {
  struct msg_arena_block *next;
  size_t cap;
  char data[];
};

int msg_method_of(const char *m, size_t len) {
  static const struct {
    const char *s;
    int m;
  } t[] = {{"GET", MSG_GET},     {"HEAD", MSG_HEAD},     {"POST", MSG_POST},
           {"PUT", MSG_PUT},     {"DELETE", MSG_DELETE}, {"OPTIONS", MSG_OPTIONS},
           {"TRACE", MSG_TRACE}, {"PATCH", MSG_PATCH},   {"CONNECT", MSG_CONNECT}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    if (strlen(t[i].s) == len && memcmp(t[i].s, m, len) == 0) return t[i].m;
  return MSG_OTHER;
}

/* Standard blocks released by idle exchanges, per thread: a keep-alive
 * connection holds no arena between requests, and none is malloc'd per
 * request once warm. */
#define ARENA_SPARE 256
static __thread struct msg_arena_block *g_spare;
static __thread int g_n_spare;

static struct msg_arena_block *block_new(size_t cap) {
  if (cap == ARENA_BLOCK && g_spare) {
    struct msg_arena_block *b = g_spare;
    g_spare = b->next;
    g_n_spare--;
    return b;
  }
  struct msg_arena_block *b = malloc(sizeof(*b) + cap);
  if (b) b->cap = cap;
  return b;
}

void msg_arena_release(struct msg_arena *a) {
  struct msg_arena_block *b = a->head;
  while (b) {
    struct msg_arena_block *nx = b->next;
    if (b->cap == ARENA_BLOCK && g_n_spare < ARENA_SPARE) {
      b->next = g_spare;
      g_spare = b;
      g_n_spare++;
    } else {
      free(b);
    }
    b = nx;
  }
  a->head = NULL;
  a->used = 0;
}

void msg_arena_thread_cleanup(void) {
  while (g_spare) {
    struct msg_arena_block *b = g_spare;
    g_spare = b->next;
    free(b);
  }
  g_n_spare = 0;
}

void *msg_arena_alloc(struct msg_arena *a, size_t n) {
  n = (n + 7) & ~(size_t)7;
  struct msg_arena_block *b = a->head;
  if (!b || b->cap - a->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    struct msg_arena_block *nb = block_new(cap);
    if (!nb) return NULL;
    nb->next = b;
    a->head = b = nb;
    a->used = 0;
  }
  void *p = b->data + a->used;
  a->used += n;
  return p;
}

char *msg_arena_strdup(struct msg_arena *a, const char *s, size_t n) {
  char *p = msg_arena_alloc(a, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void msg_arena_reset(struct msg_arena *a) {
  struct msg_arena_block *b = a->head;
  if (!b) return;
  while (b->next) { /* keep the oldest (first) block only */
    struct msg_arena_block *nx = b->next;
    free(b);
    b = nx;
  }
  a->head = b;
  a->used = 0;
}

void msg_arena_free(struct msg_arena *a) {
  struct msg_arena_block *b = a->head;
  while (b) {
    struct msg_arena_block *nx = b->next;
    free(b);
    b = nx;
  }
  a->head = NULL;
  a->used = 0;
}

const struct msg_header *msg_find(const struct msg_head *h, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < h->n_headers; i++)
    if (h->headers[i].name_len == n && memcmp(h->headers[i].name, name, n) == 0)
      return &h->headers[i];
  return NULL;
}
