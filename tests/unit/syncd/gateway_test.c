/* gateway: the Gateway API translator, one test per rule of the
 * specification it implements (conditions with the spec's reasons, the
 * resources the proxies get), fed YAML text the way the directory source
 * reads it. The cases follow the upstream conformance suite's manifests. */
#include "syncd/gateway.h"

#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/translate.h"

static const char *BASE =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: GatewayClass\n"
    "metadata: {name: edge}\n"
    "spec: {controllerName: edge.dev/gateway-controller}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: GatewayClass\n"
    "metadata: {name: other}\n"
    "spec: {controllerName: example.com/other}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Namespace\n"
    "metadata: {name: infra, labels: {gateway-conformance: infra}}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Namespace\n"
    "metadata: {name: backend, labels: {gateway-conformance: backend}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1beta1\n"
    "kind: Gateway\n"
    "metadata: {name: same-namespace, namespace: infra}\n"
    "spec:\n"
    "  gatewayClassName: edge\n"
    "  listeners:\n"
    "  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}\n"
    "---\n"
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: backend-namespaces, namespace: infra}\n"
    "spec:\n"
    "  gatewayClassName: edge\n"
    "  listeners:\n"
    "  - name: http\n"
    "    port: 80\n"
    "    protocol: HTTP\n"
    "    allowedRoutes:\n"
    "      namespaces: {from: Selector, selector: {matchLabels: {gateway-conformance: backend}}}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: infra-backend-v1, namespace: infra}\n"
    "spec: {clusterIP: 10.0.0.1, ports: [{port: 8080}]}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: infra-backend-v2, namespace: infra}\n"
    "spec: {clusterIP: 10.0.0.2, ports: [{port: 8080}]}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: app-backend-v1, namespace: backend}\n"
    "spec: {clusterIP: 10.0.1.1, ports: [{port: 8080}]}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: grpc-backend, namespace: infra}\n"
    "spec: {clusterIP: 10.0.0.9, ports: [{port: 8080, appProtocol: kubernetes.io/h2c}]}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\n"
    "kind: EndpointSlice\n"
    "metadata:\n"
    "  name: infra-backend-v1-abc\n"
    "  namespace: infra\n"
    "  labels: {kubernetes.io/service-name: infra-backend-v1}\n"
    "ports: [{port: 3000}]\n"
    "endpoints:\n"
    "- {addresses: [127.0.0.11], conditions: {ready: true}}\n"
    "- {addresses: [127.0.0.12], conditions: {ready: false}}\n"
    "---\n";

static Edge__V1__StatusResponse *status;
static struct syncd_desired *d;

static void run_text(const char *extra) {
  size_t n = strlen(BASE) + strlen(extra) + 1;
  char *text = malloc(n);
  snprintf(text, n, "%s%s", BASE, extra);
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, strlen(text), "test.yaml");
  free(text);
  syncd_desired_free(d);
  d = NULL;
  static const uint32_t http[] = {80, 0}, https[] = {443, 0};
  struct gateway_opts o = {http, https, "192.0.2.1"};
  struct translate_opts to = {.gateway = &o};
  CU_ASSERT_EQUAL_FATAL(translate_desired(&set, &to, &d), 0);
  manifest_set_free(&set);
  if (status) edge__v1__status_response__free_unpacked(status, NULL);
  status = d->gateway_status
               ? edge__v1__status_response__unpack(NULL, d->gateway_status_len, d->gateway_status)
               : NULL;
}

static Edge__V1__Resource *resource(const char *name) {
  for (size_t i = 0; i < d->n_resources; i++)
    if (!strcmp(d->resources[i].name, name))
      return edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
  return NULL;
}

static const Edge__V1__GatewayObjectStatus *object(const char *kind, const char *ns,
                                                   const char *name) {
  for (size_t i = 0; status && i < status->n_gateway_objects; i++) {
    const Edge__V1__GatewayObjectStatus *o = status->gateway_objects[i];
    if (!strcmp(o->kind, kind) && !strcmp(o->namespace_, ns) && !strcmp(o->name, name)) return o;
  }
  return NULL;
}

static const Edge__V1__GatewayCondition *cond(Edge__V1__GatewayCondition **cs, size_t n,
                                              const char *type) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(cs[i]->type, type)) return cs[i];
  return NULL;
}

