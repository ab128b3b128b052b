/* timefmt: RFC 3339 UTC stamps, the unset marker, milliseconds, and short buffers. */
#include "common/timefmt.h"

#include <CUnit/CUnit.h>
#include <string.h>

static void formats_seconds_as_rfc3339_utc(void) {
  char out[TIMEFMT_LEN];
  CU_ASSERT_STRING_EQUAL(timefmt_utc(1, out, sizeof(out)), "1970-01-01T00:00:01Z");
  CU_ASSERT_STRING_EQUAL(timefmt_utc(1700000000, out, sizeof(out)), "2023-11-14T22:13:20Z");
  CU_ASSERT_STRING_EQUAL(timefmt_utc(951782400, out, sizeof(out)), "2000-02-29T00:00:00Z");
  CU_ASSERT_STRING_EQUAL(timefmt_utc(253402300799, out, sizeof(out)), "9999-12-31T23:59:59Z");
}

static void unset_times_print_a_dash(void) {
  char out[TIMEFMT_LEN];
  CU_ASSERT_STRING_EQUAL(timefmt_utc(0, out, sizeof(out)), "-");
  CU_ASSERT_STRING_EQUAL(timefmt_utc(-5, out, sizeof(out)), "-");
}

static void milliseconds_for_log_lines(void) {
  char out[TIMEFMT_LEN];
  CU_ASSERT_STRING_EQUAL(timefmt_utc_ms(1700000000, 7, out, sizeof(out)),
                         "2023-11-14T22:13:20.007Z");
  CU_ASSERT_STRING_EQUAL(timefmt_utc_ms(0, 999, out, sizeof(out)), "1970-01-01T00:00:00.999Z");
  CU_ASSERT_STRING_EQUAL(timefmt_utc_ms(0, -1, out, sizeof(out)), "1970-01-01T00:00:00Z");
}

static void short_buffers_truncate(void) {
  char out[8];
  memset(out, 'x', sizeof(out));
  timefmt_utc(1700000000, out, sizeof(out));
  CU_ASSERT_STRING_EQUAL(out, "2023-11");
  char none[1] = {'x'};
  timefmt_utc(1, none, 0);
  CU_ASSERT_EQUAL(none[0], 'x');
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("timefmt", NULL, NULL);
  CU_add_test(s, "formats_seconds_as_rfc3339_utc", formats_seconds_as_rfc3339_utc);
  CU_add_test(s, "unset_times_print_a_dash", unset_times_print_a_dash);
  CU_add_test(s, "milliseconds_for_log_lines", milliseconds_for_log_lines);
  CU_add_test(s, "short_buffers_truncate", short_buffers_truncate);
}
