/* ocsp: the responder URL from AIA, and which answers may be stapled —
 * responses made here with OpenSSL's own OCSP signing, good and hostile. */
#include "syncd/ocsp.h"

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static EVP_PKEY *ca_key, *leaf_key, *stranger_key;
static X509 *ca, *leaf, *leaf_no_aia, *stranger;
static char *chain_pem, *no_aia_pem, *leaf_only_pem, *https_pem, *creds_pem;

static EVP_PKEY *new_key(void) {
  return EVP_EC_gen("P-256");
}

/* A certificate for cn with pubkey key, signed by issuer (NULL: self). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
                       const char *aia) {
  static long serial = 100;
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                          is_ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  if (aia) {
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_info_access, aia);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
  }
  X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
  return x;
}

static char *pem_of(X509 *const *xs, int n) {
  BIO *b = BIO_new(BIO_s_mem());
  for (int i = 0; i < n; i++) PEM_write_bio_X509(b, xs[i]);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  char *out = strndup(p, (size_t)len);
  BIO_free(b);
  return out;
}

/* A DER OCSPResponse about `about` (issued by ca) signed by signer. */
static uint8_t *response(X509 *about, int status, long this_off, long next_off, X509 *signer,
                         EVP_PKEY *key, int resp_status, size_t *len) {
  OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
  OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), about, ca);
  ASN1_TIME *thisupd = X509_gmtime_adj(NULL, this_off), *nextupd = X509_gmtime_adj(NULL, next_off);
  ASN1_TIME *rev = status == V_OCSP_CERTSTATUS_REVOKED ? X509_gmtime_adj(NULL, -60) : NULL;
  OCSP_basic_add1_status(bs, id, status, status == V_OCSP_CERTSTATUS_REVOKED ? 1 : 0, rev, thisupd,
                         nextupd);
  OCSP_basic_sign(bs, signer, key, EVP_sha256(), NULL, 0);
  OCSP_RESPONSE *r = OCSP_response_create(resp_status, resp_status == 0 ? bs : NULL);
  unsigned char *der = NULL;
  *len = (size_t)i2d_OCSP_RESPONSE(r, &der);
  OCSP_RESPONSE_free(r);
  OCSP_BASICRESP_free(bs);
  OCSP_CERTID_free(id);
  ASN1_TIME_free(thisupd), ASN1_TIME_free(nextupd), ASN1_TIME_free(rev);
  return der;
}

static struct ocsp_target *target(const char *pem, char *err, size_t errlen) {
  struct ocsp_target *t = NULL;
  return ocsp_target_new(pem, strlen(pem), &t, err, errlen) == 0 ? t : NULL;
}

static void the_responder_url_and_issuer_come_from_the_chain(void) {
  char err[256];
  struct ocsp_target *t = target(chain_pem, err, sizeof(err));
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_STRING_EQUAL(ocsp_target_url(t), "http://127.0.0.1:9/ocsp");
  size_t n;
  CU_ASSERT_PTR_NOT_NULL(ocsp_target_request(t, &n));
  CU_ASSERT(n > 20);
  ocsp_target_free(t);
  CU_ASSERT_PTR_NULL(target(no_aia_pem, err, sizeof(err)));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no OCSP responder"));
  CU_ASSERT_PTR_NULL(target(leaf_only_pem, err, sizeof(err)));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no issuer certificate"));
  CU_ASSERT_PTR_NULL(target(https_pem, err, sizeof(err)));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a plain http://"));
  CU_ASSERT_PTR_NULL(target(creds_pem, err, sizeof(err)));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a plain http://"));
}

