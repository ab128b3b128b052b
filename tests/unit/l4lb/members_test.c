/* members: replica sets, health results and the panic-threshold hold-back,
 * without sockets. Checkers are recorded hooks; health results are fed by
 * hand with l4_members_check_result; the table is read back from the
 * published snapshot. */
#include "l4lb/members.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "common/metrics.h"

#define M 251 /* a small prime table keeps the tests fast */

struct world {
  struct metrics_registry *metrics;
  struct l4_members *m;
  int started, stopped;
  size_t last_eligible;
};

static void hook_start(void *ud, struct l4_backend *b) {
  ((struct world *)ud)->started++;
}
static void hook_stop(void *ud, struct l4_backend *b) {
  ((struct world *)ud)->stopped++;
}
static void hook_published(void *ud, size_t eligible) {
  ((struct world *)ud)->last_eligible = eligible;
}

static void world_init(struct world *w, uint32_t threshold) {
  memset(w, 0, sizeof(*w));
  w->metrics = metrics_registry_new();
  struct l4_members_config c = {.table_size = M,
                                .rise = 2,
                                .fall = 3,
                                .panic_threshold = threshold,
                                .metrics = w->metrics,
                                .checker_start = hook_start,
                                .checker_stop = hook_stop,
                                .on_published = hook_published,
                                .ud = w};
  CU_ASSERT_EQUAL_FATAL(l4_members_new(&c, &w->m), 0);
}

static void world_free(struct world *w) {
  l4_members_free(w->m);
  l4_snapshot_clear();
  metrics_registry_free(w->metrics);
}

/* A set of replicas named by single letters ("abc"), each on its own
 * port; a capital letter is a draining replica. */
static void deliver(struct world *w, const char *names, int guarded) {
  struct l4_member set[16];
  size_t n = 0;
  for (const char *p = names; *p && n < 16; p++, n++) {
    char c = (char)(*p | 0x20);
    memset(&set[n], 0, sizeof(set[n]));
    snprintf(set[n].name, sizeof(set[n].name), "%c", c);
    snprintf(set[n].address, sizeof(set[n].address), "127.0.0.1:%d", 8000 + c);
    set[n].weight = 1;
    set[n].draining = *p != c;
  }
  l4_members_apply(w->m, set, n, guarded, "test");
}

static struct l4_backend *backend(struct world *w, const char *name) {
  for (size_t i = 0; i < l4_members_count(w->m); i++)
    if (strcmp(l4_members_at(w->m, i)->name, name) == 0) return l4_members_at(w->m, i);
  return NULL;
}

/* Passing (ok = 1) or failing checks for every named replica. */
static void checks(struct world *w, const char *names, int ok, int times) {
  for (int t = 0; t < times; t++)
    for (const char *p = names; *p; p++) {
      char name[2] = {*p, 0};
      struct l4_backend *b = backend(w, name);
      CU_ASSERT_PTR_NOT_NULL_FATAL(b);
      l4_members_check_result(w->m, b, ok, ok ? "ok" : "test failure");
    }
}

/* The names in the published table, sorted ("abc"). */
static const char *table(char *buf) {
  struct l4_snapshot *s = l4_snapshot_acquire();
  size_t n = 0;
  for (size_t i = 0; s && i < s->n; i++) buf[n++] = s->backends[i]->name[0];
  buf[n] = 0;
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && buf[j - 1] > buf[j]; j--) {
      char t = buf[j];
      buf[j] = buf[j - 1];
      buf[j - 1] = t;
    }
  l4_snapshot_unref(s);
  return buf;
}

static uint64_t held_back_total(struct world *w) {
  return metrics_counter_value(
      metrics_counter(w->metrics, "edge_l4_membership_held_back_total", "", ""));
}

/* The rule: Membership delivers an empty set while every backend
 * passes its checks -> the table is held. */
static void empty_set_while_backends_pass_checks_holds_the_table(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 2);
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  deliver(&w, "", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 3);
  CU_ASSERT_EQUAL(l4_members_count(w.m), 3);
  CU_ASSERT_EQUAL(w.last_eligible, 3);
  CU_ASSERT_EQUAL(held_back_total(&w), 3);
  CU_ASSERT_EQUAL(w.stopped, 0); /* still checked */
  /* The same empty set again holds nothing new. */
  deliver(&w, "", 1);
  CU_ASSERT_EQUAL(held_back_total(&w), 3);
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  world_free(&w);
}

