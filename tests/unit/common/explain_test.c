/*
 * explain_test — the shared explain builder (common/explain): host entry,
 * route, Ingress source, cluster readiness, certificate selection by SNI,
 * redirects, and the closest candidates with why each did not match.
 */
#include "common/explain.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "common/weighted.h"

/* ---- fixtures: a small pool of resources freed by fx_free ------------- */

#define FX_MAX 64
static void *fx_allocs[FX_MAX * 16];
static size_t fx_n;

static void *fx(size_t n) {
  void *p = calloc(1, n);
  fx_allocs[fx_n++] = p;
  return p;
}

static void fx_free(void) {
  for (size_t i = 0; i < fx_n; i++) free(fx_allocs[i]);
  fx_n = 0;
}

static Edge__V1__SourceRef *fx_src(const char *ns, const char *name) {
  Edge__V1__SourceRef *s = fx(sizeof(*s));
  edge__v1__source_ref__init(s);
  s->kind = "Ingress";
  s->namespace_ = (char *)ns;
  s->name = (char *)name;
  return s;
}

static Edge__V1__Route *fx_route(const char *path, int type, const char *cluster, const char *ing) {
  Edge__V1__Route *r = fx(sizeof(*r));
  edge__v1__route__init(r);
  r->path = (char *)path;
  r->path_type = type;
  r->cluster = (char *)cluster;
  r->source = fx_src("default", ing);
  return r;
}

static Edge__V1__Resource *fx_vhost(const char *host, const char *cert, size_t n,
                                    Edge__V1__Route **routes) {
  Edge__V1__VirtualHost *v = fx(sizeof(*v));
  edge__v1__virtual_host__init(v);
  char *name = fx(300);
  snprintf(name, 300, "vh:%s", host);
  v->name = name;
  v->host = (char *)host;
  v->host_match = host[0] == '\0' ? 3 : host[0] == '*' ? 2 : 1;
  v->n_routes = n;
  v->routes = fx(n * sizeof(*routes));
  memcpy(v->routes, routes, n * sizeof(*routes));
  v->certificate = (char *)cert;
  Edge__V1__Resource *r = fx(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r->virtual_host = v;
  return r;
}

static Edge__V1__Resource *fx_cluster(const char *name, int ready) {
  Edge__V1__Cluster *c = fx(sizeof(*c));
  edge__v1__cluster__init(c);
  c->name = (char *)name;
  Edge__V1__Endpoint *e = fx(sizeof(*e));
  edge__v1__endpoint__init(e);
  e->address = "10.0.0.1";
  e->port = 8080;
  e->ready = ready;
  c->n_endpoints = 1;
  c->endpoints = fx(sizeof(*c->endpoints));
  c->endpoints[0] = e;
  Edge__V1__Resource *r = fx(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r->cluster = c;
  return r;
}

static Edge__V1__Resource *fx_cert(const char *name, const char *sni, int is_default) {
  Edge__V1__Certificate *c = fx(sizeof(*c));
  edge__v1__certificate__init(c);
  c->name = (char *)name;
  if (sni) {
    c->n_sni_names = 1;
    c->sni_names = fx(sizeof(char *));
    c->sni_names[0] = (char *)sni;
  }
  c->not_after = 2000000000;
  c->is_default = is_default;
  Edge__V1__Resource *r = fx(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r->certificate = c;
  return r;
}

static Edge__V1__Resource *fx_default(const char *cluster) {
  Edge__V1__DefaultBackend *d = fx(sizeof(*d));
  edge__v1__default_backend__init(d);
  d->name = "default";
  d->cluster = (char *)cluster;
  Edge__V1__Resource *r = fx(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND;
  r->default_backend = d;
  return r;
}

enum { EX = 1, PF = 2 };

/* shop.example.com: /cart Exact, /api Prefix (TLS); *.example.com: / ;
 * a catch-all-free setup unless asked. */
static size_t fx_world(Edge__V1__Resource **res) {
  size_t n = 0;
  Edge__V1__Route *shop[] = {fx_route("/cart", EX, "default/shop:80", "shop"),
                             fx_route("/api", PF, "default/api:80", "api")};
  res[n++] = fx_vhost("shop.example.com", "default/shop-tls", 2, shop);
  Edge__V1__Route *wild[] = {fx_route("/", PF, "default/wild:80", "wild")};
  res[n++] = fx_vhost("*.example.com", "", 1, wild);
  res[n++] = fx_cluster("default/shop:80", 1);
  res[n++] = fx_cluster("default/api:80", 0);
  res[n++] = fx_cluster("default/wild:80", 1);
  res[n++] = fx_cert("default/shop-tls", "shop.example.com", 0);
  res[n++] = fx_cert("default/wild-tls", "*.example.com", 0);
  res[n++] = fx_cert("default", NULL, 1);
  return n;
}

static json_t *run(const char *url, const char *sni) {
  Edge__V1__Resource *res[16];
  size_t n = fx_world(res);
  struct explain_request req = {.url = url, .sni = sni};
  json_t *out = NULL;
  char err[256];
  int rc = explain_build(res, n, &req, &out, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  return out;
}

static const char *jget(const json_t *o, const char *a, const char *b) {
  const json_t *x = json_object_get(o, a);
  if (b) x = json_object_get(x, b);
  return json_string_value(x);
}

static void cand_verdict_for_path(const json_t *r, const char *path, const char *want) {
  size_t i;
  const json_t *c;
  int found = 0;
  json_array_foreach(json_object_get(r, "candidates"), i, c) {
    if (strcmp(jget(c, "path", NULL), path) == 0) {
      found = 1;
      CU_ASSERT_STRING_EQUAL(jget(c, "verdict", NULL), want);
    }
  }
  CU_ASSERT(found);
}

static void exact_host_route_names_ingress_cluster_and_exact_certificate(void) {
  json_t *r = run("https://Shop.Example.com/cart", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(json_is_true(json_object_get(r, "matched")));
  CU_ASSERT_STRING_EQUAL(jget(r, "host_entry", "host"), "shop.example.com");
  CU_ASSERT_STRING_EQUAL(jget(r, "host_entry", "host_match"), "EXACT");
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "path_type"), "Exact");
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "source"), "default/shop");
  CU_ASSERT_STRING_EQUAL(jget(r, "cluster", "name"), "default/shop:80");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "name"), "default/shop-tls");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "exact");
  CU_ASSERT(json_is_null(json_object_get(r, "redirect")));
  json_decref(r);
  fx_free();
}

