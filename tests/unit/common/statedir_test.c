/* statedir: a missing persistence directory is created 0700; a file, an
 * unwritable directory or an uncreatable parent is refused with a reason. */
#include "common/statedir.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];

static void make_base(void) {
  snprintf(base, sizeof(base), "/tmp/statedir_test.XXXXXX");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
}

static void missing_directory_and_parents_are_created_0700(void) {
  make_base();
  char p[512], err[256] = "";
  snprintf(p, sizeof(p), "%s/a/b/state/", base);
  CU_ASSERT_EQUAL(statedir_prepare(p, err, sizeof(err)), 1);
  struct stat st;
  CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
  CU_ASSERT(S_ISDIR(st.st_mode));
  CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
  /* the second time it exists */
  CU_ASSERT_EQUAL(statedir_prepare(p, err, sizeof(err)), 0);
}

static void a_file_in_the_way_is_refused_with_a_reason(void) {
  make_base();
  char p[512], q[600], err[256] = "";
  snprintf(p, sizeof(p), "%s/file", base);
  FILE *f = fopen(p, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fclose(f);
  CU_ASSERT_EQUAL(statedir_prepare(p, err, sizeof(err)), -ENOTDIR);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
  snprintf(q, sizeof(q), "%s/sub", p);
  CU_ASSERT(statedir_prepare(q, err, sizeof(err)) < 0);
  CU_ASSERT(err[0] != '\0');
}

static void an_uncreatable_or_unwritable_directory_is_refused(void) {
  if (geteuid() == 0) {
    /* root writes into any directory: what root cannot do is create one
     * under /proc, the same refusal path */
    char err[256] = "";
    CU_ASSERT(statedir_prepare("/proc/edge-statedir-test", err, sizeof(err)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create"));
    return;
  }
  make_base();
  char p[512], err[256] = "";
  snprintf(p, sizeof(p), "%s/ro", base);
  CU_ASSERT_EQUAL_FATAL(mkdir(p, 0500), 0);
  CU_ASSERT(statedir_prepare(p, err, sizeof(err)) < 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "not writable"));
}

static void empty_name_is_refused(void) {
  char err[256] = "";
  CU_ASSERT_EQUAL(statedir_prepare("", err, sizeof(err)), -EINVAL);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("statedir", NULL, NULL);
  CU_add_test(s, "missing_directory_and_parents_are_created_0700",
              missing_directory_and_parents_are_created_0700);
  CU_add_test(s, "a_file_in_the_way_is_refused_with_a_reason",
              a_file_in_the_way_is_refused_with_a_reason);
  CU_add_test(s, "an_uncreatable_or_unwritable_directory_is_refused",
              an_uncreatable_or_unwritable_directory_is_refused);
  CU_add_test(s, "empty_name_is_refused", empty_name_is_refused);
}