/* The condition `type` of route kind/ns/name for its first parent: "True:Reason" etc. */
static char cbuf[300];
static const char *route_cond(const char *kind, const char *ns, const char *name,
                              const char *type) {
  const Edge__V1__GatewayObjectStatus *o = object(kind, ns, name);
  if (!o || o->n_parents == 0) return "(no parent status)";
  const Edge__V1__GatewayCondition *c =
      cond(o->parents[0]->conditions, o->parents[0]->n_conditions, type);
  if (!c) return "(none)";
  snprintf(cbuf, sizeof(cbuf), "%s:%s", c->status ? "True" : "False", c->reason);
  return cbuf;
}

static char *route(const char *kind, const char *ns, const char *name, const char *body) {
  static char buf[8192];
  snprintf(buf, sizeof(buf),
           "apiVersion: gateway.networking.k8s.io/v1\n"
           "kind: %s\n"
           "metadata: {name: %s, namespace: %s, creationTimestamp: \"2026-01-01T00:00:00Z\"}\n"
           "spec:\n%s---\n",
           kind, name, ns, body);
  return buf;
}

static void class_and_gateway_are_accepted_and_programmed(void) {
  run_text("");
  const Edge__V1__GatewayObjectStatus *gc = object("GatewayClass", "", "edge");
  CU_ASSERT_PTR_NOT_NULL_FATAL(gc);
  CU_ASSERT_PTR_NULL(object("GatewayClass", "", "other")); /* never write another's status */
  CU_ASSERT_TRUE(cond(gc->conditions, gc->n_conditions, "Accepted")->status);
  const Edge__V1__GatewayObjectStatus *gw = object("Gateway", "infra", "same-namespace");
  CU_ASSERT_PTR_NOT_NULL_FATAL(gw);
  CU_ASSERT_STRING_EQUAL(cond(gw->conditions, gw->n_conditions, "Programmed")->reason,
                         "Programmed");
  CU_ASSERT_EQUAL_FATAL(gw->n_addresses, 1);
  CU_ASSERT_STRING_EQUAL(gw->addresses[0], "192.0.2.1");
  CU_ASSERT_EQUAL_FATAL(gw->n_listeners, 1);
  CU_ASSERT_EQUAL(gw->listeners[0]->attached_routes, 0);
  CU_ASSERT_EQUAL(gw->listeners[0]->n_supported_kinds, 2);
}

static void simple_route_attaches_and_becomes_a_virtual_host(void) {
  run_text(route("HTTPRoute", "infra", "gateway-conformance-infra-test",
                 "  parentRefs: [{name: same-namespace}]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  CU_ASSERT_STRING_EQUAL(
      route_cond("HTTPRoute", "infra", "gateway-conformance-infra-test", "Accepted"),
      "True:Accepted");
  CU_ASSERT_STRING_EQUAL(
      route_cond("HTTPRoute", "infra", "gateway-conformance-infra-test", "ResolvedRefs"),
      "True:ResolvedRefs");
  CU_ASSERT_EQUAL(object("Gateway", "infra", "same-namespace")->listeners[0]->attached_routes, 1);
  Edge__V1__Resource *r = resource("gw:http:*");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->listener, EDGE__V1__LISTENER__LISTENER_HTTP);
  CU_ASSERT_EQUAL(r->virtual_host->host_match, EDGE__V1__HOST_MATCH__HOST_MATCH_ANY);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 1);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->cluster, "gw:infra/infra-backend-v1:8080");
  edge__v1__resource__free_unpacked(r, NULL);
  r = resource("gw:infra/infra-backend-v1:8080");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->cluster->n_endpoints, 2); /* ready and not ready */
  CU_ASSERT_STRING_EQUAL(r->cluster->endpoints[0]->address, "127.0.0.11");
  CU_ASSERT_TRUE(r->cluster->endpoints[0]->ready);
  CU_ASSERT_FALSE(r->cluster->endpoints[1]->ready);
  edge__v1__resource__free_unpacked(r, NULL);
}

static void route_from_another_namespace_is_not_allowed_by_same(void) {
  run_text(route("HTTPRoute", "backend", "r",
                 "  parentRefs: [{name: same-namespace, namespace: infra}]\n"
                 "  rules: [{backendRefs: [{name: app-backend-v1, port: 8080}]}]\n"));
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "backend", "r", "Accepted"),
                         "False:NotAllowedByListeners");
  CU_ASSERT_PTR_NULL(resource("gw:http:*"));
}

static void namespace_selector_admits_labelled_namespaces(void) {
  char text[8192];
  snprintf(text, sizeof(text), "%s",
           route("HTTPRoute", "backend", "ok",
                 "  parentRefs: [{name: backend-namespaces, namespace: "
                 "infra}]\n"
                 "  hostnames: [a.example.com]\n"
                 "  rules: [{backendRefs: [{name: app-backend-v1, port: "
                 "8080}]}]\n"));
  strcat(text, route("HTTPRoute", "infra", "no",
                     "  parentRefs: [{name: backend-namespaces}]\n"
                     "  hostnames: [b.example.com]\n"
                     "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  run_text(text);
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "backend", "ok", "Accepted"), "True:Accepted");
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "no", "Accepted"),
                         "False:NotAllowedByListeners");
}

