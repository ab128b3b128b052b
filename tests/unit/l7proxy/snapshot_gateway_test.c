/* snapshot: the Gateway API part — conditions compiled into the lookup,
 * listeners, weighted clusters and extras resolved, passthrough hosts by
 * SNI, and Nacks for what could corrupt the wire. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "common/headermod.h"
#include "common/router.h"
#include "l7proxy/snapshot.h"

static Edge__V1__Endpoint ep = EDGE__V1__ENDPOINT__INIT;
static Edge__V1__Endpoint *eps[] = {&ep};
static Edge__V1__Cluster cl_a = EDGE__V1__CLUSTER__INIT, cl_b = EDGE__V1__CLUSTER__INIT;
static Edge__V1__Resource r_a = EDGE__V1__RESOURCE__INIT, r_b = EDGE__V1__RESOURCE__INIT;

static void clusters(void) {
  ep.address = "127.0.0.1";
  ep.port = 8080;
  ep.ready = 1;
  cl_a.name = "gw:ns/a:80";
  cl_b.name = "gw:ns/b:80";
  cl_a.endpoints = cl_b.endpoints = eps;
  cl_a.n_endpoints = cl_b.n_endpoints = 1;
  r_a.kind_case = r_b.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r_a.cluster = &cl_a;
  r_b.cluster = &cl_b;
}

static int build(Edge__V1__Resource **res, size_t n, struct l7_snapshot **s, char *err,
                 size_t errlen) {
  return l7_snapshot_build(1, res, n, s, err, errlen);
}

static const struct l7_route *req(const struct l7_snapshot *s, const char *host, const char *target,
                                  const char *method, const struct router_header *h, size_t nh,
                                  unsigned listener) {
  struct router_request q = {
      host, strlen(host), target,  strlen(target), method, method ? strlen(method) : 0,
      h,    nh,           listener};
  return l7_snapshot_match_request(s, &q);
}

static void conditions_listener_and_weights_reach_the_lookup(void) {
  clusters();
  Edge__V1__HeaderMatch hm = EDGE__V1__HEADER_MATCH__INIT, *hms[] = {&hm};
  hm.name = "x-canary";
  hm.value = "always";
  Edge__V1__WeightedCluster w1 = EDGE__V1__WEIGHTED_CLUSTER__INIT, w2 = w1, w3 = w1;
  w1.cluster = "gw:ns/a:80", w1.weight = 90;
  w2.cluster = "gw:ns/b:80", w2.weight = 10;
  w3.cluster = "", w3.weight = 5; /* an unresolved backend: its share gets 500 */
  Edge__V1__WeightedCluster *wcs[] = {&w1, &w2, &w3};
  Edge__V1__HeaderValue hv = EDGE__V1__HEADER_VALUE__INIT, *hvs[] = {&hv};
  hv.name = "x-added";
  hv.value = "yes";
  Edge__V1__HeaderModifier mod = EDGE__V1__HEADER_MODIFIER__INIT;
  mod.add = hvs;
  mod.n_add = 1;
  Edge__V1__Mirror mir = EDGE__V1__MIRROR__INIT, *mirs[] = {&mir};
  mir.cluster = "gw:ns/b:80";
  Edge__V1__RouteOptions o = EDGE__V1__ROUTE_OPTIONS__INIT;
  o.rewrite_host = "internal.example.com";
  Edge__V1__Route canary = EDGE__V1__ROUTE__INIT, split = EDGE__V1__ROUTE__INIT;
  canary.path = split.path = "/";
  canary.path_type = split.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  canary.cluster = "gw:ns/b:80";
  canary.headers = hms;
  canary.n_headers = 1;
  split.weighted_clusters = wcs;
  split.n_weighted_clusters = 3;
  split.request_headers = &mod;
  split.mirrors = mirs;
  split.n_mirrors = 1;
  split.options = &o;
  Edge__V1__Route *routes[] = {&split, &canary};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "gw:http:*.example.com";
  vh.host = "*.example.com";
  vh.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX;
  vh.listener = EDGE__V1__LISTENER__LISTENER_HTTP;
  vh.routes = routes;
  vh.n_routes = 2;
  Edge__V1__Resource r_vh = EDGE__V1__RESOURCE__INIT;
  r_vh.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r_vh.virtual_host = &vh;
  Edge__V1__Resource *res[] = {&r_a, &r_b, &r_vh};
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  int rc = build(res, 3, &s, err, sizeof(err));
  if (rc) fprintf(stderr, "build: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  struct router_header yes = {"x-canary", 8, "always", 6};
  const struct l7_route *r = req(s, "a.b.example.com", "/x", "GET", &yes, 1, ROUTER_LISTENER_HTTP);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  const struct l7_cluster *c = l7_snapshot_route_cluster(s, r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c); /* the canary route, not the weighted one */
  CU_ASSERT_STRING_EQUAL(c->name, "gw:ns/b:80");
  r = req(s, "a.example.com", "/x", "GET", NULL, 0, ROUTER_LISTENER_HTTP);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->n_weighted, 3);
  CU_ASSERT_STRING_EQUAL(l7_snapshot_weighted_cluster(s, &r->weighted[0])->name, "gw:ns/a:80");
  CU_ASSERT_EQUAL(r->weighted[1].weight, 10);
  CU_ASSERT_PTR_NULL(l7_snapshot_weighted_cluster(s, &r->weighted[2]));
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->request_headers);
  CU_ASSERT_EQUAL(r->request_headers->n_add, 1);
  CU_ASSERT_EQUAL_FATAL(r->n_mirrors, 1);
  CU_ASSERT_STRING_EQUAL(l7_snapshot_mirror_cluster(s, &r->mirrors[0])->name, "gw:ns/b:80");
  CU_ASSERT_STRING_EQUAL(r->rewrite_host, "internal.example.com");
  CU_ASSERT_EQUAL(r->listener, EDGE__V1__LISTENER__LISTENER_HTTP);
  /* the HTTPS listener does not serve an HTTP-only vhost */
  CU_ASSERT_PTR_NULL(req(s, "a.example.com", "/x", "GET", NULL, 0, ROUTER_LISTENER_HTTPS));
  l7_snapshot_unref(s);

  /* an unknown cluster among the weights, and CR LF in a header value, are Nacks */
  w2.cluster = "gw:ns/missing:80";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), -22);
  CU_ASSERT(strstr(err, "unknown cluster gw:ns/missing:80") != NULL);
  w2.cluster = "gw:ns/b:80";
  hv.value = "a\r\nInjected: 1";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), -22);
  CU_ASSERT(strstr(err, "control character") != NULL);
  hv.value = "yes";
  /* a rewrite reaches the request line and the Host header: CR LF, a space or a query there is a
   * Nack, whoever sent it (a hand-written --config file included) */
  o.rewrite_host = "internal.example.com";
  o.rewrite_path = "/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), -22);
  CU_ASSERT(strstr(err, "rewrite_path") != NULL);
  o.rewrite_path = "/x?admin=1";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), -22);
  o.rewrite_path = "";
  o.rewrite_host = "a.com\r\nX-Injected: 1";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), -22);
  CU_ASSERT(strstr(err, "rewrite_host") != NULL);
  o.rewrite_host = "internal.example.com";
  CU_ASSERT_EQUAL(build(res, 3, &s, err, sizeof(err)), 0);
  l7_snapshot_unref(s);
}

