/* maglev: shares, weights, minimal disruption, determinism, flow hashing. */
#include "l4lb/maglev.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M 65537u

/* Pinned outputs of the documented hash functions (see maglev.h). */
#define GOLDEN_LAYOUT "abbccbbccaaaa"
#define GOLDEN_FLOW_HASH 0xe39ae865434efc03ull

/* n backends named "10.0.0.I:8080" with weight 1 (names live in names). */
static struct maglev_backend *make_backends(size_t n, char (*names)[32]) {
  struct maglev_backend *b = calloc(n, sizeof(*b));
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], 32, "10.0.%zu.%zu:8080", i / 250, i % 250 + 1);
    b[i].name = names[i];
    b[i].weight = 1;
  }
  return b;
}

static struct maglev_table *build_ok(const struct maglev_backend *b, size_t n, uint32_t m) {
  struct maglev_table *t = NULL;
  char err[128] = "";
  int rc = maglev_build(b, n, m, &t, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  if (rc != 0) fprintf(stderr, "maglev_build: %s\n", err);
  return t;
}

/* Owner name of each slot, so tables built from different input orders
 * can be compared by what they mean. */
static const char *owner(const struct maglev_table *t, const struct maglev_backend *b,
                         uint32_t slot) {
  return b[maglev_slot_backend(t, slot)].name;
}

static void siphash_matches_reference_vectors(void) {
  uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
  uint8_t in[1] = {0};
  CU_ASSERT_EQUAL(maglev_siphash(k0, k1, in, 0), 0x726fdb47dd0e0e31ull);
  CU_ASSERT_EQUAL(maglev_siphash(k0, k1, in, 1), 0x74f839c593dc67fdull);
}

static void equal_weights_give_each_backend_floor_or_ceil_of_m_over_n(void) {
  size_t ns[] = {1, 2, 3, 7, 10, 64, 100, 1000};
  for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
    size_t n = ns[k];
    char(*names)[32] = calloc(n, 32);
    struct maglev_backend *b = make_backends(n, names);
    struct maglev_table *t = build_ok(b, n, M);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    uint32_t lo = M / n, hi = (M + n - 1) / n;
    uint32_t *count = calloc(n, sizeof(uint32_t));
    for (uint32_t s = 0; s < M; s++) count[maglev_slot_backend(t, s)]++;
    for (size_t i = 0; i < n; i++) {
      CU_ASSERT(count[i] >= lo && count[i] <= hi);
      if (count[i] < lo || count[i] > hi)
        fprintf(stderr, "n=%zu backend %zu owns %u (want %u..%u)\n", n, i, count[i], lo, hi);
    }
    free(count);
    maglev_free(t);
    free(b);
    free(names);
  }
}

/* Shares are proportional to weights: within 0.5 % of M of w_i/sum(w)*M. */
static void shares_are_proportional_to_weights(void) {
  uint32_t weights[][4] = {{1, 2, 3, 4}, {1, 1, 1, 5}, {10, 20, 30, 40}, {100, 1, 1, 1}};
  char names[4][32];
  for (size_t k = 0; k < 4; k++) {
    struct maglev_backend *b = make_backends(4, names);
    uint32_t sum = 0;
    for (int i = 0; i < 4; i++) sum += (b[i].weight = weights[k][i]);
    struct maglev_table *t = build_ok(b, 4, M);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    uint32_t count[4] = {0};
    for (uint32_t s = 0; s < M; s++) count[maglev_slot_backend(t, s)]++;
    for (int i = 0; i < 4; i++) {
      double want = (double)M * weights[k][i] / sum;
      double diff = count[i] > want ? count[i] - want : want - count[i];
      CU_ASSERT(diff <= 0.005 * M);
      if (diff > 0.005 * M)
        fprintf(stderr, "weights set %zu backend %d owns %u want %.0f\n", k, i, count[i], want);
    }
    maglev_free(t);
    free(b);
  }
}