static void section_name_that_names_no_listener_is_no_matching_parent(void) {
  run_text(route("HTTPRoute", "infra", "r",
                 "  parentRefs: [{name: same-namespace, sectionName: nonexistent}]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "Accepted"),
                         "False:NoMatchingParent");
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "ResolvedRefs"),
                         "True:ResolvedRefs");
  /* ResolvedRefs is computed for a route attached nowhere too, and nothing is emitted for it */
  run_text(route("HTTPRoute", "infra", "r",
                 "  parentRefs: [{name: same-namespace, sectionName: nonexistent}]\n"
                 "  rules: [{backendRefs: [{name: nothing, port: 8080}]}]\n"));
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "Accepted"),
                         "False:NoMatchingParent");
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "ResolvedRefs"),
                         "False:BackendNotFound");
  CU_ASSERT_PTR_NULL(resource("gw:http:*"));
}

static const char *WILDCARD_GW =
    "apiVersion: gateway.networking.k8s.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: hn, namespace: infra}\n"
    "spec:\n"
    "  gatewayClassName: edge\n"
    "  listeners:\n"
    "  - {name: l1, port: 80, protocol: HTTP, hostname: very.specific.com}\n"
    "  - {name: l2, port: 80, protocol: HTTP, hostname: \"*.wildcard.io\"}\n"
    "---\n";

static void hostnames_intersect_with_listener_hostnames(void) {
  char text[8192];
  snprintf(text, sizeof(text), "%s%s", WILDCARD_GW,
           route("HTTPRoute", "infra", "r1",
                 "  parentRefs: [{name: hn}]\n"
                 "  hostnames: [non.matching.com, \"*.nonmatchingwildcard.io\", foo.wildcard.io, "
                 "bar.wildcard.io, \"*.specific.com\"]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  strcat(text, route("HTTPRoute", "infra", "none",
                     "  parentRefs: [{name: hn}]\n"
                     "  hostnames: [specific.but.wrong.com, wildcard.io]\n"
                     "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  run_text(text);
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r1", "Accepted"), "True:Accepted");
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "none", "Accepted"),
                         "False:NoMatchingListenerHostname");
  Edge__V1__Resource *r;
  const char *yes[] = {"gw:http:foo.wildcard.io", "gw:http:bar.wildcard.io",
                       "gw:http:very.specific.com"};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_PTR_NOT_NULL(r = resource(yes[i]));
    if (r) edge__v1__resource__free_unpacked(r, NULL);
  }
  const char *no[] = {"gw:http:non.matching.com", "gw:http:*.nonmatchingwildcard.io",
                      "gw:http:*.wildcard.io", "gw:http:*.specific.com", "gw:http:wildcard.io"};
  for (int i = 0; i < 5; i++) CU_ASSERT_PTR_NULL(resource(no[i]));
  const Edge__V1__GatewayObjectStatus *gw = object("Gateway", "infra", "hn");
  CU_ASSERT_EQUAL(gw->listeners[0]->attached_routes, 1);
  CU_ASSERT_EQUAL(gw->listeners[1]->attached_routes, 1);
}

static void listener_wildcard_becomes_a_suffix_host(void) {
  char text[8192];
  snprintf(text, sizeof(text), "%s%s", WILDCARD_GW,
           route("HTTPRoute", "infra", "w",
                 "  parentRefs: [{name: hn, sectionName: l2}]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  run_text(text);
  Edge__V1__Resource *r = resource("gw:http:*.wildcard.io");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->host_match, EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX);
  edge__v1__resource__free_unpacked(r, NULL);
}

static void unresolved_backends_keep_their_weight_and_say_why(void) {
  struct {
    const char *ref, *reason;
  } cases[] = {
      {"{group: example.com, kind: NonExistent, name: x, port: 8080}", "False:InvalidKind"},
      {"{name: nonexistent, port: 8080}", "False:BackendNotFound"},
      {"{name: app-backend-v1, namespace: backend, port: 8080}", "False:RefNotPermitted"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char body[1024];
    snprintf(body, sizeof(body),
             "  parentRefs: [{name: same-namespace}]\n"
             "  rules: [{backendRefs: [%s, {name: infra-backend-v1, port: 8080, weight: 3}]}]\n",
             cases[i].ref);
    run_text(route("HTTPRoute", "infra", "r", body));
    CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "ResolvedRefs"), cases[i].reason);
    CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "Accepted"), "True:Accepted");
    Edge__V1__Resource *r = resource("gw:http:*");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    Edge__V1__Route *rt = r->virtual_host->routes[0];
    CU_ASSERT_EQUAL_FATAL(rt->n_weighted_clusters, 2);
    CU_ASSERT_STRING_EQUAL(rt->weighted_clusters[0]->cluster, "");
    CU_ASSERT_EQUAL(rt->weighted_clusters[0]->weight, 1);
    CU_ASSERT_EQUAL(rt->weighted_clusters[1]->weight, 3);
    edge__v1__resource__free_unpacked(r, NULL);
  }
}

