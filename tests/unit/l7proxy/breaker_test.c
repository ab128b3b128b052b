/* breaker: per-cluster counters that never pass their limit, shared by name
 * across threads. */
#include "l7proxy/breaker.h"

#include <CUnit/CUnit.h>
#include <pthread.h>
#include <string.h>

static void a_limit_is_never_passed_and_release_makes_room(void) {
  struct breaker *b = breaker_get("test/limit:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_CONNECTIONS, 2), 1);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_CONNECTIONS, 2), 1);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_CONNECTIONS, 2), 0);
  CU_ASSERT_EQUAL(breaker_count(b, BREAKER_CONNECTIONS), 2);
  CU_ASSERT_EQUAL(atomic_load(&b->overflows[BREAKER_CONNECTIONS]), 1);
  breaker_release(b, BREAKER_CONNECTIONS);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_CONNECTIONS, 2), 1);
  /* limits are independent */
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_PENDING, 1), 1);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_RETRIES, 1), 1);
  CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_RETRIES, 1), 0);
}

static void zero_means_unlimited_and_null_counts_nothing(void) {
  struct breaker *b = breaker_get("test/unlimited:80");
  for (int i = 0; i < 1000; i++) CU_ASSERT_EQUAL(breaker_acquire(b, BREAKER_PENDING, 0), 1);
  CU_ASSERT_EQUAL(breaker_count(b, BREAKER_PENDING), 1000);
  CU_ASSERT_EQUAL(breaker_acquire(NULL, BREAKER_PENDING, 1), 1);
  breaker_release(NULL, BREAKER_PENDING);
}

static void one_record_per_cluster_name(void) {
  CU_ASSERT_PTR_EQUAL(breaker_get("ns/a:80"), breaker_get("ns/a:80"));
  CU_ASSERT_PTR_NOT_EQUAL(breaker_get("ns/a:80"), breaker_get("ns/b:80"));
  CU_ASSERT_STRING_EQUAL(breaker_limit_name(BREAKER_PENDING), "max_pending_requests");
  CU_ASSERT_EQUAL(BREAKER_LIMIT_OF(BREAKER_E_OVERFLOW(BREAKER_RETRIES)), BREAKER_RETRIES);
  CU_ASSERT_EQUAL(BREAKER_LIMIT_OF(-12), -1);
}

static struct breaker *g_shared;
static atomic_int g_max_seen, g_in;

static void *hammer(void *arg) {
  (void)arg;
  for (int i = 0; i < 20000; i++) {
    if (!breaker_acquire(g_shared, BREAKER_CONNECTIONS, 3)) continue;
    int now = atomic_fetch_add(&g_in, 1) + 1;
    int m = atomic_load(&g_max_seen);
    while (now > m && !atomic_compare_exchange_weak(&g_max_seen, &m, now)) {
    }
    atomic_fetch_sub(&g_in, 1);
    breaker_release(g_shared, BREAKER_CONNECTIONS);
  }
  return NULL;
}

static void threads_never_exceed_the_limit_together(void) {
  g_shared = breaker_get("test/threads:80");
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CU_ASSERT(atomic_load(&g_max_seen) <= 3);
  CU_ASSERT_EQUAL(breaker_count(g_shared, BREAKER_CONNECTIONS), 0);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("breaker", NULL, NULL);
  CU_add_test(s, "a_limit_is_never_passed_and_release_makes_room",
              a_limit_is_never_passed_and_release_makes_room);
  CU_add_test(s, "zero_means_unlimited_and_null_counts_nothing",
              zero_means_unlimited_and_null_counts_nothing);
  CU_add_test(s, "one_record_per_cluster_name", one_record_per_cluster_name);
  CU_add_test(s, "threads_never_exceed_the_limit_together",
              threads_never_exceed_the_limit_together);
}
