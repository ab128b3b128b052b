/* replicas: the known-proxy registry behind Membership.Watch — join on
 * apply, stay while disconnected, leave after draining, expire after the
 * removal timeout, survive a restart — with explicit clocks, no I/O. */
#include "syncd/replicas.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/membership.pb-c.h"

#define MIN_MS (60 * 1000LL)
#define T0 1700000000000LL /* an arbitrary wall-clock start, in ms */

static struct replica_fields fields(const char *id, int port) {
  static char addr[8][64], admin[8][64];
  static int k;
  k = (k + 1) % 8;
  snprintf(addr[k], sizeof(addr[k]), "10.0.0.%d:%d", port % 200 + 1, port);
  snprintf(admin[k], sizeof(admin[k]), "10.0.0.%d:9901", port % 200 + 1);
  return (struct replica_fields){.node_id = id,
                                 .address = addr[k],
                                 .admin_address = admin[k],
                                 .https_address = "",
                                 .zone = "z1",
                                 .weight = 1};
}

static struct replicas *fresh(uint32_t timeout_ms) {
  struct replicas *r = NULL;
  CU_ASSERT_EQUAL_FATAL(replicas_new(timeout_ms, &r), 0);
  return r;
}

/* The node_ids of the packed set, comma-separated. */
static const char *set_ids(const struct replicas *r, char *buf, size_t len) {
  uint8_t *b;
  size_t n;
  buf[0] = 0;
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 7, NULL, &b, &n), 0);
  Edge__V1__ReplicaSet *s = edge__v1__replica_set__unpack(NULL, n, b);
  free(b);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL(s->version, 7);
  for (size_t i = 0; i < s->n_replicas; i++) {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", i ? "," : "", s->replicas[i]->node_id);
  }
  edge__v1__replica_set__free_unpacked(s, NULL);
  return buf;
}

static void join(struct replicas *r, const char *id, int port, int64_t now) {
  struct replica_fields f = fields(id, port);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, now), 0);
  CU_ASSERT_EQUAL(replicas_applied(r, id, now), 1);
}

static void a_proxy_joins_once_it_has_applied_a_state(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256], why[256];
  struct replica_fields f = fields("l7-a", 8080);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0), 0); /* connected is not enough */
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "");
  const struct replica *p = replicas_find(r, "l7-a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_FALSE(p->in_set);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0, why, sizeof(why)),
                         "out: has not applied a state yet");
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-a", T0 + 5), 1);
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-a", T0 + 6), 0); /* once */
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-a");
  CU_ASSERT_TRUE(p->in_set);
  CU_ASSERT_EQUAL(p->joined_ms, T0 + 5);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0, why, sizeof(why)),
                         "in: applied a state");
  replicas_free(r);
}

static void a_disconnected_proxy_stays_in_the_set(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256], why[256];
  join(r, "l7-a", 8080, T0);
  join(r, "l7-b", 8081, T0);
  CU_ASSERT_EQUAL(replicas_disconnected(r, "l7-a", T0 + 1000), 0);
  CU_ASSERT_EQUAL(replicas_disconnected(r, "l7-b", T0 + 1000), 0);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-a,l7-b");
  const struct replica *p = replicas_find(r, "l7-a");
  CU_ASSERT_FALSE(p->connected);
  CU_ASSERT_EQUAL(p->last_seen_ms, T0 + 1000);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0 + 43000, why, sizeof(why)),
                         "in: known, disconnected for 42s (removed after 10m0s)");
  replicas_free(r);
}

static void a_draining_proxy_leaves_when_its_stream_ends(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256], why[256];
  join(r, "l7-a", 8080, T0);
  join(r, "l7-b", 8081, T0);
  struct replica_fields f = fields("l7-a", 8080);
  f.draining = 1;
  CU_ASSERT_EQUAL(replicas_updated(r, &f, T0 + 1), 1); /* the l4lbs must see the flag */
  CU_ASSERT_EQUAL(replicas_updated(r, &f, T0 + 2), 0);
  const struct replica *p = replicas_find(r, "l7-a");
  CU_ASSERT_TRUE(p->in_set && p->draining);
  CU_ASSERT_EQUAL(p->why, REPLICA_DRAINING);
  CU_ASSERT_EQUAL(replicas_disconnected(r, "l7-a", T0 + 3), 1);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-b");
  p = replicas_find(r, "l7-a");
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0 + 4, why, sizeof(why)),
                         "out: left (disconnected while draining)");
  replicas_free(r);
}

