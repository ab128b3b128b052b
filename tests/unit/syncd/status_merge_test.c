/*
 * status_merge: several replicas' Status answers as one node table, each
 * node as the replica holding its stream sees it, written out by hand.
 */
#include "syncd/status_merge.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#define SYNCED EDGE__V1__NODE_STATE__NODE_STATE_SYNCED
#define DISC EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED
#define L7 EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY
#define L4 EDGE__V1__NODE_KIND__NODE_KIND_L4LB

static Edge__V1__NodeStatus node(const char *id, int kind, int state, int64_t since, int64_t gone) {
  Edge__V1__NodeStatus n = EDGE__V1__NODE_STATUS__INIT;
  n.node_id = (char *)id;
  n.kind = kind;
  n.state = state;
  n.connected_since = since;
  n.disconnected_at = gone;
  return n;
}

static void each_node_is_shown_as_the_replica_serving_it_sees_it(void) {
  /* replica a: l7-1 connected, l7-2 known but gone (it moved to b), lb-a connected;
   * replica b: l7-2 connected, l7-1 never seen, l7-3 disconnected later than a's view */
  Edge__V1__NodeStatus a1 = node("l7-1", L7, SYNCED, 100, 0), a2 = node("l7-2", L7, DISC, 50, 90),
                       a3 = node("l7-3", L7, DISC, 10, 20), a4 = node("lb-a", L4, SYNCED, 60, 0);
  Edge__V1__NodeStatus b2 = node("l7-2", L7, SYNCED, 95, 0), b3 = node("l7-3", L7, DISC, 30, 40);
  Edge__V1__NodeStatus *an[] = {&a1, &a2, &a3, &a4}, *bn[] = {&b2, &b3};
  Edge__V1__StatusResponse ra = EDGE__V1__STATUS_RESPONSE__INIT, rb = ra;
  ra.nodes = an, ra.n_nodes = 4, rb.nodes = bn, rb.n_nodes = 2;
  struct status_replica r[3] = {{"127.0.0.1:1", &ra, ""},
                                {"127.0.0.1:2", NULL, "connection refused"},
                                {"127.0.0.1:3", &rb, ""}};
  struct status_merged_node *rows;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(status_merge_nodes(r, 3, &rows, &n), 0);
  CU_ASSERT_EQUAL_FATAL(n, 4);
  /* sorted: l7proxies (kind 1) by name, then the l4lb */
  CU_ASSERT_PTR_EQUAL(rows[0].node, &a1);
  CU_ASSERT_EQUAL(rows[0].replica, 0);
  CU_ASSERT_PTR_EQUAL(rows[1].node, &b2); /* connected on b beats known-on-a */
  CU_ASSERT_EQUAL(rows[1].replica, 2);
  CU_ASSERT_PTR_EQUAL(rows[2].node, &b3); /* both gone: the later disconnect */
  CU_ASSERT_PTR_EQUAL(rows[3].node, &a4);
  free(rows);
  CU_ASSERT_EQUAL(status_merge_primary(r, 3), 0); /* no election: the first that answered */
}

static void a_stale_half_open_stream_loses_to_the_newer_one(void) {
  Edge__V1__NodeStatus a1 = node("l7-1", L7, SYNCED, 100, 0), b1 = node("l7-1", L7, SYNCED, 200, 0);
  Edge__V1__NodeStatus *an[] = {&a1}, *bn[] = {&b1};
  Edge__V1__StatusResponse ra = EDGE__V1__STATUS_RESPONSE__INIT, rb = ra;
  ra.nodes = an, ra.n_nodes = 1, rb.nodes = bn, rb.n_nodes = 1;
  struct status_replica r[2] = {{"a", &ra, ""}, {"b", &rb, ""}};
  struct status_merged_node *rows;
  size_t n;
  CU_ASSERT_EQUAL_FATAL(status_merge_nodes(r, 2, &rows, &n), 0);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  CU_ASSERT_PTR_EQUAL(rows[0].node, &b1);
  free(rows);
}

static void the_leader_is_the_primary_view(void) {
  Edge__V1__LeaderStatus follower = EDGE__V1__LEADER_STATUS__INIT, leader = follower;
  follower.enabled = leader.enabled = 1;
  leader.leader = 1;
  Edge__V1__StatusResponse ra = EDGE__V1__STATUS_RESPONSE__INIT, rb = ra;
  ra.leader = &follower;
  rb.leader = &leader;
  struct status_replica r[2] = {{"a", &ra, ""}, {"b", &rb, ""}};
  CU_ASSERT_EQUAL(status_merge_primary(r, 2), 1);
  struct status_replica none[1] = {{"a", NULL, "refused"}};
  CU_ASSERT_EQUAL(status_merge_primary(none, 1), -1);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("status_merge", NULL, NULL);
  CU_add_test(s, "each_node_is_shown_as_the_replica_serving_it_sees_it",
              each_node_is_shown_as_the_replica_serving_it_sees_it);
  CU_add_test(s, "a_stale_half_open_stream_loses_to_the_newer_one",
              a_stale_half_open_stream_loses_to_the_newer_one);
  CU_add_test(s, "the_leader_is_the_primary_view", the_leader_is_the_primary_view);
}
