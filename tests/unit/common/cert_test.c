/* cert: parsing, key checks and generation on OpenSSL 3 and BoringSSL. */
#include "common/cert.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char err[256];

static void generated_certificate_parses_with_names_and_expiry(void) {
  const char *names[] = {"shop.example.test", "*.shop.example.test", "127.0.0.1"};
  char *c = NULL, *k = NULL;
  CU_ASSERT_EQUAL_FATAL(cert_generate(names, 3, 30, 0, NULL, NULL, &c, &k, err, sizeof(err)), 0);
  struct cert_info info;
  CU_ASSERT_EQUAL_FATAL(cert_parse(c, strlen(c), &info, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(info.subject_cn, "shop.example.test");
  CU_ASSERT_EQUAL(info.n_names, 2); /* the IP SAN is not a DNS name */
  CU_ASSERT_STRING_EQUAL(info.names[1], "*.shop.example.test");
  int64_t now = (int64_t)time(NULL);
  CU_ASSERT(info.not_after > now + 29 * 86400 && info.not_after <= now + 30 * 86400 + 60);
  CU_ASSERT(info.not_before < now);
  CU_ASSERT_PTR_NOT_NULL(strstr(info.issuer, "CN=shop.example.test"));
  CU_ASSERT_EQUAL(info.chain_len, 1);
  CU_ASSERT_EQUAL(cert_check_key(c, strlen(c), k, strlen(k), err, sizeof(err)), 0);
  free(c);
  free(k);
}

static void key_of_another_certificate_is_a_mismatch(void) {
  const char *a[] = {"a.test"}, *b[] = {"b.test"};
  char *ca, *ka, *cb, *kb;
  CU_ASSERT_EQUAL_FATAL(cert_generate(a, 1, 1, 0, NULL, NULL, &ca, &ka, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(cert_generate(b, 1, 1, 0, NULL, NULL, &cb, &kb, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(cert_check_key(ca, strlen(ca), kb, strlen(kb), err, sizeof(err)),
                  CERT_ERR_MISMATCH);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match"));
  free(ca);
  free(ka);
  free(cb);
  free(kb);
}

static void garbage_pem_is_rejected_with_a_reason(void) {
  struct cert_info info;
  const char *junk = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
  CU_ASSERT_EQUAL(cert_parse(junk, strlen(junk), &info, err, sizeof(err)), CERT_ERR_PARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "no PEM certificate"));
  CU_ASSERT_EQUAL(cert_parse("", 0, &info, err, sizeof(err)), CERT_ERR_PARSE);
  const char *n[] = {"x.test"};
  char *c, *k;
  CU_ASSERT_EQUAL_FATAL(cert_generate(n, 1, 1, 0, NULL, NULL, &c, &k, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(cert_check_key(c, strlen(c), "nope", 4, err, sizeof(err)), CERT_ERR_KEY);
  free(c);
  free(k);
}

static void ca_signed_leaf_names_the_ca_as_issuer_and_chain_counts(void) {
  const char *can[] = {"edge test CA"}, *leaf[] = {"syncd.local"};
  char *cac, *cak, *lc, *lk;
  CU_ASSERT_EQUAL_FATAL(cert_generate(can, 1, 10, 1, NULL, NULL, &cac, &cak, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(cert_generate(leaf, 1, 10, 0, cac, cak, &lc, &lk, err, sizeof(err)), 0);
  size_t n = strlen(lc) + strlen(cac) + 1;
  char *chain = malloc(n);
  snprintf(chain, n, "%s%s", lc, cac);
  struct cert_info info;
  CU_ASSERT_EQUAL(cert_parse(chain, strlen(chain), &info, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(info.chain_len, 2);
  CU_ASSERT_PTR_NOT_NULL(strstr(info.issuer, "CN=edge test CA"));
  CU_ASSERT_STRING_EQUAL(info.subject_cn, "syncd.local");
  free(chain);
  free(cac);
  free(cak);
  free(lc);
  free(lk);
}

static void wildcard_covers_exactly_one_label(void) {
  CU_ASSERT_TRUE(cert_name_matches("*.foo.com", "bar.foo.com"));
  CU_ASSERT_TRUE(cert_name_matches("*.foo.com", "BAR.Foo.com"));
  CU_ASSERT_FALSE(cert_name_matches("*.foo.com", "baz.bar.foo.com"));
  CU_ASSERT_FALSE(cert_name_matches("*.foo.com", "foo.com"));
  CU_ASSERT_TRUE(cert_name_matches("foo.com", "FOO.com"));
  CU_ASSERT_FALSE(cert_name_matches("foo.com", "bar.foo.com"));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("cert", NULL, NULL);
  CU_add_test(s, "generated_certificate_parses_with_names_and_expiry",
              generated_certificate_parses_with_names_and_expiry);
  CU_add_test(s, "key_of_another_certificate_is_a_mismatch",
              key_of_another_certificate_is_a_mismatch);
  CU_add_test(s, "garbage_pem_is_rejected_with_a_reason", garbage_pem_is_rejected_with_a_reason);
  CU_add_test(s, "ca_signed_leaf_names_the_ca_as_issuer_and_chain_counts",
              ca_signed_leaf_names_the_ca_as_issuer_and_chain_counts);
  CU_add_test(s, "wildcard_covers_exactly_one_label", wildcard_covers_exactly_one_label);
}
