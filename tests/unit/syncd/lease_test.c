/*
 * lease: the election rules over a coordination.k8s.io/v1 Lease, driven
 * with hand-written records and clocks: create when missing, wait while
 * another holder's lease is fresh (by the candidate's own clock, whatever
 * the record's timestamps say), take over after it expired, renew while
 * leading, stop leading after a conflict or past the renew deadline,
 * release with an empty holder, and refuse records that are not Leases.
 */
#include "syncd/lease.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lease_config CFG = {
    .identity = "syncd-a_1", .duration_ms = 15000, .renew_deadline_ms = 10000, .retry_ms = 2000};
static const int64_t NOW_US = 1796237916000000LL; /* any wall clock */

static struct lease_record held_by(const char *holder, const char *rv, int64_t transitions) {
  struct lease_record r;
  memset(&r, 0, sizeof(r));
  snprintf(r.holder, sizeof(r.holder), "%s", holder);
  r.duration_s = 15;
  snprintf(r.resource_version, sizeof(r.resource_version), "%s", rv);
  snprintf(r.acquire_time, sizeof(r.acquire_time), "2026-12-02T18:00:00.000000Z");
  snprintf(r.renew_time, sizeof(r.renew_time), "2026-12-02T18:00:%02d.000000Z", atoi(rv) % 60);
  r.transitions = transitions;
  return r;
}

static void a_missing_lease_is_created_naming_this_candidate(void) {
  struct lease_state st = {0};
  struct lease_record want;
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, NULL, 1000, NOW_US, &want), LEASE_CREATE);
  CU_ASSERT_STRING_EQUAL(want.holder, "syncd-a_1");
  CU_ASSERT_EQUAL(want.duration_s, 15);
  CU_ASSERT_EQUAL(want.transitions, 0);
  CU_ASSERT_STRING_EQUAL(want.renew_time, want.acquire_time);
  CU_ASSERT_STRING_EQUAL(want.resource_version, "");
  CU_ASSERT_FALSE(lease_is_leader(&st, &CFG, 1000)); /* not before the server said yes */
}

/* The holder's renewTime is an hour old (its clock is wrong): that does
 * not matter, only how long this candidate has seen the record unchanged. */
static void a_fresh_lease_of_another_holder_is_waited_out_by_the_local_clock(void) {
  struct lease_state st = {0};
  struct lease_record cur = held_by("syncd-b_2", "100", 3), want;
  snprintf(cur.renew_time, sizeof(cur.renew_time), "2026-12-02T17:00:00.000000Z");
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &cur, 50000, NOW_US, &want), LEASE_WAIT);
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &cur, 64999, NOW_US, &want), LEASE_WAIT);
  /* the holder renews: the clock starts again from this sighting */
  struct lease_record renewed = held_by("syncd-b_2", "101", 3);
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &renewed, 65000, NOW_US, &want), LEASE_WAIT);
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &renewed, 79999, NOW_US, &want), LEASE_WAIT);
  CU_ASSERT_EQUAL(lease_next_round_ms(&st, &CFG, 79000), 1000);
  /* 15 s after the last change: expired, taken over at its resourceVersion */
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &renewed, 80000, NOW_US, &want), LEASE_UPDATE);
  CU_ASSERT_STRING_EQUAL(want.holder, "syncd-a_1");
  CU_ASSERT_STRING_EQUAL(want.resource_version, "101");
  CU_ASSERT_EQUAL(want.transitions, 4);
  CU_ASSERT_STRING_EQUAL(want.acquire_time, want.renew_time);
  CU_ASSERT_STRING_NOT_EQUAL(want.acquire_time, renewed.acquire_time);
}

static void a_released_lease_is_taken_at_once(void) {
  struct lease_state st = {0};
  struct lease_record cur = held_by("", "200", 5), want;
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &cur, 1000, NOW_US, &want), LEASE_UPDATE);
  CU_ASSERT_STRING_EQUAL(want.holder, "syncd-a_1");
  CU_ASSERT_EQUAL(want.transitions, 6);
}

static void the_leader_renews_keeping_acquire_time_and_transitions(void) {
  struct lease_state st = {0};
  struct lease_record cur = held_by("", "300", 1), want;
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &cur, 1000, NOW_US, &want), LEASE_UPDATE);
  struct lease_record written = want;
  snprintf(written.resource_version, sizeof(written.resource_version), "301");
  lease_written(&st, &written, 1000);
  CU_ASSERT_TRUE(lease_is_leader(&st, &CFG, 1000));
  CU_ASSERT_EQUAL(lease_next_round_ms(&st, &CFG, 1000), 2000);
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &written, 3000, NOW_US + 2000000, &want), LEASE_UPDATE);
  CU_ASSERT_STRING_EQUAL(want.resource_version, "301");
  CU_ASSERT_STRING_EQUAL(want.acquire_time, written.acquire_time);
  CU_ASSERT_STRING_NOT_EQUAL(want.renew_time, written.renew_time);
  CU_ASSERT_EQUAL(want.transitions, 2);
}

static void a_conflict_ends_leadership_at_once(void) {
  struct lease_state st = {0};
  struct lease_record w = held_by("syncd-a_1", "400", 0);
  lease_written(&st, &w, 1000);
  CU_ASSERT_TRUE(lease_is_leader(&st, &CFG, 1500));
  lease_failed(&st, &CFG, 1, 1500);
  CU_ASSERT_FALSE(lease_is_leader(&st, &CFG, 1500));
}

/* An API server that cannot be reached: the leader keeps leading until the
 * renew deadline, then stops writing, before a follower (15 s) may take
 * over. */
