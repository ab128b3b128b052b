/* The pure parts of the per-route policies: htpasswd checks (lines made by
 * apache2-utils' htpasswd -B / -s), GCRA token buckets and the shared
 * table, CORS decisions, affinity cookies and consistent hashing. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "l7proxy/affinity.h"
#include "l7proxy/cors.h"
#include "l7proxy/htpasswd.h"
#include "l7proxy/ratelimit.h"
#include "l7proxy/upstream_lb.h"

/* htpasswd -nbB -C 5 alice 'wonder land'; htpasswd -nbs bob 'b0b:pass' */
static char alice[] = "alice:$2y$05$/ID8sa2evNrOuQ9VY/fSs.kxh/xelcZBz4fxzkOt5FA0bRU6XxPEi";
static char bob[] = "bob:{SHA}snjLDKRQycibGd2P57mBxyhulY8=";

static struct htpasswd *table(void) {
  char *lines[] = {alice, bob};
  struct htpasswd *t = NULL;
  char err[128];
  CU_ASSERT_EQUAL_FATAL(htpasswd_build(lines, 2, &t, err, sizeof(err)), 0);
  return t;
}

static void bcrypt_line_from_htpasswd_accepts_its_password_only(void) {
  struct htpasswd *t = table();
  int known = 0;
  const char *h = htpasswd_lookup(t, "alice", 5, &known);
  CU_ASSERT_TRUE(known);
  CU_ASSERT_TRUE(htpasswd_is_slow(h));
  CU_ASSERT_TRUE(htpasswd_check(h, "wonder land", 11));
  CU_ASSERT_FALSE(htpasswd_check(h, "wonder lanD", 11));
  CU_ASSERT_FALSE(htpasswd_check(h, "", 0));
  /* a NUL inside the password never matches a prefix */
  CU_ASSERT_FALSE(htpasswd_check(h, "wonder land\0x", 13));
  htpasswd_free(t);
}

static void sha_line_from_htpasswd_accepts_its_password_only(void) {
  struct htpasswd *t = table();
  int known = 0;
  const char *h = htpasswd_lookup(t, "bob", 3, &known);
  CU_ASSERT_TRUE(known);
  CU_ASSERT_FALSE(htpasswd_is_slow(h));
  CU_ASSERT_TRUE(htpasswd_check(h, "b0b:pass", 8));
  CU_ASSERT_FALSE(htpasswd_check(h, "b0b:pas", 7));
  htpasswd_free(t);
}

static void unknown_user_gets_a_decoy_hash_of_a_real_kind(void) {
  struct htpasswd *t = table();
  int known = 1;
  const char *h = htpasswd_lookup(t, "mallory", 7, &known);
  CU_ASSERT_FALSE(known);
  CU_ASSERT_PTR_NOT_NULL(h);
  /* user names are exact bytes: "Alice" is not alice */
  htpasswd_lookup(t, "Alice", 5, &known);
  CU_ASSERT_FALSE(known);
  htpasswd_free(t);
}