static void held_backends_leave_once_their_own_checks_fail(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  deliver(&w, "", 1);
  checks(&w, "a", 0, 3); /* fall = 3: a is down, so dropping it is no loss */
  CU_ASSERT_STRING_EQUAL(table(t), "bc");
  CU_ASSERT_PTR_NULL(backend(&w, "a"));
  CU_ASSERT_EQUAL(w.stopped, 1);
  CU_ASSERT_EQUAL(l4_members_held(w.m), 2); /* b and c are still all that serves */
  checks(&w, "b", 0, 3);
  checks(&w, "c", 0, 3);
  CU_ASSERT_STRING_EQUAL(table(t), "");
  CU_ASSERT_EQUAL(l4_members_count(w.m), 0);
  CU_ASSERT_EQUAL(w.last_eligible, 0);
  world_free(&w);
}

static void dropping_one_of_three_healthy_applies_at_once(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  deliver(&w, "ab", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "ab");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 0);
  CU_ASSERT_EQUAL(held_back_total(&w), 0);
  world_free(&w);
}

static void dropping_two_of_three_is_held_until_checks_make_it_acceptable(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  deliver(&w, "a", 1); /* 1 of 3 would stay: below 50 % */
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 2);
  CU_ASSERT_EQUAL(held_back_total(&w), 2);
  /* b goes down by its checks: 1 of the 2 healthy left (a, c) stays, 50 %. */
  checks(&w, "b", 0, 3);
  CU_ASSERT_STRING_EQUAL(table(t), "a");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 0);
  CU_ASSERT_EQUAL(l4_members_count(w.m), 1);
  world_free(&w);
}

static void threshold_zero_holds_only_a_set_that_drops_every_healthy_backend(void) {
  struct world w;
  char t[32];
  world_init(&w, 0);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  deliver(&w, "a", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "a");
  deliver(&w, "", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "a");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 1);
  world_free(&w);
}

static void threshold_hundred_never_drops_a_healthy_backend_on_syncds_word(void) {
  struct world w;
  char t[32];
  world_init(&w, 100);
  deliver(&w, "abcd", 1);
  checks(&w, "abcd", 1, 1);
  deliver(&w, "abc", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "abcd");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 1);
  world_free(&w);
}

static void down_and_draining_backends_leave_at_once(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  checks(&w, "c", 0, 3);
  deliver(&w, "aBc", 1); /* b drains */
  CU_ASSERT_STRING_EQUAL(table(t), "a");
  deliver(&w, "", 1);
  /* a was the only healthy backend: held; b (draining) and c (down) go. */
  CU_ASSERT_STRING_EQUAL(table(t), "a");
  CU_ASSERT_EQUAL(l4_members_count(w.m), 1);
  CU_ASSERT_EQUAL(l4_members_held(w.m), 1);
  world_free(&w);
}

static void a_held_backend_listed_again_is_a_member_again(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 1);
  checks(&w, "abc", 1, 1);
  deliver(&w, "", 1);
  CU_ASSERT_EQUAL(l4_members_held(w.m), 3);
  deliver(&w, "abc", 1);
  CU_ASSERT_EQUAL(l4_members_held(w.m), 0);
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  CU_ASSERT_EQUAL(w.started, 3); /* the same backends, health kept */
  CU_ASSERT_EQUAL(w.stopped, 0);
  deliver(&w, "ab", 1); /* and ordinary drops apply again */
  CU_ASSERT_STRING_EQUAL(table(t), "ab");
  world_free(&w);
}

static void replicas_never_checked_are_not_counted_as_healthy(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "ab", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "ab"); /* optimistic: up until checks say */
  deliver(&w, "", 1);                     /* nothing vouched for them */
  CU_ASSERT_STRING_EQUAL(table(t), "");
  CU_ASSERT_EQUAL(held_back_total(&w), 0);
  world_free(&w);
}