static void a_disconnected_proxy_expires_after_the_removal_timeout(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256], why[256];
  join(r, "l7-a", 8080, T0);
  join(r, "l7-b", 8081, T0);
  replicas_disconnected(r, "l7-a", T0);
  CU_ASSERT_EQUAL(replicas_expire(r, T0 + 10 * MIN_MS - 1), 0);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-a,l7-b");
  CU_ASSERT_EQUAL(replicas_expire(r, T0 + 10 * MIN_MS), 1);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-b");
  const struct replica *p = replicas_find(r, "l7-a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0 + 10 * MIN_MS, why, sizeof(why)),
                         "out: removed after being disconnected longer than 10m0s");
  /* Listed (out) for one more timeout, then forgotten. */
  CU_ASSERT_EQUAL(replicas_expire(r, T0 + 20 * MIN_MS), 0);
  CU_ASSERT_PTR_NULL(replicas_find(r, "l7-a"));
  CU_ASSERT_EQUAL(replicas_count(r), 1);
  replicas_free(r);
}

static void durations_read_like_flags(void) {
  char b[32];
  CU_ASSERT_STRING_EQUAL(replicas_format_duration(0, b, sizeof(b)), "0s");
  CU_ASSERT_STRING_EQUAL(replicas_format_duration(250, b, sizeof(b)), "250ms");
  CU_ASSERT_STRING_EQUAL(replicas_format_duration(42000, b, sizeof(b)), "42s");
  CU_ASSERT_STRING_EQUAL(replicas_format_duration(600000, b, sizeof(b)), "10m0s");
  CU_ASSERT_STRING_EQUAL(replicas_format_duration(3723000, b, sizeof(b)), "1h2m3s");
}

static void reconnecting_refreshes_fields_and_restarts_the_removal_clock(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  join(r, "l7-a", 8080, T0);
  replicas_disconnected(r, "l7-a", T0);
  struct replica_fields f = fields("l7-a", 9090); /* moved */
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0 + 9 * MIN_MS), 1);
  CU_ASSERT_STRING_EQUAL(replicas_find(r, "l7-a")->address, f.address);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0 + 9 * MIN_MS), 0); /* same again: nothing */
  replicas_disconnected(r, "l7-a", T0 + 9 * MIN_MS);
  CU_ASSERT_EQUAL(replicas_expire(r, T0 + 18 * MIN_MS), 0);
  CU_ASSERT_TRUE(replicas_find(r, "l7-a")->in_set);
  CU_ASSERT_EQUAL(replicas_expire(r, T0 + 19 * MIN_MS), 1);
  replicas_free(r);
}

static void a_proxy_that_left_rejoins_only_after_applying_again(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  join(r, "l7-a", 8080, T0);
  struct replica_fields f = fields("l7-a", 8080);
  f.draining = 1;
  replicas_updated(r, &f, T0);
  CU_ASSERT_EQUAL(replicas_disconnected(r, "l7-a", T0), 1);
  f.draining = 0; /* restarted */
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0 + 1), 0);
  CU_ASSERT_FALSE(replicas_find(r, "l7-a")->in_set);
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-a", T0 + 2), 1);
  CU_ASSERT_TRUE(replicas_find(r, "l7-a")->in_set);
  CU_ASSERT_FALSE(replicas_find(r, "l7-a")->draining);
  replicas_free(r);
}

