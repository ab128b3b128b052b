/*
 * explain_test — syncd's side of explain: translation keeps Ingresses of
 * another IngressClass visible as "ignored" with the class, controller and
 * hosts, and syncd_explain_json answers from a store plus its meta
 * (rejected and ignored objects) with "version" and "not_served".
 */
#include "syncd/explain.h"

#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/status.pb-c.h"
#include "syncd/manifest.h"
#include "syncd/store.h"
#include "syncd/translate.h"

static const char *WORLD =
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: edge}\n"
    "spec: {controller: edge.dev/ingress-controller}\n---\n"
    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: other}\n"
    "spec: {controller: example.com/other}\n---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
    "spec: {clusterIP: 10.0.0.5, ports: [{name: http, port: 80}]}\n---\n"
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
    "metadata: {name: shop, namespace: default}\n"
    "spec:\n  ingressClassName: edge\n  rules:\n  - host: shop.test\n    http:\n      paths:\n"
    "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n"
    "---\n"
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
    "metadata: {name: theirs, namespace: team}\n"
    "spec:\n  ingressClassName: other\n  rules:\n  - host: their.test\n    http:\n      paths:\n"
    "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n"
    "---\n"
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
    "metadata: {name: ghost, namespace: team}\n"
    "spec:\n  ingressClassName: nosuch\n  rules:\n  - host: ghost.test\n    http:\n      paths:\n"
    "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n";

static struct syncd_desired *translate_world(void) {
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, WORLD, strlen(WORLD), "w.yaml");
  struct syncd_desired *d = NULL;
  CU_ASSERT_EQUAL(translate_desired(&set, NULL, &d), 0);
  manifest_set_free(&set);
  return d;
}

static void ingress_of_another_class_is_kept_as_ignored_with_reason_and_hosts(void) {
  struct syncd_desired *d = translate_world();
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL_FATAL(d->n_ignored, 2);
  /* Sorted by namespace/name: team/ghost, team/theirs. */
  CU_ASSERT_STRING_EQUAL(d->ignored[0].name, "ghost");
  CU_ASSERT_PTR_NOT_NULL(strstr(d->ignored[0].reason, "IngressClass nosuch does not exist"));
  CU_ASSERT_STRING_EQUAL(d->ignored[1].name, "theirs");
  CU_ASSERT_PTR_NOT_NULL(strstr(d->ignored[1].reason, "IngressClass other is not ours"));
  CU_ASSERT_PTR_NOT_NULL(strstr(d->ignored[1].reason, "example.com/other"));
  CU_ASSERT_STRING_EQUAL(d->ignored[1].location, "their.test");
  CU_ASSERT_EQUAL(d->n_rejected, 0); /* ignoring is not rejecting */
  syncd_desired_free(d);
}

/* A store holding the world, with a report as syncd/main.c sets it. */
static struct store *store_world(void) {
  struct syncd_desired *d = translate_world();
  struct store *s = NULL;
  CU_ASSERT_EQUAL_FATAL(store_new(&s), 0);
  CU_ASSERT_EQUAL(store_apply(s, d->resources, d->n_resources, 0), 1);
  Edge__V1__StatusResponse m = EDGE__V1__STATUS_RESPONSE__INIT;
  Edge__V1__RejectedObject ig[2], *igp[2], rj, *rjp = &rj;
  char *hosts[2][1];
  for (size_t i = 0; i < 2 && i < d->n_ignored; i++) {
    edge__v1__rejected_object__init(&ig[i]);
    ig[i].kind = d->ignored[i].kind;
    ig[i].namespace_ = d->ignored[i].ns;
    ig[i].name = d->ignored[i].name;
    ig[i].reason = d->ignored[i].reason;
    hosts[i][0] = d->ignored[i].location;
    ig[i].n_hosts = 1;
    ig[i].hosts = hosts[i];
    igp[i] = &ig[i];
  }
  edge__v1__rejected_object__init(&rj);
  rj.kind = "Ingress";
  rj.namespace_ = "default";
  rj.name = "broken";
  rj.reason = "default/broken: path must start with /";
  m.n_ignored = 2;
  m.ignored = igp;
  m.n_rejected = 1;
  m.rejected = &rjp;
  uint8_t buf[4096];
  size_t len = edge__v1__status_response__pack(&m, buf);
  CU_ASSERT_EQUAL(store_set_report(s, buf, len), 1);
  syncd_desired_free(d);
  return s;
}

static json_t *ask(struct store *s, const char *url) {
  char *out = NULL, err[256];
  CU_ASSERT_EQUAL(syncd_explain_json(s, url, NULL, NULL, 0, 0, NULL, &out, err, sizeof(err)), 0);
  json_t *j = out ? json_loads(out, 0, NULL) : NULL;
  free(out);
  return j;
}

static void explain_reports_ignored_ingress_for_its_host_only(void) {
  struct store *s = store_world();
  json_t *j = ask(s, "http://their.test/");
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT(json_is_false(json_object_get(j, "matched")));
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "version")), (json_int_t)store_version(s));
  json_t *ns = json_object_get(j, "not_served");
  int found_theirs = 0, found_ghost = 0;
  size_t i;
  json_t *v;
  json_array_foreach(ns, i, v) {
    const char *name = json_string_value(json_object_get(v, "name"));
    found_theirs |= !strcmp(name, "theirs");
    found_ghost |= !strcmp(name, "ghost");
  }
  CU_ASSERT(found_theirs);
  CU_ASSERT(!found_ghost);
  json_decref(j);
  store_free(s);
}

static void explain_of_served_host_names_ingress_and_no_unrelated_objects(void) {
  struct store *s = store_world();
  json_t *j = ask(s, "http://shop.test/x");
  CU_ASSERT(json_is_true(json_object_get(j, "matched")));
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(j, "route"), "source")),
                         "default/shop");
  CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "not_served")), 0);
  json_decref(j);
  /* Nothing matches: rejected Ingresses are candidates for "why". */
  j = ask(s, "http://nowhere.test/");
  char *txt = json_dumps(json_object_get(j, "not_served"), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(txt, "broken"));
  free(txt);
  json_decref(j);
  store_free(s);
}

static void explain_of_bad_url_fails_with_reason(void) {
  struct store *s = store_world();
  char *out = NULL, err[256] = "";
  CU_ASSERT(syncd_explain_json(s, "gopher://x/", NULL, NULL, 0, 0, NULL, &out, err, sizeof(err)) <
            0);
  CU_ASSERT_PTR_NULL(out);
  CU_ASSERT(err[0] != '\0');
  store_free(s);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("syncd_explain", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(ingress_of_another_class_is_kept_as_ignored_with_reason_and_hosts);
  T(explain_reports_ignored_ingress_for_its_host_only);
  T(explain_of_served_host_names_ingress_and_no_unrelated_objects);
  T(explain_of_bad_url_fails_with_reason);
}
