/* translate: the Ingress canary annotations (edge.dev/canary*, ingress-nginx
 * semantics) become weighted clusters and header routes on the main path. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/translate.h"

static const char *BASE =
    "apiVersion: networking.k8s.io/v1\n"
    "kind: IngressClass\n"
    "metadata: {name: edge, annotations: {ingressclass.kubernetes.io/is-default-class: "
    "\"true\"}}\n"
    "spec: {controller: edge.dev/ingress-controller}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: stable, namespace: default}\n"
    "spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: next, namespace: default}\n"
    "spec: {clusterIP: 10.0.0.2, ports: [{port: 80}]}\n"
    "---\n"
    "apiVersion: networking.k8s.io/v1\n"
    "kind: Ingress\n"
    "metadata: {name: main, namespace: default, creationTimestamp: \"2026-01-02T00:00:00Z\"}\n"
    "spec:\n"
    "  rules:\n"
    "  - host: shop.example.com\n"
    "    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: stable, port: "
    "{number: 80}}}}]}\n"
    "---\n";

static struct syncd_desired *d;

/* BASE (which has the main Ingress), plus a canary Ingress with these annotations (YAML flow
 * map body) on host. */
static void run(const char *annotations, const char *host) {
  char text[8192];
  snprintf(text, sizeof(text),
           "%s"
           "apiVersion: networking.k8s.io/v1\n"
           "kind: Ingress\n"
           "metadata:\n"
           "  name: canary\n"
           "  namespace: default\n"
           "  creationTimestamp: \"2026-01-01T00:00:00Z\"\n"
           "  annotations: {%s}\n"
           "spec:\n"
           "  rules:\n"
           "  - host: %s\n"
           "    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: next, port: "
           "{number: 80}}}}]}\n",
           BASE, annotations, host);
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, strlen(text), "c.yaml");
  syncd_desired_free(d);
  d = NULL;
  CU_ASSERT_EQUAL_FATAL(translate_desired(&set, NULL, &d), 0);
  manifest_set_free(&set);
}

static Edge__V1__VirtualHost *vhost(Edge__V1__Resource **keep) {
  for (size_t i = 0; i < d->n_resources; i++)
    if (!strcmp(d->resources[i].name, "vh:shop.example.com")) {
      *keep = edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
      return *keep ? (*keep)->virtual_host : NULL;
    }
  return NULL;
}

static int rejected(const char *needle) {
  for (size_t i = 0; i < d->n_rejected; i++)
    if (strstr(d->rejected[i].reason, needle)) return 1;
  return 0;
}

static void weight_splits_the_main_path(void) {
  run("edge.dev/canary: \"true\", edge.dev/canary-weight: \"10\"", "shop.example.com");
  Edge__V1__Resource *r = NULL;
  Edge__V1__VirtualHost *vh = vhost(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vh);
  CU_ASSERT_EQUAL_FATAL(vh->n_routes, 1);
  Edge__V1__Route *rt = vh->routes[0];
  CU_ASSERT_EQUAL_FATAL(rt->n_weighted_clusters, 2);
  CU_ASSERT_STRING_EQUAL(rt->weighted_clusters[0]->cluster, "default/stable:80");
  CU_ASSERT_EQUAL(rt->weighted_clusters[0]->weight, 90);
  CU_ASSERT_STRING_EQUAL(rt->weighted_clusters[1]->cluster, "default/next:80");
  CU_ASSERT_EQUAL(rt->weighted_clusters[1]->weight, 10);
  CU_ASSERT_EQUAL(vh->n_ingresses, 2); /* both contribute */
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  edge__v1__resource__free_unpacked(r, NULL);
}

