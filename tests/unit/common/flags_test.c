/* flags: parsing rules, one-line errors, --help, durations, host:port. */
#include "common/flags.h"

#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A daemon-like flag table, reset before each test. */
static const char *listen_addr;
static long workers;
static int insecure;
static struct flag_list backends;
static uint32_t timeout_ms;

static const struct flag_def defs[] = {
    {"listen", FLAG_STRING, &listen_addr, "address to listen on", "ADDR:PORT", 0, 0},
    {"workers", FLAG_INT, &workers, "worker threads", "N", 1, 256},
    {"insecure", FLAG_BOOL, &insecure, "plaintext gRPC", NULL, 0, 0},
    {"backend", FLAG_LIST, &backends, "a backend", "ADDR:PORT", 0, 0},
    {"timeout", FLAG_DURATION_MS, &timeout_ms, "request timeout", "DURATION", 0, 0},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static char err[256];

static void reset(void) {
  listen_addr = NULL;
  workers = 0;
  insecure = 0;
  memset(&backends, 0, sizeof(backends));
  timeout_ms = 0;
  err[0] = '\0';
}

/* Parses a NULL-terminated argument list (argv[0] is added). */
static int parse_pos(const char **positional, int maxpos, int *npos, const char *first, ...) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = "prog";
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  return flags_parse(defs, NDEFS, argc, argv, positional, maxpos, npos, err, sizeof(err));
}

#define PARSE(...) parse_pos(NULL, 0, NULL, __VA_ARGS__, (const char *)NULL)

static void equals_and_separate_value_forms_both_set_the_flag(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--listen=127.0.0.1:80", "--workers", "4"), FLAGS_OK);
  CU_ASSERT_STRING_EQUAL(listen_addr, "127.0.0.1:80");
  CU_ASSERT_EQUAL(workers, 4);
}

static void unknown_flag_is_an_error_naming_it(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--bogus=1"), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "unknown flag --bogus");
  reset();
  CU_ASSERT_EQUAL(PARSE("-x"), FLAGS_ERR);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown flag -x"));
}

static void missing_value_at_the_end_is_an_error(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--listen"), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "--listen: missing value");
}

static void non_numeric_int_is_an_error(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=abc"), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "--workers: not a number: abc");
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=4x"), FLAGS_ERR);
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers="), FLAGS_ERR);
}

static void int_outside_min_max_is_out_of_range(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=0"), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "--workers: out of range [1, 256]: 0");
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=257"), FLAGS_ERR);
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=99999999999999999999999"), FLAGS_ERR);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range"));
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=256"), FLAGS_OK);
  CU_ASSERT_EQUAL(workers, 256);
}

static void bool_accepts_bare_and_explicit_forms(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--insecure"), FLAGS_OK);
  CU_ASSERT_EQUAL(insecure, 1);
  CU_ASSERT_EQUAL(PARSE("--insecure=false"), FLAGS_OK);
  CU_ASSERT_EQUAL(insecure, 0);
  CU_ASSERT_EQUAL(PARSE("--insecure=true"), FLAGS_OK);
  CU_ASSERT_EQUAL(insecure, 1);
  CU_ASSERT_EQUAL(PARSE("--insecure=0"), FLAGS_OK);
  CU_ASSERT_EQUAL(insecure, 0);
  reset();
  CU_ASSERT_EQUAL(PARSE("--insecure=maybe"), FLAGS_ERR);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--insecure"));
}

static void bare_bool_does_not_consume_the_next_argument(void) {
  reset();
  const char *pos[2];
  int npos = 0;
  CU_ASSERT_EQUAL(parse_pos(pos, 2, &npos, "--insecure", "status", NULL), FLAGS_OK);
  CU_ASSERT_EQUAL(insecure, 1);
  CU_ASSERT_EQUAL(npos, 1);
  CU_ASSERT_STRING_EQUAL(pos[0], "status");
}

