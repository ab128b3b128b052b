/* translate: one test per Ingress v1 rule of DESIGN §7, fed YAML text from strings. */
#include "syncd/translate.h"

#include <CUnit/CUnit.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"

/* A self-signed P-256 certificate for cn (common/cert's generator). */
static int gen_cert(const char *cn, int days, char **crt, char **key, char *err, size_t errlen) {
  return cert_generate(&cn, 1, days, 0, NULL, NULL, crt, key, err, errlen);
}

static char *default_crt, *default_key;

/* Our class, marked default, plus a Service "shop" (ports http/80 and admin/8080). */
static const char *BASE =
    "apiVersion: networking.k8s.io/v1\n"
    "kind: IngressClass\n"
    "metadata:\n"
    "  name: edge\n"
    "  annotations:\n"
    "    ingressclass.kubernetes.io/is-default-class: \"true\"\n"
    "spec:\n"
    "  controller: edge.dev/ingress-controller\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: shop, namespace: default}\n"
    "spec:\n"
    "  clusterIP: 10.0.0.10\n"
    "  ports:\n"
    "  - {name: http, port: 80, targetPort: 8080}\n"
    "  - {name: admin, port: 8080}\n"
    "---\n";

/* An Ingress with one rule: host, path, pathType, service shop at port (YAML). */
static char *ingress_port(const char *name, const char *ts, const char *host, const char *path,
                          const char *type, const char *port) {
  char *s;
  int n = asprintf(&s,
                   "apiVersion: networking.k8s.io/v1\n"
                   "kind: Ingress\n"
                   "metadata:\n"
                   "  name: %s\n"
                   "  namespace: default\n"
                   "%s%s%s"
                   "spec:\n"
                   "  rules:\n"
                   "  - host: \"%s\"\n"
                   "    http:\n"
                   "      paths:\n"
                   "      - path: %s\n"
                   "        pathType: %s\n"
                   "        backend: {service: {name: shop, port: %s}}\n"
                   "---\n",
                   name, ts ? "  creationTimestamp: \"" : "", ts ? ts : "", ts ? "\"\n" : "", host,
                   path, type, port);
  return n < 0 ? NULL : s;
}

static char *ingress(const char *name, const char *ts, const char *host, const char *path,
                     const char *type) {
  return ingress_port(name, ts, host, path, type, "{number: 80}");
}

static struct syncd_desired *run_text(const char *text) {
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, strlen(text), "test.yaml");
  struct translate_opts o = {default_crt, default_key};
  struct syncd_desired *d = NULL;
  CU_ASSERT_EQUAL(translate_desired(&set, &o, &d), 0);
  manifest_set_free(&set);
  return d;
}

/* BASE followed by the given (heap) parts, each freed. */
static struct syncd_desired *run(int n, ...) {
  va_list ap;
  size_t len = strlen(BASE) + 1;
  char *parts[16];
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    parts[i] = va_arg(ap, char *);
    len += strlen(parts[i]);
  }
  va_end(ap);
  char *all = malloc(len);
  strcpy(all, BASE);
  for (int i = 0; i < n; i++) {
    strcat(all, parts[i]);
    free(parts[i]);
  }
  struct syncd_desired *d = run_text(all);
  free(all);
  return d;
}

static char *dup(const char *s) {
  return strdup(s);
}

static Edge__V1__Resource *find(const struct syncd_desired *d, int type, const char *name) {
  for (size_t i = 0; d && i < d->n_resources; i++)
    if (d->resources[i].type == type && !strcmp(d->resources[i].name, name))
      return edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
  return NULL;
}

static Edge__V1__Resource *vhost(const struct syncd_desired *d, const char *name) {
  return find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, name);
}

static size_t count_type(const struct syncd_desired *d, int type) {
  size_t n = 0;
  for (size_t i = 0; i < d->n_resources; i++) n += d->resources[i].type == type;
  return n;
}

static const struct syncd_rejection *rejection(const struct syncd_desired *d, const char *needle) {
  for (size_t i = 0; i < d->n_rejected; i++)
    if (strstr(d->rejected[i].reason, needle)) return &d->rejected[i];
  return NULL;
}

static int served(const struct syncd_desired *d, const char *id) {
  for (size_t i = 0; i < d->n_served; i++)
    if (!strcmp(d->served_ingresses[i], id)) return 1;
  return 0;
}

static void free_res(Edge__V1__Resource *r) {
  if (r) edge__v1__resource__free_unpacked(r, NULL);
}

/* ---- IngressClass selection ---- */

static void ingress_naming_our_class_is_served(void) {
  char *ing = ingress("a", NULL, "a.com", "/", "Prefix");
  char *txt;
  asprintf(&txt, "%s", ing);
  /* insert ingressClassName */
  char *spec = strstr(txt, "spec:\n");
  char *with;
  asprintf(&with, "%.*sspec:\n  ingressClassName: edge\n%s", (int)(spec - txt), txt, spec + 6);
  free(txt);
  free(ing);
  struct syncd_desired *d = run(1, with);
  CU_ASSERT(served(d, "default/a"));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL(r);
  free_res(r);
  syncd_desired_free(d);
}

static void ingress_naming_another_class_is_ignored(void) {
  struct syncd_desired *d =
      run(2,
          dup("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
              "spec: {controller: k8s.io/ingress-nginx}\n---\n"),
          dup("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: other}\n"
              "spec:\n  ingressClassName: nginx\n  rules:\n  - host: o.com\n    http:\n"
              "      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: shop, "
              "port: {number: 80}}}}\n---\n"));
  CU_ASSERT_FALSE(served(d, "default/other"));
  CU_ASSERT_PTR_NULL(vhost(d, "vh:o.com"));
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  syncd_desired_free(d);
}