static void reference_grant_permits_a_cross_namespace_backend(void) {
  char text[8192];
  snprintf(text, sizeof(text),
           "apiVersion: gateway.networking.k8s.io/v1beta1\n"
           "kind: ReferenceGrant\n"
           "metadata: {name: g, namespace: backend}\n"
           "spec:\n"
           "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]\n"
           "  to: [{group: \"\", kind: Service, name: app-backend-v1}]\n"
           "---\n%s",
           route("HTTPRoute", "infra", "r",
                 "  parentRefs: [{name: same-namespace}]\n"
                 "  rules: [{backendRefs: [{name: app-backend-v1, namespace: backend, port: "
                 "8080}]}]\n"));
  run_text(text);
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "ResolvedRefs"),
                         "True:ResolvedRefs");
  Edge__V1__Resource *r = resource("gw:http:*");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->cluster, "gw:backend/app-backend-v1:8080");
  edge__v1__resource__free_unpacked(r, NULL);
}

static void matches_filters_and_timeouts_reach_the_route(void) {
  run_text(route(
      "HTTPRoute", "infra", "r",
      "  parentRefs: [{name: same-namespace}]\n"
      "  rules:\n"
      "  - matches:\n"
      "    - path: {type: Exact, value: /one}\n"
      "      method: POST\n"
      "      headers: [{name: Version, value: two}, {type: RegularExpression, name: x-re, value: "
      "\"a.*\"}]\n"
      "      queryParams: [{name: animal, value: whale}]\n"
      "    filters:\n"
      "    - type: RequestHeaderModifier\n"
      "      requestHeaderModifier: {set: [{name: X-Set, value: v}], add: [{name: x-add, value: "
      "a}], remove: [X-Gone]}\n"
      "    - type: ResponseHeaderModifier\n"
      "      responseHeaderModifier: {add: [{name: x-resp, value: r}]}\n"
      "    - type: URLRewrite\n"
      "      urlRewrite: {hostname: rewritten.example.com, path: {type: ReplaceFullPath, "
      "replaceFullPath: /full}}\n"
      "    - type: RequestMirror\n"
      "      requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}, percent: 25}\n"
      "    timeouts: {request: 10s, backendRequest: 500ms}\n"
      "    backendRefs: [{name: infra-backend-v1, port: 8080, weight: 90}, {name: "
      "infra-backend-v2, port: 8080, weight: 10}]\n"
      "  - matches: [{path: {type: PathPrefix, value: /redirect}}]\n"
      "    filters:\n"
      "    - type: RequestRedirect\n"
      "      requestRedirect: {scheme: https, hostname: example.org, statusCode: 301, path: "
      "{type: ReplacePrefixMatch, replacePrefixMatch: /new}}\n"));
  CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "r", "Accepted"), "True:Accepted");
  Edge__V1__Resource *r = resource("gw:http:*");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 2);
  Edge__V1__Route *a = r->virtual_host->routes[0], *b = r->virtual_host->routes[1];
  CU_ASSERT_EQUAL(a->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT);
  CU_ASSERT_STRING_EQUAL(a->method, "POST");
  CU_ASSERT_EQUAL_FATAL(a->n_headers, 2);
  CU_ASSERT_STRING_EQUAL(a->headers[0]->name, "version"); /* names lower case */
  CU_ASSERT_EQUAL(a->headers[1]->type, EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX);
  CU_ASSERT_EQUAL(a->n_query_params, 1);
  CU_ASSERT_EQUAL(a->request_headers->n_set, 1);
  CU_ASSERT_STRING_EQUAL(a->request_headers->set[0]->name, "x-set");
  CU_ASSERT_STRING_EQUAL(a->request_headers->remove[0], "x-gone");
  CU_ASSERT_EQUAL(a->response_headers->n_add, 1);
  CU_ASSERT_STRING_EQUAL(a->options->rewrite_host, "rewritten.example.com");
  CU_ASSERT_STRING_EQUAL(a->options->rewrite_path, "/full");
  CU_ASSERT_EQUAL_FATAL(a->n_mirrors, 1);
  CU_ASSERT_STRING_EQUAL(a->mirrors[0]->cluster, "gw:infra/infra-backend-v2:8080");
  CU_ASSERT_EQUAL(a->mirrors[0]->per_million, 250000);
  CU_ASSERT_EQUAL(a->options->request_timeout_ms, 10000);
  CU_ASSERT_EQUAL(a->options->backend_request_timeout_ms, 500);
  CU_ASSERT_EQUAL_FATAL(a->n_weighted_clusters, 2);
  CU_ASSERT_EQUAL(a->weighted_clusters[0]->weight, 90);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b->options->redirect);
  CU_ASSERT_STRING_EQUAL(b->options->redirect->scheme, "https");
  CU_ASSERT_STRING_EQUAL(b->options->redirect->host, "example.org");
  CU_ASSERT_STRING_EQUAL(b->options->redirect->path_prefix, "/new");
  CU_ASSERT_EQUAL(b->options->redirect->status, 301);
  edge__v1__resource__free_unpacked(r, NULL);
}