static void zero_weight_counts_as_one(void) {
  char names[3][32];
  struct maglev_backend *b = make_backends(3, names);
  struct maglev_table *t1 = build_ok(b, 3, M);
  b[1].weight = 0;
  struct maglev_table *t2 = build_ok(b, 3, M);
  CU_ASSERT_EQUAL(memcmp(t1->slots, t2->slots, M * sizeof(uint32_t)), 0);
  maglev_free(t1);
  maglev_free(t2);
  free(b);
}

/* Removing one of N moves that backend's ~1/N share and little else:
 * measured changes stay within 1/N + 2 % of M (the paper reports a few
 * percent of extra churn for M ≈ 100·N). */
static void removing_one_of_n_changes_about_one_nth_of_the_table(void) {
  size_t ns[] = {10, 100};
  for (size_t k = 0; k < 2; k++) {
    size_t n = ns[k];
    char(*names)[32] = calloc(n, 32);
    struct maglev_backend *b = make_backends(n, names);
    struct maglev_table *full = build_ok(b, n, M);
    /* drop backend 3: build from the other n-1 */
    struct maglev_backend *rest = calloc(n, sizeof(*rest));
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
      if (i != 3) rest[r++] = b[i];
    struct maglev_table *less = build_ok(rest, r, M);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    CU_ASSERT_PTR_NOT_NULL_FATAL(less);
    uint32_t changed = 0, owned_by_removed = 0;
    for (uint32_t s = 0; s < M; s++) {
      const char *before = owner(full, b, s), *after = owner(less, rest, s);
      if (strcmp(before, after) != 0) changed++;
      if (before == b[3].name) owned_by_removed++;
    }
    double bound = (double)M / n + 0.02 * M;
    fprintf(stderr, "n=%zu: removing one changed %u of %u slots (%.2f%%, 1/N = %.2f%%)\n", n,
            changed, M, 100.0 * changed / M, 100.0 / n);
    CU_ASSERT(changed >= owned_by_removed);
    CU_ASSERT(changed <= bound);
    /* adding it back (appended to the n-1 that stayed, as a membership
     * update would) restores every slot's owner exactly */
    rest[r] = b[3];
    struct maglev_table *again = build_ok(rest, r + 1, M);
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    uint32_t differ = 0;
    for (uint32_t s = 0; s < M; s++)
      if (strcmp(owner(full, b, s), owner(again, rest, s)) != 0) differ++;
    CU_ASSERT_EQUAL(differ, 0);
    maglev_free(full);
    maglev_free(less);
    maglev_free(again);
    free(rest);
    free(b);
    free(names);
  }
}

static void shuffled_input_orders_build_identical_tables(void) {
  size_t n = 50;
  char(*names)[32] = calloc(n, 32);
  struct maglev_backend *b = make_backends(n, names);
  for (size_t i = 0; i < n; i++) b[i].weight = (uint32_t)(i % 3 + 1);
  struct maglev_table *ref = build_ok(b, n, M);
  srand(42);
  for (int round = 0; round < 5; round++) {
    struct maglev_backend *sh = calloc(n, sizeof(*sh));
    memcpy(sh, b, n * sizeof(*sh));
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)rand() % (i + 1);
      struct maglev_backend tmp = sh[i];
      sh[i] = sh[j];
      sh[j] = tmp;
    }
    struct maglev_table *t = build_ok(sh, n, M);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    /* byte-identical in canonical indices ... */
    CU_ASSERT_EQUAL(memcmp(ref->slots, t->slots, M * sizeof(uint32_t)), 0);
    /* ... and the same owner for every slot */
    int same = 1;
    for (uint32_t s = 0; s < M && same; s++) same = strcmp(owner(ref, b, s), owner(t, sh, s)) == 0;
    CU_ASSERT(same);
    maglev_free(t);
    free(sh);
  }
  maglev_free(ref);
  free(b);
  free(names);
}

