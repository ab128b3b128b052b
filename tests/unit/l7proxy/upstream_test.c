/* upstream: endpoint and cluster records under churn are pruned once no
 * view, connection or request uses them for UP_PRUNE_GRACE_MS (issue 15),
 * and never while something does. */
#include "l7proxy/upstream.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <time.h>

#include "config_fixture.h"

/* A snapshot with one cluster "c<gen>" of 10 endpoints 10.<gen>.0.1..10. */
static struct l7_snapshot *churned(int gen) {
  char name[32], addr[10][32];
  snprintf(name, sizeof(name), "default/c%d:80", gen);
  for (int i = 0; i < 10; i++) snprintf(addr[i], sizeof(addr[i]), "10.%d.0.%d", gen % 250, i + 1);
  Edge__V1__Resource *r =
      fx_cluster(name, 10, addr[0], 80u, addr[1], 80u, addr[2], 80u, addr[3], 80u, addr[4], 80u,
                 addr[5], 80u, addr[6], 80u, addr[7], 80u, addr[8], 80u, addr[9], 80u);
  struct l7_snapshot *s = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(l7_snapshot_build((uint64_t)gen, &r, 1, &s, err, sizeof(err)), 0);
  fx_reset();
  return s;
}

/* up_pools_view prunes with the monotonic clock itself: tests count from it. */
static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void endpoint_churn_does_not_grow_records_forever(void) {
  struct up_pools p;
  CU_ASSERT_EQUAL_FATAL(up_pools_init(&p), 0);
  uint64_t t = mono_ms() + 1000;
  for (int gen = 1; gen <= 50; gen++) {
    struct l7_snapshot *s = churned(gen);
    CU_ASSERT_PTR_NOT_NULL(up_pools_view(&p, s, l7_snapshot_cluster(s, 0)));
    l7_snapshot_unref(s); /* the view set keeps its own reference */
    up_pools_prune(&p, t);
    t += UP_PRUNE_GRACE_MS / 4;
    /* bounded: the two cached snapshots plus what left < grace ago */
    CU_ASSERT(p.n_endpoints <= 10 * (2 + 5));
    CU_ASSERT(p.n_clusters <= 2 + 5);
  }
  /* long after: only what the two cached views use */
  up_pools_prune(&p, t + UP_PRUNE_GRACE_MS);
  up_pools_prune(&p, t + 2 * UP_PRUNE_GRACE_MS);
  CU_ASSERT_EQUAL(p.n_endpoints, 20);
  CU_ASSERT_EQUAL(p.n_clusters, 2);
  up_pools_free(&p);
}

static void a_record_in_use_is_never_pruned(void) {
  struct up_pools p;
  CU_ASSERT_EQUAL_FATAL(up_pools_init(&p), 0);
  struct l7_snapshot *a = churned(1);
  const struct up_cluster_view *v = up_pools_view(&p, a, l7_snapshot_cluster(a, 0));
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  struct up_endpoint *busy = v->eps[0], *pooled = v->eps[1];
  busy->lb.outstanding = 1; /* a request in flight */
  pooled->n_idle = 1;       /* a kept-alive connection */
  l7_snapshot_unref(a);
  for (int gen = 2; gen <= 3; gen++) { /* evict snapshot 1 from the view cache */
    struct l7_snapshot *s = churned(gen);
    up_pools_view(&p, s, l7_snapshot_cluster(s, 0));
    l7_snapshot_unref(s);
  }
  uint64_t t = mono_ms() + 1000;
  up_pools_prune(&p, t);
  up_pools_prune(&p, t + 10 * UP_PRUNE_GRACE_MS);
  CU_ASSERT_EQUAL(p.n_endpoints, 20 + 2);            /* the two cached views, plus the two in use */
  CU_ASSERT_STRING_EQUAL(busy->name, "10.1.0.1:80"); /* still valid memory */
  busy->lb.outstanding = 0;
  pooled->n_idle = 0;
  up_pools_prune(&p, t + 11 * UP_PRUNE_GRACE_MS);
  up_pools_prune(&p, t + 12 * UP_PRUNE_GRACE_MS);
  CU_ASSERT_EQUAL(p.n_endpoints, 20);
  up_pools_free(&p);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("upstream", NULL, NULL);
  CU_add_test(s, "endpoint_churn_does_not_grow_records_forever",
              endpoint_churn_does_not_grow_records_forever);
  CU_add_test(s, "a_record_in_use_is_never_pruned", a_record_in_use_is_never_pruned);
}