static void hostile_or_unsupported_values_reject_the_route(void) {
  const char *bodies[] = {
      /* CR LF in a header value would split a header on the wire */
      "    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: "
      "\"a\\r\\nInjected: 1\"}]}}]\n",
      "    filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}]\n",
      "    matches: [{path: {type: RegularExpression, value: \"(unclosed\"}}]\n",
      "    matches: [{path: {type: PathPrefix, value: \"/a b\"}}]\n",
      "    filters: [{type: RequestRedirect, requestRedirect: {hostname: \"evil.com\\r\\nx\"}}]\n",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
    char body[2048];
    snprintf(body, sizeof(body),
             "  parentRefs: [{name: same-namespace}]\n"
             "  rules:\n"
             "  - backendRefs: [{name: infra-backend-v1, port: 8080}]\n%s",
             bodies[i]);
    run_text(route("HTTPRoute", "infra", "bad", body));
    CU_ASSERT_STRING_EQUAL(route_cond("HTTPRoute", "infra", "bad", "Accepted"),
                           "False:UnsupportedValue");
    CU_ASSERT_PTR_NULL(resource("gw:http:*"));
    CU_ASSERT_EQUAL(object("Gateway", "infra", "same-namespace")->listeners[0]->attached_routes, 0);
    int reported = 0;
    for (size_t k = 0; k < d->n_rejected; k++)
      reported |= !strcmp(d->rejected[k].name, "bad") && strstr(d->rejected[k].reason, "infra/bad");
    CU_ASSERT_TRUE(reported);
  }
}

static void listener_on_a_port_the_proxies_do_not_serve_is_not_programmed(void) {
  run_text(
      "apiVersion: gateway.networking.k8s.io/v1\n"
      "kind: Gateway\n"
      "metadata: {name: p, namespace: infra}\n"
      "spec:\n"
      "  gatewayClassName: edge\n"
      "  listeners:\n"
      "  - {name: ok, port: 80, protocol: HTTP}\n"
      "  - {name: odd, port: 8080, protocol: HTTP}\n"
      "  - {name: udp, port: 53, protocol: UDP}\n"
      "---\n");
  const Edge__V1__GatewayObjectStatus *gw = object("Gateway", "infra", "p");
  CU_ASSERT_PTR_NOT_NULL_FATAL(gw);
  CU_ASSERT_EQUAL_FATAL(gw->n_listeners, 3);
  const Edge__V1__GatewayCondition *a =
      cond(gw->listeners[1]->conditions, gw->listeners[1]->n_conditions, "Accepted");
  CU_ASSERT_STRING_EQUAL(a->reason, "PortUnavailable");
  CU_ASSERT_FALSE(
      cond(gw->listeners[1]->conditions, gw->listeners[1]->n_conditions, "Programmed")->status);
  CU_ASSERT_STRING_EQUAL(
      cond(gw->listeners[2]->conditions, gw->listeners[2]->n_conditions, "Accepted")->reason,
      "UnsupportedProtocol");
  const Edge__V1__GatewayCondition *ga = cond(gw->conditions, gw->n_conditions, "Accepted");
  CU_ASSERT_TRUE(ga->status);
  CU_ASSERT_STRING_EQUAL(ga->reason, "ListenersNotValid");
}

static char *crt, *key;

