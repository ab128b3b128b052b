/* headermod: Gateway API header modifier semantics and refusal of values
 * that could split a header. */
#include "common/headermod.h"

#include <CUnit/CUnit.h>
#include <string.h>

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static int has(const struct headermod_header *h, long n, const char *name, const char *value) {
  int count = 0;
  for (long i = 0; i < n; i++)
    if (h[i].name_len == strlen(name) && !strncasecmp(h[i].name, name, h[i].name_len) &&
        h[i].value_len == strlen(value) && !memcmp(h[i].value, value, h[i].value_len))
      count++;
  return count;
}

static void set_add_remove_like_the_conformance_case(void) {
  struct headermod_header in[] = {H("some-other-header", "val"), H("x-header-set", "old"),
                                  H("x-header-add-append", "something"),
                                  H("x-header-remove", "gone"), H("X-Header-Set", "dup")};
  struct headermod_header set[] = {H("x-header-set", "set-overwrites-values")};
  struct headermod_header add[] = {H("x-header-add", "add-appends-values"),
                                   H("x-header-add-append", "append-value")};
  const char *rm[] = {"X-Header-Remove"};
  struct headermod m = {set, 1, add, 2, rm, 1};
  struct headermod_header out[16];
  long n = headermod_apply(&m, in, 5, out, 16);
  CU_ASSERT_EQUAL_FATAL(n, 5);
  CU_ASSERT_EQUAL(has(out, n, "some-other-header", "val"), 1);
  CU_ASSERT_EQUAL(has(out, n, "x-header-set", "set-overwrites-values"), 1);
  CU_ASSERT_EQUAL(has(out, n, "x-header-set", "old") + has(out, n, "x-header-set", "dup"), 0);
  CU_ASSERT_EQUAL(has(out, n, "x-header-remove", "gone"), 0);
  CU_ASSERT_EQUAL(has(out, n, "x-header-add", "add-appends-values"), 1);
  CU_ASSERT_EQUAL(has(out, n, "x-header-add-append", "something"), 1);
  CU_ASSERT_EQUAL(has(out, n, "x-header-add-append", "append-value"), 1);
  /* set keeps the position of the first occurrence */
  CU_ASSERT_EQUAL(strncmp(out[1].name, "x-header-set", 12), 0);
}

static void set_of_an_absent_header_adds_it(void) {
  struct headermod_header in[] = {H("a", "1")};
  struct headermod_header set[] = {H("b", "2")};
  struct headermod m = {set, 1, NULL, 0, NULL, 0};
  struct headermod_header out[4];
  long n = headermod_apply(&m, in, 1, out, 4);
  CU_ASSERT_EQUAL(n, 2);
  CU_ASSERT_EQUAL(has(out, n, "b", "2"), 1);
}

static void control_bytes_in_configured_values_are_refused(void) {
  struct headermod_header in[] = {H("a", "1")};
  struct headermod_header crlf[] = {H("x", "v\r\nInjected: 1")};
  struct headermod_header nul[] = {{"x", 1, "a\0b", 3}};
  struct headermod_header badname[] = {H("x y", "v")};
  struct headermod_header out[4];
  struct headermod m1 = {crlf, 1, NULL, 0, NULL, 0};
  struct headermod m2 = {NULL, 0, nul, 1, NULL, 0};
  struct headermod m3 = {badname, 1, NULL, 0, NULL, 0};
  CU_ASSERT_EQUAL(headermod_apply(&m1, in, 1, out, 4), HEADERMOD_ERR_INVALID);
  CU_ASSERT_EQUAL(headermod_apply(&m2, in, 1, out, 4), HEADERMOD_ERR_INVALID);
  CU_ASSERT_EQUAL(headermod_apply(&m3, in, 1, out, 4), HEADERMOD_ERR_INVALID);
  struct headermod_header tab[] = {H("x", "a\tb")};
  struct headermod m4 = {tab, 1, NULL, 0, NULL, 0};
  CU_ASSERT_EQUAL(headermod_apply(&m4, in, 1, out, 4), 2);
}

static void output_never_overflows(void) {
  struct headermod_header in[] = {H("a", "1"), H("b", "2")};
  struct headermod_header add[] = {H("c", "3")};
  struct headermod m = {NULL, 0, add, 1, NULL, 0};
  struct headermod_header out[2];
  CU_ASSERT_EQUAL(headermod_apply(&m, in, 2, out, 2), HEADERMOD_ERR_SPACE);
  CU_ASSERT_EQUAL(headermod_apply(NULL, in, 2, out, 2), 2);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("headermod", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(set_add_remove_like_the_conformance_case);
  T(set_of_an_absent_header_adds_it);
  T(control_bytes_in_configured_values_are_refused);
  T(output_never_overflows);
#undef T
}
