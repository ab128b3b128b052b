/* The Gateway API objects in the incremental translator (syncd/translate.h,
 * translate_gateway.c): each edit of a scripted world — an HTTPRoute's
 * weights, an EndpointSlice, a ReferenceGrant, a Gateway's listener, a
 * Service elsewhere, an Ingress elsewhere, Ingresses claiming a host the
 * Gateway API serves — must put exactly the dependent resources in the
 * update (named below), run the Gateway API translation only when one of
 * its inputs changed, and leave a state equal, byte for byte, to
 * translating the same documents from scratch. Documents live one per
 * slot; an edit re-parses only its slot, as the directory source does. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/translate.h"

enum {
  D_CLASS,
  D_GWCLASS,
  D_GATEWAY,
  D_R1,
  D_R2,
  D_GRANT,
  D_WEB,
  D_CANARY,
  D_SHARED,
  D_SLICE,
  D_ING,
  D_ING_SVC,
  D_ELSEWHERE,
  D_CLAIM, /* an Ingress claiming a.example.com (absent at first) */
  N_DOCS
};

static const char *const INITIAL[N_DOCS] = {
    [D_CLASS] =
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: edge\n"
        "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
        "spec: {controller: edge.dev/ingress-controller}\n",
    [D_GWCLASS] =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"
        "metadata: {name: edge}\nspec: {controllerName: edge.dev/gateway-controller}\n",
    [D_GATEWAY] =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        "metadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: edge\n"
        "  listeners:\n  - {name: http, port: 80, protocol: HTTP, allowedRoutes: "
        "{namespaces: {from: All}}}\n",
    [D_R1] =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: r1, namespace: app, creationTimestamp: '2026-01-01T00:00:00Z'}\n"
        "spec:\n  parentRefs: [{name: gw, namespace: infra}]\n"
        "  hostnames: [a.example.com]\n  rules:\n  - backendRefs:\n"
        "    - {name: web, port: 80, weight: 90}\n    - {name: canary, port: 80, weight: 10}\n",
    [D_R2] =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: r2, namespace: app, creationTimestamp: '2026-01-01T00:00:00Z'}\n"
        "spec:\n  parentRefs: [{name: gw, namespace: infra}]\n"
        "  hostnames: [b.example.com]\n  rules:\n"
        "  - backendRefs: [{name: shared, namespace: lib, port: 80}]\n",
    [D_GRANT] =
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
        "metadata: {name: g, namespace: lib}\nspec:\n"
        "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: app}]\n"
        "  to: [{group: \"\", kind: Service}]\n",
    [D_WEB] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: app}\n"
        "spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}\n",
    [D_CANARY] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: canary, namespace: app}\n"
        "spec: {clusterIP: 10.0.0.2, ports: [{port: 80}]}\n",
    [D_SHARED] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: shared, namespace: lib}\n"
        "spec: {clusterIP: 10.0.0.3, ports: [{port: 80}]}\n",
    [D_SLICE] =
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
        "  name: web-1\n  namespace: app\n  labels: {kubernetes.io/service-name: web}\n"
        "ports: [{port: 8080}]\nendpoints:\n"
        "- {addresses: [10.1.0.1], conditions: {ready: true}}\n",
    [D_ING] =
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: i1, namespace: other}\nspec:\n  rules:\n  - host: c.example.com\n"
        "    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: x, port: "
        "{number: 80}}}}]}\n",
    [D_ING_SVC] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: other}\n"
        "spec: {clusterIP: 10.0.0.4, ports: [{port: 80}]}\n",
    [D_ELSEWHERE] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: z, namespace: zzz}\n"
        "spec: {clusterIP: 10.0.0.5, ports: [{port: 80}]}\n",
    [D_CLAIM] = NULL,
};

struct world {
  struct manifest_set parsed[N_DOCS];
};

static void set_doc(struct world *w, int i, const char *text) {
  manifest_set_free(&w->parsed[i]);
  manifest_set_init(&w->parsed[i]);
  if (text) {
    char loc[32];
    snprintf(loc, sizeof(loc), "doc%d.yaml", i);
    manifest_parse(&w->parsed[i], text, strlen(text), loc);
  }
}

static void world_set(struct world *w, struct manifest_set *set) {
  manifest_set_init(set);
  for (int i = 0; i < N_DOCS; i++)
    for (size_t k = 0; k < w->parsed[i].n_docs; k++)
      manifest_add(set, w->parsed[i].docs[k].obj, w->parsed[i].docs[k].location);
}

/* ---- the state built from deltas ---------------------------------------------------------- */

struct held {
  int type;
  char *name;
  uint8_t *bytes;
  size_t len;
};

static struct held view[256];
static size_t n_view;

