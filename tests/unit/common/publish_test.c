/* publish: the slot's reference counting, generations and stamps, and a writer racing four
 * readers (each reader must always hold a live object whose stamp matches its generation). */
#include "common/publish.h"

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct obj {
  atomic_int refs;
  atomic_int dead; /* set when the last reference goes; objects stay allocated for the checks */
  uint64_t stamped;
};

static atomic_int freed;

static void obj_ref(void *p) {
  atomic_fetch_add(&((struct obj *)p)->refs, 1);
}

static void obj_unref(void *p) {
  struct obj *o = p;
  if (atomic_fetch_sub(&o->refs, 1) == 1) {
    atomic_store(&o->dead, 1);
    atomic_fetch_add(&freed, 1);
  }
}

static void obj_stamp(void *p, uint64_t gen) {
  ((struct obj *)p)->stamped = gen;
}

static struct obj *obj_new(struct obj *o) {
  memset(o, 0, sizeof(*o));
  atomic_init(&o->refs, 1);
  return o;
}

static void publish_hands_the_reference_to_the_slot(void) {
  static struct publish_slot slot = PUBLISH_SLOT_INIT(obj_ref, obj_unref, obj_stamp);
  struct obj a, b;
  uint64_t gen = 99;
  CU_ASSERT_PTR_NULL(publish_slot_acquire(&slot, &gen));
  CU_ASSERT_EQUAL(gen, 0);
  CU_ASSERT_EQUAL(publish_slot_generation(&slot), 0);

  CU_ASSERT_EQUAL(publish_slot_publish(&slot, obj_new(&a)), 1);
  CU_ASSERT_EQUAL(a.stamped, 1);
  CU_ASSERT_EQUAL(atomic_load(&a.refs), 1); /* the slot's */
  struct obj *got = publish_slot_acquire(&slot, &gen);
  CU_ASSERT_PTR_EQUAL(got, &a);
  CU_ASSERT_EQUAL(gen, 1);
  CU_ASSERT_EQUAL(atomic_load(&a.refs), 2);

  CU_ASSERT_EQUAL(publish_slot_publish(&slot, obj_new(&b)), 2);
  CU_ASSERT_EQUAL(atomic_load(&a.refs), 1); /* the slot let go; ours keeps it alive */
  CU_ASSERT_FALSE(atomic_load(&a.dead));
  obj_unref(got);
  CU_ASSERT_TRUE(atomic_load(&a.dead));

  CU_ASSERT_EQUAL(publish_slot_publish(&slot, NULL), 3); /* a clear is a publish too */
  CU_ASSERT_TRUE(atomic_load(&b.dead));
  CU_ASSERT_PTR_NULL(publish_slot_acquire(&slot, &gen));
  CU_ASSERT_EQUAL(gen, 3);
  CU_ASSERT_EQUAL(publish_slot_generation(&slot), 3);
}

static void stamp_is_optional(void) {
  static struct publish_slot slot = PUBLISH_SLOT_INIT(obj_ref, obj_unref, NULL);
  struct obj a;
  publish_slot_publish(&slot, obj_new(&a));
  CU_ASSERT_EQUAL(a.stamped, 0);
  publish_slot_publish(&slot, NULL);
  CU_ASSERT_TRUE(atomic_load(&a.dead));
}

#define RACE_OBJECTS 20000
#define RACE_READERS 4

static struct publish_slot race_slot = PUBLISH_SLOT_INIT(obj_ref, obj_unref, obj_stamp);
static struct obj *race_objs;
static atomic_int race_done, race_errors;

/* The worker pattern: re-acquire only when the generation moved; every held object is live and
 * carries the generation it was published with; generations never go backwards. */
static void *race_reader(void *arg) {
  struct obj *mine = NULL;
  uint64_t seen = 0, last = 0;
  while (!atomic_load(&race_done)) {
    uint64_t g = publish_slot_generation(&race_slot);
    if (g != seen) {
      uint64_t got_gen;
      struct obj *o = publish_slot_acquire(&race_slot, &got_gen);
      if (o && (atomic_load(&o->dead) || o->stamped != got_gen)) atomic_fetch_add(&race_errors, 1);
      if (got_gen < g || got_gen < last) atomic_fetch_add(&race_errors, 1);
      if (mine) obj_unref(mine);
      mine = o;
      seen = g;
      last = got_gen;
    }
    if (mine && atomic_load(&mine->dead)) atomic_fetch_add(&race_errors, 1);
  }
  if (mine) obj_unref(mine);
  return NULL;
}

static void readers_never_see_a_freed_or_mislabelled_object(void) {
  race_objs = calloc(RACE_OBJECTS, sizeof(*race_objs));
  CU_ASSERT_PTR_NOT_NULL_FATAL(race_objs);
  atomic_store(&freed, 0);
  pthread_t t[RACE_READERS];
  for (int i = 0; i < RACE_READERS; i++) pthread_create(&t[i], NULL, race_reader, NULL);
  for (int i = 0; i < RACE_OBJECTS; i++) publish_slot_publish(&race_slot, obj_new(&race_objs[i]));
  atomic_store(&race_done, 1);
  for (int i = 0; i < RACE_READERS; i++) pthread_join(t[i], NULL);
  publish_slot_publish(&race_slot, NULL);
  CU_ASSERT_EQUAL(atomic_load(&race_errors), 0);
  CU_ASSERT_EQUAL(atomic_load(&freed), RACE_OBJECTS); /* each exactly once, none leaked */
  for (int i = 0; i < RACE_OBJECTS; i++) CU_ASSERT_EQUAL_FATAL(atomic_load(&race_objs[i].refs), 0);
  free(race_objs);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("publish", NULL, NULL);
  CU_add_test(s, "publish_hands_the_reference_to_the_slot",
              publish_hands_the_reference_to_the_slot);
  CU_add_test(s, "stamp_is_optional", stamp_is_optional);
  CU_add_test(s, "readers_never_see_a_freed_or_mislabelled_object",
              readers_never_see_a_freed_or_mislabelled_object);
}
