/* buf: appends, formatting, consumption, and the sticky failure a long text checks once. */
#include "common/buf.h"

#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void appends_and_formats_in_order(void) {
  struct buf b = {0};
  CU_ASSERT_EQUAL(buf_puts(&b, "GET "), 0);
  CU_ASSERT_EQUAL(buf_append(&b, "/x", 2), 0);
  CU_ASSERT_EQUAL(buf_append(&b, NULL, 0), 0);
  CU_ASSERT_EQUAL(buf_printf(&b, " HTTP/1.%d\r\n", 1), 0);
  CU_ASSERT_EQUAL(buf_put_u64(&b, 0), 0);
  CU_ASSERT_EQUAL(buf_put_u64(&b, 18446744073709551615ull), 0);
  CU_ASSERT_EQUAL(buf_puts(&b, " "), 0);
  CU_ASSERT_EQUAL(buf_put_hex(&b, 0x1a2b), 0);
  CU_ASSERT_EQUAL(buf_put_hex(&b, 0), 0);
  CU_ASSERT_STRING_EQUAL(buf_cstr(&b), "GET /x HTTP/1.1\r\n018446744073709551615 1a2b0");
  CU_ASSERT_EQUAL(b.len, strlen(b.data));
  buf_free(&b);
  CU_ASSERT_PTR_NULL(b.data);
}

static void printf_grows_past_the_first_allocation(void) {
  struct buf b = {0};
  char big[5000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(buf_printf(&b, "%s|%d", big, i), 0);
  CU_ASSERT_EQUAL(b.len, 3 * (sizeof(big) - 1 + 2));
  CU_ASSERT_EQUAL(memcmp(b.data + sizeof(big) - 1, "|0", 2), 0);
  CU_ASSERT_EQUAL(memcmp(b.data + b.len - 2, "|2", 2), 0);
  buf_free(&b);
}

static void consume_drops_the_front(void) {
  struct buf b = {0};
  buf_puts(&b, "abcdef");
  buf_consume(&b, 2);
  CU_ASSERT_STRING_EQUAL(buf_cstr(&b), "cdef");
  buf_consume(&b, 100);
  CU_ASSERT_EQUAL(b.len, 0);
  buf_puts(&b, "z");
  CU_ASSERT_STRING_EQUAL(buf_cstr(&b), "z");
  buf_free(&b);
}

static void detach_hands_over_a_string_and_empties(void) {
  struct buf b = {0};
  char *s = buf_detach(&b);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_STRING_EQUAL(s, "");
  free(s);
  buf_printf(&b, "n=%zu", (size_t)42);
  s = buf_detach(&b);
  CU_ASSERT_STRING_EQUAL(s, "n=42");
  CU_ASSERT_PTR_NULL(b.data);
  CU_ASSERT_EQUAL(b.len, 0);
  free(s);
}

/* An impossible size fails; the contents stay, every later append fails until reset. */
static void failure_is_sticky_and_keeps_the_contents(void) {
  struct buf b = {0};
  CU_ASSERT_EQUAL(buf_puts(&b, "kept"), 0);
  CU_ASSERT_EQUAL(buf_reserve(&b, SIZE_MAX / 2), -ENOMEM);
  CU_ASSERT_TRUE(b.failed);
  CU_ASSERT_EQUAL(b.len, 4);
  CU_ASSERT_EQUAL(memcmp(b.data, "kept", 4), 0);
  CU_ASSERT_EQUAL(buf_puts(&b, "x"), -ENOMEM);
  CU_ASSERT_EQUAL(buf_printf(&b, "%d", 1), -ENOMEM);
  CU_ASSERT_EQUAL(buf_put_u64(&b, 1), -ENOMEM);
  CU_ASSERT_EQUAL(b.len, 4);
  CU_ASSERT_PTR_NULL(buf_cstr(&b));
  buf_reset(&b);
  CU_ASSERT_EQUAL(buf_puts(&b, "again"), 0);
  CU_ASSERT_STRING_EQUAL(buf_cstr(&b), "again");
  buf_reserve(&b, SIZE_MAX / 2);
  CU_ASSERT_PTR_NULL(buf_detach(&b));
  CU_ASSERT_PTR_NULL(b.data);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("buf", NULL, NULL);
  CU_add_test(s, "appends_and_formats_in_order", appends_and_formats_in_order);
  CU_add_test(s, "printf_grows_past_the_first_allocation", printf_grows_past_the_first_allocation);
  CU_add_test(s, "consume_drops_the_front", consume_drops_the_front);
  CU_add_test(s, "detach_hands_over_a_string_and_empties", detach_hands_over_a_string_and_empties);
  CU_add_test(s, "failure_is_sticky_and_keeps_the_contents",
              failure_is_sticky_and_keeps_the_contents);
}
