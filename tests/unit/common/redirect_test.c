/*
 * redirect: one table of requests and rules with the exact status and
 * Location each must give (tests/integration/semantics_test.py runs the
 * same kinds of cases through the proxy and /explain).
 */
#include "common/redirect.h"

#include <CUnit/CUnit.h>
#include <string.h>

struct rcase {
  const char *name;
  struct redirect_rule rule;
  int use_rule, to_https;
  const char *scheme, *authority, *target;
  unsigned https_port;
  int status;
  const char *location;
};

static const struct rcase cases[] = {
    {"https upgrade drops the http port",
     {0},
     0,
     1,
     "http",
     "a.test:8080",
     "/p?q=1",
     0,
     308,
     "https://a.test/p?q=1"},
    {"https upgrade names a non-443 https port",
     {0},
     0,
     1,
     "http",
     "a.test",
     "/p",
     8443,
     308,
     "https://a.test:8443/p"},
    {"https upgrade to 443 names no port",
     {0},
     0,
     1,
     "http",
     "a.test:80",
     "/",
     443,
     308,
     "https://a.test/"},
    {"https upgrade keeps an IPv6 literal",
     {0},
     0,
     1,
     "http",
     "[::1]:8080",
     "/x",
     0,
     308,
     "https://[::1]/x"},
    {"route path replaces the target",
     {.path = "/new", .status = 301},
     1,
     0,
     "http",
     "a.test",
     "/old/page?x",
     0,
     301,
     "http://a.test/new"},
    {"route keeps a non-default http port",
     {.path = "/n"},
     1,
     0,
     "http",
     "a.test:8080",
     "/o",
     0,
     308,
     "http://a.test:8080/n"},
    {"route drops the default http port",
     {.path = "/n"},
     1,
     0,
     "http",
     "a.test:80",
     "/o",
     0,
     308,
     "http://a.test/n"},
    {"route keeps the request scheme",
     {.path = "/n"},
     1,
     0,
     "https",
     "a.test:8443",
     "/o",
     0,
     308,
     "https://a.test/n"},
    {"route host replaces the host and its port",
     {.host = "b.test"},
     1,
     0,
     "http",
     "a.test:8080",
     "/o?q",
     0,
     308,
     "http://b.test/o?q"},
    {"route port replaces the port",
     {.host = "b.test", .port = 9000},
     1,
     0,
     "http",
     "a.test",
     "/o",
     0,
     308,
     "http://b.test:9000/o"},
    {"route scheme https drops the request port",
     {.scheme = "https"},
     1,
     0,
     "http",
     "a.test:8080",
     "/o",
     0,
     308,
     "https://a.test/o"},
    {"an unknown status becomes 308",
     {.path = "/n", .status = 200},
     1,
     0,
     "http",
     "a.test",
     "/",
     0,
     308,
     "http://a.test/n"},
    {"302 307 and 303 are kept",
     {.path = "/n", .status = 307},
     1,
     0,
     "http",
     "a.test",
     "/",
     0,
     307,
     "http://a.test/n"},
    {"a CR LF in the rule host is refused",
     {.host = "b.test\r\nX-Injected: yes"},
     1,
     0,
     "http",
     "a.test",
     "/",
     0,
     REDIRECT_ERR_INVALID,
     NULL},
    {"a space in the rule path is refused",
     {.path = "/x HTTP/1.1"},
     1,
     0,
     "http",
     "a.test",
     "/",
     0,
     REDIRECT_ERR_INVALID,
     NULL},
    {"a rule path must start with a slash",
     {.path = "x"},
     1,
     0,
     "http",
     "a.test",
     "/",
     0,
     REDIRECT_ERR_INVALID,
     NULL},
    {"an empty authority is refused", {0}, 0, 1, "http", "", "/", 0, REDIRECT_ERR_INVALID, NULL},
};

static void every_case_gives_its_exact_status_and_location(void) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct rcase *c = &cases[i];
    struct redirect_request rq = {c->scheme, c->authority,      strlen(c->authority),
                                  c->target, strlen(c->target), c->https_port};
    char loc[512] = "";
    int st = redirect_location(c->use_rule ? &c->rule : NULL, c->to_https, &rq, loc, sizeof(loc));
    if (st != c->status || (c->location && strcmp(loc, c->location) != 0))
      fprintf(stderr, "case \"%s\": got %d %s\n", c->name, st, loc);
    CU_ASSERT_EQUAL(st, c->status);
    if (c->location) CU_ASSERT_STRING_EQUAL(loc, c->location);
  }
}

static void a_small_buffer_is_an_error_not_a_truncated_location(void) {
  struct redirect_request rq = {"http", "a.test", 6, "/long/path", 10, 0};
  char loc[8];
  CU_ASSERT_EQUAL(redirect_location(NULL, 1, &rq, loc, sizeof(loc)), REDIRECT_ERR_SPACE);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("redirect", NULL, NULL);
  CU_add_test(s, "every_case_gives_its_exact_status_and_location",
              every_case_gives_its_exact_status_and_location);
  CU_add_test(s, "a_small_buffer_is_an_error_not_a_truncated_location",
              a_small_buffer_is_an_error_not_a_truncated_location);
}