static void https_listener_certificate_refs(void) {
  char secret[16384];
  snprintf(secret, sizeof(secret),
           "apiVersion: v1\n"
           "kind: Secret\n"
           "metadata: {name: cert, namespace: backend}\n"
           "type: kubernetes.io/tls\n"
           "stringData:\n"
           "  tls.crt: |\n    %s\n"
           "  tls.key: |\n    %s\n"
           "---\n",
           crt, key);
  const char *gw =
      "apiVersion: gateway.networking.k8s.io/v1\n"
      "kind: Gateway\n"
      "metadata: {name: tls, namespace: infra}\n"
      "spec:\n"
      "  gatewayClassName: edge\n"
      "  listeners:\n"
      "  - name: https\n"
      "    port: 443\n"
      "    protocol: HTTPS\n"
      "    hostname: secure.example.com\n"
      "    tls: {certificateRefs: [{kind: Secret, name: cert, namespace: backend}]}\n"
      "---\n";
  const char *grant =
      "apiVersion: gateway.networking.k8s.io/v1beta1\n"
      "kind: ReferenceGrant\n"
      "metadata: {name: g, namespace: backend}\n"
      "spec:\n"
      "  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]\n"
      "  to: [{group: \"\", kind: Secret}]\n"
      "---\n";
  char text[32768];
  /* Without a grant: RefNotPermitted, the listener is not programmed. */
  snprintf(text, sizeof(text), "%s%s%s", secret, gw,
           route("HTTPRoute", "infra", "r",
                 "  parentRefs: [{name: tls}]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  run_text(text);
  const Edge__V1__GatewayObjectStatus *g = object("Gateway", "infra", "tls");
  CU_ASSERT_STRING_EQUAL(
      cond(g->listeners[0]->conditions, g->listeners[0]->n_conditions, "ResolvedRefs")->reason,
      "RefNotPermitted");
  CU_ASSERT_PTR_NULL(resource("gw:backend/cert"));
  /* With the grant: the certificate is served for the listener's hostname. */
  snprintf(text, sizeof(text), "%s%s%s%s", secret, grant, gw,
           route("HTTPRoute", "infra", "r",
                 "  parentRefs: [{name: tls}]\n"
                 "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n"));
  run_text(text);
  Edge__V1__Resource *r = resource("gw:backend/cert");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->certificate->n_sni_names, 1);
  CU_ASSERT_STRING_EQUAL(r->certificate->sni_names[0], "secure.example.com");
  edge__v1__resource__free_unpacked(r, NULL);
  r = resource("gw:https:secure.example.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->certificate, "gw:backend/cert");
  CU_ASSERT_EQUAL(r->virtual_host->listener, EDGE__V1__LISTENER__LISTENER_HTTPS);
  edge__v1__resource__free_unpacked(r, NULL);
}

static const char *INGRESS_FMT =
    "apiVersion: networking.k8s.io/v1\n"
    "kind: IngressClass\n"
    "metadata: {name: nginx-like, annotations: {ingressclass.kubernetes.io/is-default-class: "
    "\"true\"}}\n"
    "spec: {controller: edge.dev/ingress-controller}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: shop, namespace: infra}\n"
    "spec: {clusterIP: 10.0.5.5, ports: [{port: 80}]}\n"
    "---\n"
    "apiVersion: networking.k8s.io/v1\n"
    "kind: Ingress\n"
    "metadata: {name: legacy, namespace: infra, creationTimestamp: \"%s\"}\n"
    "spec:\n"
    "  rules:\n"
    "  - host: shop.example.com\n"
    "    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: shop, port: "
    "{number: 80}}}}]}\n"
    "---\n";

static void host_claimed_by_ingress_and_gateway_goes_to_the_older(void) {
  char text[8192], ing[2048];
  const char *rt = route("HTTPRoute", "infra", "new",
                         "  parentRefs: [{name: same-namespace}]\n"
                         "  hostnames: [shop.example.com]\n"
                         "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]\n");
  /* The Ingress is older (2025): it keeps the host, the route is told. */
  snprintf(ing, sizeof(ing), INGRESS_FMT, "2025-01-01T00:00:00Z");
  snprintf(text, sizeof(text), "%s%s", ing, rt);
  run_text(text);
  Edge__V1__Resource *r = resource("vh:shop.example.com");
  CU_ASSERT_PTR_NOT_NULL(r);
  if (r) edge__v1__resource__free_unpacked(r, NULL);
  CU_ASSERT_PTR_NULL(resource("gw:http:shop.example.com"));
  int told = 0;
  for (size_t k = 0; k < d->n_rejected; k++)
    told |= !strcmp(d->rejected[k].kind, "HTTPRoute") &&
            strstr(d->rejected[k].reason, "served by an Ingress") != NULL;
  CU_ASSERT_TRUE(told);
  /* The route is older (the Ingress from 2027): the Gateway API serves the host. */
  snprintf(ing, sizeof(ing), INGRESS_FMT, "2027-01-01T00:00:00Z");
  snprintf(text, sizeof(text), "%s%s", ing, rt);
  run_text(text);
  CU_ASSERT_PTR_NULL(resource("vh:shop.example.com"));
  CU_ASSERT_PTR_NOT_NULL(r = resource("gw:http:shop.example.com"));
  if (r) edge__v1__resource__free_unpacked(r, NULL);
  told = 0;
  for (size_t k = 0; k < d->n_rejected; k++)
    told |= !strcmp(d->rejected[k].kind, "Ingress") &&
            strstr(d->rejected[k].reason, "is served by HTTPRoute infra/new") != NULL;
  CU_ASSERT_TRUE(told);
}

static void tls_route_becomes_a_passthrough_host(void) {
  run_text(
      "apiVersion: gateway.networking.k8s.io/v1\n"
      "kind: Gateway\n"
      "metadata: {name: pt, namespace: infra}\n"
      "spec:\n"
      "  gatewayClassName: edge\n"
      "  listeners:\n"
      "  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}\n"
      "---\n"
      "apiVersion: v1\n"
      "kind: Service\n"
      "metadata: {name: tls-backend, namespace: infra}\n"
      "spec: {clusterIP: 10.0.0.44, ports: [{port: 443}]}\n"
      "---\n"
      "apiVersion: gateway.networking.k8s.io/v1alpha2\n"
      "kind: TLSRoute\n"
      "metadata: {name: t, namespace: infra}\n"
      "spec:\n"
      "  parentRefs: [{name: pt}]\n"
      "  hostnames: [abc.example.com]\n"
      "  rules: [{backendRefs: [{name: tls-backend, port: 443}]}]\n"
      "---\n");
  CU_ASSERT_STRING_EQUAL(route_cond("TLSRoute", "infra", "t", "Accepted"), "True:Accepted");
  Edge__V1__Resource *r = resource("pt:abc.example.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->passthrough_host->n_clusters, 1);
  CU_ASSERT_STRING_EQUAL(r->passthrough_host->clusters[0]->cluster, "gw:infra/tls-backend:443/tcp");
  edge__v1__resource__free_unpacked(r, NULL);
  CU_ASSERT_PTR_NOT_NULL(r = resource("gw:infra/tls-backend:443/tcp"));
  if (r) edge__v1__resource__free_unpacked(r, NULL);
}

static void grpc_route_methods_become_paths_to_a_grpc_cluster(void) {
  run_text(route("GRPCRoute", "infra", "g",
                 "  parentRefs: [{name: same-namespace}]\n"
                 "  rules:\n"
                 "  - matches: [{method: {service: "
                 "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho, method: Echo}}]\n"
                 "    backendRefs: [{name: grpc-backend, port: 8080}]\n"
                 "  - matches: [{method: {method: EchoTwo}}]\n"
                 "    backendRefs: [{name: grpc-backend, port: 8080}]\n"));
  CU_ASSERT_STRING_EQUAL(route_cond("GRPCRoute", "infra", "g", "Accepted"), "True:Accepted");
  Edge__V1__Resource *r = resource("gw:http:*");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 2);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->path,
                         "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo");
  CU_ASSERT_EQUAL(r->virtual_host->routes[0]->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[1]->path, "/[^/]+/EchoTwo");
  CU_ASSERT_EQUAL(r->virtual_host->routes[1]->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->cluster, "gw:infra/grpc-backend:8080/grpc");
  edge__v1__resource__free_unpacked(r, NULL);
  r = resource("gw:infra/grpc-backend:8080/grpc");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->cluster->protocol, EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC);
  edge__v1__resource__free_unpacked(r, NULL);
}

