/*
 * publish — the publish slot (see publish.h).
 */
#include "common/publish.h"

#include <stddef.h>

uint64_t publish_slot_publish(struct publish_slot *s, void *obj) {
  pthread_mutex_lock(&s->mu);
  uint64_t gen = atomic_load_explicit(&s->generation, memory_order_relaxed) + 1;
  if (obj && s->stamp) s->stamp(obj, gen);
  void *old = s->current;
  s->current = obj;
  s->current_generation = gen;
  /* After the swap: whoever sees the new generation finds the new object. */
  atomic_store_explicit(&s->generation, gen, memory_order_release);
  pthread_mutex_unlock(&s->mu);
  if (old) s->unref(old);
  return gen;
}

void *publish_slot_acquire(struct publish_slot *s, uint64_t *generation) {
  pthread_mutex_lock(&s->mu);
  void *obj = s->current;
  if (obj) s->ref(obj);
  if (generation) *generation = s->current_generation;
  pthread_mutex_unlock(&s->mu);
  return obj;
}

uint64_t publish_slot_generation(struct publish_slot *s) {
  return atomic_load_explicit(&s->generation, memory_order_acquire);
}
