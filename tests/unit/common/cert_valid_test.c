/* cert_valid: the one OpenSSL decision on a served certificate, including
 * the cases syncd's old fast checks let through (issue 15 point 3). */
#include "common/cert_valid.h"

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"

static char *ec_cert, *ec_key, *other_key;

static int setup(void) {
  char err[256], *c2;
  const char *names[] = {"shop.example.com"};
  if (cert_generate(names, 1, 30, 0, NULL, NULL, &ec_cert, &ec_key, err, sizeof(err)) != 0)
    return -1;
  if (cert_generate(names, 1, 30, 0, NULL, NULL, &c2, &other_key, err, sizeof(err)) != 0) return -1;
  free(c2);
  return 0;
}

static int teardown(void) {
  free(ec_cert), free(ec_key), free(other_key);
  return 0;
}

/* A self-signed RSA certificate of `bits` (PEM strings, malloc'd). */
static void rsa_pair(int bits, char **cert, char **key) {
  EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"weak.example.com", -1,
                             -1, 0);
  X509_set_issuer_name(x, n);
  X509_sign(x, k, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  *cert = strndup(p, (size_t)len);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  len = BIO_get_mem_data(b, &p);
  *key = strndup(p, (size_t)len);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(k);
}

static int check(const char *cert, const char *key, char *err, size_t errlen) {
  int64_t na = 0;
  return cert_valid_check((const uint8_t *)cert, strlen(cert), (const uint8_t *)key, strlen(key),
                          &na, err, errlen);
}

static void a_matching_ec_pair_is_accepted_with_its_expiry(void) {
  char err[256] = "";
  int64_t na = 0;
  CU_ASSERT_EQUAL(cert_valid_check((const uint8_t *)ec_cert, strlen(ec_cert),
                                   (const uint8_t *)ec_key, strlen(ec_key), &na, err, sizeof(err)),
                  0);
  CU_ASSERT(na > 0);
}

static void a_foreign_key_is_refused(void) {
  char err[256] = "";
  CU_ASSERT_EQUAL(check(ec_cert, other_key, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "tls.key"));
}

static void a_key_below_the_security_level_is_refused(void) {
  char *c, *k, err[256] = "";
  rsa_pair(1024, &c, &k);
  CU_ASSERT_EQUAL(check(c, k, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "refused"));
  free(c), free(k);
  rsa_pair(2048, &c, &k);
  CU_ASSERT_EQUAL(check(c, k, err, sizeof(err)), 0);
  free(c), free(k);
}

static void a_chain_entry_that_does_not_parse_is_refused_not_dropped(void) {
  char err[256] = "";
  char *bad = malloc(strlen(ec_cert) + 200);
  sprintf(bad, "%s-----BEGIN CERTIFICATE-----\nAAAAnotbase64!!\n-----END CERTIFICATE-----\n",
          ec_cert);
  CU_ASSERT_EQUAL(check(bad, ec_key, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "certificate 2 does not parse"));
  free(bad);
}

static void a_pem_marker_not_at_the_start_of_a_line_is_no_certificate(void) {
  char err[256] = "";
  char *bad = malloc(strlen(ec_cert) + 4);
  sprintf(bad, "  %s", ec_cert);
  CU_ASSERT_EQUAL(check(bad, ec_key, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no PEM certificate"));
  free(bad);
}

static void empty_and_garbage_inputs_are_refused_without_crashing(void) {
  char err[256] = "";
  CU_ASSERT_EQUAL(cert_valid_check(NULL, 0, NULL, 0, NULL, err, sizeof(err)), -1);
  CU_ASSERT_EQUAL(check("garbage", ec_key, err, sizeof(err)), -1);
  CU_ASSERT_EQUAL(check(ec_cert, "garbage", err, sizeof(err)), -1);
  /* a reason never carries key material */
  CU_ASSERT_PTR_NULL(strstr(err, "PRIVATE KEY"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("cert_valid", setup, teardown);
  CU_add_test(s, "a_matching_ec_pair_is_accepted_with_its_expiry",
              a_matching_ec_pair_is_accepted_with_its_expiry);
  CU_add_test(s, "a_foreign_key_is_refused", a_foreign_key_is_refused);
  CU_add_test(s, "a_key_below_the_security_level_is_refused",
              a_key_below_the_security_level_is_refused);
  CU_add_test(s, "a_chain_entry_that_does_not_parse_is_refused_not_dropped",
              a_chain_entry_that_does_not_parse_is_refused_not_dropped);
  CU_add_test(s, "a_pem_marker_not_at_the_start_of_a_line_is_no_certificate",
              a_pem_marker_not_at_the_start_of_a_line_is_no_certificate);
  CU_add_test(s, "empty_and_garbage_inputs_are_refused_without_crashing",
              empty_and_garbage_inputs_are_refused_without_crashing);
}