static void list_flag_collects_every_value_in_order(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--backend=a:1", "--backend", "b:2", "--backend=c:3"), FLAGS_OK);
  CU_ASSERT_EQUAL(backends.count, 3);
  CU_ASSERT_STRING_EQUAL(backends.values[0], "a:1");
  CU_ASSERT_STRING_EQUAL(backends.values[1], "b:2");
  CU_ASSERT_STRING_EQUAL(backends.values[2], "c:3");
}

static void list_flag_over_capacity_is_an_error(void) {
  reset();
  char *argv[FLAG_LIST_MAX + 3];
  argv[0] = "prog";
  for (int i = 1; i <= FLAG_LIST_MAX + 1; i++) argv[i] = "--backend=x:1";
  CU_ASSERT_EQUAL(
      flags_parse(defs, NDEFS, FLAG_LIST_MAX + 2, argv, NULL, 0, NULL, err, sizeof(err)),
      FLAGS_ERR);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "too many values"));
}

static void help_returns_flags_help(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("--workers=2", "--help"), FLAGS_HELP);
  reset();
  CU_ASSERT_EQUAL(PARSE("-h"), FLAGS_HELP);
}

static void usage_lists_every_flag_with_its_metavar(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  flags_usage(f, "l4lb", "[flags]", "An L4 load balancer.", defs, NDEFS);
  fclose(f);
  const char *head = "usage: l4lb [flags]\n\nAn L4 load balancer.\n\nflags:\n";
  CU_ASSERT_EQUAL(strncmp(text, head, strlen(head)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "--listen=ADDR:PORT"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "--insecure "));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "a backend (repeatable)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "--help"));
  free(text);
}

/* Group headings structure --help and are never flags themselves. */
static void groups_title_the_help_and_do_not_parse(void) {
  const char *a = NULL, *b = NULL;
  int on = 0;
  const struct flag_def g[] = {
      FLAG_GROUP_DEF("Listeners"),
      {"http", FLAG_STRING, &a, "plain HTTP", "ADDR:PORT", 0, 0},
      FLAG_GROUP_DEF("Control plane"),
      {"syncd", FLAG_STRING, &b, "where syncd is", "ADDR:PORT", 0, 0},
      {"insecure", FLAG_BOOL, &on, "plaintext", NULL, 0, 0},
  };
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  flags_usage(f, "l7proxy", "[flags]", NULL, g, 5);
  fclose(f);
  CU_ASSERT_PTR_NULL(strstr(text, "\nflags:\n")); /* every flag is in a group */
  const char *l = strstr(text, "\nListeners:\n  --http=ADDR:PORT");
  const char *c = strstr(text, "\nControl plane:\n  --syncd=ADDR:PORT");
  CU_ASSERT_PTR_NOT_NULL(l);
  CU_ASSERT_PTR_NOT_NULL(c);
  CU_ASSERT(l && c && l < c);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "  --insecure         plaintext\n")); /* aligned */
  free(text);
  char err[128];
  char *argv[] = {"prog", "--=x", NULL};
  CU_ASSERT_EQUAL(flags_parse(g, 5, 2, argv, NULL, 0, NULL, err, sizeof(err)), FLAGS_ERR);
  char *argv2[] = {"prog", "--syncd=1.2.3.4:5", "--insecure", NULL};
  CU_ASSERT_EQUAL(flags_parse(g, 5, 3, argv2, NULL, 0, NULL, err, sizeof(err)), FLAGS_OK);
  CU_ASSERT_STRING_EQUAL(b, "1.2.3.4:5");
  CU_ASSERT_EQUAL(on, 1);
}

