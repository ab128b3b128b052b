/* hmap: SipHash reference vectors, put/get/del across growth and
 * tombstones, binary keys, iteration that visits every entry once. */
#include "common/hmap.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SipHash paper's test vector (Aumasson & Bernstein, appendix A):
 * key 00..0f, message 00..0e. */
static void siphash_matches_the_reference_vector(void) {
  uint8_t msg[15];
  for (int i = 0; i < 15; i++) msg[i] = (uint8_t)i;
  uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  CU_ASSERT_EQUAL(hmap_siphash(k0, k1, msg, 15), 0xa129ca6149be45e5ULL);
  /* the empty message (first entry of the reference table, vectors.h) */
  CU_ASSERT_EQUAL(hmap_siphash(k0, k1, msg, 0), 0x726fdb47dd0e0e31ULL);
}

static void put_get_and_delete_survive_growth_and_tombstones(void) {
  struct hmap m;
  hmap_init(&m);
  enum { N = 5000 };
  static int vals[N];
  char key[32];
  for (int i = 0; i < N; i++) {
    vals[i] = i;
    snprintf(key, sizeof(key), "ns/obj-%d", i);
    CU_ASSERT_EQUAL_FATAL(hmap_puts(&m, key, &vals[i], NULL), 0);
  }
  CU_ASSERT_EQUAL(hmap_size(&m), N);
  /* delete every other key, then re-add half of those */
  for (int i = 0; i < N; i += 2) {
    snprintf(key, sizeof(key), "ns/obj-%d", i);
    CU_ASSERT_PTR_EQUAL(hmap_dels(&m, key), &vals[i]);
    CU_ASSERT_PTR_NULL(hmap_dels(&m, key)); /* already gone */
  }
  CU_ASSERT_EQUAL(hmap_size(&m), N / 2);
  for (int i = 0; i < N; i += 4) {
    snprintf(key, sizeof(key), "ns/obj-%d", i);
    CU_ASSERT_EQUAL(hmap_puts(&m, key, &vals[i], NULL), 0);
  }
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "ns/obj-%d", i);
    void *want = (i % 2 == 1 || i % 4 == 0) ? &vals[i] : NULL;
    CU_ASSERT_PTR_EQUAL(hmap_gets(&m, key), want);
  }
  /* replacing returns the old value */
  void *old = NULL;
  CU_ASSERT_EQUAL(hmap_puts(&m, "ns/obj-1", &vals[7], &old), 0);
  CU_ASSERT_PTR_EQUAL(old, &vals[1]);
  CU_ASSERT_PTR_EQUAL(hmap_gets(&m, "ns/obj-1"), &vals[7]);
  hmap_free(&m);
}

static void binary_keys_compare_by_length_and_bytes(void) {
  struct hmap m;
  hmap_init(&m);
  int a = 1, b = 2, c = 3;
  const uint8_t k1[] = {0, 1, 2}, k2[] = {0, 1, 2, 0}, k3[] = {0, 1};
  CU_ASSERT_EQUAL(hmap_put(&m, k1, sizeof(k1), &a, NULL), 0);
  CU_ASSERT_EQUAL(hmap_put(&m, k2, sizeof(k2), &b, NULL), 0);
  CU_ASSERT_EQUAL(hmap_put(&m, k3, sizeof(k3), &c, NULL), 0);
  CU_ASSERT_PTR_EQUAL(hmap_get(&m, k1, sizeof(k1)), &a);
  CU_ASSERT_PTR_EQUAL(hmap_get(&m, k2, sizeof(k2)), &b);
  CU_ASSERT_PTR_EQUAL(hmap_get(&m, k3, sizeof(k3)), &c);
  CU_ASSERT_PTR_NULL(hmap_get(&m, k1, 0));
  hmap_free(&m);
}

static void iteration_visits_every_live_entry_once(void) {
  struct hmap m;
  hmap_init(&m);
  enum { N = 300 };
  static int vals[N], seen[N];
  char key[32];
  for (int i = 0; i < N; i++) {
    vals[i] = i;
    snprintf(key, sizeof(key), "k%d", i);
    hmap_puts(&m, key, &vals[i], NULL);
  }
  for (int i = 0; i < N; i += 3) {
    snprintf(key, sizeof(key), "k%d", i);
    hmap_dels(&m, key);
  }
  memset(seen, 0, sizeof(seen));
  size_t pos = 0, count = 0;
  void *v;
  while (hmap_next(&m, &pos, NULL, NULL, &v)) {
    seen[*(int *)v]++;
    count++;
  }
  CU_ASSERT_EQUAL(count, hmap_size(&m));
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(seen[i], i % 3 == 0 ? 0 : 1);
  hmap_free(&m);
}

/* Two maps hash the same key differently: the key is random per map, so
 * names chosen to collide in one process do not collide in another. */
static void each_map_draws_its_own_hash_key(void) {
  struct hmap a, b;
  hmap_init(&a);
  hmap_init(&b);
  CU_ASSERT(a.k0 != b.k0 || a.k1 != b.k1);
  CU_ASSERT(hmap_siphash(a.k0, a.k1, "x", 1) != hmap_siphash(b.k0, b.k1, "x", 1));
  hmap_free(&a);
  hmap_free(&b);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("hmap", NULL, NULL);
  CU_add_test(s, "siphash_matches_the_reference_vector", siphash_matches_the_reference_vector);
  CU_add_test(s, "put_get_and_delete_survive_growth_and_tombstones",
              put_get_and_delete_survive_growth_and_tombstones);
  CU_add_test(s, "binary_keys_compare_by_length_and_bytes",
              binary_keys_compare_by_length_and_bytes);
  CU_add_test(s, "iteration_visits_every_live_entry_once", iteration_visits_every_live_entry_once);
  CU_add_test(s, "each_map_draws_its_own_hash_key", each_map_draws_its_own_hash_key);
}
