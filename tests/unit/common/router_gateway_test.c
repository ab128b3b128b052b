/* router: the Gateway API additions (suffix hosts, regex paths, method /
 * header / query conditions, listeners) and the precedence of router.h. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "common/router.h"

#define EX ROUTER_PATH_EXACT
#define PF ROUTER_PATH_PREFIX
#define RE ROUTER_PATH_REGEX

struct req {
  const char *host, *target, *method;
  struct router_header h[4];
  size_t nh;
  unsigned listener;
};

static long lookup(const struct router_rule *rules, size_t n, const struct req *q) {
  struct router *r = NULL;
  char err[256] = "";
  int rc = router_build(rules, n, &r, err, sizeof(err));
  if (rc) fprintf(stderr, "build: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  struct router_request rq = {.host = q->host,
                              .host_len = q->host ? strlen(q->host) : 0,
                              .target = q->target,
                              .target_len = strlen(q->target),
                              .method = q->method,
                              .method_len = q->method ? strlen(q->method) : 0,
                              .headers = q->h,
                              .n_headers = q->nh,
                              .listener = q->listener};
  long idx = router_match_request(r, &rq);
  router_free(r);
  return idx;
}

#define H(n, v) \
  { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void suffix_wildcard_matches_one_or_more_labels(void) {
  struct router_rule rules[] = {
      {.host = "*.wildcard.io", .host_match = ROUTER_HOST_SUFFIX, .path = "/", .path_type = PF}};
  struct req a = {.host = "foo.wildcard.io", .target = "/s"};
  struct req b = {.host = "foo.bar.wildcard.io:1234", .target = "/s"};
  struct req c = {.host = "wildcard.io", .target = "/s"};
  struct req d = {.host = "foo.nonmatchingwildcard.io", .target = "/s"};
  CU_ASSERT_EQUAL(lookup(rules, 1, &a), 0);
  CU_ASSERT_EQUAL(lookup(rules, 1, &b), 0);
  CU_ASSERT_EQUAL(lookup(rules, 1, &c), -1);
  CU_ASSERT_EQUAL(lookup(rules, 1, &d), -1);
}

static void longer_suffix_and_exact_host_take_precedence(void) {
  struct router_rule rules[] = {
      {.host = "*.example.com", .host_match = ROUTER_HOST_SUFFIX, .path = "/"},
      {.host = "*.a.example.com", .host_match = ROUTER_HOST_SUFFIX, .path = "/"},
      {.host = "x.a.example.com", .path = "/"},
  };
  struct req q1 = {.host = "y.a.example.com", .target = "/"};
  struct req q2 = {.host = "x.a.example.com", .target = "/"};
  struct req q3 = {.host = "z.b.example.com", .target = "/"};
  struct req q4 = {.host = "z.y.a.example.com", .target = "/"};
  CU_ASSERT_EQUAL(lookup(rules, 3, &q1), 1);
  CU_ASSERT_EQUAL(lookup(rules, 3, &q2), 2);
  CU_ASSERT_EQUAL(lookup(rules, 3, &q3), 0);
  CU_ASSERT_EQUAL(lookup(rules, 3, &q4), 1);
}

static void exact_then_regex_then_prefix(void) {
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .path_type = PF},
      {.host = "h", .path = "/api/v[0-9]+/.*", .path_type = RE},
      {.host = "h", .path = "/api/v1/health", .path_type = EX},
      {.host = "h", .path = "/api/v1/items", .path_type = PF},
  };
  struct req exact = {.host = "h", .target = "/api/v1/health"};
  struct req regex = {.host = "h", .target = "/api/v1/items/3"};
  struct req prefix = {.host = "h", .target = "/api/vx/items"};
  CU_ASSERT_EQUAL(lookup(rules, 4, &exact), 2);
  CU_ASSERT_EQUAL(lookup(rules, 4, &regex), 1);
  CU_ASSERT_EQUAL(lookup(rules, 4, &prefix), 0);
}

static void method_condition_wins_ties_and_must_hold(void) {
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .path_type = PF},
      {.host = "h", .path = "/", .path_type = PF, .method = "POST"},
  };
  struct req post = {.host = "h", .target = "/x", .method = "POST"};
  struct req get = {.host = "h", .target = "/x", .method = "GET"};
  struct req none = {.host = "h", .target = "/x"};
  CU_ASSERT_EQUAL(lookup(rules, 2, &post), 1);
  CU_ASSERT_EQUAL(lookup(rules, 2, &get), 0);
  CU_ASSERT_EQUAL(lookup(rules, 2, &none), 0);
}

static void longer_path_beats_a_method_condition(void) {
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .path_type = PF, .method = "GET"},
      {.host = "h", .path = "/a", .path_type = PF},
  };
  struct req q = {.host = "h", .target = "/a/b", .method = "GET"};
  CU_ASSERT_EQUAL(lookup(rules, 2, &q), 1);
}

static void more_header_conditions_win_and_names_ignore_case(void) {
  struct router_kv_match one[] = {{"Version", "two", 0}};
  struct router_kv_match two[] = {{"version", "two", 0}, {"COLOR", "orange", 0}};
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .headers = one, .n_headers = 1},
      {.host = "h", .path = "/", .headers = two, .n_headers = 2},
      {.host = "h", .path = "/"},
  };
  struct req both = {
      .host = "h", .target = "/", .h = {H("version", "two"), H("color", "orange")}, .nh = 2};
  struct req v = {.host = "h", .target = "/", .h = {H("version", "two")}, .nh = 1};
  struct req wrongcase = {.host = "h", .target = "/", .h = {H("version", "TWO")}, .nh = 1};
  CU_ASSERT_EQUAL(lookup(rules, 3, &both), 1);
  CU_ASSERT_EQUAL(lookup(rules, 3, &v), 0);
  CU_ASSERT_EQUAL(lookup(rules, 3, &wrongcase), 2); /* values are case-sensitive */
}