/* Guards the documented hash functions: a change here would make old and
 * new instances disagree, so it must be deliberate. */
static void small_table_layout_is_stable(void) {
  struct maglev_backend b[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
  struct maglev_table *t = build_ok(b, 3, 13);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  char got[14];
  for (uint32_t s = 0; s < 13; s++) got[s] = owner(t, b, s)[0];
  got[13] = '\0';
  fprintf(stderr, "layout a,b,c M=13: %s h1(a)=%016llx\n", got, (unsigned long long)maglev_h1("a"));
  CU_ASSERT_STRING_EQUAL(got, GOLDEN_LAYOUT);
  maglev_free(t);
}

static void non_prime_or_out_of_range_table_sizes_are_rejected(void) {
  struct maglev_backend b[2] = {{"x", 1}, {"y", 1}};
  struct maglev_table *t = NULL;
  char err[128] = "";
  uint32_t bad[] = {0, 1, 2, 4, 9, 65536, 65535, MAGLEV_MAX_M + 2};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CU_ASSERT_EQUAL(maglev_build(b, 2, bad[i], &t, err, sizeof(err)), MAGLEV_ERR_INVALID);
    CU_ASSERT_PTR_NULL(t);
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "prime"));
  CU_ASSERT_EQUAL(maglev_build(b, 2, 3, &t, err, sizeof(err)), 0);
  maglev_free(t);
  CU_ASSERT(maglev_is_prime(65537));
  CU_ASSERT(!maglev_is_prime(65539 * 3));
}

static void duplicate_names_and_too_many_backends_are_rejected(void) {
  struct maglev_backend dup[3] = {{"x", 1}, {"y", 1}, {"x", 2}};
  struct maglev_table *t = NULL;
  char err[128] = "";
  CU_ASSERT_EQUAL(maglev_build(dup, 3, 13, &t, err, sizeof(err)), MAGLEV_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "duplicate"));
  struct maglev_backend four[4] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
  CU_ASSERT_EQUAL(maglev_build(four, 4, 3, &t, err, sizeof(err)), MAGLEV_ERR_INVALID);
  four[0].weight = MAGLEV_MAX_WEIGHT + 1;
  CU_ASSERT_EQUAL(maglev_build(four, 4, 13, &t, err, sizeof(err)), MAGLEV_ERR_INVALID);
  CU_ASSERT_PTR_NULL(t);
}

static void empty_table_lookups_find_no_backend(void) {
  struct maglev_table *t = build_ok(NULL, 0, 13);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  uint32_t slot = 99;
  CU_ASSERT_EQUAL(maglev_lookup(t, 12345, &slot), -1);
  CU_ASSERT_EQUAL(maglev_slot_backend(t, 0), -1);
  maglev_free(t);
}

static void lookup_uses_hash_mod_m_as_the_slot(void) {
  struct maglev_backend b[2] = {{"x", 1}, {"y", 1}};
  struct maglev_table *t = build_ok(b, 2, 13);
  uint32_t slot = 0;
  int idx = maglev_lookup(t, 13 * 1000 + 7, &slot);
  CU_ASSERT_EQUAL(slot, 7);
  CU_ASSERT_EQUAL(idx, maglev_slot_backend(t, 7));
  maglev_free(t);
}

static struct maglev_flow flow4(uint8_t last, uint16_t sport, uint16_t dport) {
  struct maglev_flow f = {.family = 4, .protocol = 6};
  uint8_t src[4] = {192, 0, 2, last}, dst[4] = {198, 51, 100, 1};
  memcpy(f.src, src, 4);
  memcpy(f.dst, dst, 4);
  f.src_port = sport;
  f.dst_port = dport;
  return f;
}

