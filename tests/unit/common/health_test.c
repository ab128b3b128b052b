/* health: rise/fall state machine and the check-response status parser. */
#include "common/health.h"

#include <CUnit/CUnit.h>
#include <string.h>

static int parse(const char *s) {
  return health_parse_status((const uint8_t *)s, strlen(s));
}

static void up_backend_goes_down_after_fall_consecutive_failures(void) {
  struct health_state h;
  health_init(&h, 2, 3);
  CU_ASSERT_EQUAL(h.up, 1);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 0);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 0);
  CU_ASSERT_EQUAL(h.up, 1);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 1);
  CU_ASSERT_EQUAL(h.up, 0);
}

static void a_success_resets_the_failure_run(void) {
  struct health_state h;
  health_init(&h, 2, 3);
  health_observe(&h, 0);
  health_observe(&h, 0);
  health_observe(&h, 1);
  health_observe(&h, 0);
  health_observe(&h, 0);
  CU_ASSERT_EQUAL(h.up, 1);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 1);
  CU_ASSERT_EQUAL(h.up, 0);
}

static void down_backend_comes_back_after_rise_consecutive_successes(void) {
  struct health_state h;
  health_init(&h, 2, 1);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 1);
  CU_ASSERT_EQUAL(health_observe(&h, 1), 0);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 0); /* run broken */
  CU_ASSERT_EQUAL(health_observe(&h, 1), 0);
  CU_ASSERT_EQUAL(h.up, 0);
  CU_ASSERT_EQUAL(health_observe(&h, 1), 1);
  CU_ASSERT_EQUAL(h.up, 1);
}

static void thresholds_below_one_count_as_one(void) {
  struct health_state h;
  health_init(&h, 0, -5);
  CU_ASSERT_EQUAL(health_observe(&h, 0), 1);
  CU_ASSERT_EQUAL(health_observe(&h, 1), 1);
}

static void status_line_parses_code(void) {
  CU_ASSERT_EQUAL(parse("HTTP/1.1 200 OK\r\n"), 200);
  CU_ASSERT_EQUAL(parse("HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"), 503);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 204\r\n"), 204);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 301 Moved\n"), 301);
}

static void every_prefix_of_a_valid_line_needs_more(void) {
  const char *line = "HTTP/1.1 200 OK\r\n";
  for (size_t i = 0; i < strlen(line); i++)
    CU_ASSERT_EQUAL(health_parse_status((const uint8_t *)line, i), HEALTH_PARSE_NEED_MORE);
}

static void garbage_is_rejected(void) {
  CU_ASSERT_EQUAL(parse("SSH-2.0-OpenSSH\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/2 200\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 2x0 OK\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 099 Low\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 2000 OK\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 200 O\x01K\r\n"), HEALTH_PARSE_ERR);
  CU_ASSERT_EQUAL(parse("HTTP/1.1 200 OK\rX"), HEALTH_PARSE_ERR);
  uint8_t nul[] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '2', '0', '0', ' ', 0, '\n'};
  CU_ASSERT_EQUAL(health_parse_status(nul, sizeof(nul)), HEALTH_PARSE_ERR);
}

static void overlong_status_line_is_rejected(void) {
  char line[HEALTH_STATUS_LINE_MAX + 32];
  memset(line, 'a', sizeof(line));
  memcpy(line, "HTTP/1.1 200 ", 13);
  CU_ASSERT_EQUAL(health_parse_status((const uint8_t *)line, sizeof(line)), HEALTH_PARSE_ERR);
}

static void only_2xx_and_3xx_pass(void) {
  CU_ASSERT(health_status_ok(200));
  CU_ASSERT(health_status_ok(302));
  CU_ASSERT(!health_status_ok(199));
  CU_ASSERT(!health_status_ok(404));
  CU_ASSERT(!health_status_ok(503));
}

static void expected_range_is_inclusive_and_zero_means_2xx_3xx(void) {
  CU_ASSERT(health_status_expected(204, 200, 204));
  CU_ASSERT(health_status_expected(200, 200, 204));
  CU_ASSERT(!health_status_expected(205, 200, 204));
  CU_ASSERT(!health_status_expected(302, 200, 204));
  CU_ASSERT(health_status_expected(418, 418, 418));
  CU_ASSERT(health_status_expected(302, 0, 0));
  CU_ASSERT(!health_status_expected(404, 0, 0));
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("health", NULL, NULL);
  CU_add_test(s, "up_backend_goes_down_after_fall_consecutive_failures",
              up_backend_goes_down_after_fall_consecutive_failures);
  CU_add_test(s, "a_success_resets_the_failure_run", a_success_resets_the_failure_run);
  CU_add_test(s, "down_backend_comes_back_after_rise_consecutive_successes",
              down_backend_comes_back_after_rise_consecutive_successes);
  CU_add_test(s, "thresholds_below_one_count_as_one", thresholds_below_one_count_as_one);
  CU_add_test(s, "status_line_parses_code", status_line_parses_code);
  CU_add_test(s, "every_prefix_of_a_valid_line_needs_more",
              every_prefix_of_a_valid_line_needs_more);
  CU_add_test(s, "garbage_is_rejected", garbage_is_rejected);
  CU_add_test(s, "overlong_status_line_is_rejected", overlong_status_line_is_rejected);
  CU_add_test(s, "only_2xx_and_3xx_pass", only_2xx_and_3xx_pass);
  CU_add_test(s, "expected_range_is_inclusive_and_zero_means_2xx_3xx",
              expected_range_is_inclusive_and_zero_means_2xx_3xx);
}
