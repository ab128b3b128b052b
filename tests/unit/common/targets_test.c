/*
 * targets: address lists as operators write them ("A:P,B:P", a DNS name),
 * what is refused, and the resolved list every client builds the same way
 * (sorted, no duplicates, each address with the name TLS must check).
 */
#include "common/targets.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static void parse_accepts_a_list_of_literals_and_names(void) {
  struct target_list l;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(
      targets_parse("10.0.0.2:7000,[::1]:7001,syncd.edge-system.svc:7000", &l, err, sizeof(err)),
      0);
  CU_ASSERT_EQUAL(l.n, 3);
  CU_ASSERT_STRING_EQUAL(l.v[0].host, "10.0.0.2");
  CU_ASSERT_EQUAL(l.v[0].port, 7000);
  CU_ASSERT_TRUE(l.v[0].numeric);
  CU_ASSERT_STRING_EQUAL(l.v[1].host, "::1");
  CU_ASSERT_TRUE(l.v[1].numeric);
  CU_ASSERT_STRING_EQUAL(l.v[2].host, "syncd.edge-system.svc");
  CU_ASSERT_FALSE(l.v[2].numeric);
  CU_ASSERT_TRUE(l.has_names);
  targets_free(&l);
  CU_ASSERT_EQUAL_FATAL(targets_parse("127.0.0.1:7000", &l, err, sizeof(err)), 0);
  CU_ASSERT_FALSE(l.has_names);
  targets_free(&l);
}

static void parse_refuses_empty_entries_bad_ports_and_odd_hosts(void) {
  static const char *bad[] = {
      "",
      "127.0.0.1:7000,",
      ",127.0.0.1:7000",
      "127.0.0.1",
      "127.0.0.1:0",
      "a:70000",
      "::1:7000",
      "a b:7000",
      "127.0.0.1:7000, 127.0.0.2:7000",
      "x/y:80",
      "dns:///a:1,127.0.0.1:2",
      "..:80",
      "host:-1",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct target_list l;
    char err[256] = "";
    int rc = targets_parse(bad[i], &l, err, sizeof(err));
    if (rc == 0) fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(err[0] != '\0');
  }
}

