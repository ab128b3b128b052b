/*
 * default_cert_test — generated certificates pass the proxies' own check
 * (common/cert_valid, which syncd runs on every Secret and on
 * --default-cert), in every key form (PKCS#8, SEC1), with the reasons an
 * operator sees; accepts matching pairs in every
 * key form (PKCS#8, SEC1) through both its fast and full paths and keeps
 * its exact rejection reasons.
 */
#include "syncd/default_cert.h"

#include <CUnit/CUnit.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/cert_valid.h"

/* A self-signed P-256 certificate for cn (common/cert's generator). */
static int gen_cert(const char *cn, int days, char **crt, char **key, char *err, size_t errlen) {
  return cert_generate(&cn, 1, days, 0, NULL, NULL, crt, key, err, errlen);
}

/* The SEC1 ("EC PRIVATE KEY") form of a PKCS#8 PEM key; malloc'd. */
static char *to_sec1(const char *pkcs8) {
  BIO *in = BIO_new_mem_buf(pkcs8, -1), *out = BIO_new(BIO_s_mem());
  EVP_PKEY *k = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
  char *s = NULL;
  if (k && PEM_write_bio_PrivateKey_traditional(out, k, NULL, NULL, 0, NULL, NULL)) {
    char *data;
    long n = BIO_get_mem_data(out, &data);
    s = calloc(1, (size_t)n + 1);
    if (s) memcpy(s, data, (size_t)n);
  }
  EVP_PKEY_free(k);
  BIO_free(in);
  BIO_free(out);
  return s;
}

static int check(const char *crt, const char *key, int64_t *not_after, char *err) {
  err[0] = '\0';
  return cert_valid_check((const uint8_t *)crt, strlen(crt), (const uint8_t *)key, strlen(key),
                          not_after, err, 128);
}

static void matching_pkcs8_pair_is_accepted_with_its_expiry(void) {
  char *crt, *key, err[128];
  int64_t na = 0;
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(key, "-----BEGIN PRIVATE KEY-----"));
  CU_ASSERT_EQUAL(check(crt, key, &na, err), 0);
  int64_t now = (int64_t)time(NULL);
  CU_ASSERT(na > now + 29 * 86400 && na <= now + 31 * 86400);
  free(crt), free(key);
}

static void matching_sec1_key_is_accepted(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  char *sec1 = to_sec1(key);
  CU_ASSERT_PTR_NOT_NULL_FATAL(sec1);
  CU_ASSERT_PTR_NOT_NULL(strstr(sec1, "BEGIN EC PRIVATE KEY"));
  CU_ASSERT_EQUAL(check(crt, sec1, NULL, err), 0);
  free(crt), free(key), free(sec1);
}

static void key_of_another_certificate_does_not_match(void) {
  char *crt, *key, *crt2, *key2, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(gen_cert("b.com", 30, &crt2, &key2, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(check(crt, key2, NULL, err), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "tls.key does not match the certificate"));
  char *sec1 = to_sec1(key2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(sec1);
  CU_ASSERT_EQUAL(check(crt, sec1, NULL, err), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "tls.key does not match the certificate"));
  free(crt), free(key), free(crt2), free(key2), free(sec1);
}

static void damaged_key_or_certificate_keeps_its_reason(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  char bad_key[] = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";
  const char *no_key = "tls.key holds no usable private key (PEM, unencrypted)";
  const char *no_cert = "tls.crt holds no PEM certificate";
  CU_ASSERT_EQUAL(check(crt, bad_key, NULL, err), -1);
  CU_ASSERT_STRING_EQUAL(err, no_key);
  CU_ASSERT_EQUAL(
      check("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", key, NULL, err), -1);
  CU_ASSERT_STRING_EQUAL(err, no_cert);
  /* the certificate given as the key and the key as the certificate */
  CU_ASSERT_EQUAL(check(key, crt, NULL, err), -1);
  CU_ASSERT_STRING_EQUAL(err, no_cert);
  CU_ASSERT_EQUAL(check(crt, crt, NULL, err), -1);
  CU_ASSERT_STRING_EQUAL(err, no_key);
  free(crt), free(key);
}

/* What OpenSSL itself says of a pair: its decoders and X509_check_private_key. */
static int oracle(const char *crt, const char *key) {
  BIO *cb = BIO_new_mem_buf(crt, -1), *kb = BIO_new_mem_buf(key, -1);
  X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
  int ok = x && k && X509_check_private_key(x, k) == 1;
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(cb);
  BIO_free(kb);
  ERR_clear_error();
  return ok;
}

static char *pem_of(const uint8_t *der, size_t n) {
  char *b64 = malloc(4 * ((n + 2) / 3) + 1), *out = malloc(4 * n + 128);
  int len = EVP_EncodeBlock((unsigned char *)b64, der, (int)n), o = 0;
  o += sprintf(out, "-----BEGIN CERTIFICATE-----\n");
  for (int i = 0; i < len; i += 64) o += sprintf(out + o, "%.64s\n", b64 + i);
  sprintf(out + o, "-----END CERTIFICATE-----\n");
  free(b64);
  return out;
}

/* The DER fast path never accepts what OpenSSL rejects, nor the reverse:
 * every byte of the certificate flipped, one at a time. */
static void every_damaged_certificate_byte_gets_openssls_answer(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  size_t n = 0;
  uint8_t *der = cert_pem_block(crt, strlen(crt), "CERTIFICATE", &n, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(der);
  int accepted = 0, disagree = 0;
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      der[i] ^= (uint8_t)(1u << bit);
      char *pem = pem_of(der, n);
      int ours = check(pem, key, NULL, err) == 0, theirs = oracle(pem, key);
      if (ours != theirs) {
        disagree++;
        fprintf(stderr, "byte %zu bit %d: edge %s, OpenSSL %s\n", i, bit,
                ours ? "accepts" : "rejects", theirs ? "accepts" : "rejects");
      }
      accepted += ours;
      free(pem);
      der[i] ^= (uint8_t)(1u << bit);
    }
  }
  CU_ASSERT_EQUAL(disagree, 0);
  CU_ASSERT(accepted > 0); /* flips in the signature, say, still match */
  free(der), free(crt), free(key);
}

static void every_prefix_of_a_key_is_rejected_or_matches_without_crashing(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("a.com", 30, &crt, &key, err, sizeof(err)), 0);
  size_t n = strlen(key);
  for (size_t i = 0; i < n; i++) {
    int rc = cert_valid_check((const uint8_t *)crt, strlen(crt), (const uint8_t *)key, i, NULL, err,
                              sizeof(err));
    CU_ASSERT(rc == 0 || rc == -1);
  }
  free(crt), free(key);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("default_cert", NULL, NULL);
  CU_add_test(s, "matching_pkcs8_pair_is_accepted_with_its_expiry",
              matching_pkcs8_pair_is_accepted_with_its_expiry);
  CU_add_test(s, "matching_sec1_key_is_accepted", matching_sec1_key_is_accepted);
  CU_add_test(s, "key_of_another_certificate_does_not_match",
              key_of_another_certificate_does_not_match);
  CU_add_test(s, "damaged_key_or_certificate_keeps_its_reason",
              damaged_key_or_certificate_keeps_its_reason);
  CU_add_test(s, "every_damaged_certificate_byte_gets_openssls_answer",
              every_damaged_certificate_byte_gets_openssls_answer);
  CU_add_test(s, "every_prefix_of_a_key_is_rejected_or_matches_without_crashing",
              every_prefix_of_a_key_is_rejected_or_matches_without_crashing);
}