static void ingress_without_class_is_served_when_our_class_is_default(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "/", "Prefix"));
  CU_ASSERT(served(d, "default/a"));
  syncd_desired_free(d);
}

static void ingress_without_class_is_ignored_when_no_class_of_ours_is_default(void) {
  const char *text =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: edge}\n"
      "spec: {controller: edge.dev/ingress-controller}\n---\n"
      "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  ports: [{port: 80}]\n---\n"
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec:\n  rules:\n"
      "  - host: a.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: "
      "{service: {name: shop, port: {number: 80}}}}\n";
  struct syncd_desired *d = run_text(text);
  CU_ASSERT_EQUAL(d->n_served, 0);
  CU_ASSERT_EQUAL(count_type(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST), 0);
  syncd_desired_free(d);
}

static void legacy_class_annotation_naming_our_class_is_served(void) {
  const char *text =
      "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: edge}\n"
      "spec: {controller: edge.dev/ingress-controller}\n---\n"
      "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec:\n  ports: [{port: 80}]\n---\n"
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: a\n  annotations:\n"
      "    kubernetes.io/ingress.class: edge\nspec:\n  rules:\n"
      "  - host: a.com\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: "
      "{service: {name: shop, port: {number: 80}}}}\n";
  struct syncd_desired *d = run_text(text);
  CU_ASSERT(served(d, "default/a"));
  syncd_desired_free(d);
}

/* ---- hosts ---- */

static void exact_host_is_lower_cased_not_rejected(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "Shop.Example.COM", "/", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:shop.example.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->host, "shop.example.com");
  CU_ASSERT_EQUAL(r->virtual_host->host_match, EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT);
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  free_res(r);
  syncd_desired_free(d);
}

static void wildcard_host_becomes_a_wildcard_match(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "*.Foo.com", "/", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:*.foo.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->host, "*.foo.com");
  CU_ASSERT_EQUAL(r->virtual_host->host_match, EDGE__V1__HOST_MATCH__HOST_MATCH_WILDCARD);
  free_res(r);
  syncd_desired_free(d);
}

static void rule_without_host_matches_any_host(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "", "/", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:*");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->host, "");
  CU_ASSERT_EQUAL(r->virtual_host->host_match, EDGE__V1__HOST_MATCH__HOST_MATCH_ANY);
  free_res(r);
  syncd_desired_free(d);
}

static void host_with_invalid_characters_is_rejected(void) {
  struct syncd_desired *d = run(3, ingress("a", NULL, "a_b.com", "/", "Prefix"),
                                ingress("b", NULL, "foo.*.com", "/", "Prefix"),
                                ingress("c", NULL, "good.com", "/", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: host \"a_b.com\""));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/b: host \"foo.*.com\" has a wildcard"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  CU_ASSERT(served(d, "default/c"));
  Edge__V1__Resource *r = vhost(d, "vh:good.com");
  CU_ASSERT_PTR_NOT_NULL(r);
  free_res(r);
  syncd_desired_free(d);
}

static void lone_star_trailing_dot_and_empty_label_hosts_are_rejected(void) {
  struct syncd_desired *d =
      run(4, ingress("a", NULL, "*", "/", "Prefix"), ingress("b", NULL, "a.com.", "/", "Prefix"),
          ingress("c", NULL, "a..com", "/", "Prefix"), ingress("e", NULL, "*.", "/", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: host \"*\""));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/b: host \"a.com.\" has an empty label"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/c: host \"a..com\" has an empty label"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/e: host \"*.\""));
  CU_ASSERT_EQUAL(d->n_served, 0);
  syncd_desired_free(d);
}

static void duplicate_ingress_keeps_the_later_copy_and_reports_the_other(void) {
  struct syncd_desired *d = run(2, ingress("a", NULL, "first.com", "/", "Prefix"),
                                ingress("a", NULL, "second.com", "/", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:second.com");
  CU_ASSERT_PTR_NOT_NULL(r);
  CU_ASSERT_PTR_NULL(vhost(d, "vh:first.com"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: duplicate Ingress"));
  free_res(r);
  syncd_desired_free(d);
}

static void host_with_port_is_rejected(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com:8080", "/", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: host \"a.com:8080\""));
  syncd_desired_free(d);
}

/* ---- paths ---- */

static char *ingress_paths(const char *name, const char *host, const char *paths_yaml) {
  char *s;
  asprintf(&s,
           "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s}\nspec:\n"
           "  rules:\n  - host: %s\n    http:\n      paths:\n%s---\n",
           name, host, paths_yaml);
  return s;
}

#define P(path, type)                            \
  "      - {path: \"" path "\", pathType: " type \
  ", backend: {service: {name: shop, port: {number: 80}}}}\n"

static void routes_are_sorted_longest_first_and_exact_before_prefix(void) {
  struct syncd_desired *d =
      run(1, ingress_paths("a", "a.com",
                           P("/", "Prefix") P("/foo", "Prefix") P("/foo/bar", "Prefix")
                               P("/foo", "Exact") P("/zz", "Prefix")));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__VirtualHost *vh = r->virtual_host;
  CU_ASSERT_EQUAL_FATAL(vh->n_routes, 5);
  CU_ASSERT_STRING_EQUAL(vh->routes[0]->path, "/foo/bar");
  CU_ASSERT_STRING_EQUAL(vh->routes[1]->path, "/foo");
  CU_ASSERT_EQUAL(vh->routes[1]->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT);
  CU_ASSERT_STRING_EQUAL(vh->routes[2]->path, "/foo");
  CU_ASSERT_EQUAL(vh->routes[2]->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX);
  CU_ASSERT_STRING_EQUAL(vh->routes[3]->path, "/zz");
  CU_ASSERT_STRING_EQUAL(vh->routes[4]->path, "/");
  CU_ASSERT_STRING_EQUAL(vh->routes[0]->cluster, "default/shop:80");
  free_res(r);
  syncd_desired_free(d);
}

static void prefix_trailing_slash_sorts_as_without_it(void) {
  struct syncd_desired *d =
      run(1, ingress_paths("a", "a.com", P("/aaa/bbb/", "Prefix") P("/aaa/bb", "Exact")));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 2);
  /* "/aaa/bbb/" counts as "/aaa/bbb" (8) and still beats "/aaa/bb" (7); the path is kept as written
   */
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->path, "/aaa/bbb/");
  free_res(r);
  syncd_desired_free(d);
}