static void a_leader_that_cannot_renew_stops_at_the_renew_deadline(void) {
  struct lease_state st = {0};
  struct lease_record w = held_by("syncd-a_1", "500", 0);
  lease_written(&st, &w, 1000);
  lease_failed(&st, &CFG, 0, 9000);
  CU_ASSERT_TRUE(lease_is_leader(&st, &CFG, 9000));
  CU_ASSERT_TRUE(lease_is_leader(&st, &CFG, 10999));
  CU_ASSERT_FALSE(lease_is_leader(&st, &CFG, 11000)); /* by time alone, no round needed */
  lease_failed(&st, &CFG, 0, 11000);
  CU_ASSERT_FALSE(st.leader);
}

static void someone_else_in_the_record_ends_leadership(void) {
  struct lease_state st = {0};
  struct lease_record w = held_by("syncd-a_1", "600", 0), want;
  lease_written(&st, &w, 1000);
  struct lease_record other = held_by("syncd-b_2", "601", 1);
  CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &other, 2000, NOW_US, &want), LEASE_WAIT);
  CU_ASSERT_FALSE(lease_is_leader(&st, &CFG, 2000));
}

static void release_writes_an_empty_holder_for_one_second(void) {
  struct lease_state st = {0};
  struct lease_record want;
  CU_ASSERT_EQUAL(lease_release(&st, NOW_US, &want), -1); /* not the leader: nothing */
  struct lease_record w = held_by("syncd-a_1", "700", 2);
  lease_written(&st, &w, 1000);
  CU_ASSERT_EQUAL(lease_release(&st, NOW_US, &want), 0);
  CU_ASSERT_STRING_EQUAL(want.holder, "");
  CU_ASSERT_EQUAL(want.duration_s, 1);
  CU_ASSERT_STRING_EQUAL(want.resource_version, "700");
  CU_ASSERT_EQUAL(want.transitions, 2);
  CU_ASSERT_STRING_EQUAL(want.renew_time, "2026-12-02T18:58:36.000000Z");
}

static void records_round_trip_through_json(void) {
  struct lease_record r = held_by("syncd-a_1", "800", 7), back;
  json_t *j = lease_record_to_json(&r, "edge-system", "edge-syncd");
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "kind")), "Lease");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "apiVersion")),
                         "coordination.k8s.io/v1");
  json_t *md = json_object_get(j, "metadata");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(md, "namespace")), "edge-system");
  char err[128];
  CU_ASSERT_EQUAL(lease_record_from_json(j, &back, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(back.holder, "syncd-a_1");
  CU_ASSERT_EQUAL(back.transitions, 7);
  CU_ASSERT_EQUAL(back.duration_s, 15);
  CU_ASSERT_STRING_EQUAL(back.renew_time, r.renew_time);
  CU_ASSERT_STRING_EQUAL(back.resource_version, "800");
  json_decref(j);
}

static void hostile_records_are_refused_or_never_ours(void) {
  struct lease_record r;
  char err[128];
  json_error_t je;
  json_t *j = json_loads("[1,2]", 0, &je);
  CU_ASSERT_EQUAL(lease_record_from_json(j, &r, err, sizeof(err)), -1);
  json_decref(j);
  j = json_loads("{\"metadata\":{}}", 0, &je);
  CU_ASSERT_EQUAL(lease_record_from_json(j, &r, err, sizeof(err)), -1);
  json_decref(j);
  /* a holder that is not a string, or too long, is someone else */
  char longid[400];
  memset(longid, 'a', sizeof(longid) - 1);
  longid[sizeof(longid) - 1] = '\0';
  json_t *bad[2] = {json_pack("{s:{s:s},s:{s:i,s:i}}", "metadata", "resourceVersion", "9", "spec",
                              "holderIdentity", 42, "leaseDurationSeconds", 99999999),
                    json_pack("{s:{s:s},s:{s:s}}", "metadata", "resourceVersion", "9", "spec",
                              "holderIdentity", longid)};
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL_FATAL(lease_record_from_json(bad[i], &r, err, sizeof(err)), 0);
    CU_ASSERT_TRUE(r.holder_invalid);
    CU_ASSERT_TRUE(r.duration_s <= 3600);
    struct lease_state st = {0};
    struct lease_record want;
    CU_ASSERT_EQUAL(lease_decide(&st, &CFG, &r, 1000, NOW_US, &want),
                    r.duration_s ? LEASE_WAIT : LEASE_UPDATE);
    json_decref(bad[i]);
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("lease", NULL, NULL);
  CU_add_test(s, "a_missing_lease_is_created_naming_this_candidate",
              a_missing_lease_is_created_naming_this_candidate);
  CU_add_test(s, "a_fresh_lease_of_another_holder_is_waited_out_by_the_local_clock",
              a_fresh_lease_of_another_holder_is_waited_out_by_the_local_clock);
  CU_add_test(s, "a_released_lease_is_taken_at_once", a_released_lease_is_taken_at_once);
  CU_add_test(s, "the_leader_renews_keeping_acquire_time_and_transitions",
              the_leader_renews_keeping_acquire_time_and_transitions);
  CU_add_test(s, "a_conflict_ends_leadership_at_once", a_conflict_ends_leadership_at_once);
  CU_add_test(s, "a_leader_that_cannot_renew_stops_at_the_renew_deadline",
              a_leader_that_cannot_renew_stops_at_the_renew_deadline);
  CU_add_test(s, "someone_else_in_the_record_ends_leadership",
              someone_else_in_the_record_ends_leadership);
  CU_add_test(s, "release_writes_an_empty_holder_for_one_second",
              release_writes_an_empty_holder_for_one_second);
  CU_add_test(s, "records_round_trip_through_json", records_round_trip_through_json);
  CU_add_test(s, "hostile_records_are_refused_or_never_ours",
              hostile_records_are_refused_or_never_ours);
}
