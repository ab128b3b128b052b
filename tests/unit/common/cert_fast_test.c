/*
 * cert_fast_test — cert_parse's fast walk of plain certificates reports the
 * same facts as the full OpenSSL path it falls back to, and
 * cert_pem_block decodes only the block it is asked for.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"

static char err[256];

/* Leaf (names a.example.com, *.b.example, 127.0.0.1) signed by a CA; the caller frees all. */
static void make_chain(char **ca, char **cak, char **leaf, char **leafk) {
  const char *can[] = {"edge test CA"};
  const char *names[] = {"a.example.com", "*.b.example", "127.0.0.1"};
  CU_ASSERT_EQUAL_FATAL(cert_generate(can, 1, 10, 1, NULL, NULL, ca, cak, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(cert_generate(names, 3, 10, 0, *ca, *cak, leaf, leafk, err, sizeof(err)),
                        0);
}

static void facts_do_not_depend_on_text_before_the_certificate(void) {
  char *ca, *cak, *leaf, *leafk;
  make_chain(&ca, &cak, &leaf, &leafk);
  /* a key block first sends cert_parse down the full path; the facts must agree */
  size_t n = strlen(leafk) + strlen(leaf) + 1;
  char *keyfirst = malloc(n);
  snprintf(keyfirst, n, "%s%s", leafk, leaf);
  struct cert_info fast, full;
  CU_ASSERT_EQUAL_FATAL(cert_parse(leaf, strlen(leaf), &fast, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(cert_parse(keyfirst, strlen(keyfirst), &full, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(memcmp(&fast, &full, sizeof(fast)), 0);
  CU_ASSERT_EQUAL(fast.n_names, 2); /* DNS names only: the IP SAN is not a name */
  CU_ASSERT_STRING_EQUAL(fast.names[0], "a.example.com");
  CU_ASSERT_STRING_EQUAL(fast.names[1], "*.b.example");
  CU_ASSERT_STRING_EQUAL(fast.issuer, "O=edge, CN=edge test CA");
  CU_ASSERT(fast.not_after - fast.not_before > 9 * 86400);
  free(keyfirst), free(ca), free(cak), free(leaf), free(leafk);
}

static void every_prefix_of_a_chain_parses_or_is_rejected(void) {
  char *ca, *cak, *leaf, *leafk;
  make_chain(&ca, &cak, &leaf, &leafk);
  size_t n = strlen(leaf) + strlen(ca) + 1;
  char *chain = malloc(n);
  snprintf(chain, n, "%s%s", leaf, ca);
  for (size_t l = 0; l < n; l++) {
    struct cert_info info;
    int rc = cert_parse(chain, l, &info, err, sizeof(err));
    CU_ASSERT(rc == 0 || rc == CERT_ERR_PARSE);
    if (rc == 0) {
      CU_ASSERT(l >= strlen(leaf) - 1);
      CU_ASSERT_EQUAL(info.chain_len, l >= n - 2 ? 2 : 1);
    }
  }
  free(chain), free(ca), free(cak), free(leaf), free(leafk);
}

static void pem_block_decodes_only_the_named_first_block(void) {
  char *ca, *cak, *leaf, *leafk;
  make_chain(&ca, &cak, &leaf, &leafk);
  size_t dl = 0;
  const char *next = NULL;
  uint8_t *der = cert_pem_block(leaf, strlen(leaf), "CERTIFICATE", &dl, &next);
  CU_ASSERT_PTR_NOT_NULL_FATAL(der);
  CU_ASSERT(dl > 100 && der[0] == 0x30);
  CU_ASSERT_PTR_EQUAL(next, leaf + strlen(leaf) - 1); /* just before the final newline */
  free(der);
  CU_ASSERT_PTR_NULL(cert_pem_block(leafk, strlen(leafk), "CERTIFICATE", &dl, NULL));
  CU_ASSERT_PTR_NULL(cert_pem_block(leaf, strlen(leaf), "PRIVATE KEY", &dl, NULL));
  const char *bad = "-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n";
  CU_ASSERT_PTR_NULL(cert_pem_block(bad, strlen(bad), "CERTIFICATE", &dl, NULL));
  free(ca), free(cak), free(leaf), free(leafk);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("cert_fast", NULL, NULL);
  CU_add_test(s, "facts_do_not_depend_on_text_before_the_certificate",
              facts_do_not_depend_on_text_before_the_certificate);
  CU_add_test(s, "every_prefix_of_a_chain_parses_or_is_rejected",
              every_prefix_of_a_chain_parses_or_is_rejected);
  CU_add_test(s, "pem_block_decodes_only_the_named_first_block",
              pem_block_decodes_only_the_named_first_block);
}