static void passthrough_hosts_are_found_by_server_name(void) {
  clusters();
  Edge__V1__WeightedCluster w = EDGE__V1__WEIGHTED_CLUSTER__INIT, *ws[] = {&w};
  w.cluster = "gw:ns/a:80";
  w.weight = 1;
  Edge__V1__PassthroughHost p1 = EDGE__V1__PASSTHROUGH_HOST__INIT, p2 = p1;
  p1.name = "pt:abc.example.com", p1.host = "abc.example.com";
  p1.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  p2.name = "pt:*.tls.example.com", p2.host = "*.tls.example.com";
  p2.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX;
  p1.clusters = p2.clusters = ws;
  p1.n_clusters = p2.n_clusters = 1;
  Edge__V1__Resource r1 = EDGE__V1__RESOURCE__INIT, r2 = r1;
  r1.kind_case = r2.kind_case = EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST;
  r1.passthrough_host = &p1;
  r2.passthrough_host = &p2;
  Edge__V1__Resource *res[] = {&r_a, &r1, &r2};
  struct l7_snapshot *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(build(res, 3, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(l7_snapshot_n_passthrough(s), 2);
  const struct l7_passthrough *p = l7_snapshot_passthrough(s, "ABC.example.com", 15);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_STRING_EQUAL(p->name, "pt:abc.example.com");
  CU_ASSERT_STRING_EQUAL(l7_snapshot_weighted_cluster(s, &p->clusters[0])->name, "gw:ns/a:80");
  p = l7_snapshot_passthrough(s, "x.y.tls.example.com", 19);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_STRING_EQUAL(p->name, "pt:*.tls.example.com");
  CU_ASSERT_PTR_NULL(l7_snapshot_passthrough(s, "tls.example.com", 15));
  CU_ASSERT_PTR_NULL(l7_snapshot_passthrough(s, "other.com", 9));
  l7_snapshot_unref(s);
}

static Edge__V1__Resource *vhost_res(Edge__V1__VirtualHost *vh, Edge__V1__Resource *r,
                                     const char *name, const char *host, int listener,
                                     Edge__V1__Route **routes, size_t n) {
  edge__v1__virtual_host__init(vh);
  vh->name = (char *)name;
  vh->host = (char *)host;
  vh->host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  vh->listener = listener;
  vh->routes = routes;
  vh->n_routes = n;
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r->virtual_host = vh;
  return r;
}

/* The incremental builder: weighted backends, mirrors and passthrough clusters are references
 * like a route's own cluster (removing one still used is a Nack naming the user), a weight change
 * is a one-vhost delta that shares every cluster, and one host may have a vhost per listener. */
static void builder_tracks_gateway_references(void) {
  clusters();
  Edge__V1__WeightedCluster w1 = EDGE__V1__WEIGHTED_CLUSTER__INIT, w2 = w1, *wcs[] = {&w1, &w2};
  w1.cluster = "gw:ns/a:80", w1.weight = 90;
  w2.cluster = "gw:ns/b:80", w2.weight = 10;
  Edge__V1__Route split = EDGE__V1__ROUTE__INIT, *routes[] = {&split};
  split.path = "/";
  split.weighted_clusters = wcs;
  split.n_weighted_clusters = 2;
  Edge__V1__Route plain = EDGE__V1__ROUTE__INIT, *proutes[] = {&plain};
  plain.path = "/";
  plain.cluster = "gw:ns/a:80";
  Edge__V1__VirtualHost vh_http, vh_https;
  Edge__V1__Resource r_http, r_https;
  vhost_res(&vh_http, &r_http, "gw:http:a.example.com", "a.example.com",
            EDGE__V1__LISTENER__LISTENER_HTTP, routes, 1);
  vhost_res(&vh_https, &r_https, "gw:https:a.example.com", "a.example.com",
            EDGE__V1__LISTENER__LISTENER_HTTPS, proutes, 1);
  Edge__V1__WeightedCluster pw = EDGE__V1__WEIGHTED_CLUSTER__INIT, *pws[] = {&pw};
  pw.cluster = "gw:ns/b:80", pw.weight = 1;
  Edge__V1__PassthroughHost ph = EDGE__V1__PASSTHROUGH_HOST__INIT;
  ph.name = "pt:t.example.com", ph.host = "t.example.com";
  ph.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  ph.clusters = pws, ph.n_clusters = 1;
  Edge__V1__Resource r_pt = EDGE__V1__RESOURCE__INIT;
  r_pt.kind_case = EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST;
  r_pt.passthrough_host = &ph;
  struct l7_builder *b;
  CU_ASSERT_EQUAL_FATAL(l7_builder_new(NULL, &b), 0);
  Edge__V1__Resource *all[] = {&r_a, &r_b, &r_http, &r_https, &r_pt};
  struct l7_snapshot *s1 = NULL, *s2 = NULL, *s3 = NULL;
  char err[256] = "";
  int rc = l7_builder_apply(b, 1, 1, all, 5, NULL, 0, &s1, err, sizeof(err));
  if (rc) fprintf(stderr, "apply: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  const struct l7_route *r = req(s1, "a.example.com", "/", "GET", NULL, 0, ROUTER_LISTENER_HTTP);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->n_weighted, 2);
  r = req(s1, "a.example.com", "/", "GET", NULL, 0, ROUTER_LISTENER_HTTPS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->n_weighted, 0);
  CU_ASSERT_STRING_EQUAL(r->vhost, "gw:https:a.example.com");
  /* b is used by a weighted backend and by the passthrough host */
  Edge__V1__ResourceName rm = EDGE__V1__RESOURCE_NAME__INIT, *rms[] = {&rm};
  rm.type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, rm.name = "gw:ns/b:80";
  CU_ASSERT_EQUAL(l7_builder_apply(b, 2, 0, NULL, 0, rms, 1, &s2, err, sizeof(err)), -22);
  CU_ASSERT(strstr(err, "gw:ns/b:80: removed but still used by") != NULL);
  /* a weight change: one vhost; the clusters are the same compiled ones */
  w1.weight = 50, w2.weight = 50;
  Edge__V1__Resource *up[] = {&r_http};
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 2, 0, up, 1, NULL, 0, &s2, err, sizeof(err)), 0);
  CU_ASSERT_PTR_EQUAL(l7_snapshot_find_cluster(s1, "gw:ns/b:80"),
                      l7_snapshot_find_cluster(s2, "gw:ns/b:80"));
  r = req(s2, "a.example.com", "/", "GET", NULL, 0, ROUTER_LISTENER_HTTP);
  CU_ASSERT_EQUAL(r->weighted[0].weight, 50);
  CU_ASSERT_STRING_EQUAL(l7_snapshot_weighted_cluster(s2, &r->weighted[1])->name, "gw:ns/b:80");
  /* the passthrough host goes; then b may go once the weights stop naming it */
  rm.type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST, rm.name = "pt:t.example.com";
  CU_ASSERT_EQUAL_FATAL(l7_builder_apply(b, 3, 0, NULL, 0, rms, 1, &s3, err, sizeof(err)), 0);
  CU_ASSERT_PTR_NULL(l7_snapshot_passthrough(s3, "t.example.com", 13));
  CU_ASSERT_PTR_NOT_NULL(l7_snapshot_passthrough(s2, "t.example.com", 13)); /* s2 unchanged */
  l7_snapshot_unref(s1);
  l7_snapshot_unref(s2);
  l7_snapshot_unref(s3);
  l7_builder_free(b);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("snapshot_gateway", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(conditions_listener_and_weights_reach_the_lookup);
  T(builder_tracks_gateway_references);
  T(passthrough_hosts_are_found_by_server_name);
#undef T
}