static void a_user_named_twice_keeps_the_first_line(void) {
  char first[] = "bob:{SHA}snjLDKRQycibGd2P57mBxyhulY8=";
  char second[] = "bob:{SHA}AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  char *lines[] = {first, second};
  struct htpasswd *t = NULL;
  char err[64];
  CU_ASSERT_EQUAL_FATAL(htpasswd_build(lines, 2, &t, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(htpasswd_count(t), 1);
  int known;
  CU_ASSERT_TRUE(htpasswd_check(htpasswd_lookup(t, "bob", 3, &known), "b0b:pass", 8));
  htpasswd_free(t);
}

static void basic_credentials_parse_and_refuse_garbage(void) {
  char buf[256];
  const char *u, *p;
  size_t ul, pl;
  /* base64("bob:b0b:pass"): the password may hold ':' */
  const char *v = "Basic Ym9iOmIwYjpwYXNz";
  CU_ASSERT_EQUAL(htpasswd_parse_basic(v, strlen(v), buf, sizeof(buf), &u, &ul, &p, &pl), 0);
  CU_ASSERT_EQUAL(ul, 3);
  CU_ASSERT_NSTRING_EQUAL(u, "bob", 3);
  CU_ASSERT_EQUAL(pl, 8);
  CU_ASSERT_NSTRING_EQUAL(p, "b0b:pass", 8);
  const char *bad[] = {"Bearer Ym9iOmIwYjpwYXNz",
                       "Basic",
                       "Basic !!!!",
                       "Basic Ym9i",
                       "Basic Ym9iOmIwYjpwYXN",
                       "BasicYm9iOmIwYjpwYXNz",
                       /* base64("a\nb:x"): a control byte in the user */ "Basic YQpiOng="};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    CU_ASSERT_EQUAL(
        htpasswd_parse_basic(bad[i], strlen(bad[i]), buf, sizeof(buf), &u, &ul, &p, &pl), -1);
}

static void credential_cache_remembers_only_what_was_put(void) {
  static struct htpasswd_cache c;
  memset(&c, 0, sizeof(c));
  uint8_t k1[32], k2[32];
  htpasswd_cache_key("$2y$05$x", "alice", 5, "pw", 2, k1);
  htpasswd_cache_key("$2y$05$x", "alice", 5, "pW", 2, k2);
  CU_ASSERT_NOT_EQUAL(memcmp(k1, k2, 32), 0);
  CU_ASSERT_FALSE(htpasswd_cache_hit(&c, k1, 0));
  htpasswd_cache_put(&c, k1, 1000);
  CU_ASSERT_TRUE(htpasswd_cache_hit(&c, k1, 1000));
  CU_ASSERT_FALSE(htpasswd_cache_hit(&c, k2, 1000));
  CU_ASSERT_FALSE(htpasswd_cache_hit(&c, k1, 1000 + HTPASSWD_CACHE_TTL_MS));
  /* (user "ab", pass "c") and (user "a", pass "bc") differ */
  htpasswd_cache_key("h", "ab", 2, "c", 1, k1);
  htpasswd_cache_key("h", "a", 1, "bc", 2, k2);
  CU_ASSERT_NOT_EQUAL(memcmp(k1, k2, 32), 0);
}

/* ---- rate limits ---- */

static void bucket_allows_burst_then_one_per_interval(void) {
  struct rl_params p;
  rl_params_of(10, 1, 5, &p); /* 10/s, burst 5 */
  CU_ASSERT_EQUAL(p.interval_us, 100000);
  uint64_t tat = 0, now = 1000000, retry = 0;
  for (int i = 0; i < 5; i++) CU_ASSERT_TRUE(rl_gcra(&tat, now, &p, NULL));
  CU_ASSERT_FALSE(rl_gcra(&tat, now, &p, &retry));
  CU_ASSERT_EQUAL(retry, 100000);
  CU_ASSERT_FALSE(rl_gcra(&tat, now + 99999, &p, NULL));
  CU_ASSERT_TRUE(rl_gcra(&tat, now + 100000, &p, NULL));
  CU_ASSERT_FALSE(rl_gcra(&tat, now + 100000, &p, NULL));
  /* a long pause refills to the burst, never beyond it */
  int n = 0;
  while (rl_gcra(&tat, now + 60000000, &p, NULL)) n++;
  CU_ASSERT_EQUAL(n, 5);
}

static void per_minute_limit_and_default_burst(void) {
  struct rl_params p;
  rl_params_of(120, 60, 0, &p); /* 120 per minute, burst 120 */
  CU_ASSERT_EQUAL(p.interval_us, 500000);
  uint64_t tat = 0;
  int n = 0;
  while (rl_gcra(&tat, 5, &p, NULL)) n++;
  CU_ASSERT_EQUAL(n, 120);
}

static void table_keeps_keys_apart_and_shared(void) {
  struct rl_table *t = NULL;
  CU_ASSERT_EQUAL_FATAL(rl_table_new(4096, &t), 0);
  struct rl_params p;
  rl_params_of(1, 1, 2, &p);
  uint64_t a[2], b[2], a2[2];
  rl_table_key(t, "route1", 6, "10.0.0.1", 8, a);
  rl_table_key(t, "route1", 6, "10.0.0.2", 8, b);
  rl_table_key(t, "route2", 6, "10.0.0.1", 8, a2);
  CU_ASSERT_TRUE(rl_table_take(t, a, 10, &p, NULL));
  CU_ASSERT_TRUE(rl_table_take(t, a, 10, &p, NULL));
  CU_ASSERT_FALSE(rl_table_take(t, a, 10, &p, NULL));
  CU_ASSERT_TRUE(rl_table_take(t, b, 10, &p, NULL));  /* another client */
  CU_ASSERT_TRUE(rl_table_take(t, a2, 10, &p, NULL)); /* another route */
  rl_table_free(t);
}

static void table_memory_is_bounded_under_a_key_flood(void) {
  struct rl_table *t = NULL;
  CU_ASSERT_EQUAL_FATAL(rl_table_new(64 * 8, &t), 0);
  struct rl_params p;
  rl_params_of(1, 1, 1, &p);
  uint64_t k[2];
  char v[32];
  for (int i = 0; i < 100000; i++) {
    int n = snprintf(v, sizeof(v), "client-%d", i);
    rl_table_key(t, "r", 1, v, (size_t)n, k);
    CU_ASSERT_TRUE(rl_table_take(t, k, 1000, &p, NULL)); /* a new key: a full bucket */
  }
  /* a key seen just now is still counted */
  CU_ASSERT_FALSE(rl_table_take(t, k, 1000, &p, NULL));
  rl_table_free(t);
}

/* ---- CORS ---- */

static struct cors_policy *cors(const char **origins, size_t n, int creds) {
  Edge__V1__Cors c = EDGE__V1__CORS__INIT;
  c.allow_origins = (char **)origins;
  c.n_allow_origins = n;
  c.allow_credentials = creds;
  c.max_age_seconds = 600;
  char *expose[] = {"x-total"};
  c.expose_headers = expose;
  c.n_expose_headers = 1;
  struct cors_policy *p = cors_compile(&c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  return p;
}

#define OK(p, s) cors_origin_allowed(p, s, strlen(s))

static void cors_origins_exact_and_wildcard(void) {
  const char *o[] = {"https://app.example", "https://*.example.com", "http://local.test:8080"};
  struct cors_policy *p = cors(o, 3, 0);
  CU_ASSERT_TRUE(OK(p, "https://app.example"));
  CU_ASSERT_TRUE(OK(p, "HTTPS://APP.example"));
  CU_ASSERT_FALSE(OK(p, "http://app.example"));       /* scheme */
  CU_ASSERT_FALSE(OK(p, "https://app.example:444"));  /* port */
  CU_ASSERT_FALSE(OK(p, "https://app.example.evil")); /* suffix attack */
  CU_ASSERT_TRUE(OK(p, "https://a.example.com"));
  CU_ASSERT_TRUE(OK(p, "https://a.b.example.com"));
  CU_ASSERT_FALSE(OK(p, "https://example.com")); /* the wildcard needs a label */
  CU_ASSERT_FALSE(OK(p, "https://evilexample.com"));
  CU_ASSERT_FALSE(OK(p, "https://.example.com"));
  CU_ASSERT_TRUE(OK(p, "http://local.test:8080"));
  CU_ASSERT_FALSE(OK(p, "http://local.test"));
  CU_ASSERT_FALSE(OK(p, "null"));
  CU_ASSERT_FALSE(OK(p, "https://app.example\r\nx: y"));
  cors_free(p);
}

static size_t find(const struct msg_header *h, size_t n, const char *name, char *out, size_t cap) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++)
    if (strlen(name) == h[i].name_len && memcmp(h[i].name, name, h[i].name_len) == 0) {
      snprintf(out, cap, "%.*s", (int)h[i].value_len, h[i].value);
      count++;
    }
  return count;
}

static void cors_preflight_answers_only_what_is_allowed(void) {
  const char *o[] = {"https://app.example"};
  struct cors_policy *p = cors(o, 1, 1);
  struct msg_header req[] = {
      {"origin", 6, "https://app.example", 19},
      {"access-control-request-method", 29, "PUT", 3},
      {"access-control-request-headers", 30, "content-type, authorization", 27}};
  struct msg_head h = {.method = MSG_OPTIONS, .headers = req, .n_headers = 3};
  CU_ASSERT_TRUE(cors_is_preflight(&h));
  struct msg_header out[8];
  char v[256];
  size_t n = cors_preflight_headers(p, &h, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 1);
  CU_ASSERT_STRING_EQUAL(v, "https://app.example");
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-credentials", v, sizeof(v)), 1);
  CU_ASSERT_EQUAL(find(out, n, "access-control-max-age", v, sizeof(v)), 1);
  CU_ASSERT_STRING_EQUAL(v, "600");
  CU_ASSERT_EQUAL(find(out, n, "vary", v, sizeof(v)), 1);
  /* a header outside the list: no allow headers at all */
  req[2] = (struct msg_header){"access-control-request-headers", 30, "x-secret", 8};
  n = cors_preflight_headers(p, &h, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 0);
  /* a method outside the list */
  req[2] = (struct msg_header){"x-other", 7, "1", 1};
  req[1] = (struct msg_header){"access-control-request-method", 29, "PROPFIND", 8};
  n = cors_preflight_headers(p, &h, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 0);
  /* another origin */
  req[1] = (struct msg_header){"access-control-request-method", 29, "GET", 3};
  req[0] = (struct msg_header){"origin", 6, "https://evil.example", 20};
  n = cors_preflight_headers(p, &h, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 0);
  /* a plain OPTIONS is not a preflight */
  h.n_headers = 1;
  CU_ASSERT_FALSE(cors_is_preflight(&h));
  cors_free(p);
}

static void cors_any_origin_is_never_echoed_with_credentials(void) {
  const char *o[] = {"*"};
  struct msg_header out[8];
  char v[256];
  struct cors_policy *p = cors(o, 1, 0);
  size_t n = cors_response_headers(p, "https://x.test", 14, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 1);
  CU_ASSERT_STRING_EQUAL(v, "*");
  CU_ASSERT_EQUAL(find(out, n, "access-control-expose-headers", v, sizeof(v)), 1);
  CU_ASSERT_STRING_EQUAL(v, "x-total");
  cors_free(p);
  p = cors(o, 1, 1);
  n = cors_response_headers(p, "https://x.test", 14, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 1);
  CU_ASSERT_STRING_EQUAL(v, "https://x.test");
  CU_ASSERT_EQUAL(find(out, n, "vary", v, sizeof(v)), 1);
  n = cors_response_headers(p, NULL, 0, out, 8);
  CU_ASSERT_EQUAL(find(out, n, "access-control-allow-origin", v, sizeof(v)), 0);
  cors_free(p);
}

/* ---- affinity and hashing ---- */

static void affinity_tokens_differ_per_endpoint_and_key(void) {
  const uint8_t k1[16] = "0123456789abcdef", k2[16] = "0123456789abcdeF";
  char a[AFFINITY_TOKEN_LEN + 1], b[AFFINITY_TOKEN_LEN + 1], c[AFFINITY_TOKEN_LEN + 1];
  affinity_token(k1, 16, "ns/svc:80", "10.0.0.1:80", a);
  affinity_token(k1, 16, "ns/svc:80", "10.0.0.2:80", b);
  affinity_token(k2, 16, "ns/svc:80", "10.0.0.1:80", c);
  CU_ASSERT_EQUAL(strlen(a), AFFINITY_TOKEN_LEN);
  CU_ASSERT_STRING_NOT_EQUAL(a, b);
  CU_ASSERT_STRING_NOT_EQUAL(a, c);
  CU_ASSERT_PTR_NULL(strstr(a, "10.0"));
  char tokens[2][AFFINITY_TOKEN_LEN + 1];
  memcpy(tokens[0], a, sizeof(a));
  memcpy(tokens[1], b, sizeof(b));
  CU_ASSERT_EQUAL(affinity_match((const char(*)[AFFINITY_TOKEN_LEN + 1]) tokens, 2, b, strlen(b)),
                  1);
  CU_ASSERT_EQUAL(affinity_match((const char(*)[AFFINITY_TOKEN_LEN + 1]) tokens, 2, c, strlen(c)),
                  -1);
  CU_ASSERT_EQUAL(affinity_match((const char(*)[AFFINITY_TOKEN_LEN + 1]) tokens, 2, a, 5), -1);
}

static void affinity_cookie_found_among_others(void) {
  struct msg_header hs[] = {{"cookie", 6, "a=1; EDGEX=zz", 13},
                            {"cookie", 6, "x=2;  EDGEAFFINITY=\"tok\" ; y=3", 30}};
  struct msg_head h = {.headers = hs, .n_headers = 2};
  const char *v;
  size_t n;
  CU_ASSERT_TRUE(affinity_find_cookie(&h, "EDGEAFFINITY", 12, &v, &n));
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_NSTRING_EQUAL(v, "tok", 3);
  CU_ASSERT_FALSE(affinity_find_cookie(&h, "EDGE", 4, &v, &n));
  char buf[256];
  CU_ASSERT_TRUE(affinity_set_cookie(buf, sizeof(buf), "S", "tok", "/app", 3600, 1) > 0);
  CU_ASSERT_STRING_EQUAL(buf, "S=tok; Path=/app; Max-Age=3600; HttpOnly; SameSite=Lax; Secure");
  CU_ASSERT_EQUAL(affinity_set_cookie(buf, 10, "S", "tok", "/", 0, 0), -1);
}

static void hashing_moves_only_the_keys_of_a_removed_endpoint(void) {
  enum { N = 10, KEYS = 20000 };
  uint64_t seeds[N];
  struct lb_state st[N];
  const struct lb_state *ptrs[N];
  memset(st, 0, sizeof(st));
  for (int i = 0; i < N; i++) {
    char name[32];
    int n = snprintf(name, sizeof(name), "10.0.0.%d:80", i);
    seeds[i] = affinity_hash_key(name, (size_t)n);
    ptrs[i] = &st[i];
  }
  static int before[KEYS];
  int count[N] = {0};
  for (int k = 0; k < KEYS; k++) {
    char key[32];
    int n = snprintf(key, sizeof(key), "user-%d", k);
    before[k] = lb_pick_hash(affinity_hash_key(key, (size_t)n), seeds, NULL, ptrs, N, 0, 0);
    count[before[k]]++;
  }
  for (int i = 0; i < N; i++) CU_ASSERT_TRUE(count[i] > KEYS / N / 2 && count[i] < KEYS / N * 2);
  /* eject endpoint 3: only its keys move */
  st[3].ejected_until = 100;
  int moved = 0, wrong = 0;
  for (int k = 0; k < KEYS; k++) {
    char key[32];
    int n = snprintf(key, sizeof(key), "user-%d", k);
    int now = lb_pick_hash(affinity_hash_key(key, (size_t)n), seeds, NULL, ptrs, N, 0, 50);
    if (now != before[k]) moved++;
    if (now != before[k] && before[k] != 3) wrong++;
    CU_ASSERT_NOT_EQUAL(now, 3);
  }
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT_EQUAL(moved, count[3]);
}

static void hashing_follows_weights(void) {
  uint64_t seeds[2] = {affinity_hash_key("a", 1), affinity_hash_key("b", 1)};
  uint32_t w[2] = {1, 3};
  struct lb_state st[2] = {{0}};
  const struct lb_state *ptrs[2] = {&st[0], &st[1]};
  int count[2] = {0};
  for (int k = 0; k < 20000; k++) {
    char key[32];
    int n = snprintf(key, sizeof(key), "k%d", k);
    count[lb_pick_hash(affinity_hash_key(key, (size_t)n), seeds, w, ptrs, 2, 0, 0)]++;
  }
  CU_ASSERT_TRUE(count[1] > count[0] * 2 && count[1] < count[0] * 4);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("policy_core", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(bcrypt_line_from_htpasswd_accepts_its_password_only);
  T(sha_line_from_htpasswd_accepts_its_password_only);
  T(unknown_user_gets_a_decoy_hash_of_a_real_kind);
  T(a_user_named_twice_keeps_the_first_line);
  T(basic_credentials_parse_and_refuse_garbage);
  T(credential_cache_remembers_only_what_was_put);
  T(bucket_allows_burst_then_one_per_interval);
  T(per_minute_limit_and_default_burst);
  T(table_keeps_keys_apart_and_shared);
  T(table_memory_is_bounded_under_a_key_flood);
  T(cors_origins_exact_and_wildcard);
  T(cors_preflight_answers_only_what_is_allowed);
  T(cors_any_origin_is_never_echoed_with_credentials);
  T(affinity_tokens_differ_per_endpoint_and_key);
  T(affinity_cookie_found_among_others);
  T(hashing_moves_only_the_keys_of_a_removed_endpoint);
  T(hashing_follows_weights);
#undef T
}
