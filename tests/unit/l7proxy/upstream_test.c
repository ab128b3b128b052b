/*
 * upstream: per-cluster views survive pushes that do not change their
 * cluster, a changed cluster costs one view, and old and new objects of a
 * changed cluster serve side by side without rebuilding on each request.
 */
#include "l7proxy/upstream.h"

#include <CUnit/CUnit.h>
#include <string.h>

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

void test_register(void) {
  CU_pSuite s = CU_add_suite("upstream_views", NULL, NULL);
  CU_add_test(s, "views_follow_cluster_objects_not_snapshots",
              views_follow_cluster_objects_not_snapshots);
}
