/*
 * upstream: per-cluster views survive pushes that do not change their
 * cluster, a changed cluster costs one view, and old and new objects of a
 * changed cluster serve side by side without rebuilding on each request;
 * endpoint and cluster records under churn are pruned once no view,
 * connection or request uses them for UP_PRUNE_GRACE_MS (issue 15), and
 * never while something does.
 */
#include "l7proxy/upstream.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config_fixture.h"

static struct l7_snapshot *apply(struct l7_builder *b, uint64_t v, int full,
                                 Edge__V1__Resource **up, size_t n) {
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, v, full, up, n, NULL, 0, &s, err, sizeof(err)), 0);
  return s;
}

static void views_follow_cluster_objects_not_snapshots(void) {
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  Edge__V1__Resource *full[] = {fx_cluster("a", 2, "10.0.0.1", 80u, "10.0.0.2", 80u),
                                fx_cluster("b", 1, "10.0.0.3", 80u)};
  struct l7_snapshot *s1 = apply(b, 1, 1, full, 2);
  struct up_pools p;
  CU_ASSERT_EQUAL_FATAL(up_pools_init(&p), 0);
  const struct up_cluster_view *va = up_pools_view(&p, l7_snapshot_find_cluster(s1, "a"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(va);
  CU_ASSERT_EQUAL(va->n, 2);
  CU_ASSERT_PTR_NOT_NULL(up_pools_view(&p, l7_snapshot_find_cluster(s1, "b")));
  CU_ASSERT_EQUAL(p.view_builds, 2);

  /* b changes: a's view is still good for the new snapshot */
  Edge__V1__Resource *d[] = {fx_cluster("b", 2, "10.0.0.3", 80u, "10.0.0.4", 80u)};
  struct l7_snapshot *s2 = apply(b, 2, 0, d, 1);
  CU_ASSERT_PTR_EQUAL(up_pools_view(&p, l7_snapshot_find_cluster(s2, "a")), va);
  CU_ASSERT_EQUAL(p.view_builds, 2);
  const struct up_cluster_view *vb2 = up_pools_view(&p, l7_snapshot_find_cluster(s2, "b"));
  CU_ASSERT_EQUAL(vb2->n, 2);
  CU_ASSERT_EQUAL(p.view_builds, 3);
  /* in-flight requests on s1 and new ones on s2 alternate: no rebuilds */
  for (int i = 0; i < 10; i++) {
    CU_ASSERT_EQUAL(up_pools_view(&p, l7_snapshot_find_cluster(s1, "b"))->n, 1);
    CU_ASSERT_EQUAL(up_pools_view(&p, l7_snapshot_find_cluster(s2, "b"))->n, 2);
  }
  CU_ASSERT_EQUAL(p.view_builds, 3);
  /* endpoint state is by name: 10.0.0.3 is one record in both views */
  const struct up_cluster_view *vb1 = up_pools_view(&p, l7_snapshot_find_cluster(s1, "b"));
  struct up_endpoint *e1 = vb1->eps[0];
  CU_ASSERT_PTR_EQUAL(up_pools_view(&p, l7_snapshot_find_cluster(s2, "b"))->eps[0], e1);

  /* the views hold their clusters: dropping every snapshot leaves them readable */
  l7_snapshot_unref(s1);
  l7_snapshot_unref(s2);
  l7_builder_free(b);
  fx_reset();
  CU_ASSERT_STRING_EQUAL(va->cluster->name, "a");
  CU_ASSERT_STRING_EQUAL(va->cluster->endpoints[1].name, "10.0.0.2:80");
  up_pools_free(&p);
}

/* A full push of one cluster "c<gen>" with 10 endpoints 10.<gen>.0.1..10. */
static struct l7_snapshot *churned(struct l7_builder *b, int gen, const struct l7_cluster **c) {
  char name[32], addr[10][32];
  snprintf(name, sizeof(name), "default/c%d:80", gen);
  for (int i = 0; i < 10; i++) snprintf(addr[i], sizeof(addr[i]), "10.%d.0.%d", gen % 250, i + 1);
  Edge__V1__Resource *r[] = {fx_cluster(name, 10, addr[0], 80u, addr[1], 80u, addr[2], 80u, addr[3],
                                        80u, addr[4], 80u, addr[5], 80u, addr[6], 80u, addr[7], 80u,
                                        addr[8], 80u, addr[9], 80u)};
  struct l7_snapshot *s = apply(b, (uint64_t)gen, 1, r, 1);
  fx_reset();
  *c = l7_snapshot_find_cluster(s, name);
  CU_ASSERT_PTR_NOT_NULL_FATAL(*c);
  return s;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct find {
  const struct up_endpoint *want;
  int found;
};

static void find_ep(struct up_endpoint *ep, void *arg) {
  struct find *f = arg;
  f->found |= ep == f->want;
}

static int held(struct up_pools *p, const struct up_endpoint *e) {
  struct find f = {e, 0};
  up_pools_foreach(p, find_ep, &f);
  return f.found;
}

static void endpoint_churn_does_not_grow_records_forever(void) {
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  struct up_pools p;
  CU_ASSERT_EQUAL_FATAL(up_pools_init(&p), 0);
  uint64_t t = mono_ms() + 1000;
  for (int gen = 1; gen <= 50; gen++) {
    const struct l7_cluster *c;
    struct l7_snapshot *s = churned(b, gen, &c);
    CU_ASSERT_PTR_NOT_NULL(up_pools_view(&p, c));
    l7_snapshot_unref(s); /* the view holds its cluster */
    up_pools_prune(&p, t);
    t += UP_PRUNE_GRACE_MS / 4;
    /* bounded: the cached views (two ways of a few slots) plus what left < grace ago */
    CU_ASSERT(p.n_endpoints <= 10 * (4 + 5));
    CU_ASSERT(p.n_clusters <= 4 + 5);
  }
  /* long after: only what the cached views use */
  up_pools_prune(&p, t + UP_PRUNE_GRACE_MS);
  up_pools_prune(&p, t + 2 * UP_PRUNE_GRACE_MS);
  CU_ASSERT(p.n_endpoints >= 10 && p.n_endpoints <= 40);
  CU_ASSERT(p.n_clusters >= 1 && p.n_clusters <= 4);
  up_pools_free(&p);
  l7_builder_free(b);
}

static void a_record_in_use_is_never_pruned(void) {
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  struct up_pools p;
  CU_ASSERT_EQUAL_FATAL(up_pools_init(&p), 0);
  const struct l7_cluster *c;
  struct l7_snapshot *a = churned(b, 1, &c);
  const struct up_cluster_view *v = up_pools_view(&p, c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  struct up_endpoint *busy = v->eps[0], *pooled = v->eps[1], *idle = v->eps[2];
  busy->lb.outstanding = 1; /* a request in flight */
  pooled->n_idle = 1;       /* a kept-alive connection */
  l7_snapshot_unref(a);
  for (int gen = 2; gen <= 8; gen++) { /* evict cluster 1's view */
    struct l7_snapshot *s = churned(b, gen, &c);
    up_pools_view(&p, c);
    l7_snapshot_unref(s);
  }
  uint64_t t = mono_ms() + 1000;
  up_pools_prune(&p, t);
  up_pools_prune(&p, t + 10 * UP_PRUNE_GRACE_MS);
  CU_ASSERT(held(&p, busy));
  CU_ASSERT(held(&p, pooled));
  CU_ASSERT(!held(&p, idle)); /* its neighbour, unused, went */
  busy->lb.outstanding = 0;
  pooled->n_idle = 0;
  up_pools_prune(&p, t + 11 * UP_PRUNE_GRACE_MS);
  up_pools_prune(&p, t + 12 * UP_PRUNE_GRACE_MS);
  CU_ASSERT(!held(&p, busy));
  CU_ASSERT(!held(&p, pooled));
  up_pools_free(&p);
  l7_builder_free(b);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("upstream_views", NULL, NULL);
  CU_add_test(s, "views_follow_cluster_objects_not_snapshots",
              views_follow_cluster_objects_not_snapshots);
  CU_add_test(s, "endpoint_churn_does_not_grow_records_forever",
              endpoint_churn_does_not_grow_records_forever);
  CU_add_test(s, "a_record_in_use_is_never_pruned", a_record_in_use_is_never_pruned);
}