static void prefix_paths_differing_by_trailing_slash_conflict(void) {
  struct syncd_desired *d = run(2, ingress("a", "2024-01-01T00:00:00Z", "a.com", "/foo", "Prefix"),
                                ingress("b", "2024-02-01T00:00:00Z", "a.com", "/foo/", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(
      rejection(d, "default/b: path /foo/ on host a.com conflicts with default/a"));
  syncd_desired_free(d);
}

static void exact_paths_differing_by_trailing_slash_are_distinct(void) {
  struct syncd_desired *d =
      run(1, ingress_paths("a", "a.com", P("/foo", "Exact") P("/foo/", "Exact")));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 2);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->path, "/foo/");
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  free_res(r);
  syncd_desired_free(d);
}

static void exact_path_case_is_kept(void) {
  struct syncd_desired *d =
      run(1, ingress_paths("a", "a.com", P("/Foo", "Exact") P("/foo", "Exact")));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 2);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->path, "/Foo");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[1]->path, "/foo");
  free_res(r);
  syncd_desired_free(d);
}

static void exact_and_prefix_on_the_same_path_do_not_conflict(void) {
  struct syncd_desired *d = run(2, ingress("a", "2024-01-01T00:00:00Z", "a.com", "/x", "Exact"),
                                ingress("b", "2024-02-01T00:00:00Z", "a.com", "/x", "Prefix"));
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 2);
  CU_ASSERT_EQUAL(r->virtual_host->routes[0]->path_type, EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT);
  free_res(r);
  syncd_desired_free(d);
}

static void implementation_specific_is_kept_and_conflicts_like_prefix(void) {
  struct syncd_desired *d =
      run(2, ingress("a", "2024-01-01T00:00:00Z", "a.com", "/x", "ImplementationSpecific"),
          ingress("b", "2024-02-01T00:00:00Z", "a.com", "/x", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 1);
  CU_ASSERT_EQUAL(r->virtual_host->routes[0]->path_type,
                  EDGE__V1__PATH_TYPE__PATH_TYPE_IMPLEMENTATION_SPECIFIC);
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/b: path /x on host a.com conflicts with default/a"));
  free_res(r);
  syncd_desired_free(d);
}

static void unknown_path_type_rejects_the_ingress_and_keeps_the_rest(void) {
  struct syncd_desired *d =
      run(2, ingress("a", NULL, "a.com", "/", "Regex"), ingress("b", NULL, "b.com", "/", "Prefix"));
  const struct syncd_rejection *rj = rejection(d, "unknown pathType \"Regex\"");
  CU_ASSERT_PTR_NOT_NULL_FATAL(rj);
  CU_ASSERT_STRING_EQUAL(rj->kind, "Ingress");
  CU_ASSERT_STRING_EQUAL(rj->name, "a");
  CU_ASSERT_EQUAL(strncmp(rj->location, "test.yaml:", 10), 0);
  CU_ASSERT_FALSE(served(d, "default/a"));
  CU_ASSERT_PTR_NULL(vhost(d, "vh:a.com"));
  Edge__V1__Resource *r = vhost(d, "vh:b.com");
  CU_ASSERT_PTR_NOT_NULL(r);
  free_res(r);
  syncd_desired_free(d);
}

static void path_not_starting_with_slash_is_rejected(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "foo", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: path \"foo\" does not start with /"));
  syncd_desired_free(d);
}

/* ---- merging and conflicts ---- */

static void ingresses_for_one_host_merge_their_rules(void) {
  struct syncd_desired *d = run(2, ingress("a", NULL, "a.com", "/a", "Prefix"),
                                ingress("b", NULL, "a.com", "/b", "Prefix"));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 2);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_ingresses, 2);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->ingresses[0], "default/a");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->ingresses[1], "default/b");
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  free_res(r);
  syncd_desired_free(d);
}

static void conflict_goes_to_the_oldest_and_the_loser_is_reported(void) {
  /* "z" is older than "a" even though it sorts later by name. */
  char *z = ingress("z", "2023-01-01T00:00:00Z", "a.com", "/x", "Prefix");
  char *a = ingress_port("a", "2024-01-01T00:00:00Z", "a.com", "/x", "Prefix", "{name: admin}");
  struct syncd_desired *d = run(2, a, z);
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 1);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->source->name, "z");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->cluster, "default/shop:80");
  const struct syncd_rejection *rj =
      rejection(d, "default/a: path /x on host a.com conflicts with default/z");
  CU_ASSERT_PTR_NOT_NULL(rj);
  /* the loser keeps being served for its other paths: it is still ours */
  CU_ASSERT(served(d, "default/a"));
  free_res(r);
  syncd_desired_free(d);
}