static void only_a_current_answer_signed_for_this_certificate_is_stapled(void) {
  char err[256];
  struct ocsp_target *t = target(chain_pem, err, sizeof(err));
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  int64_t now = (int64_t)time(NULL);
  struct ocsp_result r;
  size_t len;
  uint8_t *der = response(leaf, V_OCSP_CERTSTATUS_GOOD, -60, 3600, ca, ca_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(r.status, OCSP_STATUS_GOOD);
  CU_ASSERT(r.next_update > now + 3500 && r.next_update <= now + 3700);
  /* refetched half-way, within bounds */
  int64_t at = ocsp_refresh_at(&r, now, 60, 86400);
  CU_ASSERT(at >= now + 1700 && at <= now + 1900);
  CU_ASSERT_EQUAL(ocsp_refresh_at(&r, now, 3000, 86400), now + 3000);
  CU_ASSERT_EQUAL(ocsp_refresh_at(&r, now, 60, 600), now + 600);
  OPENSSL_free(der);
  /* after nextUpdate (beyond the skew): expired */
  der = response(leaf, V_OCSP_CERTSTATUS_GOOD, -60, 3600, ca, ca_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now + 4200, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "expired"));
  OPENSSL_free(der);
  der = response(leaf, V_OCSP_CERTSTATUS_REVOKED, -60, 3600, ca, ca_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(r.status, OCSP_STATUS_REVOKED);
  CU_ASSERT(r.revoked_at > 0);
  OPENSSL_free(der);
  /* a stranger's signature */
  der = response(leaf, V_OCSP_CERTSTATUS_GOOD, -60, 3600, stranger, stranger_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "signature does not verify"));
  OPENSSL_free(der);
  /* about another certificate of the same CA */
  der = response(leaf_no_aia, V_OCSP_CERTSTATUS_GOOD, -60, 3600, ca, ca_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "another certificate"));
  OPENSSL_free(der);
  /* from the future */
  der = response(leaf, V_OCSP_CERTSTATUS_GOOD, 3600, 7200, ca, ca_key, 0, &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "future"));
  OPENSSL_free(der);
  /* the responder's own refusal, garbage, and too much */
  der = response(leaf, V_OCSP_CERTSTATUS_GOOD, -60, 3600, ca, ca_key, OCSP_RESPONSE_STATUS_TRYLATER,
                 &len);
  CU_ASSERT_EQUAL(ocsp_check_response(t, der, len, now, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "responder said"));
  OPENSSL_free(der);
  CU_ASSERT_EQUAL(
      ocsp_check_response(t, (const uint8_t *)"\x30\x03junk", 7, now, &r, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a DER"));
  uint8_t *big = calloc(1, OCSP_RESPONSE_MAX + 1);
  CU_ASSERT_EQUAL(ocsp_check_response(t, big, OCSP_RESPONSE_MAX + 1, now, &r, err, sizeof(err)),
                  -1);
  free(big);
  ocsp_target_free(t);
}

static int setup(void) {
  ca_key = new_key(), leaf_key = new_key(), stranger_key = new_key();
  ca = make_cert("issuing-ca", ca_key, NULL, NULL, 1, NULL);
  stranger = make_cert("stranger", stranger_key, NULL, NULL, 1, NULL);
  leaf = make_cert("shop", leaf_key, ca, ca_key, 0, "OCSP;URI:http://127.0.0.1:9/ocsp");
  leaf_no_aia = make_cert("plain", leaf_key, ca, ca_key, 0, NULL);
  X509 *https = make_cert("s", leaf_key, ca, ca_key, 0, "OCSP;URI:https://127.0.0.1:9/");
  X509 *creds = make_cert("c", leaf_key, ca, ca_key, 0, "OCSP;URI:http://u:p@127.0.0.1:9/");
  X509 *c1[] = {leaf, ca}, *c2[] = {leaf_no_aia, ca}, *c3[] = {leaf}, *c4[] = {https, ca},
       *c5[] = {creds, ca};
  chain_pem = pem_of(c1, 2), no_aia_pem = pem_of(c2, 2), leaf_only_pem = pem_of(c3, 1);
  https_pem = pem_of(c4, 2), creds_pem = pem_of(c5, 2);
  X509_free(https), X509_free(creds);
  return ca && leaf && stranger && chain_pem ? 0 : -1;
}

static int teardown(void) {
  X509_free(ca), X509_free(leaf), X509_free(leaf_no_aia), X509_free(stranger);
  EVP_PKEY_free(ca_key), EVP_PKEY_free(leaf_key), EVP_PKEY_free(stranger_key);
  free(chain_pem), free(no_aia_pem), free(leaf_only_pem), free(https_pem), free(creds_pem);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("ocsp", setup, teardown);
  CU_add_test(s, "the_responder_url_and_issuer_come_from_the_chain",
              the_responder_url_and_issuer_come_from_the_chain);
  CU_add_test(s, "only_a_current_answer_signed_for_this_certificate_is_stapled",
              only_a_current_answer_signed_for_this_certificate_is_stapled);
}