static void wildcard_host_matches_one_label_and_gets_wildcard_certificate(void) {
  json_t *r = run("https://blog.example.com/x", NULL);
  CU_ASSERT_STRING_EQUAL(jget(r, "host_entry", "host_match"), "WILDCARD");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "name"), "default/wild-tls");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "wildcard");
  json_decref(r);
  fx_free();
  r = run("https://a.b.example.com/x", NULL);
  CU_ASSERT(json_is_false(json_object_get(r, "matched")));
  cand_verdict_for_path(r, "/", "wildcard covers exactly one DNS label");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "default");
  json_decref(r);
  fx_free();
}

static void exact_rule_reports_trailing_slash(void) {
  json_t *r = run("https://shop.example.com/cart/", NULL);
  /* The wildcard does not serve shop.example.com: wildcard tier only when
   * the exact host's paths miss, and *.example.com covers it. */
  cand_verdict_for_path(r, "/cart", "exact path differs by a trailing slash");
  json_decref(r);
  fx_free();
}

static void prefix_reports_path_element_boundary(void) {
  json_t *r = run("https://shop.example.com/apiv2", NULL);
  cand_verdict_for_path(r, "/api", "prefix ends inside a path element");
  json_decref(r);
  fx_free();
}

static void backend_without_ready_endpoints_is_a_problem(void) {
  json_t *r = run("https://shop.example.com/api/x", NULL);
  CU_ASSERT_STRING_EQUAL(jget(r, "cluster", "name"), "default/api:80");
  CU_ASSERT_EQUAL(
      json_integer_value(json_object_get(json_object_get(r, "cluster"), "ready_endpoints")), 0);
  char *s = json_dumps(json_object_get(r, "problems"), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(s, "no ready endpoints"));
  free(s);
  json_decref(r);
  fx_free();
}

static void plain_http_to_tls_host_redirects_308(void) {
  json_t *r = run("http://shop.example.com/cart?q=1", NULL);
  const json_t *rd = json_object_get(r, "redirect");
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(rd, "status")), 308);
  CU_ASSERT_STRING_EQUAL(jget(rd, "location", NULL), "https://shop.example.com/cart?q=1");
  CU_ASSERT(json_is_null(json_object_get(r, "certificate")));
  json_decref(r);
  fx_free();
}

