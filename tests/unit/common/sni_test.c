/*
 * sni: one table of certificates and server names with the certificate
 * and the kind of match each name must get.
 */
#include "common/sni.h"

#include <CUnit/CUnit.h>
#include <string.h>

/* certificates 0..4 and their names; 4 is the default */
static const char *const names[][3] = {
    {"a.test", "www.a.test", NULL}, {"*.w.test", NULL, NULL},     {"a.test", "*.a.test", NULL},
    {"x.w.test", NULL, NULL},       {"default.test", NULL, NULL},
};

struct scase {
  const char *sni;
  long cert;
  enum sni_match how;
};

static const struct scase cases[] = {
    {"a.test", 0, SNI_EXACT},        /* first certificate with the name wins */
    {"A.Test.", 0, SNI_EXACT},       /* case and one trailing dot ignored */
    {"www.a.test", 0, SNI_EXACT},    /* exact beats cert 2's wildcard */
    {"zz.a.test", 2, SNI_WILDCARD},  /* one label under *.a.test */
    {"y.zz.a.test", 4, SNI_DEFAULT}, /* two labels: not covered */
    {"x.w.test", 3, SNI_EXACT},      /* exact beats the earlier wildcard */
    {"q.w.test", 1, SNI_WILDCARD},
    {"w.test", 4, SNI_DEFAULT}, /* the wildcard's own domain is not covered */
    {"other.test", 4, SNI_DEFAULT},
    {NULL, 4, SNI_DEFAULT}, /* no SNI */
    {"", 4, SNI_DEFAULT},
    {"bad name", 4, SNI_DEFAULT}, /* not a host name */
    {"*.a.test", 4, SNI_DEFAULT}, /* a client may not ask for a pattern */
};

static void build(struct sni_table *t, int with_default) {
  sni_table_init(t);
  for (size_t c = 0; c < 5; c++)
    for (size_t k = 0; k < 3 && names[c][k]; k++)
      CU_ASSERT_EQUAL(sni_table_add(t, names[c][k], c), 0);
  if (with_default) sni_table_set_default(t, 4);
  sni_table_finish(t);
}

static void every_name_gets_its_certificate_and_match_kind(void) {
  struct sni_table t;
  build(&t, 1);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    enum sni_match how;
    long got = sni_table_select(&t, cases[i].sni, &how);
    if (got != cases[i].cert || how != cases[i].how)
      fprintf(stderr, "sni %s: got %ld %s\n", cases[i].sni ? cases[i].sni : "(null)", got,
              sni_match_str(how));
    CU_ASSERT_EQUAL(got, cases[i].cert);
    CU_ASSERT_EQUAL(how, cases[i].how);
  }
  sni_table_free(&t);
}

static void without_a_default_an_unknown_name_gets_none(void) {
  struct sni_table t;
  build(&t, 0);
  enum sni_match how;
  CU_ASSERT_EQUAL(sni_table_select(&t, "other.test", &how), -1);
  CU_ASSERT_EQUAL(how, SNI_NONE);
  sni_table_free(&t);
}

static void bad_certificate_names_are_refused(void) {
  struct sni_table t;
  sni_table_init(&t);
  CU_ASSERT_EQUAL(sni_table_add(&t, "a..test", 0), SNI_ERR_INVALID);
  CU_ASSERT_EQUAL(sni_table_add(&t, "a.*.test", 0), SNI_ERR_INVALID);
  CU_ASSERT_EQUAL(sni_table_add(&t, "a.test\r\n", 0), SNI_ERR_INVALID);
  CU_ASSERT_EQUAL(sni_table_add(&t, NULL, 0), SNI_ERR_INVALID);
  sni_table_free(&t);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("sni", NULL, NULL);
  CU_add_test(s, "every_name_gets_its_certificate_and_match_kind",
              every_name_gets_its_certificate_and_match_kind);
  CU_add_test(s, "without_a_default_an_unknown_name_gets_none",
              without_a_default_an_unknown_name_gets_none);
  CU_add_test(s, "bad_certificate_names_are_refused", bad_certificate_names_are_refused);
}