static struct held *view_find(int type, const char *name) {
  for (size_t i = 0; i < n_view; i++)
    if (view[i].type == type && !strcmp(view[i].name, name)) return &view[i];
  return NULL;
}

static void view_clear(void) {
  for (size_t i = 0; i < n_view; i++) free(view[i].name), free(view[i].bytes);
  n_view = 0;
}

static void view_apply(const struct syncd_update *u) {
  if (u->full) view_clear();
  for (size_t i = 0; i < u->n_removed; i++) {
    struct held *h = view_find(u->removed[i].type, u->removed[i].name);
    if (!h) continue; /* a withheld host's vhost may be removed before it was ever given */
    free(h->name), free(h->bytes);
    *h = view[--n_view];
  }
  for (size_t i = 0; i < u->n_upserted; i++) {
    const struct syncd_resource *r = &u->upserted[i];
    struct held *h = view_find(r->type, r->name);
    if (!h) {
      h = &view[n_view++];
      *h = (struct held){r->type, strdup(r->name), NULL, 0};
    }
    free(h->bytes);
    h->bytes = malloc(r->len + 1);
    memcpy(h->bytes, r->bytes, r->len);
    h->len = r->len;
  }
}

/* The view equals translate_desired over the same documents (resources and rejections). */
static void check_agrees(const struct manifest_set *set, const struct translate_opts *o,
                         const struct syncd_update *u, const char *step) {
  struct syncd_desired *d;
  CU_ASSERT_EQUAL_FATAL(translate_desired(set, o, &d), 0);
  int ok = n_view == d->n_resources;
  for (size_t i = 0; ok && i < d->n_resources; i++) {
    const struct held *h = view_find(d->resources[i].type, d->resources[i].name);
    ok = h && h->len == d->resources[i].len && !memcmp(h->bytes, d->resources[i].bytes, h->len);
    if (!ok) fprintf(stderr, "%s: resource %s differs or is missing\n", step, d->resources[i].name);
  }
  if (n_view != d->n_resources)
    fprintf(stderr, "%s: %zu resources, from scratch %zu\n", step, n_view, d->n_resources);
  CU_ASSERT_TRUE(ok);
  CU_ASSERT_EQUAL(u->report->n_rejected, d->n_rejected);
  for (size_t i = 0; i < d->n_rejected && i < u->report->n_rejected; i++)
    CU_ASSERT_STRING_EQUAL(u->report->rejected[i].reason, d->rejected[i].reason);
  CU_ASSERT_EQUAL(u->gateway_status_len, d->gateway_status_len);
  syncd_desired_free(d);
}

/* "+name,+name,-name" of an update, in its (type, name) order. */
static void names(const struct syncd_update *u, char *out, size_t len) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < u->n_upserted && o < len; i++)
    o += (size_t)snprintf(out + o, len - o, "%s+%s", o ? "," : "", u->upserted[i].name);
  for (size_t i = 0; i < u->n_removed && o < len; i++)
    o += (size_t)snprintf(out + o, len - o, "%s-%s", o ? "," : "", u->removed[i].name);
}

struct run {
  struct world w;
  struct translator *t;
  struct translate_opts o;
  struct gateway_opts go;
};

/* Applies an edit (slot i gets text), updates, and checks the update's names and whether the
 * Gateway API translation ran. */
static void step(struct run *r, const char *what, int i, const char *text, const char *want,
                 int gateway_ran) {
  set_doc(&r->w, i, text);
  struct manifest_set set;
  world_set(&r->w, &set);
  unsigned long runs = translator_gateway_runs(r->t);
  const struct syncd_update *u;
  CU_ASSERT_EQUAL_FATAL(translator_update(r->t, &set, &u), 0);
  view_apply(u);
  char got[2048];
  names(u, got, sizeof(got));
  if (strcmp(got, want) != 0) fprintf(stderr, "%s: update %s, want %s\n", what, got, want);
  CU_ASSERT_STRING_EQUAL(got, want);
  if ((translator_gateway_runs(r->t) != runs) != gateway_ran)
    fprintf(stderr, "%s: the Gateway API translation %s\n", what,
            gateway_ran ? "did not run" : "ran");
  CU_ASSERT_EQUAL(translator_gateway_runs(r->t) != runs, gateway_ran);
  check_agrees(&set, &r->o, u, what);
  manifest_set_free(&set);
}

static char *edited(int i, const char *from, const char *to) {
  const char *at = strstr(INITIAL[i], from);
  CU_ASSERT_PTR_NOT_NULL_FATAL(at);
  size_t n = strlen(INITIAL[i]) - strlen(from) + strlen(to) + 1;
  char *s = malloc(n);
  snprintf(s, n, "%.*s%s%s", (int)(at - INITIAL[i]), INITIAL[i], to, at + strlen(from));
  return s;
}