static void typo_host_lists_intended_rule_first_with_hint(void) {
  json_t *r = run("https://shop.exmaple.com/cart", NULL);
  CU_ASSERT(json_is_false(json_object_get(r, "matched")));
  const json_t *c0 = json_array_get(json_object_get(r, "candidates"), 0);
  CU_ASSERT_STRING_EQUAL(jget(c0, "host", NULL), "shop.example.com");
  CU_ASSERT_STRING_EQUAL(jget(c0, "verdict", NULL), "host differs");
  CU_ASSERT_PTR_NOT_NULL(jget(c0, "hint", NULL));
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "default");
  json_decref(r);
  fx_free();
}

static void unmatched_request_goes_to_default_backend(void) {
  Edge__V1__Resource *res[16];
  size_t n = fx_world(res);
  res[n++] = fx_default("default/wild:80");
  struct explain_request req = {.url = "other.org/x"};
  json_t *r = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(explain_build(res, n, &req, &r, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(jget(r, "default_backend", NULL), "default/wild:80");
  CU_ASSERT_STRING_EQUAL(jget(r, "cluster", "name"), "default/wild:80");
  char *text = explain_format_text(r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "no rule matches"));
  free(text);
  json_decref(r);
  fx_free();
}

static void sni_overrides_host_and_host_header_overrides_url_host(void) {
  Edge__V1__Resource *res[16];
  size_t n = fx_world(res);
  const char *hdrs[] = {"Host: shop.example.com:443"};
  struct explain_request req = {
      .url = "https://10.1.2.3/cart", .sni = "x.example.com", .headers = hdrs, .n_headers = 1};
  json_t *r = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(explain_build(res, n, &req, &r, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(jget(r, "host_entry", "host"), "shop.example.com");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "name"), "default/wild-tls");
  json_decref(r);
  fx_free();
}

static void bad_urls_are_rejected_with_reason(void) {
  const char *bad[] = {"ftp://a.com/", "http:///x", "http://a.com:0/", "http://a.com:99999/",
                       "http://[::1/", "",          "http://a.com:x/"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct explain_request req = {.url = bad[i]};
    json_t *r = NULL;
    char err[256] = "";
    CU_ASSERT_EQUAL(explain_build(NULL, 0, &req, &r, err, sizeof(err)), EXPLAIN_ERR_INVALID);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT(err[0] != '\0');
  }
  struct explain_request none = {0};
  json_t *r = NULL;
  char err[256];
  CU_ASSERT_EQUAL(explain_build(NULL, 0, &none, &r, err, sizeof(err)), EXPLAIN_ERR_INVALID);
}

static void url_parser_splits_scheme_host_port_path(void) {
  char s[8], h[300], p[100];
  unsigned port;
  CU_ASSERT_EQUAL(explain_parse_url("https://[::1]:8443/a?b", s, 8, h, 300, &port, p, 100), 0);
  CU_ASSERT_STRING_EQUAL(s, "https");
  CU_ASSERT_STRING_EQUAL(h, "::1");
  CU_ASSERT_EQUAL(port, 8443);
  CU_ASSERT_STRING_EQUAL(p, "/a?b");
  CU_ASSERT_EQUAL(explain_parse_url("a.com", s, 8, h, 300, &port, p, 100), 0);
  CU_ASSERT_STRING_EQUAL(s, "http");
  CU_ASSERT_EQUAL(port, 80);
  CU_ASSERT_STRING_EQUAL(p, "/");
}

static void certificate_names_come_from_the_leaf_when_none_listed(void) {
  const char *names[] = {"leaf.test"};
  char *cp = NULL, *kp = NULL, err[256];
  CU_ASSERT_EQUAL_FATAL(cert_generate(names, 1, 30, 0, NULL, NULL, &cp, &kp, err, sizeof(err)), 0);
  Edge__V1__Resource *c = fx_cert("default/leaf", NULL, 0);
  c->certificate->cert_pem.data = (uint8_t *)cp;
  c->certificate->cert_pem.len = strlen(cp);
  Edge__V1__Resource *res[] = {c};
  struct explain_request req = {.url = "https://leaf.test/"};
  json_t *r = NULL;
  CU_ASSERT_EQUAL_FATAL(explain_build(res, 1, &req, &r, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "name"), "default/leaf");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "exact");
  CU_ASSERT_PTR_NOT_NULL(strstr(jget(r, "certificate", "issuer"), "leaf.test"));
  json_decref(r);
  free(cp);
  free(kp);
  fx_free();
}