static void parse_refuses_more_than_the_maximum(void) {
  char spec[TARGETS_MAX * 20 + 40] = "";
  for (int i = 0; i <= TARGETS_MAX; i++) {
    char one[32];
    snprintf(one, sizeof(one), "%s127.0.0.%d:7000", i ? "," : "", i + 1);
    strcat(spec, one);
  }
  struct target_list l;
  char err[256];
  CU_ASSERT_EQUAL(targets_parse(spec, &l, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than"));
}

static void opaque_grpc_targets_pass_through_alone(void) {
  struct target_list l;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(targets_parse("unix:/run/syncd.sock", &l, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l.n, 1);
  CU_ASSERT_TRUE(l.v[0].opaque);
  struct target_addrs a = {0};
  CU_ASSERT_EQUAL(targets_resolve_blocking(&l, &a, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(a.n, 1);
  CU_ASSERT_STRING_EQUAL(a.v[0].addr, "unix:/run/syncd.sock");
  targets_addrs_free(&a);
  targets_free(&l);
}

/* Two clients with the same answers list the same addresses in the same
 * order, whatever order the resolver gave them in. */
static void resolved_names_are_sorted_deduplicated_and_keep_their_name(void) {
  struct target t = {.host = "syncd.svc", .port = 7000};
  struct sockaddr_in sa[3];
  struct addrinfo ai[3];
  const char *ips[3] = {"10.0.0.9", "10.0.0.3", "10.0.0.9"};
  memset(ai, 0, sizeof(ai));
  for (int i = 0; i < 3; i++) {
    memset(&sa[i], 0, sizeof(sa[i]));
    sa[i].sin_family = AF_INET;
    inet_pton(AF_INET, ips[i], &sa[i].sin_addr);
    ai[i].ai_family = AF_INET;
    ai[i].ai_addr = (struct sockaddr *)&sa[i];
    ai[i].ai_addrlen = sizeof(sa[i]);
    ai[i].ai_next = i < 2 ? &ai[i + 1] : NULL;
  }
  struct target_addrs a = {0};
  CU_ASSERT_EQUAL_FATAL(targets_add(&a, &t, &ai[0]), 0);
  struct target lit = {.host = "10.0.0.1", .port = 7000, .numeric = 1};
  CU_ASSERT_EQUAL_FATAL(targets_add(&a, &lit, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(a.n, 3);
  CU_ASSERT_STRING_EQUAL(a.v[0].addr, "10.0.0.1:7000");
  CU_ASSERT_STRING_EQUAL(a.v[0].name, "");
  CU_ASSERT_STRING_EQUAL(a.v[1].addr, "10.0.0.3:7000");
  CU_ASSERT_STRING_EQUAL(a.v[1].name, "syncd.svc");
  CU_ASSERT_STRING_EQUAL(a.v[2].addr, "10.0.0.9:7000");
  CU_ASSERT_EQUAL(targets_addrs_find(&a, "10.0.0.9:7000"), 2);
  CU_ASSERT_EQUAL(targets_addrs_find(&a, "10.0.0.8:7000"), -1);

  struct target_addrs b = {0};
  CU_ASSERT_EQUAL(targets_add(&b, &lit, NULL), 0);
  CU_ASSERT_FALSE(targets_addrs_equal(&a, &b));
  CU_ASSERT_EQUAL(targets_add(&b, &t, &ai[1]), 0); /* 10.0.0.3, 10.0.0.9 */
  CU_ASSERT_TRUE(targets_addrs_equal(&a, &b));
  targets_addrs_free(&a);
  targets_addrs_free(&b);
}

/* A resolver that knows one name ("syncd.test" → 10.0.0.7) and fails the
 * rest, so no query leaves the machine. */
static struct sockaddr_in fake_sa;
static struct addrinfo fake_ai;

static int fake_lookup(void *ud, const char *host, struct addrinfo **res) {
  if (strcmp(host, "syncd.test") != 0) return EAI_NONAME;
  memset(&fake_sa, 0, sizeof(fake_sa));
  fake_sa.sin_family = AF_INET;
  inet_pton(AF_INET, "10.0.0.7", &fake_sa.sin_addr);
  memset(&fake_ai, 0, sizeof(fake_ai));
  fake_ai.ai_family = AF_INET;
  fake_ai.ai_addr = (struct sockaddr *)&fake_sa;
  fake_ai.ai_addrlen = sizeof(fake_sa);
  *res = &fake_ai;
  return 0;
}

static void fake_release(void *ud, struct addrinfo *res) {}

static void a_name_that_does_not_resolve_is_skipped_not_fatal(void) {
  static const struct targets_lookup lk = {fake_lookup, fake_release, NULL};
  struct target_list l;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(
      targets_parse("gone.test:7000,syncd.test:7001,127.0.0.1:7000", &l, err, sizeof(err)), 0);
  struct target_addrs a = {0};
  CU_ASSERT_EQUAL(targets_resolve_with(&l, &lk, &a, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(a.n, 2);
  CU_ASSERT_STRING_EQUAL(a.v[0].addr, "10.0.0.7:7001");
  CU_ASSERT_STRING_EQUAL(a.v[0].name, "syncd.test");
  CU_ASSERT_STRING_EQUAL(a.v[1].addr, "127.0.0.1:7000");
  targets_addrs_free(&a);
  targets_free(&l);
  CU_ASSERT_EQUAL_FATAL(targets_parse("gone.test:7000", &l, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(targets_resolve_with(&l, &lk, &a, err, sizeof(err)), -1);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "gone.test"));
  CU_ASSERT_EQUAL(a.n, 0);
  targets_free(&l);
}

struct resolved {
  int calls, status;
  struct target_addrs addrs;
};

static void on_resolved(void *ud, int status, struct target_addrs *addrs, const char *reason) {
  struct resolved *r = ud;
  r->calls++;
  r->status = status;
  r->addrs = *addrs; /* moved out */
  memset(addrs, 0, sizeof(*addrs));
}

static void localhost_resolves_on_the_thread_pool_with_its_name(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct target_list l;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(targets_parse("localhost:7000", &l, err, sizeof(err)), 0);
  struct resolved r = {0};
  struct targets_resolve *job;
  CU_ASSERT_EQUAL_FATAL(targets_resolve(&loop, &l, on_resolved, &r, &job), 0);
  targets_free(&l);            /* the job has its own copy */
  CU_ASSERT_EQUAL(r.calls, 0); /* never inside the call */
  uv_run(&loop, UV_RUN_DEFAULT);
  CU_ASSERT_EQUAL(r.calls, 1);
  CU_ASSERT_EQUAL(r.status, 0);
  CU_ASSERT_TRUE_FATAL(r.addrs.n >= 1);
  int loopback = 0;
  for (size_t i = 0; i < r.addrs.n; i++) {
    CU_ASSERT_STRING_EQUAL(r.addrs.v[i].name, "localhost");
    loopback |=
        !strcmp(r.addrs.v[i].addr, "127.0.0.1:7000") || !strcmp(r.addrs.v[i].addr, "[::1]:7000");
  }
  CU_ASSERT_TRUE(loopback);
  targets_addrs_free(&r.addrs);

  /* A cancelled job never calls back. */
  CU_ASSERT_EQUAL_FATAL(targets_parse("localhost:7000", &l, err, sizeof(err)), 0);
  struct resolved r2 = {0};
  CU_ASSERT_EQUAL_FATAL(targets_resolve(&loop, &l, on_resolved, &r2, &job), 0);
  targets_resolve_cancel(job);
  uv_run(&loop, UV_RUN_DEFAULT);
  CU_ASSERT_EQUAL(r2.calls, 0);
  targets_free(&l);
  CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("targets", NULL, NULL);
  CU_add_test(s, "parse_accepts_a_list_of_literals_and_names",
              parse_accepts_a_list_of_literals_and_names);
  CU_add_test(s, "parse_refuses_empty_entries_bad_ports_and_odd_hosts",
              parse_refuses_empty_entries_bad_ports_and_odd_hosts);
  CU_add_test(s, "parse_refuses_more_than_the_maximum", parse_refuses_more_than_the_maximum);
  CU_add_test(s, "opaque_grpc_targets_pass_through_alone", opaque_grpc_targets_pass_through_alone);
  CU_add_test(s, "resolved_names_are_sorted_deduplicated_and_keep_their_name",
              resolved_names_are_sorted_deduplicated_and_keep_their_name);
  CU_add_test(s, "a_name_that_does_not_resolve_is_skipped_not_fatal",
              a_name_that_does_not_resolve_is_skipped_not_fatal);
  CU_add_test(s, "localhost_resolves_on_the_thread_pool_with_its_name",
              localhost_resolves_on_the_thread_pool_with_its_name);
}
