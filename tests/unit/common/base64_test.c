/* base64: RFC 4648 vectors, both alphabets, padding and white-space rules, output bounds,
 * and a round trip against OpenSSL's encoder. */
#include "common/base64.h"

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Decodes a C string; returns the length or the error, result NUL-terminated in out. */
static ssize_t dec(const char *in, char *out, size_t cap, unsigned flags) {
  ssize_t n = base64_decode(in, strlen(in), (uint8_t *)out, cap, flags);
  if (n >= 0 && (size_t)n < cap) out[n] = '\0';
  return n;
}

static void decodes_the_rfc4648_vectors_padded_and_not(void) {
  static const char *const vec[][3] = {
      {"", "", ""},
      {"Zg==", "Zg", "f"},
      {"Zm8=", "Zm8", "fo"},
      {"Zm9v", "Zm9v", "foo"},
      {"Zm9vYg==", "Zm9vYg", "foob"},
      {"Zm9vYmE=", "Zm9vYmE", "fooba"},
      {"Zm9vYmFy", "Zm9vYmFy", "foobar"},
  };
  char out[32];
  for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
    CU_ASSERT_EQUAL(dec(vec[i][0], out, sizeof(out), 0), (ssize_t)strlen(vec[i][2]));
    CU_ASSERT_STRING_EQUAL(out, vec[i][2]);
    CU_ASSERT_EQUAL(dec(vec[i][1], out, sizeof(out), 0), (ssize_t)strlen(vec[i][2]));
    CU_ASSERT_STRING_EQUAL(out, vec[i][2]);
  }
}

static void accepts_the_standard_and_url_safe_alphabets(void) {
  uint8_t out[8];
  CU_ASSERT_EQUAL(base64_decode("+/8=", 4, out, sizeof(out), 0), 2);
  CU_ASSERT(out[0] == 0xfb && out[1] == 0xff);
  memset(out, 0, sizeof(out));
  CU_ASSERT_EQUAL(base64_decode("-_8", 3, out, sizeof(out), 0), 2);
  CU_ASSERT(out[0] == 0xfb && out[1] == 0xff);
}

static void white_space_only_when_allowed(void) {
  char out[32];
  CU_ASSERT_EQUAL(dec("Zm9v\r\nYmFy\n", out, sizeof(out), BASE64_ALLOW_SPACE), 6);
  CU_ASSERT_STRING_EQUAL(out, "foobar");
  CU_ASSERT_EQUAL(dec(" Zm 9v\tYg= =", out, sizeof(out), BASE64_ALLOW_SPACE), 4);
  CU_ASSERT_STRING_EQUAL(out, "foob");
  CU_ASSERT_EQUAL(dec("Zm9v\nYmFy", out, sizeof(out), 0), BASE64_ERR_INVALID);
  CU_ASSERT_EQUAL(dec("Zm9v YmFy", out, sizeof(out), 0), BASE64_ERR_INVALID);
}

static void refuses_bad_bytes_and_misplaced_padding(void) {
  char out[32];
  static const char *const bad[] = {
      "Zm9v*", "Zm9v.YmFy", "Zg==Zg==", "Zg=a", "Zm9===", "=Zm9v", "Zm9vY", "Z", "Zm9v\x80",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CU_ASSERT_EQUAL(dec(bad[i], out, sizeof(out), BASE64_ALLOW_SPACE), BASE64_ERR_INVALID);
  uint8_t o[4];
  CU_ASSERT_EQUAL(base64_decode("Zm\0v", 4, o, sizeof(o), 0), BASE64_ERR_INVALID);
}

static void never_writes_past_cap(void) {
  uint8_t out[8];
  memset(out, 0xAA, sizeof(out));
  CU_ASSERT_EQUAL(base64_decode("Zm9vYmFy", 8, out, 5, 0), BASE64_ERR_SPACE);
  CU_ASSERT_EQUAL(out[5], 0xAA);
  CU_ASSERT_EQUAL(base64_decode("Zm9vYmFy", 8, out, 6, 0), 6);
  CU_ASSERT_EQUAL(base64_decode("Zg==", 4, out, 0, 0), BASE64_ERR_SPACE);
  CU_ASSERT(base64_decoded_max(8) >= 6);
}

static void round_trips_what_openssl_encodes(void) {
  uint8_t in[300], out[300];
  char enc[512];
  srand(7);
  for (size_t len = 0; len < sizeof(in); len++) {
    for (size_t i = 0; i < len; i++) in[i] = (uint8_t)rand();
    int el = EVP_EncodeBlock((unsigned char *)enc, in, (int)len);
    CU_ASSERT_TRUE_FATAL(base64_decoded_max((size_t)el) >= len);
    ssize_t n = base64_decode(enc, (size_t)el, out, sizeof(out), 0);
    CU_ASSERT_EQUAL_FATAL(n, (ssize_t)len);
    CU_ASSERT_EQUAL_FATAL(memcmp(in, out, len), 0);
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("base64", NULL, NULL);
  CU_add_test(s, "decodes_the_rfc4648_vectors_padded_and_not",
              decodes_the_rfc4648_vectors_padded_and_not);
  CU_add_test(s, "accepts_the_standard_and_url_safe_alphabets",
              accepts_the_standard_and_url_safe_alphabets);
  CU_add_test(s, "white_space_only_when_allowed", white_space_only_when_allowed);
  CU_add_test(s, "refuses_bad_bytes_and_misplaced_padding",
              refuses_bad_bytes_and_misplaced_padding);
  CU_add_test(s, "never_writes_past_cap", never_writes_past_cap);
  CU_add_test(s, "round_trips_what_openssl_encodes", round_trips_what_openssl_encodes);
}