static void conflict_with_equal_age_goes_to_namespace_then_name(void) {
  struct syncd_desired *d = run(2, ingress("b", "2024-01-01T00:00:00Z", "a.com", "/x", "Exact"),
                                ingress("a", "2024-01-01T00:00:00Z", "a.com", "/x", "Exact"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/b: path /x on host a.com conflicts with default/a"));
  syncd_desired_free(d);
}

/* ---- backends ---- */

static void service_port_by_name_and_by_number_give_one_cluster(void) {
  struct syncd_desired *d = run(
      1, ingress_paths("a", "a.com",
                       "      - {path: /n, pathType: Prefix, backend: {service: {name: shop, port: "
                       "{number: 8080}}}}\n"
                       "      - {path: /s, pathType: Prefix, backend: {service: {name: shop, port: "
                       "{name: admin}}}}\n"));
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[0]->cluster, "default/shop:8080");
  CU_ASSERT_STRING_EQUAL(r->virtual_host->routes[1]->cluster, "default/shop:8080");
  CU_ASSERT_EQUAL(count_type(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER), 1);
  free_res(r);
  syncd_desired_free(d);
}

static void missing_service_rejects_the_ingress(void) {
  char *a = ingress("a", NULL, "a.com", "/", "Prefix");
  memcpy(strstr(a, "name: shop"), "name: nope", 10);
  struct syncd_desired *d = run(1, a);
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: path /: service nope not found"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  syncd_desired_free(d);
}

static void backend_without_service_is_rejected(void) {
  struct syncd_desired *d = run(1, ingress_paths("a", "a.com",
                                                 "      - {path: /, pathType: Prefix, backend: "
                                                 "{resource: {kind: Bucket, name: b}}}\n"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "resource backends are not supported"));
  syncd_desired_free(d);
}

static void service_port_not_found_rejects_the_ingress(void) {
  struct syncd_desired *d = run(2,
                                ingress_paths("a", "a.com",
                                              "      - {path: /, pathType: Prefix, backend: "
                                              "{service: {name: shop, port: {number: 81}}}}\n"),
                                ingress_paths("b", "b.com",
                                              "      - {path: /, pathType: Prefix, backend: "
                                              "{service: {name: shop, port: {name: grpc}}}}\n"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: path /: service shop has no port 81"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/b: path /: service shop has no port named grpc"));
  syncd_desired_free(d);
}

static const char *SLICES =
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: shop-abc, labels: {kubernetes.io/service-name: shop}}\n"
    "addressType: IPv4\nports: [{name: http, port: 8080}, {name: admin, port: 9090}]\n"
    "endpoints:\n"
    "- addresses: [10.1.0.2]\n  conditions: {ready: true}\n  zone: z1\n"
    "- addresses: [10.1.0.3]\n  conditions: {ready: false}\n"
    "- addresses: [10.1.0.1]\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: shop-def, labels: {kubernetes.io/service-name: shop}}\n"
    "addressType: IPv4\nports: [{name: http, port: 8080}]\n"
    "endpoints:\n- addresses: [10.1.0.9]\n  conditions: {ready: true}\n---\n";

static void cluster_has_the_ready_endpoints_of_its_endpointslices(void) {
  struct syncd_desired *d = run(2, dup(SLICES), ingress("a", NULL, "a.com", "/", "Prefix"));
  Edge__V1__Resource *r =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__Cluster *c = r->cluster;
  CU_ASSERT_EQUAL_FATAL(c->n_endpoints, 4);
  CU_ASSERT_STRING_EQUAL(c->endpoints[0]->address, "10.1.0.1"); /* no conditions: ready */
  CU_ASSERT(c->endpoints[0]->ready);
  CU_ASSERT_STRING_EQUAL(c->endpoints[1]->address, "10.1.0.2");
  CU_ASSERT_STRING_EQUAL(c->endpoints[1]->zone, "z1");
  /* 10.1.0.3 is not ready: sent for explain, marked so proxies skip it. */
  CU_ASSERT_STRING_EQUAL(c->endpoints[2]->address, "10.1.0.3");
  CU_ASSERT(!c->endpoints[2]->ready);
  CU_ASSERT_STRING_EQUAL(c->endpoints[3]->address, "10.1.0.9");
  CU_ASSERT(c->endpoints[3]->ready);
  CU_ASSERT_EQUAL(c->endpoints[0]->port, 8080); /* the slice's port, by name */
  free_res(r);
  syncd_desired_free(d);
}

static void endpointslice_port_is_matched_by_the_service_port_name(void) {
  struct syncd_desired *d = run(2, dup(SLICES),
                                ingress_paths("a", "a.com",
                                              "      - {path: /, pathType: Prefix, backend: "
                                              "{service: {name: shop, port: {number: 8080}}}}\n"));
  Edge__V1__Resource *r =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "default/shop:8080");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  /* only shop-abc has port "admin" (its not-ready 10.1.0.3 is sent with ready = false) */
  CU_ASSERT_EQUAL_FATAL(r->cluster->n_endpoints, 3);
  CU_ASSERT_EQUAL(r->cluster->endpoints[0]->port, 9090);
  free_res(r);
  syncd_desired_free(d);
}