static void renamed_replicas_replace_the_old_ones_once_checks_vouch_for_them(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "ab", 1);
  checks(&w, "ab", 1, 1);
  deliver(&w, "cd", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "abcd"); /* a, b held; c, d unproven */
  CU_ASSERT_EQUAL(l4_members_held(w.m), 2);
  checks(&w, "c", 1, 1); /* 1 of 3 healthy would stay: still held */
  CU_ASSERT_EQUAL(l4_members_held(w.m), 2);
  checks(&w, "d", 1, 1); /* 2 of 4: the drop is acceptable now */
  CU_ASSERT_STRING_EQUAL(table(t), "cd");
  CU_ASSERT_EQUAL(l4_members_held(w.m), 0);
  world_free(&w);
}

static void static_and_cached_sets_apply_as_given(void) {
  struct world w;
  char t[32];
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "abc", 0);
  CU_ASSERT_STRING_EQUAL(table(t), "abc");
  deliver(&w, "", 0);
  CU_ASSERT_STRING_EQUAL(table(t), "");
  /* A cached set is vouched for: syncd's empty set after it is held. */
  deliver(&w, "ab", 0);
  deliver(&w, "", 1);
  CU_ASSERT_STRING_EQUAL(table(t), "ab");
  world_free(&w);
}

static void changed_address_is_a_new_backend_with_fresh_health(void) {
  struct world w;
  world_init(&w, L4_PANIC_THRESHOLD_DEFAULT);
  deliver(&w, "ab", 1);
  checks(&w, "a", 0, 3);
  CU_ASSERT_FALSE(backend(&w, "a")->health.up);
  struct l4_member set[2] = {0};
  snprintf(set[0].name, sizeof(set[0].name), "a");
  snprintf(set[0].address, sizeof(set[0].address), "127.0.0.1:9999");
  snprintf(set[1].name, sizeof(set[1].name), "b");
  snprintf(set[1].address, sizeof(set[1].address), "127.0.0.1:%d", 8000 + 'b');
  l4_members_apply(w.m, set, 2, 1, "test");
  CU_ASSERT_TRUE(backend(&w, "a")->health.up);
  CU_ASSERT_STRING_EQUAL(backend(&w, "a")->address, "127.0.0.1:9999");
  CU_ASSERT_EQUAL(w.started, 3);
  CU_ASSERT_EQUAL(w.stopped, 1);
  world_free(&w);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("l4lb_members", NULL, NULL);
  CU_add_test(s, "empty_set_while_backends_pass_checks_holds_the_table",
              empty_set_while_backends_pass_checks_holds_the_table);
  CU_add_test(s, "held_backends_leave_once_their_own_checks_fail",
              held_backends_leave_once_their_own_checks_fail);
  CU_add_test(s, "dropping_one_of_three_healthy_applies_at_once",
              dropping_one_of_three_healthy_applies_at_once);
  CU_add_test(s, "dropping_two_of_three_is_held_until_checks_make_it_acceptable",
              dropping_two_of_three_is_held_until_checks_make_it_acceptable);
  CU_add_test(s, "threshold_zero_holds_only_a_set_that_drops_every_healthy_backend",
              threshold_zero_holds_only_a_set_that_drops_every_healthy_backend);
  CU_add_test(s, "threshold_hundred_never_drops_a_healthy_backend_on_syncds_word",
              threshold_hundred_never_drops_a_healthy_backend_on_syncds_word);
  CU_add_test(s, "down_and_draining_backends_leave_at_once",
              down_and_draining_backends_leave_at_once);
  CU_add_test(s, "a_held_backend_listed_again_is_a_member_again",
              a_held_backend_listed_again_is_a_member_again);
  CU_add_test(s, "replicas_never_checked_are_not_counted_as_healthy",
              replicas_never_checked_are_not_counted_as_healthy);
  CU_add_test(s, "renamed_replicas_replace_the_old_ones_once_checks_vouch_for_them",
              renamed_replicas_replace_the_old_ones_once_checks_vouch_for_them);
  CU_add_test(s, "static_and_cached_sets_apply_as_given", static_and_cached_sets_apply_as_given);
  CU_add_test(s, "changed_address_is_a_new_backend_with_fresh_health",
              changed_address_is_a_new_backend_with_fresh_health);
}