static void any_occurrence_of_a_repeated_header_may_match(void) {
  struct router_kv_match c[] = {{"x-env", "canary", 0}};
  struct router_rule rules[] = {{.host = "h", .path = "/", .headers = c, .n_headers = 1}};
  struct req q = {
      .host = "h", .target = "/", .h = {H("x-env", "prod"), H("x-env", "canary")}, .nh = 2};
  CU_ASSERT_EQUAL(lookup(rules, 1, &q), 0);
}

static void header_regex_matches_whole_value(void) {
  struct router_kv_match c[] = {{"user-agent", ".*Firefox.*", 1}};
  struct router_rule rules[] = {{.host = "h", .path = "/", .headers = c, .n_headers = 1}};
  struct req ff = {
      .host = "h", .target = "/", .h = {H("user-agent", "Mozilla Firefox/1")}, .nh = 1};
  struct req ch = {.host = "h", .target = "/", .h = {H("user-agent", "Chrome")}, .nh = 1};
  CU_ASSERT_EQUAL(lookup(rules, 1, &ff), 0);
  CU_ASSERT_EQUAL(lookup(rules, 1, &ch), -1);
}

static void query_condition_uses_the_first_occurrence(void) {
  struct router_kv_match q1[] = {{"animal", "whale", 0}};
  struct router_kv_match q2[] = {{"animal", "dolphin", 0}, {"color", "blue", 0}};
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .query = q1, .n_query = 1},
      {.host = "h", .path = "/", .query = q2, .n_query = 2},
  };
  struct req whale = {.host = "h", .target = "/?animal=whale"};
  struct req both = {.host = "h", .target = "/?animal=dolphin&color=blue"};
  struct req first = {.host = "h", .target = "/?animal=dolphin&animal=whale"};
  struct req upper = {.host = "h", .target = "/?ANIMAL=whale"};
  struct req frag = {.host = "h", .target = "/?animal=whale#x"};
  CU_ASSERT_EQUAL(lookup(rules, 2, &whale), 0);
  CU_ASSERT_EQUAL(lookup(rules, 2, &both), 1);
  CU_ASSERT_EQUAL(lookup(rules, 2, &first), -1);
  CU_ASSERT_EQUAL(lookup(rules, 2, &upper), -1);
  CU_ASSERT_EQUAL(lookup(rules, 2, &frag), 0);
}

