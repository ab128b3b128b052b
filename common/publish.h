/*
 * publish — a slot holding the newest published immutable object (a
 * routing snapshot, a TLS certificate store, a Maglev table), shared by a
 * writer thread and many worker threads.
 *
 * The writer builds an object, then publishes it: the slot takes over the
 * writer's reference, the generation increases, and the object it replaces
 * loses the slot's reference (outside the lock, so a free never runs under
 * it). A worker keeps its own reference for as long as it needs the object
 * and re-acquires only when publish_slot_generation (one atomic load, no
 * lock) differs from the generation it last saw; so a worker never waits
 * on a writer that is building, and the lock is held only for a pointer
 * swap and a reference increment.
 *
 * Invariants: the generation read after an acquire is never older than
 * the object acquired (it is bumped after the swap, under the lock);
 * publish_slot_acquire(s, &gen) returns an object and the generation it
 * was published with, as a pair. Objects are immutable once published:
 * stamp (may be NULL) is the last write, made before any reader can see
 * the object.
 *
 * Callers: l7proxy/snapshot.c (the snapshot), l7proxy/tls.c (the TLS
 * store), l4lb/backend.c (the Maglev snapshot). Ownership: the slot owns
 * one reference to its current object; every acquire returns a new one
 * the caller drops with the object's own unref.
 */
#ifndef EDGE_COMMON_PUBLISH_H
#define EDGE_COMMON_PUBLISH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct publish_slot {
  pthread_mutex_t mu;
  void *current;                   /* NULL before the first publish or after a clear */
  atomic_uint_fast64_t generation; /* bumped by every publish, clear included */
  uint64_t current_generation;     /* the generation current was published with */
  void (*ref)(void *obj);          /* adds one reference */
  void (*unref)(void *obj);        /* drops one (may free) */
  void (*stamp)(void *obj, uint64_t generation); /* optional, before obj is visible */
};

#define PUBLISH_SLOT_INIT(ref_fn, unref_fn, stamp_fn) \
  { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, (ref_fn), (unref_fn), (stamp_fn) }

/* Makes obj the current object, taking over the caller's reference (NULL
 * clears the slot). Returns the generation it was published with. */
uint64_t publish_slot_publish(struct publish_slot *s, void *obj);

/* A new reference to the current object (NULL when there is none) and,
 * when generation is not NULL, the generation it was published with. */
void *publish_slot_acquire(struct publish_slot *s, uint64_t *generation);

/* The generation of the newest publish (0 before the first). No lock. */
uint64_t publish_slot_generation(struct publish_slot *s);

#endif
