/* trace_context: the W3C traceparent/tracestate receiver rules, formatting
 * and ratio sampling. */
#include "l7proxy/trace_context.h"

#include <CUnit/CUnit.h>
#include <string.h>

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static int parse(const char *s, struct trace_context *c) {
  return trace_parse_traceparent(s, strlen(s), c);
}

static void valid_traceparent_is_parsed(void) {
  struct trace_context c;
  CU_ASSERT_EQUAL_FATAL(parse(TP, &c), 0);
  CU_ASSERT_EQUAL(c.trace_id[0], 0x0a);
  CU_ASSERT_EQUAL(c.trace_id[15], 0x9c);
  CU_ASSERT_EQUAL(c.span_id[0], 0xb7);
  CU_ASSERT_EQUAL(c.span_id[7], 0x31);
  CU_ASSERT_EQUAL(c.flags, 0x01);
  CU_ASSERT_EQUAL(parse(" \t" TP " ", &c), 0); /* OWS around the value */
}

static void uppercase_hex_is_rejected(void) {
  struct trace_context c;
  CU_ASSERT_EQUAL(parse("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01", &c), -1);
}

static void all_zero_ids_are_rejected(void) {
  struct trace_context c;
  CU_ASSERT_EQUAL(parse("00-00000000000000000000000000000000-b7ad6b7169203331-01", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", &c), -1);
}

static void version_ff_and_bad_shapes_are_rejected(void) {
  struct trace_context c;
  CU_ASSERT_EQUAL(parse("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01", &c), -1);
  CU_ASSERT_EQUAL(parse("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g", &c), -1);
  CU_ASSERT_EQUAL(parse("", &c), -1);
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx", &c), -1);
}

static void future_version_may_carry_more_fields(void) {
  struct trace_context c;
  CU_ASSERT_EQUAL(parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-ever", &c),
                  0);
  CU_ASSERT_EQUAL(c.flags, 1);
  /* but only after a dash */
  CU_ASSERT_EQUAL(parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x", &c), -1);
}

static void rejected_value_leaves_output_untouched(void) {
  struct trace_context c;
  memset(&c, 0x5a, sizeof(c));
  CU_ASSERT_EQUAL(parse("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", &c), -1);
  CU_ASSERT_EQUAL(c.trace_id[0], 0x5a);
}

static int ts(const char *s) {
  return trace_tracestate_valid(s, strlen(s));
}

static void tracestate_lists_are_checked(void) {
  CU_ASSERT_TRUE(ts("congo=t61rcWkgMzE"));
  CU_ASSERT_TRUE(ts("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"));
  CU_ASSERT_TRUE(ts("fw529a3039@dt=ZmYxZDk, ,tenant1@vendor=x"));
  CU_ASSERT_TRUE(ts(""));
  CU_ASSERT_TRUE(ts(" , "));
  CU_ASSERT_FALSE(ts("Congo=x"));              /* upper-case key */
  CU_ASSERT_FALSE(ts("1abc=x"));               /* simple keys start with a letter */
  CU_ASSERT_FALSE(ts("congo"));                /* no '=' */
  CU_ASSERT_FALSE(ts("congo=a=b"));            /* '=' in the value */
  CU_ASSERT_TRUE(ts("congo=x "));              /* a trailing space is list OWS */
  CU_ASSERT_FALSE(ts("congo=\x01"));           /* control character */
  CU_ASSERT_FALSE(ts("t@=x"));                 /* empty system id */
  CU_ASSERT_FALSE(ts("t@vendorwaytoolong=x")); /* system id > 14 */
}

static void tracestate_member_and_size_limits(void) {
  char buf[1024] = "";
  for (int i = 0; i < 32; i++) {
    char m[16];
    snprintf(m, sizeof(m), "%sk%d=v", i ? "," : "", i);
    strcat(buf, m);
  }
  CU_ASSERT_TRUE(ts(buf));
  strcat(buf, ",k32=v");
  CU_ASSERT_FALSE(ts(buf)); /* 33 members */
  char big[TRACE_STATE_MAX + 8];
  memset(big, 'a', sizeof(big));
  memcpy(big, "k=", 2);
  big[TRACE_STATE_MAX + 1] = '\0';
  CU_ASSERT_FALSE(ts(big));
}

static void formatted_traceparent_parses_back(void) {
  uint8_t t[16], s[8];
  trace_fill_id(t, 16, 0x1122334455667788ull, 0x99aabbccddeeff00ull);
  trace_fill_id(s, 8, 0x0102030405060708ull, 0);
  char out[TRACEPARENT_LEN + 1];
  trace_format_traceparent(t, s, 1, out);
  CU_ASSERT_EQUAL(strlen(out), TRACEPARENT_LEN);
  struct trace_context c;
  CU_ASSERT_EQUAL_FATAL(parse(out, &c), 0);
  CU_ASSERT_EQUAL(memcmp(c.trace_id, t, 16), 0);
  CU_ASSERT_EQUAL(memcmp(c.span_id, s, 8), 0);
  CU_ASSERT_EQUAL(c.flags, 1);
}

static void fill_id_is_never_all_zero(void) {
  uint8_t id[8];
  trace_fill_id(id, 8, 0, 0);
  int nz = 0;
  for (int i = 0; i < 8; i++) nz |= id[i];
  CU_ASSERT_NOT_EQUAL(nz, 0);
}

static void ratio_sampling_keeps_about_the_ratio(void) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  int kept = 0, all = 0, none = 0;
  for (int i = 0; i < 100000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint8_t id[16];
    trace_fill_id(id, 16, x * 31, x);
    kept += trace_sample_ratio(id, 0.01);
    all += trace_sample_ratio(id, 1.0);
    none += trace_sample_ratio(id, 0.0);
  }
  CU_ASSERT(kept > 700 && kept < 1300); /* 1 % of 100,000 */
  CU_ASSERT_EQUAL(all, 100000);
  CU_ASSERT_EQUAL(none, 0);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("trace_context", NULL, NULL);
  CU_add_test(s, "valid_traceparent_is_parsed", valid_traceparent_is_parsed);
  CU_add_test(s, "uppercase_hex_is_rejected", uppercase_hex_is_rejected);
  CU_add_test(s, "all_zero_ids_are_rejected", all_zero_ids_are_rejected);
  CU_add_test(s, "version_ff_and_bad_shapes_are_rejected", version_ff_and_bad_shapes_are_rejected);
  CU_add_test(s, "future_version_may_carry_more_fields", future_version_may_carry_more_fields);
  CU_add_test(s, "rejected_value_leaves_output_untouched", rejected_value_leaves_output_untouched);
  CU_add_test(s, "tracestate_lists_are_checked", tracestate_lists_are_checked);
  CU_add_test(s, "tracestate_member_and_size_limits", tracestate_member_and_size_limits);
  CU_add_test(s, "formatted_traceparent_parses_back", formatted_traceparent_parses_back);
  CU_add_test(s, "fill_id_is_never_all_zero", fill_id_is_never_all_zero);
  CU_add_test(s, "ratio_sampling_keeps_about_the_ratio", ratio_sampling_keeps_about_the_ratio);
}