static void listener_mask_selects_http_or_https(void) {
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .listeners = ROUTER_LISTENER_HTTPS},
      {.host = "h", .path = "/", .listeners = ROUTER_LISTENER_HTTP},
  };
  struct req tls = {.host = "h", .target = "/", .listener = ROUTER_LISTENER_HTTPS};
  struct req plain = {.host = "h", .target = "/", .listener = ROUTER_LISTENER_HTTP};
  CU_ASSERT_EQUAL(lookup(rules, 2, &tls), 0);
  CU_ASSERT_EQUAL(lookup(rules, 2, &plain), 1);
  struct router_rule only_tls[] = {{.host = "h", .path = "/", .listeners = ROUTER_LISTENER_HTTPS}};
  CU_ASSERT_EQUAL(lookup(only_tls, 1, &plain), -1);
}

static void bad_regex_is_rejected_at_build(void) {
  struct router_kv_match c[] = {{"x", "(", 1}};
  struct router_rule r1[] = {{.host = "h", .path = "(", .path_type = RE}};
  struct router_rule r2[] = {{.host = "h", .path = "/", .headers = c, .n_headers = 1}};
  struct router *r = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL(router_build(r1, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  CU_ASSERT(strstr(err, "rule 0: path regex") != NULL);
  CU_ASSERT_EQUAL(router_build(r2, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  CU_ASSERT(strstr(err, "condition x") != NULL);
}

static enum router_verdict verdicts[4];
static void collect(void *ud, const struct router_explanation *e) {
  (void)ud;
  verdicts[e->index] = e->verdict;
}

static void explain_names_the_condition_that_failed(void) {
  struct router_kv_match hm[] = {{"x-canary", "1", 0}};
  struct router_kv_match qm[] = {{"a", "b", 0}};
  struct router_rule rules[] = {
      {.host = "h", .path = "/", .method = "PUT"},
      {.host = "h", .path = "/", .headers = hm, .n_headers = 1},
      {.host = "h", .path = "/", .query = qm, .n_query = 1},
      {.host = "*.h", .host_match = ROUTER_HOST_SUFFIX, .path = "/"},
  };
  struct router *r = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(router_build(rules, 4, &r, err, sizeof(err)), 0);
  struct router_request rq = {.host = "h",
                              .host_len = 1,
                              .target = "/?a=c",
                              .target_len = 5,
                              .method = "GET",
                              .method_len = 3};
  CU_ASSERT_EQUAL(router_explain_request(r, &rq, collect, NULL), -1);
  CU_ASSERT_EQUAL(verdicts[0], ROUTER_METHOD_DIFFERS);
  CU_ASSERT_EQUAL(verdicts[1], ROUTER_HEADER_DIFFERS);
  CU_ASSERT_EQUAL(verdicts[2], ROUTER_QUERY_DIFFERS);
  CU_ASSERT_EQUAL(verdicts[3], ROUTER_SUFFIX_DIFFERS);
  router_free(r);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("router_gateway", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(suffix_wildcard_matches_one_or_more_labels);
  T(longer_suffix_and_exact_host_take_precedence);
  T(exact_then_regex_then_prefix);
  T(method_condition_wins_ties_and_must_hold);
  T(longer_path_beats_a_method_condition);
  T(more_header_conditions_win_and_names_ignore_case);
  T(any_occurrence_of_a_repeated_header_may_match);
  T(header_regex_matches_whole_value);
  T(query_condition_uses_the_first_occurrence);
  T(listener_mask_selects_http_or_https);
  T(bad_regex_is_rejected_at_build);
  T(explain_names_the_condition_that_failed);
#undef T
}