static void the_set_survives_a_restart_and_is_not_expired_for_the_downtime(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char before[256], after[256], why[256];
  join(r, "l7-c", 8082, T0);
  join(r, "l7-a", 8080, T0);
  join(r, "l7-b", 8081, T0);
  struct replica_fields pending = fields("l7-new", 8083);
  replicas_connected(r, &pending, T0); /* never applied: not persisted */
  replicas_disconnected(r, "l7-b", T0 + 10);
  uint8_t *buf, *set1, *set2;
  size_t len, n1, n2;
  CU_ASSERT_EQUAL_FATAL(replicas_encode(r, T0 + 20, &buf, &len), 0);
  set_ids(r, before, sizeof(before));
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 1, NULL, &set1, &n1), 0);
  replicas_free(r);

  /* syncd comes back an hour later: longer than the removal timeout. */
  int64_t back = T0 + 60 * MIN_MS;
  r = fresh(10 * MIN_MS);
  char err[256] = "";
  size_t skipped = 9;
  CU_ASSERT_EQUAL(replicas_restore(r, buf, len, back, &skipped, err, sizeof(err)), 3);
  free(buf);
  CU_ASSERT_EQUAL(skipped, 0);
  CU_ASSERT_STRING_EQUAL(set_ids(r, after, sizeof(after)), before);
  CU_ASSERT_STRING_EQUAL(after, "l7-a,l7-b,l7-c");
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 1, NULL, &set2, &n2), 0);
  /* The same members for the l4lbs; now none is connected here, and each
   * record's change time is the one saved. */
  Edge__V1__ReplicaSet *s1 = edge__v1__replica_set__unpack(NULL, n1, set1);
  Edge__V1__ReplicaSet *s2 = edge__v1__replica_set__unpack(NULL, n2, set2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
  CU_ASSERT_EQUAL_FATAL(s1->n_replicas, s2->n_replicas);
  for (size_t i = 0; i < s1->n_replicas; i++) {
    const Edge__V1__Replica *a = s1->replicas[i], *b = s2->replicas[i];
    CU_ASSERT_STRING_EQUAL(a->node_id, b->node_id);
    CU_ASSERT_STRING_EQUAL(a->address, b->address);
    CU_ASSERT_STRING_EQUAL(a->check_address, b->check_address);
    CU_ASSERT_STRING_EQUAL(a->https_address, b->https_address);
    CU_ASSERT_EQUAL(a->draining, b->draining);
    CU_ASSERT_EQUAL(a->weight, b->weight);
    CU_ASSERT_EQUAL(a->connected, strcmp(a->node_id, "l7-b") != 0);
    CU_ASSERT_FALSE(b->connected);
    CU_ASSERT_EQUAL(b->changed_ms, !strcmp(b->node_id, "l7-b") ? T0 + 10 : T0 + 20);
  }
  edge__v1__replica_set__free_unpacked(s1, NULL);
  edge__v1__replica_set__free_unpacked(s2, NULL);
  free(set1);
  free(set2);
  const struct replica *p = replicas_find(r, "l7-a");
  CU_ASSERT_FALSE(p->connected);
  CU_ASSERT_EQUAL(p->why, REPLICA_RESTORED);
  CU_ASSERT_EQUAL(p->last_seen_ms, T0 + 20); /* was connected when saved */
  CU_ASSERT_EQUAL(replicas_find(r, "l7-b")->last_seen_ms, T0 + 10);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, back + 5000, why, sizeof(why)),
                         "in: restored from the state directory, not reconnected for 5s "
                         "(removed after 10m0s)");
  CU_ASSERT_EQUAL(replicas_expire(r, back + 1), 0);
  /* a reconnects: a member as before; the others expire from the restore. */
  struct replica_fields f = fields("l7-a", 8080);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, back + 2), 0);
  CU_ASSERT_EQUAL(replicas_find(r, "l7-a")->why, REPLICA_APPLIED);
  CU_ASSERT_EQUAL(replicas_expire(r, back + 10 * MIN_MS), 1);
  CU_ASSERT_STRING_EQUAL(set_ids(r, after, sizeof(after)), "l7-a");
  replicas_free(r);
}