/* HTTPRouteMatchingAcrossRoutes: the rules of every route whose hostnames match a request are
 * ordered together, so example.com's vhost carries the "*.com" route's /v2 after its own. */
static void wildcard_rules_are_pooled_into_the_hosts_they_cover(void) {
  char text[8192];
  snprintf(text, sizeof(text), "%s",
           route("HTTPRoute", "infra", "matching-part1",
                 "  parentRefs: [{name: same-namespace}]\n"
                 "  hostnames: [example.com, example.net]\n"
                 "  rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: "
                 "infra-backend-v1, port: 8080}]}]\n"));
  strcat(text, route("HTTPRoute", "infra", "matching-part2",
                     "  parentRefs: [{name: same-namespace}]\n"
                     "  hostnames: [\"*.com\"]\n"
                     "  rules: [{matches: [{path: {type: PathPrefix, value: /v2}}], backendRefs: "
                     "[{name: infra-backend-v2, port: 8080}]}]\n"));
  run_text(text);
  Edge__V1__Resource *r = resource("gw:http:example.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 2);
  /* the exact host's own rule first (the tie-break), the wildcard's after */
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->path, "/");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[1]->path, "/v2");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[1]->cluster, "gw:infra/infra-backend-v2:8080");
  edge__v1__resource__free_unpacked(r, NULL);
  r = resource("gw:http:example.net"); /* not under *.com */
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 1);
  edge__v1__resource__free_unpacked(r, NULL);
}

