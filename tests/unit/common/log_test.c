/* log: logfmt lines, level filtering and quoting. */
#include "common/log.h"

#include <CUnit/CUnit.h>
#include <string.h>
#include <unistd.h>

static void read_line(int fd, char *buf, size_t len) {
  ssize_t n = read(fd, buf, len - 1);
  buf[n > 0 ? n : 0] = '\0';
}

static void quote_leaves_plain_values_alone(void) {
  CU_ASSERT_STRING_EQUAL(log_q("abc"), "abc");
  CU_ASSERT_STRING_EQUAL(log_q(""), "\"\"");
}

static void quote_escapes_spaces_quotes_and_newlines(void) {
  CU_ASSERT_STRING_EQUAL(log_q("a b"), "\"a b\"");
  CU_ASSERT_STRING_EQUAL(log_q("say \"hi\""), "\"say \\\"hi\\\"\"");
  CU_ASSERT_STRING_EQUAL(log_q("x\ny"), "\"x\\ny\"");
}

static void emits_one_logfmt_line_with_level_and_component(void) {
  int p[2];
  CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
  log_init("unit");
  log_set_fd(p[1]);
  log_set_level(LOG_LEVEL_INFO);
  LOG_INFO("started", "port=%d name=%s", 80, log_q("a b"));
  char buf[1024];
  read_line(p[0], buf, sizeof(buf));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "level=info comp=unit msg=started port=80 name=\"a b\"\n"));
  CU_ASSERT_EQUAL(strncmp(buf, "ts=", 3), 0);
  CU_ASSERT_EQUAL(strchr(buf, '\n'), buf + strlen(buf) - 1);
  log_set_fd(2);
  close(p[0]);
  close(p[1]);
}

static void drops_lines_below_the_level(void) {
  int p[2];
  CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
  log_set_fd(p[1]);
  log_set_level(LOG_LEVEL_WARN);
  LOG_INFO("hidden", "%s", "");
  LOG_WARN("shown", "%s", "");
  char buf[1024];
  read_line(p[0], buf, sizeof(buf));
  CU_ASSERT_PTR_NULL(strstr(buf, "hidden"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "msg=shown"));
  log_set_fd(2);
  log_set_level(LOG_LEVEL_INFO);
  close(p[0]);
  close(p[1]);
}

static void parses_level_names(void) {
  enum log_level l;
  CU_ASSERT_EQUAL(log_parse_level("debug", &l), 0);
  CU_ASSERT_EQUAL(l, LOG_LEVEL_DEBUG);
  CU_ASSERT_EQUAL(log_parse_level("error", &l), 0);
  CU_ASSERT_EQUAL(l, LOG_LEVEL_ERROR);
  CU_ASSERT_EQUAL(log_parse_level("loud", &l), -1);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("log", NULL, NULL);
  CU_add_test(s, "quote_leaves_plain_values_alone", quote_leaves_plain_values_alone);
  CU_add_test(s, "quote_escapes_spaces_quotes_and_newlines",
              quote_escapes_spaces_quotes_and_newlines);
  CU_add_test(s, "emits_one_logfmt_line_with_level_and_component",
              emits_one_logfmt_line_with_level_and_component);
  CU_add_test(s, "drops_lines_below_the_level", drops_lines_below_the_level);
  CU_add_test(s, "parses_level_names", parses_level_names);
}