static void damaged_or_hostile_state_files_are_refused_entry_by_entry(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char err[256] = "", ids[256];
  const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  CU_ASSERT_EQUAL(replicas_restore(r, garbage, sizeof(garbage), T0, NULL, err, sizeof(err)),
                  REPLICAS_ERR_CORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "KnownReplicas"));
  /* One good entry, then a bad name, a hostname address, no replica and a
   * duplicate. */
  const char *ids_in[] = {"good", "bad name", "host", NULL, "good"};
  const char *addrs[] = {"10.0.0.1:80", "10.0.0.2:80", "proxy.local:80", NULL, "10.0.0.3:80"};
  Edge__V1__Replica reps[5];
  Edge__V1__KnownReplica kr[5], *kp[5];
  for (int i = 0; i < 5; i++) {
    edge__v1__replica__init(&reps[i]);
    reps[i].node_id = (char *)ids_in[i];
    reps[i].address = (char *)addrs[i];
    edge__v1__known_replica__init(&kr[i]);
    kr[i].replica = ids_in[i] ? &reps[i] : NULL;
    kp[i] = &kr[i];
  }
  Edge__V1__KnownReplicas all = EDGE__V1__KNOWN_REPLICAS__INIT;
  all.n_replicas = 5;
  all.replicas = kp;
  uint8_t buf[512];
  size_t len = edge__v1__known_replicas__pack(&all, buf);
  size_t skipped = 0;
  CU_ASSERT_EQUAL(replicas_restore(r, buf, len, T0, &skipped, err, sizeof(err)), 1);
  CU_ASSERT_EQUAL(skipped, 4);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "good");
  CU_ASSERT_STRING_EQUAL(replicas_find(r, "good")->address, "10.0.0.1:80");
  replicas_free(r);
}

static void hellos_without_a_usable_name_or_address_never_join(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256], why[256];
  struct replica_fields f = fields("bad id", 8080);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0), REPLICAS_ERR_INVALID);
  f = fields("l7-host", 8080);
  f.address = "proxy.internal:8080";
  replicas_connected(r, &f, T0);
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-host", T0), 0);
  const struct replica *p = replicas_find(r, "l7-host");
  CU_ASSERT_EQUAL(p->why, REPLICA_UNUSABLE);
  CU_ASSERT_STRING_EQUAL(replica_reason(p, 10 * MIN_MS, T0, why, sizeof(why)),
                         "out: address \"proxy.internal:8080\" is not a numeric IP:PORT");
  /* Control characters never reach Status or the l4lbs. */
  f = fields("l7-esc", 8081);
  f.address = "10.0.0.1:80\r\nx";
  f.zone = "z\x1b[2J";
  replicas_connected(r, &f, T0);
  p = replicas_find(r, "l7-esc");
  CU_ASSERT_STRING_EQUAL(p->address, "");
  CU_ASSERT_STRING_EQUAL(p->zone, "");
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-esc", T0), 0);
  /* The Hello is fixed: it joins. */
  f = fields("l7-host", 8082);
  CU_ASSERT_EQUAL(replicas_updated(r, &f, T0 + 1), 0);
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-host", T0 + 1), 1);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "l7-host");
  replicas_free(r);
}

static void the_set_is_sorted_and_only_visible_changes_count(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char ids[256];
  join(r, "c", 8082, T0);
  join(r, "a", 8080, T0);
  join(r, "b", 8081, T0);
  CU_ASSERT_STRING_EQUAL(set_ids(r, ids, sizeof(ids)), "a,b,c");
  struct replica_fields f = fields("b", 8081);
  CU_ASSERT_EQUAL(replicas_updated(r, &f, T0 + 1), 0);
  f.weight = 3;
  CU_ASSERT_EQUAL(replicas_updated(r, &f, T0 + 2), 1);
  struct replica_fields p = fields("pending", 8083);
  replicas_connected(r, &p, T0);
  p.weight = 5;
  CU_ASSERT_EQUAL(replicas_updated(r, &p, T0 + 3), 0); /* not in the set */
  CU_ASSERT_EQUAL(replicas_members(r), 3);
  replicas_free(r);
}

static void the_registry_is_bounded(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  char id[32];
  int rc = 0;
  for (int i = 0; i < REPLICAS_MAX && rc == 0; i++) {
    snprintf(id, sizeof(id), "p%05d", i);
    struct replica_fields f = fields(id, 8080);
    rc = replicas_connected(r, &f, T0);
  }
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_EQUAL(replicas_count(r), REPLICAS_MAX);
  struct replica_fields f = fields("one-too-many", 8080);
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0), REPLICAS_ERR_FULL);
  f = fields("p00042", 8080); /* a known one still reconnects */
  CU_ASSERT_EQUAL(replicas_connected(r, &f, T0 + 1), 0);
  replicas_free(r);
}

