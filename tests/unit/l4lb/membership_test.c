/* membership: static --backend specs and ReplicaSet decoding. */
#include "l4lb/membership.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/membership.pb-c.h"

static void static_spec_with_all_options_parses(void) {
  struct l4_member m;
  char err[256] = "";
  CU_ASSERT_EQUAL(l4_member_parse_static(
                      "127.0.0.1:8080,https=127.0.0.1:8443,check=127.0.0.1:9901,weight=3,drain", &m,
                      err, sizeof(err)),
                  0);
  CU_ASSERT_STRING_EQUAL(m.https, "127.0.0.1:8443");
  CU_ASSERT_STRING_EQUAL(m.name, "127.0.0.1:8080");
  CU_ASSERT_STRING_EQUAL(m.address, "127.0.0.1:8080");
  CU_ASSERT_STRING_EQUAL(m.check, "127.0.0.1:9901");
  CU_ASSERT_EQUAL(m.weight, 3);
  CU_ASSERT_EQUAL(m.draining, 1);
}

static void bare_static_spec_defaults_to_weight_one_and_tcp_check(void) {
  struct l4_member m;
  char err[256] = "";
  CU_ASSERT_EQUAL(l4_member_parse_static("[::1]:80", &m, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(m.address, "[::1]:80");
  CU_ASSERT_STRING_EQUAL(m.check, "");
  CU_ASSERT_STRING_EQUAL(m.https, "");
  CU_ASSERT_EQUAL(m.weight, 1);
  CU_ASSERT_EQUAL(m.draining, 0);
}

static void bad_static_specs_are_rejected_with_a_reason(void) {
  const char *bad[] = {"",
                       "localhost:80",
                       "127.0.0.1",
                       "127.0.0.1:99999",
                       "127.0.0.1:80,weight=0",
                       "127.0.0.1:80,weight=abc",
                       "127.0.0.1:80,weight=2000000",
                       "127.0.0.1:80,check=nope",
                       "127.0.0.1:80,https=nope",
                       "127.0.0.1:80,color=blue"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct l4_member m;
    char err[256] = "";
    CU_ASSERT_EQUAL(l4_member_parse_static(bad[i], &m, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--backend"));
  }
}

static size_t pack_set(Edge__V1__Replica **reps, size_t n, uint64_t version, uint8_t *buf) {
  Edge__V1__ReplicaSet set = EDGE__V1__REPLICA_SET__INIT;
  set.version = version;
  set.n_replicas = n;
  set.replicas = reps;
  return edge__v1__replica_set__pack(&set, buf);
}

static void replica_set_decodes_names_weights_and_draining(void) {
  Edge__V1__Replica a = EDGE__V1__REPLICA__INIT, b = EDGE__V1__REPLICA__INIT;
  a.node_id = "l7-a";
  a.address = "10.0.0.1:8080";
  a.check_address = "10.0.0.1:9901";
  a.https_address = "10.0.0.1:8443";
  a.weight = 0;                       /* treated as 1 */
  b.https_address = "not-an-address"; /* ignored: no HTTPS for b */
  b.node_id = "";
  b.address = "10.0.0.2:8080";
  b.weight = 5;
  b.draining = 1;
  Edge__V1__Replica *reps[] = {&a, &b};
  uint8_t buf[1024];
  size_t len = pack_set(reps, 2, 42, buf);
  struct l4_member *m;
  size_t n;
  uint64_t version;
  CU_ASSERT_EQUAL_FATAL(l4_member_decode_set(buf, len, &m, &n, &version, NULL, 0), 0);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT_EQUAL(version, 42);
  CU_ASSERT_STRING_EQUAL(m[0].name, "l7-a");
  CU_ASSERT_STRING_EQUAL(m[0].check, "10.0.0.1:9901");
  CU_ASSERT_STRING_EQUAL(m[0].https, "10.0.0.1:8443");
  CU_ASSERT_STRING_EQUAL(m[1].https, "");
  CU_ASSERT_EQUAL(m[0].weight, 1);
  CU_ASSERT_STRING_EQUAL(m[1].name, "10.0.0.2:8080"); /* no node_id: the address */
  CU_ASSERT_EQUAL(m[1].weight, 5);
  CU_ASSERT_EQUAL(m[1].draining, 1);
  free(m);
}

static void bad_replicas_are_skipped_without_losing_the_rest(void) {
  Edge__V1__Replica good = EDGE__V1__REPLICA__INIT, bad = EDGE__V1__REPLICA__INIT,
                    dup = EDGE__V1__REPLICA__INIT;
  good.node_id = "ok";
  good.address = "10.0.0.1:80";
  bad.node_id = "bad";
  bad.address = "proxy.example:80";
  dup.node_id = "ok";
  dup.address = "10.0.0.9:80";
  Edge__V1__Replica *reps[] = {&good, &bad, &dup};
  uint8_t buf[1024];
  size_t len = pack_set(reps, 3, 1, buf);
  struct l4_member *m;
  size_t n;
  uint64_t version;
  CU_ASSERT_EQUAL_FATAL(l4_member_decode_set(buf, len, &m, &n, &version, NULL, 0), 0);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  CU_ASSERT_STRING_EQUAL(m[0].address, "10.0.0.1:80");
  free(m);
}

static void garbage_bytes_are_not_a_replica_set(void) {
  uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  struct l4_member *m = (void *)1;
  size_t n = 9;
  uint64_t version;
  CU_ASSERT_EQUAL(l4_member_decode_set(junk, sizeof(junk), &m, &n, &version, NULL, 0), -1);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_EQUAL(n, 0);
}

static void empty_replica_set_decodes_to_no_members(void) {
  uint8_t buf[16];
  size_t len = pack_set(NULL, 0, 3, buf);
  struct l4_member *m;
  size_t n;
  uint64_t version;
  CU_ASSERT_EQUAL(l4_member_decode_set(buf, len, &m, &n, &version, NULL, 0), 0);
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(version, 3);
  free(m);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("membership", NULL, NULL);
  CU_add_test(s, "static_spec_with_all_options_parses", static_spec_with_all_options_parses);
  CU_add_test(s, "bare_static_spec_defaults_to_weight_one_and_tcp_check",
              bare_static_spec_defaults_to_weight_one_and_tcp_check);
  CU_add_test(s, "bad_static_specs_are_rejected_with_a_reason",
              bad_static_specs_are_rejected_with_a_reason);
  CU_add_test(s, "replica_set_decodes_names_weights_and_draining",
              replica_set_decodes_names_weights_and_draining);
  CU_add_test(s, "bad_replicas_are_skipped_without_losing_the_rest",
              bad_replicas_are_skipped_without_losing_the_rest);
  CU_add_test(s, "garbage_bytes_are_not_a_replica_set", garbage_bytes_are_not_a_replica_set);
  CU_add_test(s, "empty_replica_set_decodes_to_no_members",
              empty_replica_set_decodes_to_no_members);
}