static void cluster_falls_back_to_the_cluster_ip_without_endpointslices(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "/", "Prefix"));
  Edge__V1__Resource *r =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->cluster->n_endpoints, 1);
  CU_ASSERT_STRING_EQUAL(r->cluster->endpoints[0]->address, "10.0.0.10");
  CU_ASSERT_EQUAL(r->cluster->endpoints[0]->port, 80);
  free_res(r);
  syncd_desired_free(d);
}

/* ---- default backend ---- */

static void default_backend_comes_from_the_oldest_ingress_that_has_one(void) {
  const char *fmt =
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s, "
      "creationTimestamp: \"%s\"}\nspec:\n  defaultBackend: {service: {name: shop, port: "
      "{number: %d}}}\n---\n";
  char *a, *b;
  asprintf(&a, fmt, "new", "2025-01-01T00:00:00Z", 80);
  asprintf(&b, fmt, "old", "2020-01-01T00:00:00Z", 8080);
  struct syncd_desired *d = run(2, a, b);
  Edge__V1__Resource *r =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND, "default");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->default_backend->cluster, "default/shop:8080");
  CU_ASSERT_STRING_EQUAL(r->default_backend->source->name, "old");
  free_res(r);
  syncd_desired_free(d);
}

static void without_default_backend_the_cluster_is_empty_for_a_local_404(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "/", "Prefix"));
  Edge__V1__Resource *r =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND, "default");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->default_backend->cluster, "");
  free_res(r);
  syncd_desired_free(d);
}

/* ---- TLS ---- */

static char *b64(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
  return out;
}

static char *tls_secret(const char *name, const char *type, const char *crt, const char *key) {
  char *bc = crt ? b64(crt) : NULL, *bk = key ? b64(key) : NULL, *s;
  asprintf(&s,
           "apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\ntype: %s\ndata:\n%s%s%s%s%s%s---\n",
           name, type, bc ? "  tls.crt: " : "", bc ? bc : "", bc ? "\n" : "",
           bk ? "  tls.key: " : "", bk ? bk : "", bk ? "\n" : "");
  free(bc);
  free(bk);
  return s;
}

static char *tls_ingress(const char *name, const char *host, const char *secret) {
  char *s;
  asprintf(&s,
           "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s}\nspec:\n"
           "  tls:\n  - hosts: [%s]\n    secretName: %s\n"
           "  rules:\n  - host: %s\n    http:\n      paths:\n" P("/", "Prefix") "---\n",
           name, host, secret, host);
  return s;
}