/* What an l4lb watching several syncd replicas merges by: who holds the
 * proxy's stream, and when the record last changed. ACKs (one per push)
 * change neither, so they never make a new set. */
static void the_set_says_who_holds_the_stream_and_when_the_record_changed(void) {
  struct replicas *r = fresh(10 * MIN_MS);
  join(r, "l7-a", 8080, T0);
  uint8_t *b1, *b2;
  size_t n1, n2;
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 0, "syncd-0", &b1, &n1), 0);
  CU_ASSERT_EQUAL(replicas_applied(r, "l7-a", T0 + 100), 0); /* an ACK */
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 0, "syncd-0", &b2, &n2), 0);
  CU_ASSERT_TRUE(n1 == n2 && memcmp(b1, b2, n1) == 0);
  Edge__V1__ReplicaSet *set = edge__v1__replica_set__unpack(NULL, n1, b1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(set);
  CU_ASSERT_STRING_EQUAL(set->syncd_replica, "syncd-0");
  CU_ASSERT_EQUAL_FATAL(set->n_replicas, 1);
  CU_ASSERT_TRUE(set->replicas[0]->connected);
  CU_ASSERT_EQUAL(set->replicas[0]->changed_ms, replicas_find(r, "l7-a")->changed_ms);
  CU_ASSERT_TRUE(set->replicas[0]->changed_ms >= T0);
  edge__v1__replica_set__free_unpacked(set, NULL);
  free(b1);
  free(b2);
  replicas_disconnected(r, "l7-a", T0 + 500);
  CU_ASSERT_EQUAL_FATAL(replicas_pack_set(r, 0, "syncd-0", &b1, &n1), 0);
  set = edge__v1__replica_set__unpack(NULL, n1, b1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(set);
  CU_ASSERT_FALSE(set->replicas[0]->connected);
  CU_ASSERT_EQUAL(set->replicas[0]->changed_ms, T0 + 500);
  edge__v1__replica_set__free_unpacked(set, NULL);
  free(b1);
  replicas_free(r);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("syncd_replicas", NULL, NULL);
  CU_add_test(s, "a_proxy_joins_once_it_has_applied_a_state",
              a_proxy_joins_once_it_has_applied_a_state);
  CU_add_test(s, "a_disconnected_proxy_stays_in_the_set", a_disconnected_proxy_stays_in_the_set);
  CU_add_test(s, "a_draining_proxy_leaves_when_its_stream_ends",
              a_draining_proxy_leaves_when_its_stream_ends);
  CU_add_test(s, "a_disconnected_proxy_expires_after_the_removal_timeout",
              a_disconnected_proxy_expires_after_the_removal_timeout);
  CU_add_test(s, "reconnecting_refreshes_fields_and_restarts_the_removal_clock",
              reconnecting_refreshes_fields_and_restarts_the_removal_clock);
  CU_add_test(s, "a_proxy_that_left_rejoins_only_after_applying_again",
              a_proxy_that_left_rejoins_only_after_applying_again);
  CU_add_test(s, "the_set_survives_a_restart_and_is_not_expired_for_the_downtime",
              the_set_survives_a_restart_and_is_not_expired_for_the_downtime);
  CU_add_test(s, "damaged_or_hostile_state_files_are_refused_entry_by_entry",
              damaged_or_hostile_state_files_are_refused_entry_by_entry);
  CU_add_test(s, "hellos_without_a_usable_name_or_address_never_join",
              hellos_without_a_usable_name_or_address_never_join);
  CU_add_test(s, "the_set_is_sorted_and_only_visible_changes_count",
              the_set_is_sorted_and_only_visible_changes_count);
  CU_add_test(s, "the_registry_is_bounded", the_registry_is_bounded);
  CU_add_test(s, "durations_read_like_flags", durations_read_like_flags);
  CU_add_test(s, "the_set_says_who_holds_the_stream_and_when_the_record_changed",
              the_set_says_who_holds_the_stream_and_when_the_record_changed);
}
