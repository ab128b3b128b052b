/* weighted: the per-request choice is proportional, stable per key, and
 * never picks a zero weight. */
#include "common/weighted.h"

#include <CUnit/CUnit.h>
#include <stdio.h>

/* 10,000 request ids like the proxy makes them ("%016llx" counters here). */
static void ninety_ten_lands_within_one_and_a_half_points(void) {
  uint32_t w[] = {90, 10};
  unsigned hits[2] = {0, 0};
  for (unsigned i = 0; i < 10000; i++) {
    char id[32];
    int n = snprintf(id, sizeof(id), "%016x", i * 2654435761u);
    long k = weighted_pick(w, 2, weighted_key(id, (size_t)n));
    CU_ASSERT_FATAL(k == 0 || k == 1);
    hits[k]++;
  }
  double pct = hits[1] / 100.0;
  printf("\n90/10 over 10000 keys: %u / %u (%.2f%% to the 10%% side)\n", hits[0], hits[1], pct);
  CU_ASSERT(pct >= 8.5 && pct <= 11.5);
}

static void three_way_split_is_proportional(void) {
  uint32_t w[] = {1, 2, 7};
  unsigned hits[3] = {0};
  for (uint64_t i = 0; i < 100000; i++) hits[weighted_pick(w, 3, weighted_key(&i, sizeof(i)))]++;
  CU_ASSERT(hits[0] > 9000 && hits[0] < 11000);
  CU_ASSERT(hits[1] > 19000 && hits[1] < 21000);
  CU_ASSERT(hits[2] > 69000 && hits[2] < 71000);
}

static void zero_weight_is_never_chosen(void) {
  uint32_t w[] = {0, 5, 0};
  for (uint64_t i = 0; i < 10000; i++) CU_ASSERT_EQUAL(weighted_pick(w, 3, i), 1);
}

static void all_zero_or_empty_means_no_choice(void) {
  uint32_t w[] = {0, 0};
  CU_ASSERT_EQUAL(weighted_pick(w, 2, 42), -1);
  CU_ASSERT_EQUAL(weighted_pick(w, 0, 42), -1);
}

static void same_key_same_choice(void) {
  uint32_t w[] = {50, 50};
  for (uint64_t i = 0; i < 1000; i++) {
    uint64_t k = weighted_key(&i, sizeof(i));
    CU_ASSERT_EQUAL(weighted_pick(w, 2, k), weighted_pick(w, 2, k));
  }
  /* and the key really varies the choice */
  unsigned ones = 0;
  for (uint64_t i = 0; i < 1000; i++) ones += weighted_pick(w, 2, weighted_key(&i, sizeof(i))) == 1;
  CU_ASSERT(ones > 400 && ones < 600);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("weighted", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(ninety_ten_lands_within_one_and_a_half_points);
  T(three_way_split_is_proportional);
  T(zero_weight_is_never_chosen);
  T(all_zero_or_empty_means_no_choice);
  T(same_key_same_choice);
#undef T
}