static void valid_tls_secret_gives_a_certificate_for_the_host(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  struct syncd_desired *d = run(2, tls_secret("tls-shop", "kubernetes.io/tls", crt, key),
                                tls_ingress("shop", "Shop.com", "tls-shop"));
  Edge__V1__Resource *r = vhost(d, "vh:shop.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->certificate, "default/tls-shop");
  CU_ASSERT_FALSE(r->virtual_host->tls_fallback);
  Edge__V1__Resource *c =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default/tls-shop");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL_FATAL(c->certificate->n_sni_names, 1);
  CU_ASSERT_STRING_EQUAL(c->certificate->sni_names[0], "shop.com");
  CU_ASSERT_EQUAL(c->certificate->cert_pem.len, strlen(crt));
  CU_ASSERT_EQUAL(memcmp(c->certificate->key_pem.data, key, strlen(key)), 0);
  CU_ASSERT(c->certificate->not_after > 1700000000);
  CU_ASSERT_FALSE(c->certificate->is_default);
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  free_res(r);
  free_res(c);
  free(crt);
  free(key);
  syncd_desired_free(d);
}

static void plain_string_data_secret_works(void) {
  char *crt, *key, err[128], *s;
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  /* stringData with literal block scalars */
  size_t cap = strlen(crt) * 2 + strlen(key) * 2 + 512;
  s = malloc(cap);
  strcpy(s,
         "apiVersion: v1\nkind: Secret\nmetadata: {name: tls-shop}\ntype: kubernetes.io/tls\n"
         "stringData:\n  tls.crt: |\n");
  for (const char *src[2] = {crt, key}, **p = src; p < src + 2; p++) {
    if (p == src + 1) strcat(s, "  tls.key: |\n");
    char *copy = strdup(*p);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
      strcat(s, "    ");
      strcat(s, line);
      strcat(s, "\n");
    }
    free(copy);
  }
  strcat(s, "---\n");
  struct syncd_desired *d = run(2, s, tls_ingress("shop", "shop.com", "tls-shop"));
  Edge__V1__Resource *r = vhost(d, "vh:shop.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->certificate, "default/tls-shop");
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  free_res(r);
  free(crt);
  free(key);
  syncd_desired_free(d);
}

static void tls_host_served_by_a_rule_without_host_still_gets_its_certificate(void) {
  char *crt, *key, err[128], *ing;
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  asprintf(&ing,
           "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: any}\nspec:\n"
           "  tls:\n  - hosts: [shop.com, www.shop.com]\n    secretName: tls-shop\n"
           "  rules:\n  - http:\n      paths:\n" P("/", "Prefix") "---\n");
  struct syncd_desired *d = run(2, tls_secret("tls-shop", "kubernetes.io/tls", crt, key), ing);
  Edge__V1__Resource *c =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default/tls-shop");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL_FATAL(c->certificate->n_sni_names, 2);
  CU_ASSERT_STRING_EQUAL(c->certificate->sni_names[0], "shop.com");
  CU_ASSERT_STRING_EQUAL(c->certificate->sni_names[1], "www.shop.com");
  free_res(c);
  free(crt);
  free(key);
  syncd_desired_free(d);
}

static void expect_fallback(struct syncd_desired *d, const char *reason) {
  Edge__V1__Resource *r = vhost(d, "vh:shop.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(r->virtual_host->certificate, "default");
  CU_ASSERT(r->virtual_host->tls_fallback);
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 1); /* still served */
  const struct syncd_rejection *rj = rejection(d, reason);
  CU_ASSERT_PTR_NOT_NULL(rj);
  if (!rj) {
    for (size_t i = 0; i < d->n_rejected; i++)
      fprintf(stderr, "  got: %s\n", d->rejected[i].reason);
  }
  CU_ASSERT(served(d, "default/shop"));
  Edge__V1__Resource *c = find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default");
  CU_ASSERT_PTR_NOT_NULL(c);
  if (c) CU_ASSERT(c->certificate->is_default);
  CU_ASSERT_EQUAL(count_type(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE), 1);
  free_res(c);
  free_res(r);
  syncd_desired_free(d);
}

static void missing_tls_secret_falls_back_to_the_default_certificate(void) {
  expect_fallback(run(1, tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop not found");
}

static void tls_secret_without_key_falls_back(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  expect_fallback(run(2, tls_secret("tls-shop", "kubernetes.io/tls", crt, NULL),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop missing key tls.key");
  free(crt);
  free(key);
}

static void tls_secret_of_the_wrong_type_falls_back(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  expect_fallback(run(2, tls_secret("tls-shop", "Opaque", crt, key),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop has type Opaque, want kubernetes.io/tls");
  free(crt);
  free(key);
}

static void tls_certificate_that_does_not_parse_falls_back(void) {
  char *crt, *key, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  expect_fallback(
      run(2,
          tls_secret("tls-shop", "kubernetes.io/tls", "-----BEGIN CERTIFICATE-----\nnope\n", key),
          tls_ingress("shop", "shop.com", "tls-shop")),
      "default/shop: secret tls-shop tls.crt holds no PEM certificate");
  free(crt);
  free(key);
}

static void tls_key_that_does_not_match_falls_back(void) {
  char *crt, *key, *crt2, *key2, err[128];
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &crt, &key, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL_FATAL(gen_cert("other.com", 30, &crt2, &key2, err, sizeof(err)), 0);
  expect_fallback(run(2, tls_secret("tls-shop", "kubernetes.io/tls", crt, key2),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop tls.key does not match the certificate");
  free(crt), free(key), free(crt2), free(key2);
}

/* A self-signed RSA certificate/key of `bits` as PEM (malloc'd). */
static void rsa_pair(int bits, const char *cn, char **cert, char **key) {
  EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 9);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_sign(x, k, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  *cert = strndup(p, (size_t)len);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  len = BIO_get_mem_data(b, &p);
  *key = strndup(p, (size_t)len);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(k);
}

/* Issue 15: Secrets syncd's old fast checks accepted and every proxy's
 * OpenSSL then refused. Now syncd asks OpenSSL the proxies' way
 * (common/cert_valid): the host falls back, the rest is unaffected. */
static void tls_secret_the_proxies_would_refuse_falls_back(void) {
  char *crt, *key;
  rsa_pair(1024, "shop.com", &crt, &key); /* below security level 2 */
  expect_fallback(run(2, tls_secret("tls-shop", "kubernetes.io/tls", crt, key),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop tls.crt: the certificate is refused");
  free(crt), free(key);
  char err[128], *ok_crt, *ok_key, *indented, *bad_chain;
  CU_ASSERT_EQUAL_FATAL(gen_cert("shop.com", 30, &ok_crt, &ok_key, err, sizeof(err)), 0);
  asprintf(&indented, "  %s", ok_crt); /* the PEM marker not at the start of a line */
  expect_fallback(run(2, tls_secret("tls-shop", "kubernetes.io/tls", indented, ok_key),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop tls.crt holds no PEM certificate");
  asprintf(&bad_chain, "%s-----BEGIN CERTIFICATE-----\nAAAA!!\n-----END CERTIFICATE-----\n",
           ok_crt);
  expect_fallback(run(2, tls_secret("tls-shop", "kubernetes.io/tls", bad_chain, ok_key),
                      tls_ingress("shop", "shop.com", "tls-shop")),
                  "default/shop: secret tls-shop tls.crt: certificate 2 does not parse");
  free(ok_crt), free(ok_key), free(indented), free(bad_chain);
}

/* ---- annotations ---- */

static char *annotated(const char *annotations) {
  char *s;
  asprintf(
      &s,
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: a\n"
      "  annotations:\n%s"
      "spec:\n  rules:\n  - host: a.com\n    http:\n      paths:\n" P("/api", "Prefix") "---\n",
      annotations);
  return s;
}

static void edge_annotations_set_route_and_cluster_options(void) {
  struct syncd_desired *d = run(1, annotated("    edge.dev/backend-protocol: grpc\n"
                                             "    edge.dev/load-balance: least_request\n"
                                             "    edge.dev/ssl-redirect: \"false\"\n"
                                             "    edge.dev/rewrite-target: /v1\n"
                                             "    edge.dev/proxy-body-size: 10m\n"
                                             "    edge.dev/proxy-read-timeout: \"30\"\n"
                                             "    edge.dev/proxy-connect-timeout: \"5\"\n"));
  CU_ASSERT_EQUAL(d->n_rejected, 0);
  Edge__V1__Resource *r = vhost(d, "vh:a.com");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__RouteOptions *o = r->virtual_host->routes[0]->options;
  CU_ASSERT(o->disable_ssl_redirect);
  CU_ASSERT_STRING_EQUAL(o->rewrite_prefix, "/v1");
  CU_ASSERT_EQUAL(o->max_body_bytes, 10u * 1024 * 1024);
  CU_ASSERT_EQUAL(o->response_header_timeout_ms, 30000);
  Edge__V1__Resource *c =
      find(d, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(c->cluster->protocol, EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC);
  CU_ASSERT_EQUAL(c->cluster->lb_policy, EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST);
  CU_ASSERT_EQUAL(c->cluster->connect_timeout_ms, 5000);
  free_res(r);
  free_res(c);
  syncd_desired_free(d);
}

static void invalid_annotation_value_rejects_the_ingress(void) {
  struct syncd_desired *d = run(1, annotated("    edge.dev/proxy-body-size: lots\n"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: annotation edge.dev/proxy-body-size"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  syncd_desired_free(d);
}

/* Issue 15: a rewrite target that would inject into the upstream request
 * line is rejected with a reason that carries no raw CR/LF. */
static void rewrite_target_with_crlf_is_rejected_with_an_escaped_reason(void) {
  struct syncd_desired *d = run(
      1, annotated(
             "    edge.dev/rewrite-target: \"/x HTTP/1.1\\r\\nX-Injected: yes\\r\\nX-Pad: a\"\n"));
  const struct syncd_rejection *r = rejection(d, "default/a: annotation edge.dev/rewrite-target");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->reason, "\\r\\nX-Injected"));
  CU_ASSERT_PTR_NULL(strchr(r->reason, '\r'));
  CU_ASSERT_PTR_NULL(strchr(r->reason, '\n'));
  CU_ASSERT_FALSE(served(d, "default/a"));
  CU_ASSERT_PTR_NULL(vhost(d, "vh:a.com"));
  syncd_desired_free(d);
  d = run(1, annotated("    edge.dev/rewrite-target: \"/v2?x=1\"\n"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  syncd_desired_free(d);
}

/* Paths, names and endpoint fields that could reach a request line, a log
 * or Status are what the Kubernetes API and RFC 3986 allow, or rejected. */
static void tenant_values_that_could_inject_are_rejected_where_they_enter(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "\"/x\\ty\"", "Prefix"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/a: path \"/x\\ty\" contains a control character"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  syncd_desired_free(d);
  d = run(1, ingress("a", NULL, "a.com", "/x?y", "Prefix"));
  CU_ASSERT_FALSE(served(d, "default/a"));
  syncd_desired_free(d);
  d = run_text(
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: \"a\\r\\nb\"}\n"
      "spec: {rules: [{host: a.com}]}\n");
  CU_ASSERT_EQUAL_FATAL(d->n_rejected, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(d->rejected[0].reason, "not a valid Kubernetes name"));
  CU_ASSERT_PTR_NULL(strchr(d->rejected[0].reason, '\n'));
  syncd_desired_free(d);
  d = run(2, ingress("a", NULL, "a.com", "/", "Prefix"),
          strdup("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                 "metadata: {name: shop-1, labels: {kubernetes.io/service-name: shop}}\n"
                 "ports: [{name: http, port: 8080}]\n"
                 "endpoints: [{addresses: [\"backend.evil\"]}]\n---\n"));
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "endpoint address \"backend.evil\" is not an IP address"));
  CU_ASSERT(served(d, "default/a")); /* the Service's ClusterIP serves instead */
  syncd_desired_free(d);
}

/* ---- whole-state properties ---- */

static void bad_yaml_is_reported_with_file_and_line_and_other_objects_kept(void) {
  struct manifest_set set;
  manifest_set_init(&set);
  const char *good = BASE;
  char *ing = ingress("a", NULL, "a.com", "/", "Prefix");
  const char *bad = "kind: Ingress\nmetadata: {name: broken\n";
  manifest_parse(&set, good, strlen(good), "dir/base.yaml");
  manifest_parse(&set, ing, strlen(ing), "dir/ing.yaml");
  manifest_parse(&set, bad, strlen(bad), "dir/bad.yaml");
  struct syncd_desired *d = NULL;
  CU_ASSERT_EQUAL(translate_desired(&set, NULL, &d), 0);
  CU_ASSERT_EQUAL_FATAL(d->n_rejected, 1);
  CU_ASSERT_EQUAL(strncmp(d->rejected[0].location, "dir/bad.yaml:", 13), 0);
  CU_ASSERT_EQUAL(strncmp(d->rejected[0].reason, "dir/bad.yaml:", 13), 0);
  CU_ASSERT(served(d, "default/a"));
  free(ing);
  manifest_set_free(&set);
  syncd_desired_free(d);
}

static void resources_are_sorted_by_type_and_name_and_output_is_deterministic(void) {
  struct syncd_desired *d1 = run(3, ingress("a", NULL, "b.com", "/", "Prefix"),
                                 ingress("b", NULL, "a.com", "/", "Prefix"), dup(SLICES));
  struct syncd_desired *d2 = run(3, dup(SLICES), ingress("b", NULL, "a.com", "/", "Prefix"),
                                 ingress("a", NULL, "b.com", "/", "Prefix"));
  CU_ASSERT_EQUAL_FATAL(d1->n_resources, d2->n_resources);
  for (size_t i = 0; i < d1->n_resources; i++) {
    if (i > 0) {
      const struct syncd_resource *p = &d1->resources[i - 1], *c = &d1->resources[i];
      CU_ASSERT(p->type < c->type || (p->type == c->type && strcmp(p->name, c->name) < 0));
    }
    if (strcmp(d1->resources[i].name, "default") == 0) continue; /* generated cert: same here */
    CU_ASSERT_EQUAL(d1->resources[i].len, d2->resources[i].len);
    CU_ASSERT_EQUAL(memcmp(d1->resources[i].bytes, d2->resources[i].bytes, d1->resources[i].len),
                    0);
  }
  syncd_desired_free(d1);
  syncd_desired_free(d2);
}

static void objects_are_counted_per_kind(void) {
  struct syncd_desired *d = run(1, ingress("a", NULL, "a.com", "/", "Prefix"));
  unsigned ing = 0, svc = 0;
  for (size_t i = 0; i < d->n_counts; i++) {
    if (!strcmp(d->counts[i].kind, "Ingress")) ing = d->counts[i].count;
    if (!strcmp(d->counts[i].kind, "Service")) svc = d->counts[i].count;
  }
  CU_ASSERT_EQUAL(ing, 1);
  CU_ASSERT_EQUAL(svc, 1);
  syncd_desired_free(d);
}

static void old_ingress_api_version_is_rejected(void) {
  struct syncd_desired *d =
      run_text("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\nspec: {}\n");
  CU_ASSERT_PTR_NOT_NULL(rejection(d, "default/old: apiVersion extensions/v1beta1"));
  syncd_desired_free(d);
}

static int suite_init(void) {
  char err[128];
  return gen_cert("edge-default.invalid", 30, &default_crt, &default_key, err, sizeof(err));
}

static int suite_clean(void) {
  free(default_crt);
  free(default_key);
  return 0;
}

#define T(s, f) CU_add_test(s, #f, f)

void test_register(void) {
  CU_pSuite s = CU_add_suite("translate", suite_init, suite_clean);
  T(s, ingress_naming_our_class_is_served);
  T(s, ingress_naming_another_class_is_ignored);
  T(s, ingress_without_class_is_served_when_our_class_is_default);
  T(s, ingress_without_class_is_ignored_when_no_class_of_ours_is_default);
  T(s, legacy_class_annotation_naming_our_class_is_served);
  T(s, exact_host_is_lower_cased_not_rejected);
  T(s, wildcard_host_becomes_a_wildcard_match);
  T(s, rule_without_host_matches_any_host);
  T(s, host_with_invalid_characters_is_rejected);
  T(s, host_with_port_is_rejected);
  T(s, lone_star_trailing_dot_and_empty_label_hosts_are_rejected);
  T(s, duplicate_ingress_keeps_the_later_copy_and_reports_the_other);
  T(s, routes_are_sorted_longest_first_and_exact_before_prefix);
  T(s, prefix_trailing_slash_sorts_as_without_it);
  T(s, prefix_paths_differing_by_trailing_slash_conflict);
  T(s, exact_paths_differing_by_trailing_slash_are_distinct);
  T(s, exact_path_case_is_kept);
  T(s, exact_and_prefix_on_the_same_path_do_not_conflict);
  T(s, implementation_specific_is_kept_and_conflicts_like_prefix);
  T(s, unknown_path_type_rejects_the_ingress_and_keeps_the_rest);
  T(s, path_not_starting_with_slash_is_rejected);
  T(s, ingresses_for_one_host_merge_their_rules);
  T(s, conflict_goes_to_the_oldest_and_the_loser_is_reported);
  T(s, conflict_with_equal_age_goes_to_namespace_then_name);
  T(s, service_port_by_name_and_by_number_give_one_cluster);
  T(s, missing_service_rejects_the_ingress);
  T(s, backend_without_service_is_rejected);
  T(s, service_port_not_found_rejects_the_ingress);
  T(s, cluster_has_the_ready_endpoints_of_its_endpointslices);
  T(s, endpointslice_port_is_matched_by_the_service_port_name);
  T(s, cluster_falls_back_to_the_cluster_ip_without_endpointslices);
  T(s, default_backend_comes_from_the_oldest_ingress_that_has_one);
  T(s, without_default_backend_the_cluster_is_empty_for_a_local_404);
  T(s, valid_tls_secret_gives_a_certificate_for_the_host);
  T(s, plain_string_data_secret_works);
  T(s, tls_host_served_by_a_rule_without_host_still_gets_its_certificate);
  T(s, missing_tls_secret_falls_back_to_the_default_certificate);
  T(s, tls_secret_without_key_falls_back);
  T(s, tls_secret_of_the_wrong_type_falls_back);
  T(s, tls_certificate_that_does_not_parse_falls_back);
  T(s, tls_key_that_does_not_match_falls_back);
  T(s, edge_annotations_set_route_and_cluster_options);
  T(s, invalid_annotation_value_rejects_the_ingress);
  T(s, rewrite_target_with_crlf_is_rejected_with_an_escaped_reason);
  T(s, tenant_values_that_could_inject_are_rejected_where_they_enter);
  T(s, tls_secret_the_proxies_would_refuse_falls_back);
  T(s, bad_yaml_is_reported_with_file_and_line_and_other_objects_kept);
  T(s, resources_are_sorted_by_type_and_name_and_output_is_deterministic);
  T(s, objects_are_counted_per_kind);
  T(s, old_ingress_api_version_is_rejected);
}