/* ---- Gateway API: conditions, weighted picks, passthrough ------------- */

static Edge__V1__WeightedCluster *fx_wc(const char *cluster, uint32_t weight) {
  Edge__V1__WeightedCluster *w = fx(sizeof(*w));
  edge__v1__weighted_cluster__init(w);
  w->cluster = (char *)cluster;
  w->weight = weight;
  return w;
}

/* app.example.test (HTTP listener): POST / → post; X-Env: canary → canary; / → 90/10
 * stable/canary. tls.example.test: passthrough to tls-backend. */
static size_t fx_gateway(Edge__V1__Resource **res) {
  size_t n = 0;
  Edge__V1__Route *post = fx_route("/", PF, "default/post:80", "post");
  post->method = "POST";
  Edge__V1__Route *hdr = fx_route("/", PF, "default/canary:80", "hdr");
  Edge__V1__HeaderMatch *hm = fx(sizeof(*hm));
  edge__v1__header_match__init(hm);
  hm->name = "X-Env";
  hm->value = "canary";
  hdr->n_headers = 1;
  hdr->headers = fx(sizeof(*hdr->headers));
  hdr->headers[0] = hm;
  Edge__V1__Route *split = fx_route("/", PF, "", "split");
  split->n_weighted_clusters = 2;
  split->weighted_clusters = fx(2 * sizeof(*split->weighted_clusters));
  split->weighted_clusters[0] = fx_wc("default/stable:80", 90);
  split->weighted_clusters[1] = fx_wc("default/canary:80", 10);
  Edge__V1__Route *routes[] = {post, hdr, split};
  res[n] = fx_vhost("app.example.test", "", 3, routes);
  res[n++]->virtual_host->listener = EDGE__V1__LISTENER__LISTENER_HTTP;
  res[n++] = fx_cluster("default/post:80", 1);
  res[n++] = fx_cluster("default/canary:80", 1);
  res[n++] = fx_cluster("default/stable:80", 1);
  Edge__V1__PassthroughHost *p = fx(sizeof(*p));
  edge__v1__passthrough_host__init(p);
  p->name = "pt:tls.example.test";
  p->host = "tls.example.test";
  p->host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  p->n_clusters = 1;
  p->clusters = fx(sizeof(*p->clusters));
  p->clusters[0] = fx_wc("default/tls-backend:443", 1);
  Edge__V1__Resource *r = fx(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST;
  r->passthrough_host = p;
  res[n++] = r;
  return n;
}

static json_t *run_gw(const char *url, const char *method, const char **hdrs, size_t nh) {
  Edge__V1__Resource *res[16];
  size_t n = fx_gateway(res);
  struct explain_request req = {.url = url, .method = method, .headers = hdrs, .n_headers = nh};
  json_t *out = NULL;
  char err[256];
  CU_ASSERT_EQUAL(explain_build(res, n, &req, &out, err, sizeof(err)), 0);
  return out;
}

static int problems_mention(const json_t *r, const char *needle) {
  size_t i;
  const json_t *p;
  json_array_foreach(json_object_get(r, "problems"), i, p) {
    if (strstr(json_string_value(p), needle)) return 1;
  }
  return 0;
}

static void gateway_method_and_header_conditions_pick_the_route(void) {
  json_t *r = run_gw("http://app.example.test/x", "POST", NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "cluster"), "default/post:80");
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "method"), "POST");
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "listener"), "HTTP");
  json_decref(r);
  fx_free();
  const char *h[] = {"X-Env: canary"};
  r = run_gw("http://app.example.test/x", NULL, h, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "cluster"), "default/canary:80");
  CU_ASSERT_STRING_EQUAL(
      json_string_value(json_array_get(json_object_get(json_object_get(r, "route"), "headers"), 0)),
      "X-Env = canary");
  /* the POST rule is the closest miss: host and path fit, the method does not */
  size_t i;
  const json_t *c;
  int seen = 0;
  json_array_foreach(json_object_get(r, "candidates"), i, c) {
    if (strstr(jget(c, "source", NULL), "post")) {
      seen = 1;
      CU_ASSERT_STRING_EQUAL(jget(c, "verdict", NULL), "method differs");
    }
  }
  CU_ASSERT(seen);
  json_decref(r);
  fx_free();
}

