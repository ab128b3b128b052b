/* client_auth: the per-request decision, the server-name table's precedence
 * and the encoders of what goes upstream. */
#include "l7proxy/client_auth.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"

static char *ca_a, *ca_b;

static struct cauth_policy *policy(const char *pem, int mode) {
  Edge__V1__ClientAuth ca = EDGE__V1__CLIENT_AUTH__INIT;
  ca.mode = mode;
  ca.ca_pem = (ProtobufCBinaryData){strlen(pem), (uint8_t *)pem};
  struct cauth_policy *p = NULL;
  char err[256];
  CU_ASSERT_EQUAL(cauth_policy_new(&ca, "vh", &p, err, sizeof(err)), 0);
  return p;
}

#define REQ EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED
#define OPT EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_OPTIONAL

static void decide_follows_the_table(void) {
  struct cauth_policy *req = policy(ca_a, REQ), *req2 = policy(ca_a, REQ), *opt = policy(ca_a, OPT),
                      *other = policy(ca_b, REQ);
  /* no policy on the host: always pass */
  CU_ASSERT_EQUAL(cauth_decide(NULL, other, 1, 0, 0), CAUTH_PASS);
  /* plain HTTP: required is missing, optional passes */
  CU_ASSERT_EQUAL(cauth_decide(req, NULL, 0, 0, 0), CAUTH_MISSING);
  CU_ASSERT_EQUAL(cauth_decide(opt, NULL, 0, 0, 0), CAUTH_PASS);
  /* the connection was made under no policy or another one: 421 */
  CU_ASSERT_EQUAL(cauth_decide(req, NULL, 1, 1, 1), CAUTH_MISDIRECTED);
  CU_ASSERT_EQUAL(cauth_decide(req, other, 1, 1, 1), CAUTH_MISDIRECTED);
  CU_ASSERT_EQUAL(cauth_decide(req, opt, 1, 1, 1), CAUTH_MISDIRECTED);
  /* the same policy from another snapshot is the same policy */
  CU_ASSERT_EQUAL(cauth_decide(req, req2, 1, 1, 1), CAUTH_PASS);
  CU_ASSERT_EQUAL(cauth_decide(req, req2, 1, 0, 0), CAUTH_MISSING);
  CU_ASSERT_EQUAL(cauth_decide(req, req2, 1, 1, 0), CAUTH_INVALID);
  CU_ASSERT_EQUAL(cauth_decide(opt, opt, 1, 0, 0), CAUTH_PASS);
  CU_ASSERT_EQUAL(cauth_decide(opt, opt, 1, 1, 0), CAUTH_INVALID);
  cauth_policy_free(req), cauth_policy_free(req2), cauth_policy_free(opt);
  cauth_policy_free(other);
}

static void an_exact_host_without_a_policy_shadows_a_wildcard_with_one(void) {
  struct cauth_table *t = NULL;
  CU_ASSERT_EQUAL_FATAL(cauth_table_new(&t), 0);
  struct cauth_policy *wild = policy(ca_a, REQ), *any = policy(ca_b, OPT);
  CU_ASSERT_EQUAL(cauth_table_add(t, "*.shop.test", wild), 0);
  CU_ASSERT_EQUAL(cauth_table_add(t, "open.shop.test", NULL), 0);
  CU_ASSERT_EQUAL(cauth_table_add(t, "", any), 0);
  cauth_table_finish(t);
  CU_ASSERT_FALSE(cauth_table_empty(t));
  CU_ASSERT_PTR_EQUAL(cauth_table_lookup(t, "a.shop.test"), wild);
  CU_ASSERT_PTR_EQUAL(cauth_table_lookup(t, "A.Shop.Test"), wild);
  CU_ASSERT_PTR_NULL(cauth_table_lookup(t, "open.shop.test"));
  CU_ASSERT_PTR_EQUAL(cauth_table_lookup(t, "b.a.shop.test"), any); /* one label only */
  CU_ASSERT_PTR_EQUAL(cauth_table_lookup(t, NULL), any);            /* no SNI: the host-less rule */
  cauth_table_unref(t);
}

static void a_bad_ca_bundle_is_refused_with_the_host(void) {
  Edge__V1__ClientAuth ca = EDGE__V1__CLIENT_AUTH__INIT;
  ca.mode = REQ;
  ca.ca_pem = (ProtobufCBinaryData){5, (uint8_t *)"junk\n"};
  struct cauth_policy *p = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL(cauth_policy_new(&ca, "vh:a.test", &p, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "vh:a.test"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no PEM certificate"));
  ca.ca_pem = (ProtobufCBinaryData){strlen(ca_a), (uint8_t *)ca_a};
  ca.mode = 0;
  CU_ASSERT_EQUAL(cauth_policy_new(&ca, "vh", &p, err, sizeof(err)), -1);
}

static void encoders_keep_headers_printable(void) {
  char *s = cauth_printable("CN=a\r\nX-Evil: 1\x7f\xff", 18);
  CU_ASSERT_STRING_EQUAL(s, "CN=a??X-Evil: 1???");
  free(s);
  s = cauth_urlencode("-----BEGIN X-----\nab+/=~._\r\n", 28);
  CU_ASSERT_STRING_EQUAL(s, "-----BEGIN%20X-----%0Aab%2B%2F%3D~._%0D%0A");
  for (const char *p = s; *p; p++) CU_ASSERT(*p > 0x20 && *p < 0x7f);
  free(s);
}

static int setup(void) {
  char err[256], *k1 = NULL, *k2 = NULL;
  const char *a = "ca-a", *b = "ca-b";
  int rc = cert_generate(&a, 1, 2, 1, NULL, NULL, &ca_a, &k1, err, sizeof(err)) ||
           cert_generate(&b, 1, 2, 1, NULL, NULL, &ca_b, &k2, err, sizeof(err));
  free(k1), free(k2);
  return rc ? -1 : 0;
}

static int teardown(void) {
  free(ca_a), free(ca_b);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("client_auth", setup, teardown);
  CU_add_test(s, "decide_follows_the_table", decide_follows_the_table);
  CU_add_test(s, "an_exact_host_without_a_policy_shadows_a_wildcard_with_one",
              an_exact_host_without_a_policy_shadows_a_wildcard_with_one);
  CU_add_test(s, "a_bad_ca_bundle_is_refused_with_the_host",
              a_bad_ca_bundle_is_refused_with_the_host);
  CU_add_test(s, "encoders_keep_headers_printable", encoders_keep_headers_printable);
}
