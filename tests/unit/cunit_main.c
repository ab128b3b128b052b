/*
 * Shared main for every CUnit test binary: the test file defines
 * test_register(), which adds its suites to the CUnit registry. Runs them
 * in basic mode (which prints CUnit's "Run Summary") and exits non-zero,
 * with one line saying why, when anything did not pass:
 *
 *   - a failed assertion or a failed test;
 *   - a suite whose setup or teardown function failed (CUnit counts these
 *     apart from assertions: a failed setup silently runs none of the
 *     suite's tests, a failed teardown is where leak checks live);
 *   - a registered test that did not run (so a suite that stopped early
 *     can never pass as "0 failures");
 *   - an empty binary (nothing registered).
 *
 * Callers: every edge_unit_test (bazel/edge.bzl) and the CUnit integration
 * tests. Single-threaded; owns the CUnit registry for the process.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

void test_register(void);

int main(void) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  test_register();
  if (CU_get_error() != CUE_SUCCESS) {
    fprintf(stderr, "FAILED: registering the tests: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
  }
  unsigned registered = CU_get_registry()->uiNumberOfTests;
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  const CU_RunSummary *sum = CU_get_run_summary();
  unsigned asserts_failed = sum->nAssertsFailed, tests_failed = sum->nTestsFailed;
  unsigned suites_failed = sum->nSuitesFailed, ran = sum->nTestsRun;
  CU_cleanup_registry();
  int rc = 0;
  if (asserts_failed || tests_failed) {
    fprintf(stderr, "FAILED: %u assertions in %u tests\n", asserts_failed, tests_failed);
    rc = 1;
  }
  if (suites_failed) {
    fprintf(stderr, "FAILED: %u suites failed their setup or teardown\n", suites_failed);
    rc = 1;
  }
  if (ran != registered) {
    fprintf(stderr, "FAILED: %u of %u registered tests ran\n", ran, registered);
    rc = 1;
  }
  if (registered == 0) {
    fprintf(stderr, "FAILED: no tests registered\n");
    rc = 3;
  }
  return rc;
}
