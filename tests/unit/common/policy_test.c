/* common/policy: every tenant value of a policy that could split a header,
 * smuggle a cookie attribute or grow a table is refused with a reason. */
#include "common/policy.h"

#include <CUnit/CUnit.h>
#include <string.h>

static char bcrypt[] = "alice:$2y$05$/ID8sa2evNrOuQ9VY/fSs.kxh/xelcZBz4fxzkOt5FA0bRU6XxPEi";
static char sha[] = "bob:{SHA}snjLDKRQycibGd2P57mBxyhulY8=";

static void htpasswd_lines_of_both_kinds_pass_and_others_fail(void) {
  char why[200];
  CU_ASSERT_EQUAL(policy_check_htpasswd_line(bcrypt, why, sizeof(why)), 0);
  CU_ASSERT_EQUAL(policy_check_htpasswd_line(sha, why, sizeof(why)), 0);
  const char *bad[] = {"nouser",
                       ":{SHA}snjLDKRQycibGd2P57mBxyhulY8=",
                       "carol:$apr1$bNHH1mVJ$XtLOaBqmzCB1ETGGksrCw/",
                       "dave:plaintext",
                       "eve:{SHA}snjLDKRQycibGd2P57mBxyhulY8",
                       "a b:{SHA}snjLDKRQycibGd2P57mBxyhulY8=",
                       "x:$2y$03$/ID8sa2evNrOuQ9VY/fSs.kxh/xelcZBz4fxzkOt5FA0bRU6XxPEi"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    why[0] = '\0';
    CU_ASSERT_EQUAL(policy_check_htpasswd_line(bad[i], why, sizeof(why)), -1);
    CU_ASSERT_PTR_NULL(strstr(why, "XtLOaBq")); /* a hash is never in a reason */
  }
}

static void header_names_must_be_lower_case_tokens_and_not_framing(void) {
  char why[200];
  CU_ASSERT_EQUAL(policy_check_header_name("x-user", why, sizeof(why)), 0);
  const char *bad[] = {
      "",     "X-User", "x user",    "x-user\r\nset-cookie", "content-length", "transfer-encoding",
      "host", ":path",  "connection"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    CU_ASSERT_EQUAL(policy_check_header_name(bad[i], why, sizeof(why)), -1);
}

static void origins_are_scheme_host_port_only(void) {
  char why[200];
  const char *good[] = {"*", "https://a.example", "https://*.example.com", "http://h.test:8080"};
  for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
    CU_ASSERT_EQUAL(policy_check_origin(good[i], why, sizeof(why)), 0);
  const char *bad[] = {
      "a.example",           "https://a.example/x",       "https://A.example", "https://a*.example",
      "https://a.example:0", "https://a.example\r\nx: y", "https://",          "null"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    CU_ASSERT_EQUAL(policy_check_origin(bad[i], why, sizeof(why)), -1);
}

static void route_policies_are_bounded(void) {
  char why[200];
  Edge__V1__RouteOptions o = EDGE__V1__ROUTE_OPTIONS__INIT;
  Edge__V1__RateLimit rl = EDGE__V1__RATE_LIMIT__INIT;
  o.rate_limit = &rl;
  rl.requests = 0;
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), -1);
  rl.requests = 10;
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), 0);
  rl.burst = POLICY_MAX_RATE + 1;
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "burst"));
  rl.burst = 0;
  rl.by = EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER;
  rl.header = "";
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), -1);
  o.rate_limit = NULL;
  Edge__V1__BasicAuth ba = EDGE__V1__BASIC_AUTH__INIT;
  char *lines[] = {bcrypt};
  ba.htpasswd = lines;
  ba.n_htpasswd = 1;
  ba.realm = "a \"quoted\" realm";
  o.basic_auth = &ba;
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), -1);
  ba.realm = "staff zone";
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), 0);
  Edge__V1__ExternalAuth ea = EDGE__V1__EXTERNAL_AUTH__INIT;
  ea.cluster = "ns/auth:80";
  ea.path = "/verify\r\nx: y";
  o.external_auth = &ea;
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), -1);
  ea.path = "/verify?x=1";
  CU_ASSERT_EQUAL(policy_check_route(&o, why, sizeof(why)), 0);
}

static void cluster_cookie_values_cannot_add_attributes(void) {
  char why[200];
  Edge__V1__Cluster c = EDGE__V1__CLUSTER__INIT;
  Edge__V1__CookieAffinity a = EDGE__V1__COOKIE_AFFINITY__INIT;
  uint8_t key[32] = {1};
  a.hmac_key = (ProtobufCBinaryData){sizeof(key), key};
  c.cookie_affinity = &a;
  c.name = "ns/svc:80";
  CU_ASSERT_EQUAL(policy_check_cluster(&c, why, sizeof(why)), 0);
  a.name = "s; Domain=evil.test";
  CU_ASSERT_EQUAL(policy_check_cluster(&c, why, sizeof(why)), -1);
  a.name = "s";
  a.path = "/; Domain=evil.test";
  CU_ASSERT_EQUAL(policy_check_cluster(&c, why, sizeof(why)), -1);
  a.path = "/app";
  a.hmac_key.len = 8;
  CU_ASSERT_EQUAL(policy_check_cluster(&c, why, sizeof(why)), -1);
  a.hmac_key.len = 32;
  Edge__V1__ConsistentHash h = EDGE__V1__CONSISTENT_HASH__INIT;
  c.consistent_hash = &h;
  CU_ASSERT_EQUAL(policy_check_cluster(&c, why, sizeof(why)), -1);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("policy", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(htpasswd_lines_of_both_kinds_pass_and_others_fail);
  T(header_names_must_be_lower_case_tokens_and_not_framing);
  T(origins_are_scheme_host_port_only);
  T(route_policies_are_bounded);
  T(cluster_cookie_values_cannot_add_attributes);
#undef T
}
