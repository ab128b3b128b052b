/* registry: nodes by id, the newest session wins, and the never-queue send rule. */
#include "common/registry.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

struct owner_node {
  struct registry_node reg;
  int value;
};

static int freed;

static void owner_free(struct registry_node *n) {
  freed += ((struct owner_node *)n)->value;
}

static void nodes_are_found_by_id_and_never_move(void) {
  struct registry r;
  registry_init(&r, sizeof(struct owner_node), 0);
  struct owner_node *a = (struct owner_node *)registry_add(&r, "l7-a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_STRING_EQUAL(a->reg.id, "l7-a");
  CU_ASSERT_EQUAL(a->value, 0); /* zeroed */
  a->value = 1;
  for (int i = 0; i < 100; i++) { /* grows the index several times */
    char id[16];
    snprintf(id, sizeof(id), "n%d", i);
    ((struct owner_node *)registry_add(&r, id))->value = 1;
  }
  CU_ASSERT_PTR_EQUAL(registry_add(&r, "l7-a"), &a->reg);
  CU_ASSERT_PTR_EQUAL(registry_find(&r, "l7-a"), &a->reg);
  CU_ASSERT_PTR_NULL(registry_find(&r, "l7-b"));
  CU_ASSERT_EQUAL(registry_count(&r), 101);
  CU_ASSERT_PTR_EQUAL(registry_at(&r, 0), &a->reg);
  CU_ASSERT_PTR_NULL(registry_at(&r, 101));
  freed = 0;
  registry_free(&r, owner_free);
  CU_ASSERT_EQUAL(freed, 101);
  CU_ASSERT_EQUAL(registry_count(&r), 0);
}

static void a_newer_session_replaces_the_older_one(void) {
  struct registry r;
  registry_init(&r, sizeof(struct registry_node), 0);
  struct registry_node *n = registry_add(&r, "l4-a");
  int s1, s2;
  CU_ASSERT_PTR_NULL(registry_attach(n, &s1));
  CU_ASSERT_PTR_NULL(registry_attach(n, &s1)); /* the same session again: nothing to end */
  CU_ASSERT_EQUAL(registry_connected(&r), 1);
  CU_ASSERT_PTR_EQUAL(registry_attach(n, &s2), &s1); /* the caller ends s1 */
  /* s1's end arrives later: it no longer speaks for the node */
  CU_ASSERT_EQUAL(registry_detach(n, &s1), 0);
  CU_ASSERT_PTR_EQUAL(n->session, &s2);
  CU_ASSERT_EQUAL(registry_connected(&r), 1);
  CU_ASSERT_EQUAL(registry_detach(n, &s2), 1);
  CU_ASSERT_PTR_NULL(n->session);
  CU_ASSERT_EQUAL(registry_connected(&r), 0);
  CU_ASSERT_EQUAL(registry_detach(n, &s2), 0); /* twice is once */
  CU_ASSERT_EQUAL(registry_detach(n, NULL), 0);
  CU_ASSERT_EQUAL(registry_count(&r), 1); /* a disconnected node stays listed */
  registry_free(&r, NULL);
}

static void a_full_registry_refuses_new_ids_only(void) {
  struct registry r;
  registry_init(&r, 0, 2); /* node_size below the header is raised to it */
  CU_ASSERT_PTR_NOT_NULL(registry_add(&r, "a"));
  CU_ASSERT_PTR_NOT_NULL(registry_add(&r, "b"));
  CU_ASSERT_PTR_NULL(registry_add(&r, "c"));
  CU_ASSERT_PTR_NOT_NULL(registry_add(&r, "a"));
  CU_ASSERT_EQUAL(registry_count(&r), 2);
  registry_free(&r, NULL);
}

/* Never queue, newest wins: one send in flight; the completion asks again and sends what is
 * newest then — a stalled peer that missed versions 2..4 gets 5, once. */
static void sends_only_the_newest_and_never_queues(void) {
  struct registry r;
  registry_init(&r, sizeof(struct registry_node), 0);
  struct registry_node *n = registry_add(&r, "l7-a");
  int s;
  CU_ASSERT_FALSE(registry_send_due(n, 0, 1, 0)); /* not connected */
  registry_attach(n, &s);
  uint64_t sent = 0;
  int pending = 0, sends = 0;
  for (uint64_t newest = 1; newest <= 5; newest++) {
    if (registry_send_due(n, sent, newest, pending)) {
      sent = newest, pending = 1, sends++;
    }
  }
  CU_ASSERT_EQUAL(sends, 1);
  CU_ASSERT_EQUAL(sent, 1);
  pending = 0; /* the peer answered: the owner asks again */
  CU_ASSERT_TRUE(registry_send_due(n, sent, 5, pending));
  sent = 5;
  CU_ASSERT_FALSE(registry_send_due(n, sent, 5, pending)); /* already has the newest */
  registry_free(&r, NULL);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("registry", NULL, NULL);
  CU_add_test(s, "nodes_are_found_by_id_and_never_move", nodes_are_found_by_id_and_never_move);
  CU_add_test(s, "a_newer_session_replaces_the_older_one", a_newer_session_replaces_the_older_one);
  CU_add_test(s, "a_full_registry_refuses_new_ids_only", a_full_registry_refuses_new_ids_only);
  CU_add_test(s, "sends_only_the_newest_and_never_queues", sends_only_the_newest_and_never_queues);
}
