/* client_auth: the per-request decision, the handshake lookup's precedence
 * and the encoders of what goes upstream. */
#include "l7proxy/client_auth.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"

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
  cauth_policy_unref(req), cauth_policy_unref(req2), cauth_policy_unref(opt);
  cauth_policy_unref(other);
}

/* A virtual host resource (no routes) with an optional client-auth policy. */
static Edge__V1__Resource *vhost(const char *name, const char *host, const char *pem, int mode) {
  Edge__V1__Resource *r = calloc(1, sizeof(*r));
  Edge__V1__VirtualHost *vh = calloc(1, sizeof(*vh));
  edge__v1__resource__init(r);
  edge__v1__virtual_host__init(vh);
  vh->name = (char *)name;
  vh->host = (char *)host;
  if (pem) {
    Edge__V1__ClientAuth *ca = calloc(1, sizeof(*ca));
    edge__v1__client_auth__init(ca);
    ca->mode = mode;
    ca->ca_pem = (ProtobufCBinaryData){strlen(pem), (uint8_t *)pem};
    vh->client_auth = ca;
  }
  r->kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r->virtual_host = vh;
  return r;
}

static void vhost_free(Edge__V1__Resource *r) {
  free(r->virtual_host->client_auth);
  free(r->virtual_host);
  free(r);
}

/* The handshake's lookup follows the snapshot's host tables: exact, then
 * the one-label wildcard, then the host-less host. */
static void an_exact_host_without_a_policy_shadows_a_wildcard_with_one(void) {
  Edge__V1__Resource *res[3] = {vhost("vh:wild", "*.shop.test", ca_a, REQ),
                                vhost("vh:open", "open.shop.test", NULL, 0),
                                vhost("vh:any", "", ca_b, OPT)};
  struct l7_builder *b = NULL;
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 1, 1, res, 3, NULL, 0, &s, err, sizeof(err)), 0);
  const struct cauth_policy *wild = l7_snapshot_client_auth_for(s, "a.shop.test");
  const struct cauth_policy *any = l7_snapshot_client_auth_for(s, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(wild);
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  CU_ASSERT_TRUE(cauth_policy_required(wild));
  CU_ASSERT_FALSE(cauth_policy_required(any));
  CU_ASSERT_PTR_EQUAL(l7_snapshot_client_auth_for(s, "A.Shop.Test"), wild);
  CU_ASSERT_PTR_NULL(l7_snapshot_client_auth_for(s, "open.shop.test"));
  CU_ASSERT_PTR_EQUAL(l7_snapshot_client_auth_for(s, "b.a.shop.test"), any); /* one label only */
  CU_ASSERT_PTR_EQUAL(l7_snapshot_client_auth_for(s, ""), any); /* no SNI: the host-less host */
  struct tls_client_auth_source src;
  CU_ASSERT_EQUAL(l7_snapshot_client_auth_source(s, &src), 1);
  CU_ASSERT_PTR_EQUAL(src.lookup(src.arg, "x.shop.test"), wild);
  src.release(src.arg);

  /* A push that changes only the wildcard host: a connection's reference
   * keeps the old policy alive, the other hosts keep theirs (the same
   * objects: nothing else was compiled again). */
  struct cauth_policy *held = cauth_policy_ref(wild);
  Edge__V1__Resource *up[1] = {vhost("vh:wild", "*.shop.test", ca_b, REQ)};
  struct l7_snapshot *s2 = NULL;
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 2, 0, up, 1, NULL, 0, &s2, err, sizeof(err)), 0);
  const struct cauth_policy *wild2 = l7_snapshot_client_auth_for(s2, "a.shop.test");
  CU_ASSERT_FALSE(cauth_policy_same(wild2, held));
  CU_ASSERT_PTR_EQUAL(l7_snapshot_client_auth_for(s2, NULL), any);
  l7_snapshot_unref(s);
  l7_builder_free(b); /* the first snapshot and its wildcard host are gone now */
  CU_ASSERT_TRUE(cauth_policy_required(held));
  cauth_policy_unref(held);
  CU_ASSERT_PTR_NULL(l7_snapshot_client_auth_for(NULL, "a.shop.test"));
  l7_snapshot_unref(s2);
  for (int i = 0; i < 3; i++) vhost_free(res[i]);
  vhost_free(up[0]);
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
