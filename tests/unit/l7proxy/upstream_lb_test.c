/* upstream_lb: round robin, P2C least request, outlier ejection with time
 * passed in. */
#include "l7proxy/upstream_lb.h"

#include <CUnit/CUnit.h>
#include <string.h>

#define N 20
static struct lb_state st[N];
static struct lb_state *ptrs[N];

static void reset(void) {
  memset(st, 0, sizeof(st));
  for (int i = 0; i < N; i++) ptrs[i] = &st[i];
}

static const struct lb_state *const *cptrs(void) {
  return (const struct lb_state *const *)ptrs;
}

static void round_robin_visits_every_endpoint_in_turn(void) {
  reset();
  uint32_t cur = 0;
  for (int i = 0; i < 9; i++)
    CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 0), i % 3);
}

static void round_robin_skips_ejected_and_avoided(void) {
  reset();
  uint32_t cur = 0;
  st[1].ejected_until = 1000;
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 10), 0);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 10), 2);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 1u << 0, &cur, 0, 10), 2);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, (1u << 0) | (1u << 2), &cur, 0, 10), -1);
}

static void ejection_ends_when_its_time_passes(void) {
  reset();
  uint32_t cur = 0;
  st[0].ejected_until = 1000;
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 1, 0, &cur, 0, 999), -1);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 1, 0, &cur, 0, 1000), 0);
}

static void no_endpoints_picks_nothing(void) {
  reset();
  uint32_t cur = 0;
  CU_ASSERT_EQUAL(lb_pick(LB_LEAST_REQUEST, cptrs(), 0, 0, &cur, 7, 0), -1);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 0, 0, &cur, 7, 0), -1);
}

static void least_request_prefers_fewer_outstanding_of_two(void) {
  reset();
  uint32_t cur = 0;
  st[0].outstanding = 5;
  st[1].outstanding = 1;
  for (uint32_t rnd = 0; rnd < 64; rnd++)
    CU_ASSERT_EQUAL(lb_pick(LB_LEAST_REQUEST, cptrs(), 2, 0, &cur, rnd, 0), 1);
}

static void least_request_never_picks_the_busiest_of_three_when_others_idle(void) {
  reset();
  uint32_t cur = 0;
  st[2].outstanding = 100;
  for (uint32_t rnd = 0; rnd < 1000; rnd += 7) {
    int i = lb_pick(LB_LEAST_REQUEST, cptrs(), 3, 0, &cur, rnd * 2654435761u, 0);
    CU_ASSERT_NOT_EQUAL(i, 2);
  }
}

static void least_request_falls_back_when_both_choices_are_ejected(void) {
  reset();
  uint32_t cur = 0;
  st[0].ejected_until = st[1].ejected_until = 100;
  for (uint32_t rnd = 0; rnd < 50; rnd++)
    CU_ASSERT_EQUAL(lb_pick(LB_LEAST_REQUEST, cptrs(), 3, 0, &cur, rnd * 40503u, 0), 2);
}

static void five_consecutive_failures_eject_for_30s(void) {
  reset();
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(lb_report(ptrs, N, 3, 1, 1000), 0);
  CU_ASSERT_EQUAL(lb_report(ptrs, N, 3, 1, 1000), 1);
  CU_ASSERT_TRUE(lb_is_ejected(&st[3], 1000));
  CU_ASSERT_EQUAL(st[3].ejected_until, 1000 + 30000);
}

static void a_success_resets_the_failure_streak(void) {
  reset();
  for (int i = 0; i < 4; i++) lb_report(ptrs, N, 0, 1, 0);
  lb_report(ptrs, N, 0, 0, 0);
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(lb_report(ptrs, N, 0, 1, 0), 0);
  CU_ASSERT_FALSE(lb_is_ejected(&st[0], 0));
}

static void repeated_ejections_last_longer(void) {
  reset();
  for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, 0);
  CU_ASSERT_EQUAL(st[0].ejected_until, 30000);
  for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, 40000);
  CU_ASSERT_EQUAL(st[0].ejected_until, 40000 + 60000);
  CU_ASSERT_EQUAL(st[0].ejections, 2);
}

static void at_most_ten_percent_are_ejected(void) {
  reset(); /* 20 endpoints: at most 2 */
  for (int e = 0; e < 3; e++)
    for (int i = 0; i < 5; i++) lb_report(ptrs, N, (size_t)e, 1, 0);
  CU_ASSERT_TRUE(lb_is_ejected(&st[0], 0));
  CU_ASSERT_TRUE(lb_is_ejected(&st[1], 0));
  CU_ASSERT_FALSE(lb_is_ejected(&st[2], 0));
}

