/*
 * rewrite: one table of routes, rewrite prefixes and request targets with
 * the exact target each must send upstream.
 */
#include "common/rewrite.h"

#include <CUnit/CUnit.h>
#include <string.h>

struct wcase {
  const char *name, *route, *rewrite;
  int type; /* 1 Exact, 2 Prefix, 3 ImplementationSpecific */
  const char *target;
  int rc;           /* > 0: a rewrite happened */
  const char *want; /* the new target when rc > 0 */
};

static const struct wcase cases[] = {
    {"prefix replaced, query kept", "/v1", "/internal", 2, "/v1/items?x=1", 1,
     "/internal/items?x=1"},
    {"the route path itself", "/v1", "/internal", 2, "/v1", 1, "/internal"},
    {"a trailing slash on the route", "/v1/", "/internal", 2, "/v1/items", 1, "/internal/items"},
    {"no doubled slash", "/v1", "/", 2, "/v1/items", 1, "/items"},
    {"rewrite to root from the route path", "/v1", "/", 2, "/v1", 1, "/"},
    {"a prefix ending in a slash", "/api", "/b/", 2, "/api/x", 1, "/b/x"},
    {"root route", "/", "/app", 2, "/x/y", 1, "/app/x/y"},
    {"a relative prefix gets its slash", "/v1", "x", 2, "/v1/a", 1, "/x/a"},
    {"query right after the route path", "/v1", "/in", 2, "/v1?q=1", 1, "/in?q=1"},
    {"implementation specific behaves as prefix", "/v1", "/in", 3, "/v1/a", 1, "/in/a"},
    {"exact routes are never rewritten", "/v1", "/in", 1, "/v1", REWRITE_NONE, NULL},
    {"no rewrite prefix", "/v1", "", 2, "/v1/a", REWRITE_NONE, NULL},
    {"a target the route does not cover", "/v1", "/in", 2, "/v2/a", REWRITE_NONE, NULL},
    {"CR LF in the prefix is refused", "/v1", "/x HTTP/1.1\r\nX-Injected: yes", 2, "/v1",
     REWRITE_ERR_INVALID, NULL},
    {"a space in the prefix is refused", "/v1", "/a b", 2, "/v1", REWRITE_ERR_INVALID, NULL},
};

static void every_case_sends_its_exact_target(void) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct wcase *c = &cases[i];
    char out[256];
    int n = rewrite_target(c->route, c->type, c->rewrite, c->target, strlen(c->target), out,
                           sizeof(out));
    int ok = c->rc > 0 ? n > 0 && (size_t)n == strlen(c->want) && !memcmp(out, c->want, (size_t)n)
                       : n == c->rc;
    if (!ok) fprintf(stderr, "case \"%s\": got %d %.*s\n", c->name, n, n > 0 ? n : 0, out);
    CU_ASSERT(ok);
  }
}

static void a_small_buffer_is_an_error(void) {
  char out[4];
  CU_ASSERT_EQUAL(rewrite_target("/v1", 2, "/internal", "/v1/a", 5, out, sizeof(out)),
                  REWRITE_ERR_SPACE);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("rewrite", NULL, NULL);
  CU_add_test(s, "every_case_sends_its_exact_target", every_case_sends_its_exact_target);
  CU_add_test(s, "a_small_buffer_is_an_error", a_small_buffer_is_an_error);
}
