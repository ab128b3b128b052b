/* router: one test per Ingress v1 matching rule of DESIGN §7 and its edge cases. */
#include "common/router.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#define R(h, p, t) \
  { .host = (h), .path = (p), .path_type = (t), .data = NULL }
#define EX ROUTER_PATH_EXACT
#define PF ROUTER_PATH_PREFIX
#define IS ROUTER_PATH_IMPLEMENTATION_SPECIFIC

/* Builds rules, returns the index of the winning rule for host+path. */
static long match(const struct router_rule *rules, size_t n, const char *host, const char *path) {
  struct router *r = NULL;
  char err[256] = "";
  int rc = router_build(rules, n, &r, err, sizeof(err));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  long idx = router_match_index(r, host, host ? strlen(host) : 0, path, strlen(path));
  router_free(r);
  return idx;
}

static void exact_host_is_case_insensitive(void) {
  struct router_rule rules[] = {R("shop.example.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "SHOP.Example.COM", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "shop.example.org", "/"), -1);
}

static void rule_host_is_case_insensitive_too(void) {
  struct router_rule rules[] = {R("Shop.Example.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "shop.example.com", "/"), 0);
}

static void host_port_is_stripped(void) {
  struct router_rule rules[] = {R("shop.example.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "shop.example.com:8080", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "shop.example.com.", "/"), 0);
}

static void ipv6_literal_host_in_brackets_matches_without_port(void) {
  struct router_rule rules[] = {R("[::1]", "/", PF), R("10.0.0.1", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 2, "[::1]:8443", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 2, "[::1]", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 2, "[::2]:80", "/"), -1);
  CU_ASSERT_EQUAL(match(rules, 2, "10.0.0.1:80", "/"), 1);
}

static void normalize_host_handles_ports_brackets_and_case(void) {
  char buf[ROUTER_MAX_HOST + 1];
  CU_ASSERT_EQUAL(router_normalize_host("A.B:1", 5, buf, sizeof(buf)), 3);
  CU_ASSERT_STRING_EQUAL(buf, "a.b");
  CU_ASSERT_EQUAL(router_normalize_host("[FE80::1]:80", 12, buf, sizeof(buf)), 7);
  CU_ASSERT_STRING_EQUAL(buf, "fe80::1");
  CU_ASSERT_EQUAL(router_normalize_host("[::1", 4, buf, sizeof(buf)), -1);
  CU_ASSERT_EQUAL(router_normalize_host("[::1]x", 6, buf, sizeof(buf)), -1);
}

static void wildcard_matches_exactly_one_label(void) {
  struct router_rule rules[] = {R("*.foo.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "bar.foo.com", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "BAR.Foo.com:443", "/x"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "baz.bar.foo.com", "/"), -1);
  CU_ASSERT_EQUAL(match(rules, 1, "foo.com", "/"), -1);
  CU_ASSERT_EQUAL(match(rules, 1, ".foo.com", "/"), -1);
  CU_ASSERT_EQUAL(match(rules, 1, "barfoo.com", "/"), -1);
}

static void exact_host_beats_wildcard(void) {
  struct router_rule rules[] = {R("*.foo.com", "/", PF), R("bar.foo.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 2, "bar.foo.com", "/x"), 1);
  CU_ASSERT_EQUAL(match(rules, 2, "qux.foo.com", "/x"), 0);
}

static void exact_host_beats_wildcard_even_with_shorter_path(void) {
  struct router_rule rules[] = {R("*.foo.com", "/api/v1", PF), R("bar.foo.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 2, "bar.foo.com", "/api/v1/x"), 1);
}

static void rule_without_host_matches_every_host(void) {
  struct router_rule rules[] = {R(NULL, "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "anything.example", "/x"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "", "/x"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, NULL, "/x"), 0);
}

static void wildcard_beats_rule_without_host(void) {
  struct router_rule rules[] = {R("", "/", PF), R("*.foo.com", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 2, "a.foo.com", "/"), 1);
  CU_ASSERT_EQUAL(match(rules, 2, "a.bar.com", "/"), 0);
}

static void host_with_no_matching_path_falls_through_to_rules_without_host(void) {
  struct router_rule rules[] = {R("a.com", "/web", PF), R("*.a.com", "/img", PF),
                                R(NULL, "/api", PF)};
  CU_ASSERT_EQUAL(match(rules, 3, "a.com", "/api/x"), 2);
  CU_ASSERT_EQUAL(match(rules, 3, "b.a.com", "/api"), 2);
  CU_ASSERT_EQUAL(match(rules, 3, "a.com", "/img"), -1);
  CU_ASSERT_EQUAL(match(rules, 3, "a.com", "/other"), -1);
}

static void exact_path_is_case_sensitive_full_match(void) {
  struct router_rule rules[] = {R("", "/foo", EX)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/Foo"), -1);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/bar"), -1);
}

static void exact_path_differs_from_trailing_slash(void) {
  struct router_rule rules[] = {R("", "/foo", EX)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/"), -1);
  struct router_rule rules2[] = {R("", "/foo/", EX)};
  CU_ASSERT_EQUAL(match(rules2, 1, "h", "/foo"), -1);
  CU_ASSERT_EQUAL(match(rules2, 1, "h", "/foo/"), 0);
}

static void prefix_matches_whole_path_elements(void) {
  struct router_rule rules[] = {R("", "/foo", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/bar"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/FOO"), -1);
}

static void prefix_does_not_match_inside_an_element(void) {
  struct router_rule rules[] = {R("", "/aaa", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aaaccc"), -1);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aa"), -1);
}

static void prefix_ignores_trailing_slash_on_both_sides(void) {
  struct router_rule rules[] = {R("", "/aaa/bbb/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aaa/bbb"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aaa/bbb/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aaa/bbb/ccc"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/aaa/bbbxyz"), -1);
}

static void root_prefix_matches_every_path(void) {
  struct router_rule rules[] = {R("", "/", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/anything/at/all"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", ""), 0);
}

static void longest_prefix_wins(void) {
  struct router_rule rules[] = {R("", "/", PF), R("", "/api/v1", PF), R("", "/api", PF)};
  CU_ASSERT_EQUAL(match(rules, 3, "h", "/api/v1/users"), 1);
  CU_ASSERT_EQUAL(match(rules, 3, "h", "/api/v2"), 2);
  CU_ASSERT_EQUAL(match(rules, 3, "h", "/web"), 0);
}

static void exact_beats_prefix_for_equal_paths(void) {
  struct router_rule rules[] = {R("", "/foo", PF), R("", "/foo", EX)};
  CU_ASSERT_EQUAL(match(rules, 2, "h", "/foo"), 1);
  CU_ASSERT_EQUAL(match(rules, 2, "h", "/foo/x"), 0);
  /* A prefix's trailing slash does not make it longer than an exact path. */
  struct router_rule rules2[] = {R("", "/foo/", PF), R("", "/foo", EX)};
  CU_ASSERT_EQUAL(match(rules2, 2, "h", "/foo"), 1);
}

static void longer_exact_beats_shorter_prefix_and_vice_versa(void) {
  struct router_rule rules[] = {R("", "/a/b", PF), R("", "/a", EX)};
  CU_ASSERT_EQUAL(match(rules, 2, "h", "/a"), 1);
  CU_ASSERT_EQUAL(match(rules, 2, "h", "/a/b/c"), 0);
}

static void implementation_specific_behaves_as_prefix(void) {
  struct router_rule rules[] = {R("", "/foo", IS)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/bar"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo/"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foobar"), -1);
}

static void query_and_fragment_are_not_part_of_the_path(void) {
  struct router_rule rules[] = {R("", "/foo", EX)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo?x=/bar"), 0);
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo#frag"), 0);
  struct router_rule rules2[] = {R("", "/foo/bar", PF)};
  CU_ASSERT_EQUAL(match(rules2, 1, "h", "/foo?/bar"), -1);
}

static void percent_encoded_slash_is_not_an_element_boundary(void) {
  struct router_rule rules[] = {R("", "/foo", PF)};
  CU_ASSERT_EQUAL(match(rules, 1, "h", "/foo%2Fbar"), -1);
  struct router_rule rules2[] = {R("", "/a%20b", EX)};
  CU_ASSERT_EQUAL(match(rules2, 1, "h", "/a%20b"), 0);
  CU_ASSERT_EQUAL(match(rules2, 1, "h", "/a b"), -1);
}

static void equal_rules_keep_the_first_given(void) {
  struct router_rule rules[] = {R("a.com", "/x", PF), R("A.com", "/x/", PF)};
  CU_ASSERT_EQUAL(match(rules, 2, "a.com", "/x"), 0);
}

static void match_returns_the_rule_data(void) {
  int a, b;
  struct router_rule rules[] = {{.host = "a.com", .path = "/", .data = &a},
                                {.host = "*.a.com", .path = "/", .data = &b}};
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(rules, 2, &r, NULL, 0), 0);
  CU_ASSERT_PTR_EQUAL(router_match(r, "a.com", 5, "/", 1), &a);
  CU_ASSERT_PTR_EQUAL(router_match(r, "x.a.com", 7, "/", 1), &b);
  CU_ASSERT_PTR_NULL(router_match(r, "y.x.a.com", 9, "/", 1));
  router_free(r);
}

static void many_hosts_all_resolve(void) {
  enum { N = 2000 };
  static struct router_rule rules[N];
  static char hosts[N][32];
  for (int i = 0; i < N; i++) {
    snprintf(hosts[i], sizeof(hosts[i]), i % 2 ? "h%d.example.com" : "*.w%d.example.com", i);
    rules[i] = (struct router_rule){.host = hosts[i], .path = "/"};
  }
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(rules, N, &r, NULL, 0), 0);
  char q[64];
  int ok = 1;
  for (int i = 0; i < N; i++) {
    int n = snprintf(q, sizeof(q), i % 2 ? "H%d.example.com:80" : "x.w%d.example.com", i);
    if (router_match_index(r, q, (size_t)n, "/", 1) != i) ok = 0;
  }
  CU_ASSERT(ok);
  CU_ASSERT_EQUAL(router_match_index(r, "nope.example.com", 16, "/", 1), -1);
  router_free(r);
}

static void malformed_rules_are_rejected_with_a_reason(void) {
  struct router *r = NULL;
  char err[256];
  struct router_rule bad_path[] = {R("a.com", "foo", PF)};
  CU_ASSERT_EQUAL(router_build(bad_path, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "rule 0"));
  struct router_rule bad_wild[] = {R("a.com", "/", PF),
                                   {.host = "a.*.com", .host_match = ROUTER_HOST_WILDCARD}};
  CU_ASSERT_EQUAL(router_build(bad_wild, 2, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "rule 1"));
  struct router_rule star_exact[] = {{.host = "*.a.com", .host_match = ROUTER_HOST_EXACT}};
  CU_ASSERT_EQUAL(router_build(star_exact, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  struct router_rule empty_exact[] = {{.host = "", .host_match = ROUTER_HOST_EXACT}};
  CU_ASSERT_EQUAL(router_build(empty_exact, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
  char longhost[400];
  memset(longhost, 'a', sizeof(longhost) - 1);
  longhost[sizeof(longhost) - 1] = '\0';
  struct router_rule too_long[] = {{.host = longhost}};
  CU_ASSERT_EQUAL(router_build(too_long, 1, &r, err, sizeof(err)), ROUTER_ERR_INVALID);
}

static void oversized_request_host_still_reaches_rules_without_host(void) {
  char longhost[400];
  memset(longhost, 'a', sizeof(longhost));
  struct router_rule rules[] = {R("a.com", "/", PF), R(NULL, "/", PF)};
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(rules, 2, &r, NULL, 0), 0);
  CU_ASSERT_EQUAL(router_match_index(r, longhost, sizeof(longhost), "/", 1), 1);
  router_free(r);
}

static void empty_router_matches_nothing(void) {
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(NULL, 0, &r, NULL, 0), 0);
  CU_ASSERT_EQUAL(router_match_index(r, "a", 1, "/", 1), -1);
  router_free(r);
}

static enum router_verdict verdicts[8];
static void collect(void *ud, const struct router_explanation *e) {
  (void)ud;
  if (e->index < 8) verdicts[e->index] = e->verdict;
}

static void explain_says_why_each_rule_did_not_match(void) {
  struct router_rule rules[] = {
      R("b.com", "/", PF),              /* host differs */
      R("*.foo.com", "/", PF),          /* wildcard depth */
      R("*.bar.com", "/", PF),          /* wildcard suffix */
      R("x.y.foo.com", "/aaa", PF),     /* prefix ends inside an element */
      R("x.y.foo.com", "/aaaccc/", EX), /* exact trailing slash */
      R("x.y.foo.com", "/zzz", PF),     /* path differs */
      R(NULL, "/", PF),                 /* shadowed */
      R("x.y.foo.com", "/aaaccc", PF),  /* matched */
  };
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(rules, 8, &r, NULL, 0), 0);
  long w = router_explain(r, "X.y.foo.com:80", 14, "/aaaccc", 7, collect, NULL);
  CU_ASSERT_EQUAL(w, 7);
  CU_ASSERT_EQUAL(verdicts[0], ROUTER_HOST_DIFFERS);
  CU_ASSERT_EQUAL(verdicts[1], ROUTER_WILDCARD_DEPTH);
  CU_ASSERT_EQUAL(verdicts[2], ROUTER_WILDCARD_SUFFIX);
  CU_ASSERT_EQUAL(verdicts[3], ROUTER_PATH_ELEMENT);
  CU_ASSERT_EQUAL(verdicts[4], ROUTER_EXACT_TRAILING_SLASH);
  CU_ASSERT_EQUAL(verdicts[5], ROUTER_PATH_DIFFERS);
  CU_ASSERT_EQUAL(verdicts[6], ROUTER_SHADOWED);
  CU_ASSERT_EQUAL(verdicts[7], ROUTER_MATCHED);
  CU_ASSERT_STRING_EQUAL(router_verdict_str(ROUTER_HOST_DIFFERS), "host differs");
  router_free(r);
}

static void explain_reports_wildcard_without_label_as_depth(void) {
  struct router_rule rules[] = {R("*.foo.com", "/", PF)};
  struct router *r;
  CU_ASSERT_EQUAL_FATAL(router_build(rules, 1, &r, NULL, 0), 0);
  CU_ASSERT_EQUAL(router_explain(r, "foo.com", 7, "/", 1, collect, NULL), -1);
  CU_ASSERT_EQUAL(verdicts[0], ROUTER_WILDCARD_DEPTH);
  router_free(r);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("router", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(exact_host_is_case_insensitive);
  T(rule_host_is_case_insensitive_too);
  T(host_port_is_stripped);
  T(ipv6_literal_host_in_brackets_matches_without_port);
  T(normalize_host_handles_ports_brackets_and_case);
  T(wildcard_matches_exactly_one_label);
  T(exact_host_beats_wildcard);
  T(exact_host_beats_wildcard_even_with_shorter_path);
  T(rule_without_host_matches_every_host);
  T(wildcard_beats_rule_without_host);
  T(host_with_no_matching_path_falls_through_to_rules_without_host);
  T(exact_path_is_case_sensitive_full_match);
  T(exact_path_differs_from_trailing_slash);
  T(prefix_matches_whole_path_elements);
  T(prefix_does_not_match_inside_an_element);
  T(prefix_ignores_trailing_slash_on_both_sides);
  T(root_prefix_matches_every_path);
  T(longest_prefix_wins);
  T(exact_beats_prefix_for_equal_paths);
  T(longer_exact_beats_shorter_prefix_and_vice_versa);
  T(implementation_specific_behaves_as_prefix);
  T(query_and_fragment_are_not_part_of_the_path);
  T(percent_encoded_slash_is_not_an_element_boundary);
  T(equal_rules_keep_the_first_given);
  T(match_returns_the_rule_data);
  T(many_hosts_all_resolve);
  T(malformed_rules_are_rejected_with_a_reason);
  T(oversized_request_host_still_reaches_rules_without_host);
  T(empty_router_matches_nothing);
  T(explain_says_why_each_rule_did_not_match);
  T(explain_reports_wildcard_without_label_as_depth);
#undef T
}