static void src_hash_ignores_ports_and_destination(void) {
  struct maglev_flow a = flow4(7, 40000, 80), b = flow4(7, 50123, 443);
  b.dst[3] = 9;
  CU_ASSERT_EQUAL(maglev_hash_flow(&a, MAGLEV_HASH_SRC), maglev_hash_flow(&b, MAGLEV_HASH_SRC));
  struct maglev_flow c = flow4(8, 40000, 80);
  CU_ASSERT_NOT_EQUAL(maglev_hash_flow(&a, MAGLEV_HASH_SRC), maglev_hash_flow(&c, MAGLEV_HASH_SRC));
}

static void five_tuple_hash_depends_on_every_field(void) {
  struct maglev_flow base = flow4(7, 40000, 80);
  uint64_t h = maglev_hash_flow(&base, MAGLEV_HASH_5TUPLE);
  struct maglev_flow f;
  f = base, f.src_port = 40001;
  CU_ASSERT_NOT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  f = base, f.dst_port = 81;
  CU_ASSERT_NOT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  f = base, f.src[0] = 10;
  CU_ASSERT_NOT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  f = base, f.dst[0] = 10;
  CU_ASSERT_NOT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  f = base, f.protocol = 17;
  CU_ASSERT_NOT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  /* same tuple, same hash */
  f = base;
  CU_ASSERT_EQUAL(h, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE));
  CU_ASSERT_EQUAL(h, GOLDEN_FLOW_HASH);
}

/* Source ports spread flows of one client over the backends. */
static void five_tuple_flows_of_one_client_spread_over_backends(void) {
  char names[4][32];
  struct maglev_backend *b = make_backends(4, names);
  struct maglev_table *t = build_ok(b, 4, M);
  int seen[4] = {0};
  for (uint16_t p = 0; p < 400; p++) {
    struct maglev_flow f = flow4(7, (uint16_t)(30000 + p), 80);
    seen[maglev_lookup(t, maglev_hash_flow(&f, MAGLEV_HASH_5TUPLE), NULL)]++;
  }
  for (int i = 0; i < 4; i++) CU_ASSERT(seen[i] > 50);
  maglev_free(t);
  free(b);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("maglev", NULL, NULL);
  CU_add_test(s, "siphash_matches_reference_vectors", siphash_matches_reference_vectors);
  CU_add_test(s, "equal_weights_give_each_backend_floor_or_ceil_of_m_over_n",
              equal_weights_give_each_backend_floor_or_ceil_of_m_over_n);
  CU_add_test(s, "shares_are_proportional_to_weights", shares_are_proportional_to_weights);
  CU_add_test(s, "zero_weight_counts_as_one", zero_weight_counts_as_one);
  CU_add_test(s, "removing_one_of_n_changes_about_one_nth_of_the_table",
              removing_one_of_n_changes_about_one_nth_of_the_table);
  CU_add_test(s, "shuffled_input_orders_build_identical_tables",
              shuffled_input_orders_build_identical_tables);
  CU_add_test(s, "small_table_layout_is_stable", small_table_layout_is_stable);
  CU_add_test(s, "non_prime_or_out_of_range_table_sizes_are_rejected",
              non_prime_or_out_of_range_table_sizes_are_rejected);
  CU_add_test(s, "duplicate_names_and_too_many_backends_are_rejected",
              duplicate_names_and_too_many_backends_are_rejected);
  CU_add_test(s, "empty_table_lookups_find_no_backend", empty_table_lookups_find_no_backend);
  CU_add_test(s, "lookup_uses_hash_mod_m_as_the_slot", lookup_uses_hash_mod_m_as_the_slot);
  CU_add_test(s, "src_hash_ignores_ports_and_destination", src_hash_ignores_ports_and_destination);
  CU_add_test(s, "five_tuple_hash_depends_on_every_field", five_tuple_hash_depends_on_every_field);
  CU_add_test(s, "five_tuple_flows_of_one_client_spread_over_backends",
              five_tuple_flows_of_one_client_spread_over_backends);
}
