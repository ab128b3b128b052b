/*
 * union: an l4lb's replica set from several syncd replicas, with the
 * expected sets written by hand: the union of what each replica knows, the
 * record of the replica holding a proxy's stream winning, a proxy that
 * drained away through one replica not kept alive by another's older
 * record, stale views expiring only while another replica answers, and a
 * replica failover that changes nothing the table depends on.
 */
#include "l4lb/union.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A "10.0.0.1:7000"
#define B "10.0.0.2:7000"
#define MIN 60000

static struct l4_member rec(const char *name, int connected, int64_t changed, int draining) {
  struct l4_member m;
  memset(&m, 0, sizeof(m));
  snprintf(m.name, sizeof(m.name), "%s", name);
  snprintf(m.address, sizeof(m.address), "127.0.1.%d:8080", name[strlen(name) - 1] - '0');
  m.weight = 1;
  m.connected = connected;
  m.changed_ms = changed;
  m.draining = draining;
  return m;
}

static struct l4_union *two_views(void) {
  struct l4_union *u;
  CU_ASSERT_EQUAL_FATAL(l4_union_new(10 * MIN, 2000, 0, &u), 0);
  CU_ASSERT_EQUAL(l4_union_add(u, B, 0), 0);
  CU_ASSERT_EQUAL(l4_union_add(u, A, 0), 0);
  return u;
}

/* "p1,p2(draining)" */
static const char *names(const struct l4_union *u, char *out, size_t len) {
  struct l4_member *m;
  size_t n;
  out[0] = '\0';
  CU_ASSERT_EQUAL_FATAL(l4_union_merged(u, &m, &n), 0);
  for (size_t i = 0; i < n; i++)
    snprintf(out + strlen(out), len - strlen(out), "%s%s%s", i ? "," : "", m[i].name,
             m[i].draining ? "(draining)" : "");
  free(m);
  return out;
}