static void by_header_adds_always_and_never_routes(void) {
  run("edge.dev/canary: \"true\", edge.dev/canary-by-header: X-Canary", "shop.example.com");
  Edge__V1__Resource *r = NULL;
  Edge__V1__VirtualHost *vh = vhost(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vh);
  CU_ASSERT_EQUAL_FATAL(vh->n_routes, 3);
  CU_ASSERT_EQUAL(vh->routes[0]->n_weighted_clusters, 0); /* no weight: the main path only */
  CU_ASSERT_STRING_EQUAL(vh->routes[0]->cluster, "default/stable:80");
  CU_ASSERT_EQUAL_FATAL(vh->routes[1]->n_headers, 1);
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->headers[0]->name, "x-canary");
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->headers[0]->value, "always");
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->cluster, "default/next:80");
  CU_ASSERT_STRING_EQUAL(vh->routes[2]->headers[0]->value, "never");
  CU_ASSERT_STRING_EQUAL(vh->routes[2]->cluster, "default/stable:80");
  edge__v1__resource__free_unpacked(r, NULL);
}

static void by_header_value_routes_that_value(void) {
  run("edge.dev/canary: \"true\", edge.dev/canary-by-header: x-env, "
      "edge.dev/canary-by-header-value: beta, edge.dev/canary-weight: \"5\"",
      "shop.example.com");
  Edge__V1__Resource *r = NULL;
  Edge__V1__VirtualHost *vh = vhost(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vh);
  CU_ASSERT_EQUAL_FATAL(vh->n_routes, 2);
  CU_ASSERT_EQUAL(vh->routes[0]->n_weighted_clusters, 2);
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->headers[0]->value, "beta");
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->cluster, "default/next:80");
  edge__v1__resource__free_unpacked(r, NULL);
}

static void canary_without_main_is_reported(void) {
  run("edge.dev/canary: \"true\", edge.dev/canary-weight: \"50\"", "other.example.com");
  CU_ASSERT_TRUE(rejected("canary path / on host other.example.com has no Ingress"));
}

static void bad_canary_annotations_reject_the_ingress(void) {
  const char *bad[] = {
      "edge.dev/canary-weight: \"10\"", /* without edge.dev/canary */
      "edge.dev/canary: \"true\", edge.dev/canary-weight: \"101\"",
      "edge.dev/canary: \"true\", edge.dev/canary-weight: \"-1\"",
      "edge.dev/canary: \"true\", edge.dev/canary-by-header: \"x y\"",
      "edge.dev/canary: \"true\", edge.dev/canary-by-header: x, edge.dev/canary-by-header-value: "
      "\"a\\r\\nInjected: 1\"",
      "edge.dev/canary: \"yes\"",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    run(bad[i], "shop.example.com");
    CU_ASSERT_TRUE(rejected("default/canary: "));
    Edge__V1__Resource *r = NULL;
    Edge__V1__VirtualHost *vh = vhost(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vh); /* the main Ingress is still served */
    CU_ASSERT_EQUAL(vh->n_routes, 1);
    CU_ASSERT_EQUAL(vh->routes[0]->n_weighted_clusters, 0);
    edge__v1__resource__free_unpacked(r, NULL);
  }
}

static void weight_total_changes_the_scale(void) {
  run("edge.dev/canary: \"true\", edge.dev/canary-weight: \"1\", "
      "edge.dev/canary-weight-total: \"1000\"",
      "shop.example.com");
  Edge__V1__Resource *r = NULL;
  Edge__V1__VirtualHost *vh = vhost(&r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vh);
  CU_ASSERT_EQUAL(vh->routes[0]->weighted_clusters[0]->weight, 999);
  CU_ASSERT_EQUAL(vh->routes[0]->weighted_clusters[1]->weight, 1);
  edge__v1__resource__free_unpacked(r, NULL);
}

static int teardown(void) {
  syncd_desired_free(d);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("canary", NULL, teardown);
#define T(f) CU_add_test(s, #f, f)
  T(weight_splits_the_main_path);
  T(by_header_adds_always_and_never_routes);
  T(by_header_value_routes_that_value);
  T(canary_without_main_is_reported);
  T(bad_canary_annotations_reject_the_ingress);
  T(weight_total_changes_the_scale);
#undef T
}
