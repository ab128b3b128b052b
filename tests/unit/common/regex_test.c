/* regex: the dialect of common/regex.h, full-match semantics, refusals, and
 * linear time on patterns that make backtracking engines explode. */
#include "common/regex.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

static int m(const char *pattern, const char *s) {
  struct regex *re = NULL;
  char err[200] = "";
  int rc = regex_compile(pattern, &re, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "compile %s: %s\n", pattern, err);
    CU_FAIL("pattern did not compile");
    return -1;
  }
  int r = regex_match(re, s, strlen(s));
  regex_free(re);
  return r;
}

static void match_is_always_whole_value(void) {
  CU_ASSERT_EQUAL(m("abc", "abc"), 1);
  CU_ASSERT_EQUAL(m("abc", "xabc"), 0);
  CU_ASSERT_EQUAL(m("abc", "abcx"), 0);
  CU_ASSERT_EQUAL(m("^abc$", "abc"), 1);
  CU_ASSERT_EQUAL(m("^abc$", "abcd"), 0);
  CU_ASSERT_EQUAL(m("", ""), 1);
  CU_ASSERT_EQUAL(m("", "a"), 0);
}

static void dot_star_and_repetition(void) {
  CU_ASSERT_EQUAL(m("/v[0-9]+/.*", "/v12/items/3"), 1);
  CU_ASSERT_EQUAL(m("/v[0-9]+/.*", "/v/items"), 0);
  CU_ASSERT_EQUAL(m("a?b", "b"), 1);
  CU_ASSERT_EQUAL(m("a?b", "aab"), 0);
  CU_ASSERT_EQUAL(m("a{2,3}", "a"), 0);
  CU_ASSERT_EQUAL(m("a{2,3}", "aa"), 1);
  CU_ASSERT_EQUAL(m("a{2,3}", "aaa"), 1);
  CU_ASSERT_EQUAL(m("a{2,3}", "aaaa"), 0);
  CU_ASSERT_EQUAL(m("a{2}", "aa"), 1);
  CU_ASSERT_EQUAL(m("a{2,}", "aaaaaa"), 1);
  CU_ASSERT_EQUAL(m("a{2,}", "a"), 0);
  CU_ASSERT_EQUAL(m("x*?y", "xxy"), 1);
}

static void alternation_and_groups(void) {
  CU_ASSERT_EQUAL(m("/(foo|bar)/baz", "/bar/baz"), 1);
  CU_ASSERT_EQUAL(m("/(foo|bar)/baz", "/qux/baz"), 0);
  CU_ASSERT_EQUAL(m("(?:ab)+", "ababab"), 1);
  CU_ASSERT_EQUAL(m("(?:ab)+", "aba"), 0);
  CU_ASSERT_EQUAL(m("a|", ""), 1);
  CU_ASSERT_EQUAL(m("(a|b)*c", "abbac"), 1);
}

static void classes_and_escapes(void) {
  CU_ASSERT_EQUAL(m("[^/]+", "abc"), 1);
  CU_ASSERT_EQUAL(m("[^/]+", "a/c"), 0);
  CU_ASSERT_EQUAL(m("\\d+\\.\\d+", "10.25"), 1);
  CU_ASSERT_EQUAL(m("\\d+\\.\\d+", "10x25"), 0);
  CU_ASSERT_EQUAL(m("\\w+", "a_Z9"), 1);
  CU_ASSERT_EQUAL(m("\\W", "a"), 0);
  CU_ASSERT_EQUAL(m("[\\d-]+", "12-3"), 1);
  CU_ASSERT_EQUAL(m("[]a]", "]"), 1);
  CU_ASSERT_EQUAL(m("\\x41", "A"), 1);
  CU_ASSERT_EQUAL(m("a\\/b", "a/b"), 1);
  CU_ASSERT_EQUAL(m("[a-c]", "d"), 0);
}

static void unsupported_syntax_is_refused_with_a_reason(void) {
  const char *bad[] = {"(a",     "a)",     "[a",  "*a",  "a{3,2}", "\\1", "(?=a)",      "(?i)a",
                       "a{101}", "\\p{L}", "a^b", "a$b", "[z-a]",  "\\",  "[[:alpha:]]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    char err[200] = "";
    struct regex *re = NULL;
    int rc = regex_compile(bad[i], &re, err, sizeof(err));
    if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
    CU_ASSERT(rc < 0);
    CU_ASSERT_PTR_NULL(re);
    CU_ASSERT(strstr(err, "offset") != NULL || strstr(err, "instructions") != NULL ||
              strstr(err, "longer") != NULL);
  }
}

static void program_size_is_bounded(void) {
  char err[200] = "";
  /* 100 × 100 copies would be 10,000 instructions. */
  CU_ASSERT_EQUAL(regex_check("(a{100}){100}", err, sizeof(err)), REGEX_ERR_TOO_BIG);
  char big[REGEX_MAX_PATTERN + 2];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  CU_ASSERT_EQUAL(regex_check(big, err, sizeof(err)), REGEX_ERR_TOO_BIG);
}

/* (a*)*b on "aaaa…a" is exponential for a backtracking engine. Here it is a
 * single pass: the test would not finish in any sensible time otherwise. */
static void pathological_pattern_runs_in_linear_time(void) {
  struct regex *re = NULL;
  char err[200];
  CU_ASSERT_EQUAL_FATAL(regex_compile("(a*)*(a|b)*c", &re, err, sizeof(err)), 0);
  static char s[100001];
  memset(s, 'a', sizeof(s) - 1);
  for (int i = 0; i < 20; i++) CU_ASSERT_EQUAL(regex_match(re, s, sizeof(s) - 1), 0);
  s[sizeof(s) - 2] = 'c';
  CU_ASSERT_EQUAL(regex_match(re, s, sizeof(s) - 1), 1);
  regex_free(re);
}

static void bytes_above_ascii_and_nul_are_plain_bytes(void) {
  struct regex *re = NULL;
  char err[200];
  CU_ASSERT_EQUAL_FATAL(regex_compile("a.b", &re, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(regex_match(re, "a\0b", 3), 1);
  CU_ASSERT_EQUAL(regex_match(re,
                              "a\xc3\xa9"
                              "b",
                              4),
                  0); /* two bytes: . is one byte */
  regex_free(re);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("regex", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(match_is_always_whole_value);
  T(dot_star_and_repetition);
  T(alternation_and_groups);
  T(classes_and_escapes);
  T(unsupported_syntax_is_refused_with_a_reason);
  T(program_size_is_bounded);
  T(pathological_pattern_runs_in_linear_time);
  T(bytes_above_ascii_and_nul_are_plain_bytes);
#undef T
}
