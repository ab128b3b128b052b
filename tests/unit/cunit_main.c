/*
 * Shared main for every CUnit test binary: the test file defines
 * test_register(), which adds its suites to the CUnit registry. Runs them
 * in basic mode (which prints CUnit's "Run Summary") and exits non-zero on
 * any failure, so Bazel sees the result.
 */
#include <CUnit/Basic.h>
#include <stdlib.h>

void test_register(void);

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  test_register();
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  unsigned ran = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  if (ran == 0) return 3;
  return failed ? 1 : 0;
}