static void positionals_are_collected_and_double_dash_ends_flags(void) {
  reset();
  const char *pos[4];
  int npos = 0;
  CU_ASSERT_EQUAL(parse_pos(pos, 4, &npos, "status", "--workers=2", "--", "--json", "-", NULL),
                  FLAGS_OK);
  CU_ASSERT_EQUAL(npos, 3);
  CU_ASSERT_STRING_EQUAL(pos[0], "status");
  CU_ASSERT_STRING_EQUAL(pos[1], "--json");
  CU_ASSERT_STRING_EQUAL(pos[2], "-");
  CU_ASSERT_EQUAL(workers, 2);
}

static void positionals_are_rejected_when_not_allowed_or_too_many(void) {
  reset();
  CU_ASSERT_EQUAL(PARSE("extra"), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "unexpected argument: extra");
  reset();
  const char *pos[1];
  int npos = 0;
  CU_ASSERT_EQUAL(parse_pos(pos, 1, &npos, "a", "b", NULL), FLAGS_ERR);
  CU_ASSERT_STRING_EQUAL(err, "unexpected argument: b");
}

static void durations_accept_units_and_plain_milliseconds(void) {
  static const struct {
    const char *arg;
    uint32_t ms;
  } ok[] = {{"--timeout=250ms", 250},  {"--timeout=5s", 5000},   {"--timeout=2m", 120000},
            {"--timeout=1h", 3600000}, {"--timeout=1500", 1500}, {"--timeout=1.5s", 1500},
            {"--timeout=0", 0}};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    reset();
    CU_ASSERT_EQUAL(PARSE(ok[i].arg), FLAGS_OK);
    CU_ASSERT_EQUAL(timeout_ms, ok[i].ms);
  }
}

static void bad_durations_are_errors(void) {
  static const char *const bad[] = {"--timeout=5x",      "--timeout=s",      "--timeout=-5s",
                                    "--timeout=",        "--timeout=1.2.3s", "--timeout=0x10",
                                    "--timeout=5000000h"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    reset();
    CU_ASSERT_EQUAL(PARSE(bad[i]), FLAGS_ERR);
    CU_ASSERT_EQUAL(strncmp(err, "--timeout: ", 11), 0);
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("flags", NULL, NULL);
  CU_add_test(s, "equals_and_separate_value_forms_both_set_the_flag",
              equals_and_separate_value_forms_both_set_the_flag);
  CU_add_test(s, "unknown_flag_is_an_error_naming_it", unknown_flag_is_an_error_naming_it);
  CU_add_test(s, "missing_value_at_the_end_is_an_error", missing_value_at_the_end_is_an_error);
  CU_add_test(s, "non_numeric_int_is_an_error", non_numeric_int_is_an_error);
  CU_add_test(s, "int_outside_min_max_is_out_of_range", int_outside_min_max_is_out_of_range);
  CU_add_test(s, "bool_accepts_bare_and_explicit_forms", bool_accepts_bare_and_explicit_forms);
  CU_add_test(s, "bare_bool_does_not_consume_the_next_argument",
              bare_bool_does_not_consume_the_next_argument);
  CU_add_test(s, "list_flag_collects_every_value_in_order",
              list_flag_collects_every_value_in_order);
  CU_add_test(s, "list_flag_over_capacity_is_an_error", list_flag_over_capacity_is_an_error);
  CU_add_test(s, "help_returns_flags_help", help_returns_flags_help);
  CU_add_test(s, "usage_lists_every_flag_with_its_metavar",
              usage_lists_every_flag_with_its_metavar);
  CU_add_test(s, "groups_title_the_help_and_do_not_parse", groups_title_the_help_and_do_not_parse);
  CU_add_test(s, "positionals_are_collected_and_double_dash_ends_flags",
              positionals_are_collected_and_double_dash_ends_flags);
  CU_add_test(s, "positionals_are_rejected_when_not_allowed_or_too_many",
              positionals_are_rejected_when_not_allowed_or_too_many);
  CU_add_test(s, "durations_accept_units_and_plain_milliseconds",
              durations_accept_units_and_plain_milliseconds);
  CU_add_test(s, "bad_durations_are_errors", bad_durations_are_errors);
}
