/*
 * breaker — interned per-cluster counters with CAS-bounded acquire (see
 * breaker.h).
 */
#include "l7proxy/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct breaker *g_list;

struct breaker *breaker_get(const char *cluster) {
  if (!cluster) return NULL;
  pthread_mutex_lock(&g_mu);
  struct breaker *b = g_list;
  while (b && strcmp(b->name, cluster) != 0) b = b->next;
  if (!b) {
    b = calloc(1, sizeof(*b));
    if (b) b->name = strdup(cluster);
    if (b && !b->name) {
      free(b);
      b = NULL;
    }
    if (b) {
      for (int i = 0; i < BREAKER_N_LIMITS; i++) {
        atomic_init(&b->count[i], 0);
        atomic_init(&b->overflows[i], 0);
      }
      b->next = g_list;
      g_list = b;
    }
  }
  pthread_mutex_unlock(&g_mu);
  return b;
}

int breaker_acquire(struct breaker *b, enum breaker_limit l, uint32_t max) {
  if (!b) return 1;
  unsigned cur = atomic_load_explicit(&b->count[l], memory_order_relaxed);
  for (;;) {
    if (max && cur >= max) {
      atomic_fetch_add_explicit(&b->overflows[l], 1, memory_order_relaxed);
      return 0;
    }
    if (atomic_compare_exchange_weak_explicit(&b->count[l], &cur, cur + 1, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  }
}

void breaker_release(struct breaker *b, enum breaker_limit l) {
  if (b) atomic_fetch_sub_explicit(&b->count[l], 1, memory_order_relaxed);
}

unsigned breaker_count(const struct breaker *b, enum breaker_limit l) {
  return b ? atomic_load_explicit(&b->count[l], memory_order_relaxed) : 0;
}

const char *breaker_limit_name(enum breaker_limit l) {
  switch (l) {
    case BREAKER_CONNECTIONS:
      return "max_connections";
    case BREAKER_PENDING:
      return "max_pending_requests";
    case BREAKER_RETRIES:
      return "max_retries";
    default:
      return "unknown";
  }
}