static void the_set_is_the_union_of_what_each_replica_knows(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p2", 1, 100, 0), rec("p1", 1, 100, 0)}, b[] = {rec("p3", 1, 100, 0)};
  CU_ASSERT_EQUAL(l4_union_set(u, A, "syncd-0", a, 2, 1, 10), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p2");
  CU_ASSERT_EQUAL(l4_union_set(u, B, "syncd-1", b, 1, 1, 20), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p2,p3");
  CU_ASSERT_EQUAL(l4_union_set(u, B, "syncd-1", b, 1, 2, 30), 0); /* same again: no change */
  l4_union_free(u);
}

static void the_record_of_the_replica_holding_the_stream_wins(void) {
  struct l4_union *u = two_views();
  char buf[256];
  /* A still has p1's older record; p1 now streams from B and drains */
  struct l4_member a[] = {rec("p1", 0, 500, 0)}, b[] = {rec("p1", 1, 400, 1)};
  l4_union_set(u, A, "syncd-0", a, 1, 1, 10);
  l4_union_set(u, B, "syncd-1", b, 1, 1, 20);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1(draining)");
  /* neither holds it: the newest record */
  struct l4_member b2[] = {rec("p1", 0, 600, 1)};
  l4_union_set(u, B, "syncd-1", b2, 1, 2, 30);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1(draining)");
  struct l4_member a2[] = {rec("p1", 0, 700, 0)};
  l4_union_set(u, A, "syncd-0", a2, 1, 2, 40);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1");
  l4_union_free(u);
}

/* p1 drains through B and leaves; A's older record of it must not bring
 * it back, but p1 connecting to A again does. */
static void a_proxy_that_left_through_its_newest_record_is_gone(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p1", 0, 100, 0), rec("p2", 1, 100, 0)};
  struct l4_member b[] = {rec("p1", 1, 200, 1)};
  l4_union_set(u, A, "syncd-0", a, 2, 1, 10);
  l4_union_set(u, B, "syncd-1", b, 1, 1, 20);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1(draining),p2");
  CU_ASSERT_EQUAL(l4_union_set(u, B, "syncd-1", NULL, 0, 2, 30), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p2");
  CU_ASSERT_EQUAL(l4_union_tombstones(u), 1);
  struct l4_member a2[] = {rec("p1", 1, 300, 0), rec("p2", 1, 100, 0)};
  CU_ASSERT_EQUAL(l4_union_set(u, A, "syncd-0", a2, 2, 2, 40), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p2");
  l4_union_free(u);
}

/* Records without a change time (an older syncd): a proxy leaves when no
 * replica lists it. */
static void without_change_times_a_proxy_leaves_when_no_replica_lists_it(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p1", 0, 0, 0)}, b[] = {rec("p1", 0, 0, 0)};
  l4_union_set(u, A, "", a, 1, 1, 10);
  l4_union_set(u, B, "", b, 1, 1, 20);
  CU_ASSERT_EQUAL(l4_union_set(u, B, "", NULL, 0, 2, 30), 0);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1");
  CU_ASSERT_EQUAL(l4_union_set(u, A, "", NULL, 0, 2, 40), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "");
  l4_union_free(u);
}

/* The scenario of the e2e test: the replica most proxies use dies, they
 * reconnect to the other. Nothing the table depends on changes at any
 * step, so the Maglev table stays the same throughout. */
static void a_replica_failover_changes_nothing_the_table_depends_on(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p1", 1, 100, 0), rec("p2", 1, 100, 0)};
  struct l4_member b[] = {rec("p3", 1, 100, 0)};
  l4_union_set(u, A, "syncd-0", a, 2, 1, 10);
  l4_union_set(u, B, "syncd-1", b, 1, 1, 20);
  l4_union_stream(u, A, 0, 1000); /* A killed */
  struct l4_member b2[] = {rec("p1", 1, 1300, 0), rec("p3", 1, 100, 0)};
  CU_ASSERT_EQUAL(l4_union_set(u, B, "syncd-1", b2, 2, 2, 1300), 0);
  struct l4_member b3[] = {rec("p1", 1, 1300, 0), rec("p2", 1, 1400, 0), rec("p3", 1, 100, 0)};
  CU_ASSERT_EQUAL(l4_union_set(u, B, "syncd-1", b3, 3, 3, 1400), 0);
  CU_ASSERT_EQUAL(l4_union_expire(u, 5000), 0);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p2,p3");
  /* A comes back with its restored records (older, disconnected) */
  struct l4_member a2[] = {rec("p1", 0, 900, 0), rec("p2", 0, 900, 0)};
  CU_ASSERT_EQUAL(l4_union_set(u, A, "syncd-0", a2, 2, 7, 9000), 0);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p2,p3");
  l4_union_free(u);
}

static void a_stale_view_expires_only_while_another_replica_answers(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p1", 1, 100, 0)}, b[] = {rec("p3", 1, 100, 0)};
  l4_union_set(u, A, "syncd-0", a, 1, 1, 10);
  l4_union_set(u, B, "syncd-1", b, 1, 1, 20);
  l4_union_stream(u, A, 0, 1000);
  l4_union_stream(u, B, 0, 1000);
  CU_ASSERT_EQUAL(l4_union_expire(u, 1000 + 60 * MIN), 0); /* syncd away: keep all */
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1,p3");
  l4_union_set(u, B, "syncd-1", b, 1, 2, 2000 + 60 * MIN); /* B is back, A is not */
  CU_ASSERT_EQUAL(l4_union_expire(u, 2000 + 60 * MIN), 1);
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p3");
  CU_ASSERT_EQUAL(l4_union_views(u), 1);
  l4_union_free(u);
}

static void a_replica_back_under_another_address_replaces_its_old_view(void) {
  struct l4_union *u = two_views();
  char buf[256];
  struct l4_member a[] = {rec("p1", 1, 100, 0)};
  l4_union_set(u, A, "syncd-0", a, 1, 1, 10);
  l4_union_stream(u, A, 0, 100);
  CU_ASSERT_EQUAL(l4_union_add(u, "10.0.0.9:7000", 200), 0);
  struct l4_member a2[] = {rec("p1", 0, 150, 0)};
  l4_union_set(u, "10.0.0.9:7000", "syncd-0", a2, 1, 1, 300);
  CU_ASSERT_EQUAL(l4_union_views(u), 2); /* B and the new address; A's old view is gone */
  CU_ASSERT_STRING_EQUAL(l4_union_view_at(u, 1)->src, "10.0.0.9:7000");
  CU_ASSERT_STRING_EQUAL(names(u, buf, sizeof(buf)), "p1");
  l4_union_free(u);
}

static void not_ready_until_every_replica_answered_or_the_wait_is_over(void) {
  struct l4_union *u = two_views();
  struct l4_member a[] = {rec("p1", 1, 100, 0)};
  CU_ASSERT_FALSE(l4_union_ready(u, 10));
  l4_union_set(u, A, "syncd-0", a, 1, 1, 10);
  CU_ASSERT_FALSE(l4_union_ready(u, 10));
  CU_ASSERT_TRUE(l4_union_ready(u, 2000));
  l4_union_set(u, B, "syncd-1", NULL, 0, 1, 20);
  CU_ASSERT_TRUE(l4_union_ready(u, 20));
  l4_union_free(u);
}

/* Two l4lbs hearing the replicas in a different order hold the same set. */
static void the_merge_does_not_depend_on_the_order_sets_arrive_in(void) {
  struct l4_union *x = two_views(), *y = two_views();
  char bx[256], by[256];
  struct l4_member a[] = {rec("p1", 0, 300, 0), rec("p2", 1, 100, 0)};
  struct l4_member b[] = {rec("p1", 0, 300, 1), rec("p3", 1, 100, 0)};
  l4_union_set(x, A, "syncd-0", a, 2, 1, 10);
  l4_union_set(x, B, "syncd-1", b, 2, 1, 20);
  l4_union_set(y, B, "syncd-1", b, 2, 1, 10);
  l4_union_set(y, A, "syncd-0", a, 2, 1, 20);
  CU_ASSERT_STRING_EQUAL(names(x, bx, sizeof(bx)), names(y, by, sizeof(by)));
  CU_ASSERT_STRING_EQUAL(bx, "p1,p2,p3"); /* a tie goes to the first address: A */
  l4_union_free(x);
  l4_union_free(y);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("union", NULL, NULL);
  CU_add_test(s, "the_set_is_the_union_of_what_each_replica_knows",
              the_set_is_the_union_of_what_each_replica_knows);
  CU_add_test(s, "the_record_of_the_replica_holding_the_stream_wins",
              the_record_of_the_replica_holding_the_stream_wins);
  CU_add_test(s, "a_proxy_that_left_through_its_newest_record_is_gone",
              a_proxy_that_left_through_its_newest_record_is_gone);
  CU_add_test(s, "without_change_times_a_proxy_leaves_when_no_replica_lists_it",
              without_change_times_a_proxy_leaves_when_no_replica_lists_it);
  CU_add_test(s, "a_replica_failover_changes_nothing_the_table_depends_on",
              a_replica_failover_changes_nothing_the_table_depends_on);
  CU_add_test(s, "a_stale_view_expires_only_while_another_replica_answers",
              a_stale_view_expires_only_while_another_replica_answers);
  CU_add_test(s, "a_replica_back_under_another_address_replaces_its_old_view",
              a_replica_back_under_another_address_replaces_its_old_view);
  CU_add_test(s, "not_ready_until_every_replica_answered_or_the_wait_is_over",
              not_ready_until_every_replica_answered_or_the_wait_is_over);
  CU_add_test(s, "the_merge_does_not_depend_on_the_order_sets_arrive_in",
              the_merge_does_not_depend_on_the_order_sets_arrive_in);
}
