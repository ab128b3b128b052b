/* der: the strict DER walker — nesting, length forms, and every malformed input refused
 * without moving the cursor. */
#include "common/der.h"

#include <CUnit/CUnit.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#define VIEW(a) ((struct der){(a), sizeof(a)})

static void walks_a_nested_sequence(void) {
  /* SEQUENCE { INTEGER 5, OCTET STRING "ab", SEQUENCE { NULL } } */
  static const uint8_t b[] = {0x30, 0x0b, 0x02, 0x01, 0x05, 0x04, 0x02,
                              'a',  'b',  0x30, 0x02, 0x05, 0x00};
  struct der d = VIEW(b), seq, x, tlv;
  uint8_t tag;
  CU_ASSERT_EQUAL_FATAL(der_expect(&d, DER_SEQUENCE, &tlv, &seq), 0);
  CU_ASSERT_EQUAL(d.n, 0);
  CU_ASSERT_PTR_EQUAL(tlv.p, b);
  CU_ASSERT_EQUAL(tlv.n, sizeof(b));
  CU_ASSERT_EQUAL(der_expect(&seq, DER_INTEGER, NULL, &x), 0);
  CU_ASSERT(x.n == 1 && x.p[0] == 5);
  CU_ASSERT_TRUE(der_peek(&seq, DER_OCTET_STRING));
  CU_ASSERT_FALSE(der_peek(&seq, DER_SEQUENCE));
  CU_ASSERT_EQUAL(der_next(&seq, &tag, NULL, &x), 0);
  CU_ASSERT(tag == DER_OCTET_STRING && x.n == 2 && memcmp(x.p, "ab", 2) == 0);
  CU_ASSERT_EQUAL(der_expect(&seq, DER_SEQUENCE, NULL, &x), 0);
  CU_ASSERT_EQUAL(seq.n, 0);
  CU_ASSERT_EQUAL(der_next(&seq, &tag, NULL, NULL), -1); /* empty */
  CU_ASSERT_FALSE(der_peek(&seq, DER_SEQUENCE));
}

static void reads_long_form_lengths(void) {
  uint8_t *b = calloc(1, 4 + 70000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  b[0] = DER_OCTET_STRING, b[1] = 0x83, b[2] = 0x01, b[3] = 0x11, b[4] = 0x70; /* 70000 */
  struct der d = {b, 5 + 70000}, v;
  CU_ASSERT_EQUAL(der_expect(&d, DER_OCTET_STRING, NULL, &v), 0);
  CU_ASSERT_EQUAL(v.n, 70000);
  CU_ASSERT_PTR_EQUAL(v.p, b + 5);
  free(b);
  static const uint8_t one[] = {0x04, 0x81, 0x80}; /* 128 bytes announced, none there */
  struct der t = VIEW(one);
  CU_ASSERT_EQUAL(der_expect(&t, DER_OCTET_STRING, NULL, &v), -1);
}

/* Each of these must fail and leave the cursor where it was. */
static void refuses_malformed_elements_without_moving(void) {
  static const uint8_t truncated[] = {0x30, 0x05, 0x02, 0x01};
  static const uint8_t indefinite[] = {0x30, 0x80, 0x00, 0x00};
  static const uint8_t nonminimal_short[] = {0x04, 0x81, 0x05, 1, 2, 3, 4, 5};
  static const uint8_t leading_zero[] = {0x04, 0x82, 0x00, 0x81};
  static const uint8_t four_byte_len[] = {0x04, 0x84, 0x01, 0x00, 0x00, 0x00};
  static const uint8_t high_tag[] = {0x1f, 0x81, 0x01, 0x00};
  static const uint8_t lone_tag[] = {0x30};
  const struct der cases[] = {
      VIEW(truncated),     VIEW(indefinite), VIEW(nonminimal_short), VIEW(leading_zero),
      VIEW(four_byte_len), VIEW(high_tag),   VIEW(lone_tag),
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct der d = cases[i], v = {0};
    uint8_t tag = 0;
    CU_ASSERT_EQUAL(der_next(&d, &tag, NULL, &v), -1);
    CU_ASSERT(d.p == cases[i].p && d.n == cases[i].n);
  }
}

/* 0x82 0x00 0x85 says 133 in two bytes where one would do: not DER, even with the bytes there. */
static void refuses_a_length_with_a_leading_zero_byte(void) {
  uint8_t b[4 + 133] = {0x04, 0x82, 0x00, 0x85};
  struct der d = {b, sizeof(b)}, v;
  CU_ASSERT_EQUAL(der_expect(&d, DER_OCTET_STRING, NULL, &v), -1);
  b[1] = 0x81, b[2] = 0x85; /* the minimal form of the same length */
  d = (struct der){b, 3 + 133};
  CU_ASSERT_EQUAL(der_expect(&d, DER_OCTET_STRING, NULL, &v), 0);
  CU_ASSERT_EQUAL(v.n, 133);
}

static void expect_of_another_tag_leaves_the_cursor(void) {
  static const uint8_t b[] = {0x02, 0x01, 0x07};
  struct der d = VIEW(b), v;
  CU_ASSERT_EQUAL(der_expect(&d, DER_SEQUENCE, NULL, &v), -1);
  CU_ASSERT(d.p == b && d.n == sizeof(b));
  CU_ASSERT_EQUAL(der_expect(&d, DER_INTEGER, NULL, &v), 0);
}

/* A real certificate: Certificate ::= SEQUENCE { tbs SEQUENCE, alg SEQUENCE, sig BIT STRING }. */
static void walks_a_real_certificate(void) {
  X509 *x = X509_new();
  EVP_PKEY *k = EVP_EC_gen("P-256");
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"der.test", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_set_pubkey(x, k);
  CU_ASSERT_TRUE_FATAL(X509_sign(x, k, EVP_sha256()) > 0);
  unsigned char *buf = NULL;
  int len = i2d_X509(x, &buf);
  CU_ASSERT_TRUE_FATAL(len > 0);
  struct der d = {buf, (size_t)len}, cert, tbs, alg, sig;
  CU_ASSERT_EQUAL(der_expect(&d, DER_SEQUENCE, NULL, &cert), 0);
  CU_ASSERT_EQUAL(d.n, 0);
  CU_ASSERT_EQUAL(der_expect(&cert, DER_SEQUENCE, NULL, &tbs), 0);
  CU_ASSERT_EQUAL(der_expect(&cert, DER_SEQUENCE, NULL, &alg), 0);
  CU_ASSERT_EQUAL(der_expect(&cert, DER_BIT_STRING, NULL, &sig), 0);
  CU_ASSERT_EQUAL(cert.n, 0);
  OPENSSL_free(buf);
  X509_free(x);
  EVP_PKEY_free(k);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("der", NULL, NULL);
  CU_add_test(s, "walks_a_nested_sequence", walks_a_nested_sequence);
  CU_add_test(s, "reads_long_form_lengths", reads_long_form_lengths);
  CU_add_test(s, "refuses_malformed_elements_without_moving",
              refuses_malformed_elements_without_moving);
  CU_add_test(s, "refuses_a_length_with_a_leading_zero_byte",
              refuses_a_length_with_a_leading_zero_byte);
  CU_add_test(s, "expect_of_another_tag_leaves_the_cursor",
              expect_of_another_tag_leaves_the_cursor);
  CU_add_test(s, "walks_a_real_certificate", walks_a_real_certificate);
}
