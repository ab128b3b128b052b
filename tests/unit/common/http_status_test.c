/* http_status: the phrases every status edge writes, and the fallback. */
#include "common/http_status.h"

#include <CUnit/CUnit.h>

static void phrases_of_the_statuses_edge_writes(void) {
  static const struct {
    int code;
    const char *phrase;
  } t[] = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    CU_ASSERT_STRING_EQUAL(http_status_reason(t[i].code), t[i].phrase);
}

static void unknown_codes_get_a_neutral_phrase(void) {
  CU_ASSERT_STRING_EQUAL(http_status_reason(299), "Unknown");
  CU_ASSERT_STRING_EQUAL(http_status_reason(0), "Unknown");
  CU_ASSERT_STRING_EQUAL(http_status_reason(-1), "Unknown");
  CU_ASSERT_STRING_EQUAL(http_status_reason(1000), "Unknown");
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("http_status", NULL, NULL);
  CU_add_test(s, "phrases_of_the_statuses_edge_writes", phrases_of_the_statuses_edge_writes);
  CU_add_test(s, "unknown_codes_get_a_neutral_phrase", unknown_codes_get_a_neutral_phrase);
}