static void gateway_weighted_route_names_the_cluster_the_request_id_picks(void) {
  /* the same pick the proxy makes (common/weighted over X-Request-Id) */
  const char *names[] = {"default/stable:80", "default/canary:80"};
  const uint32_t w[] = {90, 10};
  size_t seen[2] = {0, 0};
  for (int k = 0; k < 100; k++) {
    char id[32], hdr[64];
    snprintf(id, sizeof(id), "req-%d", k);
    snprintf(hdr, sizeof(hdr), "X-Request-Id: %s", id);
    const char *h[] = {hdr};
    json_t *r = run_gw("http://app.example.test/", NULL, h, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    long want = weighted_pick(w, 2, weighted_key(id, strlen(id)));
    CU_ASSERT_FATAL(want >= 0);
    seen[want]++;
    CU_ASSERT_STRING_EQUAL(jget(r, "route", "cluster"), names[want]);
    CU_ASSERT_STRING_EQUAL(jget(r, "cluster", "name"), names[want]);
    CU_ASSERT(json_is_true(json_object_get(json_object_get(r, "route"), "picked")));
    CU_ASSERT_EQUAL(
        json_array_size(json_object_get(json_object_get(r, "route"), "weighted_clusters")), 2);
    json_decref(r);
    fx_free();
  }
  /* both backends are picked by some ids: the pick depends on the id */
  CU_ASSERT(seen[0] > 0 && seen[1] > 0);
  /* without an id the cluster is open, and the answer says how to see one */
  json_t *r = run_gw("http://app.example.test/", NULL, NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(jget(r, "route", "cluster"), "");
  CU_ASSERT(problems_mention(r, "X-Request-Id"));
  CU_ASSERT(!problems_mention(r, "names no cluster"));
  json_decref(r);
  fx_free();
}

static void gateway_listener_and_passthrough_are_explained(void) {
  /* the vhost is on the HTTP listener only: https does not match it */
  json_t *r = run_gw("https://app.example.test/", "POST", NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(!json_is_true(json_object_get(r, "matched")));
  json_decref(r);
  fx_free();
  r = run_gw("https://tls.example.test/", NULL, NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(jget(r, "passthrough", "name"), "pt:tls.example.test");
  CU_ASSERT(problems_mention(r, "passthrough"));
  char *text = explain_format_text(r);
  CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "PASSTHROUGH"));
  free(text);
  json_decref(r);
  fx_free();
  r = run_gw("https://other.example.test/", NULL, NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT(json_is_null(json_object_get(r, "passthrough")));
  json_decref(r);
  fx_free();
}

/* l7proxy/tls.c leaves out a certificate that lists one name it cannot
 * serve (all or nothing); explain must pick what the handshake picks: the
 * valid name falls to the default certificate. */
static void certificate_with_an_invalid_name_serves_none(void) {
  Edge__V1__Resource *bad = fx_cert("default/bad-tls", "bad.example.com", 0);
  bad->certificate->n_sni_names = 2;
  bad->certificate->sni_names = fx(2 * sizeof(char *));
  bad->certificate->sni_names[0] = "bad.example.com";
  bad->certificate->sni_names[1] = "in valid";
  Edge__V1__Resource *bad_default = fx_cert("default/bad-default", "x y", 1);
  Edge__V1__Resource *res[] = {bad, bad_default, fx_cert("default", NULL, 1)};
  struct explain_request req = {.url = "https://bad.example.com/"};
  json_t *r = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(explain_build(res, 3, &req, &r, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "name"), "default");
  CU_ASSERT_STRING_EQUAL(jget(r, "certificate", "match"), "default");
  json_decref(r);
  fx_free();
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("explain", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(exact_host_route_names_ingress_cluster_and_exact_certificate);
  T(wildcard_host_matches_one_label_and_gets_wildcard_certificate);
  T(exact_rule_reports_trailing_slash);
  T(prefix_reports_path_element_boundary);
  T(backend_without_ready_endpoints_is_a_problem);
  T(plain_http_to_tls_host_redirects_308);
  T(typo_host_lists_intended_rule_first_with_hint);
  T(unmatched_request_goes_to_default_backend);
  T(sni_overrides_host_and_host_header_overrides_url_host);
  T(bad_urls_are_rejected_with_reason);
  T(url_parser_splits_scheme_host_port_path);
  T(certificate_names_come_from_the_leaf_when_none_listed);
  T(gateway_method_and_header_conditions_pick_the_route);
  T(gateway_weighted_route_names_the_cluster_the_request_id_picks);
  T(gateway_listener_and_passthrough_are_explained);
  T(certificate_with_an_invalid_name_serves_none);
}