/* Found by tests/fuzz/gateway_fuzz: an object without a name is reported, never a crash. */
static void object_without_a_name_is_rejected_with_a_reason(void) {
  run_text(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {namespace: infra}\n"
      "spec: {parentRefs: [{name: same-namespace}]}\n---\n");
  int reported = 0;
  for (size_t k = 0; k < d->n_rejected; k++)
    reported |= strstr(d->rejected[k].reason, "has no metadata.name") != NULL;
  CU_ASSERT_TRUE(reported);
}

static void same_input_gives_identical_output(void) {
  const char *text =
      route("HTTPRoute", "infra", "r",
            "  parentRefs: [{name: same-namespace}, {name: backend-namespaces}]\n"
            "  hostnames: [a.example.com, b.example.com]\n"
            "  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080, weight: 9}, {name: "
            "infra-backend-v2, port: 8080}]}]\n");
  char copy[8192];
  snprintf(copy, sizeof(copy), "%s", text);
  run_text(copy);
  size_t n = d->n_resources, slen = d->gateway_status_len;
  uint8_t *sb = malloc(slen);
  memcpy(sb, d->gateway_status, slen);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += d->resources[i].len;
  run_text(copy);
  CU_ASSERT_EQUAL(d->n_resources, n);
  CU_ASSERT_EQUAL_FATAL(d->gateway_status_len, slen);
  CU_ASSERT_EQUAL(memcmp(d->gateway_status, sb, slen), 0);
  size_t total2 = 0;
  for (size_t i = 0; i < d->n_resources; i++) total2 += d->resources[i].len;
  CU_ASSERT_EQUAL(total, total2);
  free(sb);
}

/* The PEM with every line after the first indented by 4, for a YAML block scalar. */
static char *indent(char *pem) {
  size_t n = strlen(pem), lines = 0;
  for (size_t i = 0; i < n; i++) lines += pem[i] == '\n';
  char *o = malloc(n + lines * 4 + 1), *w = o;
  for (size_t i = 0; i < n; i++) {
    *w++ = pem[i];
    if (pem[i] == '\n' && i + 1 < n) memcpy(w, "    ", 4), w += 4;
  }
  *w = '\0';
  free(pem);
  return o;
}

static int setup(void) {
  char err[200];
  const char *cn = "secure.example.com";
  if (cert_generate(&cn, 1, 30, 0, NULL, NULL, &crt, &key, err, sizeof(err))) return 1;
  crt = indent(crt);
  key = indent(key);
  return 0;
}

static int teardown(void) {
  syncd_desired_free(d);
  if (status) edge__v1__status_response__free_unpacked(status, NULL);
  free(crt);
  free(key);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("gateway", setup, teardown);
#define T(f) CU_add_test(s, #f, f)
  T(class_and_gateway_are_accepted_and_programmed);
  T(simple_route_attaches_and_becomes_a_virtual_host);
  T(route_from_another_namespace_is_not_allowed_by_same);
  T(namespace_selector_admits_labelled_namespaces);
  T(section_name_that_names_no_listener_is_no_matching_parent);
  T(hostnames_intersect_with_listener_hostnames);
  T(listener_wildcard_becomes_a_suffix_host);
  T(unresolved_backends_keep_their_weight_and_say_why);
  T(reference_grant_permits_a_cross_namespace_backend);
  T(matches_filters_and_timeouts_reach_the_route);
  T(hostile_or_unsupported_values_reject_the_route);
  T(listener_on_a_port_the_proxies_do_not_serve_is_not_programmed);
  T(https_listener_certificate_refs);
  T(host_claimed_by_ingress_and_gateway_goes_to_the_older);
  T(tls_route_becomes_a_passthrough_host);
  T(grpc_route_methods_become_paths_to_a_grpc_cluster);
  T(wildcard_rules_are_pooled_into_the_hosts_they_cover);
  T(object_without_a_name_is_rejected_with_a_reason);
  T(same_input_gives_identical_output);
#undef T
}