static void at_least_one_endpoint_may_be_ejected(void) {
  reset(); /* 2 endpoints: 10 % rounds to 0, but one may go */
  for (int i = 0; i < 5; i++) lb_report(ptrs, 2, 0, 1, 0);
  CU_ASSERT_TRUE(lb_is_ejected(&st[0], 0));
  for (int i = 0; i < 5; i++) lb_report(ptrs, 2, 1, 1, 0);
  CU_ASSERT_FALSE(lb_is_ejected(&st[1], 0));
}

static void failures_while_ejected_do_not_extend_it(void) {
  reset();
  for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, 0);
  for (int i = 0; i < 10; i++) CU_ASSERT_EQUAL(lb_report(ptrs, N, 0, 1, 10), 0);
  CU_ASSERT_EQUAL(st[0].ejected_until, 30000);
}

/* issue 20: an endpoint the health checker took out is never picked, by
 * either policy, and comes back when the verdict does. */
static void health_checked_down_endpoints_are_skipped(void) {
  reset();
  atomic_int down1, down0;
  atomic_init(&down1, 1);
  atomic_init(&down0, 0);
  st[0].hc_down = &down0;
  st[1].hc_down = &down1;
  uint32_t cur = 0;
  for (int i = 0; i < 6; i++)
    CU_ASSERT_NOT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 0), 1);
  for (uint32_t rnd = 0; rnd < 200; rnd++)
    CU_ASSERT_NOT_EQUAL(lb_pick(LB_LEAST_REQUEST, cptrs(), 3, 0, &cur, rnd * 2654435761u, 0), 1);
  atomic_store(&down0, 1);
  st[2].hc_down = &down1; /* every endpoint down: nothing to pick (503) */
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 0), -1);
  CU_ASSERT_EQUAL(lb_pick(LB_LEAST_REQUEST, cptrs(), 3, 0, &cur, 7, 0), -1);
  atomic_store(&down1, 0);
  CU_ASSERT_EQUAL(lb_pick(LB_ROUND_ROBIN, cptrs(), 3, 0, &cur, 0, 0) != 0, 1);
}

/* Issue 15: ejection counts decay, so one bad minute does not follow an
 * endpoint forever; and an ejection never lasts more than 300 s. */
static void ejection_counts_decay_while_the_endpoint_behaves(void) {
  reset();
  uint64_t t = 0;
  for (int k = 1; k <= 3; k++) { /* three ejections back to back */
    for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, t);
    CU_ASSERT_EQUAL(st[0].ejections, (uint32_t)k);
    t = st[0].ejected_until;
  }
  CU_ASSERT_EQUAL(st[0].ejected_until, 90000 + 90000); /* the third lasts 90 s */
  /* 65 s of good behaviour after it ends: two of the three forgiven */
  t += 65000;
  lb_report(ptrs, N, 0, 0, t);
  CU_ASSERT_EQUAL(st[0].ejections, 1);
  for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, t);
  CU_ASSERT_EQUAL(st[0].ejected_until, t + 60000);
  /* long after: back to the base duration */
  t = st[0].ejected_until + 3600 * 1000;
  for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, t);
  CU_ASSERT_EQUAL(st[0].ejections, 1);
  CU_ASSERT_EQUAL(st[0].ejected_until, t + 30000);
}

static void an_ejection_lasts_at_most_300s(void) {
  reset();
  uint64_t t = 0;
  for (int k = 0; k < 15; k++) {
    for (int i = 0; i < 5; i++) lb_report(ptrs, N, 0, 1, t);
    CU_ASSERT(st[0].ejected_until - t <= LB_EJECT_MAX_MS);
    t = st[0].ejected_until;
  }
  CU_ASSERT_EQUAL(st[0].ejections, 15);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("upstream_lb", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(round_robin_visits_every_endpoint_in_turn);
  T(round_robin_skips_ejected_and_avoided);
  T(ejection_ends_when_its_time_passes);
  T(no_endpoints_picks_nothing);
  T(least_request_prefers_fewer_outstanding_of_two);
  T(least_request_never_picks_the_busiest_of_three_when_others_idle);
  T(least_request_falls_back_when_both_choices_are_ejected);
  T(five_consecutive_failures_eject_for_30s);
  T(a_success_resets_the_failure_streak);
  T(repeated_ejections_last_longer);
  T(at_most_ten_percent_are_ejected);
  T(at_least_one_endpoint_may_be_ejected);
  T(failures_while_ejected_do_not_extend_it);
  T(ejection_counts_decay_while_the_endpoint_behaves);
  T(an_ejection_lasts_at_most_300s);
#undef T
  CU_add_test(s, "health_checked_down_endpoints_are_skipped",
              health_checked_down_endpoints_are_skipped);
}