static void gateway_objects_recompute_only_their_dependents(void) {
  static const uint32_t http[] = {80, 0}, https[] = {443, 0};
  struct run r = {.go = {http, https, "192.0.2.1"}};
  r.o.gateway = &r.go;
  for (int i = 0; i < N_DOCS; i++) {
    manifest_set_init(&r.w.parsed[i]);
    set_doc(&r.w, i, INITIAL[i]);
  }
  CU_ASSERT_EQUAL_FATAL(translator_new(&r.o, &r.t), 0);
  struct manifest_set set;
  world_set(&r.w, &set);
  const struct syncd_update *u;
  CU_ASSERT_EQUAL_FATAL(translator_update(r.t, &set, &u), 0);
  view_apply(u);
  check_agrees(&set, &r.o, u, "first");
  CU_ASSERT_PTR_NOT_NULL(view_find(1, "gw:http:a.example.com"));
  CU_ASSERT_PTR_NOT_NULL(view_find(1, "gw:http:b.example.com"));
  CU_ASSERT_PTR_NOT_NULL(view_find(2, "gw:lib/shared:80"));
  manifest_set_free(&set);

  /* an HTTPRoute's weights: its host's VirtualHost, nothing else (a one-route push) */
  char *s = edited(D_R1, "weight: 90", "weight: 50");
  step(&r, "weights", D_R1, s, "+gw:http:a.example.com", 1);
  free(s);
  /* a Service in a namespace no Gateway API object names; an Ingress elsewhere: no run */
  s = edited(D_ELSEWHERE, "10.0.0.5", "10.0.0.6");
  step(&r, "service elsewhere", D_ELSEWHERE, s, "", 0);
  free(s);
  s = edited(D_ING, "path: /", "path: /c");
  step(&r, "ingress elsewhere", D_ING, s, "+vh:c.example.com", 0);
  free(s);
  /* a backend's endpoints: its cluster only */
  s = edited(D_SLICE, "10.1.0.1", "10.1.0.2");
  step(&r, "endpoints", D_SLICE, s, "+gw:app/web:80", 1);
  free(s);
  /* the ReferenceGrant goes: b's backend no longer resolves (its share answers 500) */
  step(&r, "grant removed", D_GRANT, NULL, "+gw:http:b.example.com,-gw:lib/shared:80", 1);
  step(&r, "grant back", D_GRANT, INITIAL[D_GRANT], "+gw:http:b.example.com,+gw:lib/shared:80", 1);
  /* a listener moved to a port the proxies do not serve: both hosts go, and come back */
  s = edited(D_GATEWAY, "port: 80", "port: 8081");
  step(&r, "listener port", D_GATEWAY, s,
       "-gw:http:a.example.com,-gw:http:b.example.com,-gw:app/canary:80,-gw:app/web:80,"
       "-gw:lib/shared:80",
       1);
  free(s);
  step(&r, "listener back", D_GATEWAY, INITIAL[D_GATEWAY],
       "+gw:http:a.example.com,+gw:http:b.example.com,+gw:app/canary:80,+gw:app/web:80,"
       "+gw:lib/shared:80",
       1);
  /* a newer Ingress claims a.example.com: the route (older) keeps it, the Ingress is rejected;
   * its vhost is never handed out */
  const char *claim =
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
      "metadata: {name: claim, namespace: other, creationTimestamp: '%s'}\nspec:\n  rules:\n"
      "  - host: a.example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: "
      "{service: {name: x, port: {number: 80}}}}]}\n";
  char text[1024];
  snprintf(text, sizeof(text), claim, "2027-01-01T00:00:00Z");
  step(&r, "newer ingress", D_CLAIM, text, "-vh:a.example.com", 1);
  CU_ASSERT_PTR_NULL(view_find(1, "vh:a.example.com"));
  CU_ASSERT_PTR_NOT_NULL(view_find(1, "gw:http:a.example.com"));
  /* made older than the route: the Ingress takes the host; then it goes and the route has it
   * again */
  snprintf(text, sizeof(text), claim, "2025-01-01T00:00:00Z");
  step(&r, "older ingress", D_CLAIM, text, "+vh:a.example.com,-gw:http:a.example.com", 1);
  step(&r, "ingress gone", D_CLAIM, NULL, "+gw:http:a.example.com,-vh:a.example.com", 1);

  view_clear();
  translator_free(r.t);
  for (int i = 0; i < N_DOCS; i++) manifest_set_free(&r.w.parsed[i]);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("gateway_incremental", NULL, NULL);
  CU_add_test(s, "gateway_objects_recompute_only_their_dependents",
              gateway_objects_recompute_only_their_dependents);
}
