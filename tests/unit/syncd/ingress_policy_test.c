/* ingress_policy: the issue-20 annotations through the real translation
 * (YAML in, edge.v1 resources and rejections out), and the pure parsers. */
#include "syncd/ingress_policy.h"

#include <CUnit/CUnit.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"
#include "syncd/translate.h"

static char *ca_crt, *ca_key, *client_crt, *client_key, *other_key, *other_crt;

static const char *BASE =
    "apiVersion: networking.k8s.io/v1\n"
    "kind: IngressClass\n"
    "metadata:\n"
    "  name: edge\n"
    "  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
    "spec: {controller: edge.dev/ingress-controller}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Service\n"
    "metadata: {name: shop, namespace: default}\n"
    "spec: {clusterIP: 10.0.0.10, ports: [{name: http, port: 80}]}\n"
    "---\n";

/* YAML block scalar of a PEM, indented by n spaces. */
static char *block(const char *pem, int n) {
  size_t len = strlen(pem);
  char *out = malloc(len * 2 + 64), *o = out;
  for (const char *p = pem; *p;) {
    o += sprintf(o, "%*s", n, "");
    while (*p && *p != '\n') *o++ = *p++;
    if (*p) *o++ = *p++;
  }
  *o = '\0';
  return out;
}

/* A Secret (any keys given as name=PEM pairs, NULL-terminated). */
static char *secret(const char *ns, const char *name, const char *type, ...) {
  char *s = NULL;
  size_t cap = 0;
  FILE *f = open_memstream(&s, &cap);
  fprintf(f, "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: %s}\ntype: %s\n", name,
          ns, type);
  fprintf(f, "stringData:\n");
  va_list ap;
  va_start(ap, type);
  const char *k;
  while ((k = va_arg(ap, const char *)) != NULL) {
    char *b = block(va_arg(ap, const char *), 4);
    fprintf(f, "  %s: |\n%s", k, b);
    free(b);
  }
  va_end(ap);
  fprintf(f, "---\n");
  fclose(f);
  return s;
}

static char *configmap(const char *name, const char *pem) {
  char *b = block(pem, 4), *s = NULL;
  if (asprintf(&s,
               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: default, "
               "labels: {edge.dev/ca-bundle: \"true\"}}\n"
               "data:\n  ca.crt: |\n%s---\n",
               name, b) < 0)
    s = NULL;
  free(b);
  return s;
}

/* An Ingress for host with TLS (tls: 1) and these annotation lines. */
static char *ingress(const char *name, const char *ts, const char *host, int tls,
                     const char *annotations) {
  char *s = NULL;
  if (asprintf(&s,
               "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
               "metadata:\n  name: %s\n  namespace: default\n  creationTimestamp: \"%s\"\n"
               "  annotations:\n%s"
               "spec:\n%s"
               "  rules:\n  - host: %s\n    http:\n      paths:\n"
               "      - {path: /%s, pathType: Prefix, backend: {service: {name: shop, port: "
               "{number: 80}}}}\n---\n",
               name, ts, annotations, tls ? "  tls: [{hosts: [HOST], secretName: web}]\n" : "",
               host, name) < 0)
    return NULL;
  char *h = strstr(s, "HOST");
  if (h) { /* the tls host */
    char *out = NULL;
    *h = '\0';
    if (asprintf(&out, "%s%s%s", s, host, h + 4) < 0) out = NULL;
    free(s);
    s = out;
  }
  return s;
}

static struct syncd_desired *run(const char *first, ...) {
  char *text = NULL;
  size_t cap = 0;
  FILE *f = open_memstream(&text, &cap);
  fputs(BASE, f);
  char *web = secret("default", "web", "kubernetes.io/tls", "tls.crt", client_crt, "tls.key",
                     client_key, NULL);
  fputs(web, f);
  free(web);
  va_list ap;
  va_start(ap, first);
  for (const char *d = first; d; d = va_arg(ap, const char *)) fputs(d, f);
  va_end(ap);
  fclose(f);
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, strlen(text), "test.yaml");
  struct syncd_desired *d = NULL;
  CU_ASSERT_EQUAL(translate_desired(&set, NULL, &d), 0);
  manifest_set_free(&set);
  free(text);
  return d;
}

static Edge__V1__Resource *find(const struct syncd_desired *d, int type, const char *name) {
  for (size_t i = 0; d && i < d->n_resources; i++)
    if (d->resources[i].type == type && !strcmp(d->resources[i].name, name))
      return edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
  return NULL;
}

static const char *rejected(const struct syncd_desired *d, const char *needle) {
  for (size_t i = 0; d && i < d->n_rejected; i++)
    if (strstr(d->rejected[i].reason, needle)) return d->rejected[i].reason;
  return NULL;
}

#define VH EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST
#define CL EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER

static void auth_tls_secret_makes_a_required_policy_with_the_ca(void) {
  char *ca = secret("default", "clients", "kubernetes.io/tls", "ca.crt", ca_crt, "tls.crt",
                    client_crt, "tls.key", client_key, NULL);
  char *ig =
      ingress("a", "2024-01-01T00:00:00Z", "a.test", 1, "    edge.dev/auth-tls-secret: clients\n");
  struct syncd_desired *d = run(ca, ig, NULL);
  Edge__V1__Resource *r = find(d, VH, "vh:a.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__ClientAuth *a = r->virtual_host->client_auth;
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->mode, EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED);
  CU_ASSERT_EQUAL(a->verify_depth, 1);
  CU_ASSERT_FALSE(a->pass_certificate);
  CU_ASSERT_EQUAL(a->ca_pem.len, strlen(ca_crt));
  CU_ASSERT_STRING_EQUAL(a->ca_source, "Secret default/clients");
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(ca), free(ig);
}

static void auth_tls_configmap_optional_depth_and_chain(void) {
  char *cm = configmap("bundle", ca_crt);
  char *ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", 1,
                     "    edge.dev/auth-tls-configmap: default/bundle\n"
                     "    edge.dev/auth-tls-verify-client: optional\n"
                     "    edge.dev/auth-tls-verify-depth: \"2\"\n"
                     "    edge.dev/auth-tls-pass-certificate-to-upstream: \"true\"\n");
  struct syncd_desired *d = run(cm, ig, NULL);
  Edge__V1__Resource *r = find(d, VH, "vh:a.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__ClientAuth *a = r->virtual_host->client_auth;
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->mode, EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_OPTIONAL);
  CU_ASSERT_EQUAL(a->verify_depth, 2);
  CU_ASSERT_TRUE(a->pass_certificate);
  CU_ASSERT_STRING_EQUAL(a->ca_source, "ConfigMap default/bundle");
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(cm), free(ig);
}

/* Each case: annotations, extra objects, the expected reason (the Ingress
 * is rejected, so its host is not served). */
static void bad_values_reject_the_ingress_with_a_reason(void) {
  char *cm = configmap("bundle", ca_crt);
  char *empty = configmap("empty", "no pem here\n");
  char *foreign = secret("other", "clients", "kubernetes.io/tls", "ca.crt", ca_crt, NULL);
  char *unlabelled = strdup(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain, "
      "namespace: default}\ndata: {ca.crt: x}\n---\n");
  char *mismatch = secret("default", "mtls", "kubernetes.io/tls", "ca.crt", ca_crt, "tls.crt",
                          client_crt, "tls.key", other_key, NULL);
  struct {
    const char *ann;
    int tls;
    const char *reason;
  } cases[] = {
      {"    edge.dev/auth-tls-secret: other/clients\n", 1, "another namespace"},
      {"    edge.dev/auth-tls-secret: nope\n", 1, "secret nope not found"},
      {"    edge.dev/auth-tls-configmap: empty\n", 1, "holds no PEM certificate"},
      {"    edge.dev/auth-tls-configmap: plain\n", 1, "is not labelled edge.dev/ca-bundle"},
      {"    edge.dev/auth-tls-configmap: bundle\n", 0, "is not in spec.tls"},
      {"    edge.dev/auth-tls-configmap: bundle\n    edge.dev/auth-tls-verify-client: "
       "optional_no_ca\n",
       1, "optional_no_ca is not supported"},
      {"    edge.dev/auth-tls-verify-depth: \"3\"\n", 1, "needs edge.dev/auth-tls-secret"},
      {"    edge.dev/auth-tls-configmap: bundle\n    edge.dev/auth-tls-verify-depth: \"99\"\n", 1,
       "from 1 to 16"},
      {"    edge.dev/proxy-ssl-secret: mtls\n", 1, "needs edge.dev/backend-protocol https"},
      {"    edge.dev/backend-protocol: https\n    edge.dev/proxy-ssl-secret: mtls\n", 1,
       "does not match"},
      {"    edge.dev/backend-protocol: https\n    edge.dev/proxy-ssl-name: \"a b\"\n", 1,
       "not a DNS name"},
      {"    edge.dev/health-check-path: \"/x\\r\\nHost: evil\"\n", 1, "no spaces or control"},
      {"    edge.dev/health-check-path: /h\n    edge.dev/health-check-host: \"a\\nb\"\n", 1,
       "not a DNS name"},
      {"    edge.dev/health-check-interval: 5s\n", 1, "needs edge.dev/health-check-path"},
      {"    edge.dev/health-check-path: /h\n    edge.dev/health-check-interval: 1ms\n", 1,
       "from 100ms to 1h"},
      {"    edge.dev/health-check-path: /h\n    edge.dev/health-check-expected-status: "
       "\"300-200\"\n",
       1, "within 100..599"},
      {"    edge.dev/max-connections: lots\n", 1, "from 0 (unlimited)"},
      {"    edge.dev/health-check-path: /h\n    edge.dev/health-check-port: \"70000\"\n", 1,
       "port number from 1 to 65535"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", cases[i].tls, cases[i].ann);
    struct syncd_desired *d = run(cm, empty, unlabelled, foreign, mismatch, ig, NULL);
    const char *why = rejected(d, cases[i].reason);
    if (!why) fprintf(stderr, "case %zu: no rejection with \"%s\"\n", i, cases[i].reason);
    CU_ASSERT_PTR_NOT_NULL(why);
    CU_ASSERT_PTR_NULL(find(d, VH, "vh:a.test")); /* the Ingress is not served */
    syncd_desired_free(d);
    free(ig);
  }
  free(cm), free(empty), free(unlabelled), free(foreign), free(mismatch);
}

static void the_oldest_ingress_sets_a_hosts_policy_and_protects_every_path(void) {
  char *cm = configmap("bundle", ca_crt);
  char *old = ingress("old", "2024-01-01T00:00:00Z", "a.test", 1,
                      "    edge.dev/auth-tls-configmap: bundle\n");
  char *plain = ingress("plain", "2024-02-01T00:00:00Z", "a.test", 0, "    x: y\n");
  char *young = ingress("young", "2024-03-01T00:00:00Z", "a.test", 1,
                        "    edge.dev/auth-tls-configmap: bundle\n"
                        "    edge.dev/auth-tls-verify-client: optional\n");
  struct syncd_desired *d = run(cm, old, plain, young, NULL);
  Edge__V1__Resource *r = find(d, VH, "vh:a.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->n_routes, 3); /* every Ingress's path is served ... */
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->virtual_host->client_auth); /* ... behind the host's policy */
  CU_ASSERT_EQUAL(r->virtual_host->client_auth->mode,
                  EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED);
  CU_ASSERT_PTR_NOT_NULL(rejected(d,
                                  "default/young: client certificate settings for host "
                                  "a.test differ from default/old's"));
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(cm), free(old), free(plain), free(young);
}

static void https_backend_gets_tls_with_the_service_name_and_client_certificate(void) {
  char *mtls = secret("default", "mtls", "kubernetes.io/tls", "ca.crt", ca_crt, "tls.crt",
                      client_crt, "tls.key", client_key, NULL);
  char *ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", 0,
                     "    edge.dev/backend-protocol: https\n"
                     "    edge.dev/proxy-ssl-secret: mtls\n");
  struct syncd_desired *d = run(mtls, ig, NULL);
  Edge__V1__Resource *r = find(d, CL, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__UpstreamTls *t = r->cluster->tls;
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_EQUAL(r->cluster->protocol, EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1);
  CU_ASSERT_STRING_EQUAL(t->server_name, "shop.default.svc");
  CU_ASSERT_EQUAL(t->ca_pem.len, strlen(ca_crt));
  CU_ASSERT_EQUAL(t->cert_pem.len, strlen(client_crt));
  CU_ASSERT_EQUAL(t->key_pem.len, strlen(client_key));
  CU_ASSERT_FALSE(t->insecure_skip_verify);
  CU_ASSERT_STRING_EQUAL(t->source, "Secret default/mtls");
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(ig);
  ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", 0,
               "    edge.dev/backend-protocol: grpcs\n"
               "    edge.dev/proxy-ssl-name: api.internal\n"
               "    edge.dev/proxy-ssl-verify: \"off\"\n");
  d = run(ig, NULL);
  r = find(d, CL, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->cluster->protocol, EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->cluster->tls);
  CU_ASSERT_STRING_EQUAL(r->cluster->tls->server_name, "api.internal");
  CU_ASSERT_TRUE(r->cluster->tls->insecure_skip_verify);
  CU_ASSERT_EQUAL(r->cluster->tls->ca_pem.len, 0); /* the system's trust store */
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(ig), free(mtls);
}

static void health_check_and_breakers_become_cluster_fields(void) {
  char *ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", 0,
                     "    edge.dev/health-check-path: /healthz?full=1\n"
                     "    edge.dev/health-check-host: shop.internal\n"
                     "    edge.dev/health-check-interval: 2s\n"
                     "    edge.dev/health-check-timeout: 500ms\n"
                     "    edge.dev/health-check-rise: \"3\"\n"
                     "    edge.dev/health-check-fall: \"4\"\n"
                     "    edge.dev/health-check-expected-status: 200-204\n"
                     "    edge.dev/health-check-port: \"8081\"\n"
                     "    edge.dev/max-connections: \"100\"\n"
                     "    edge.dev/max-pending-requests: \"10\"\n"
                     "    edge.dev/max-retries: \"0\"\n");
  struct syncd_desired *d = run(ig, NULL);
  Edge__V1__Resource *r = find(d, CL, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  Edge__V1__HealthCheck *h = r->cluster->health_check;
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_STRING_EQUAL(h->path, "/healthz?full=1");
  CU_ASSERT_STRING_EQUAL(h->host, "shop.internal");
  CU_ASSERT_EQUAL(h->interval_ms, 2000);
  CU_ASSERT_EQUAL(h->timeout_ms, 500);
  CU_ASSERT_EQUAL(h->rise, 3);
  CU_ASSERT_EQUAL(h->fall, 4);
  CU_ASSERT_EQUAL(h->expected_status_min, 200);
  CU_ASSERT_EQUAL(h->expected_status_max, 204);
  CU_ASSERT_EQUAL(h->port, 8081);
  Edge__V1__CircuitBreakers *b = r->cluster->circuit_breakers;
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(b->max_connections, 100);
  CU_ASSERT_EQUAL(b->max_pending_requests, 10);
  CU_ASSERT_EQUAL(b->max_retries, 0);
  CU_ASSERT_PTR_NULL(r->cluster->tls);
  edge__v1__resource__free_unpacked(r, NULL);
  syncd_desired_free(d);
  free(ig);
}

static void without_annotations_nothing_is_set(void) {
  char *ig = ingress("a", "2024-01-01T00:00:00Z", "a.test", 1, "    x: y\n");
  struct syncd_desired *d = run(ig, NULL);
  Edge__V1__Resource *v = find(d, VH, "vh:a.test"), *c = find(d, CL, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_PTR_NULL(v->virtual_host->client_auth);
  CU_ASSERT_PTR_NULL(c->cluster->tls);
  CU_ASSERT_PTR_NULL(c->cluster->health_check);
  CU_ASSERT_PTR_NULL(c->cluster->circuit_breakers);
  edge__v1__resource__free_unpacked(v, NULL);
  edge__v1__resource__free_unpacked(c, NULL);
  syncd_desired_free(d);
  free(ig);
}

static void durations_and_status_ranges_parse_within_bounds(void) {
  uint32_t v, lo, hi;
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("5s", 100, 3600000, &v), 0);
  CU_ASSERT_EQUAL(v, 5000);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("250ms", 100, 3600000, &v), 0);
  CU_ASSERT_EQUAL(v, 250);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("2m", 100, 3600000, &v), 0);
  CU_ASSERT_EQUAL(v, 120000);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("7", 100, 3600000, &v), 0);
  CU_ASSERT_EQUAL(v, 7000);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("2h", 100, 3600000, &v), -1);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("61m", 100, 3600000, &v), -1);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("-1s", 100, 3600000, &v), -1);
  CU_ASSERT_EQUAL(ipol_parse_duration_ms("99999999999", 100, 3600000, &v), -1);
  CU_ASSERT_EQUAL(ipol_parse_status_range("200", &lo, &hi), 0);
  CU_ASSERT_TRUE(lo == 200 && hi == 200);
  CU_ASSERT_EQUAL(ipol_parse_status_range("200-399", &lo, &hi), 0);
  CU_ASSERT_TRUE(lo == 200 && hi == 399);
  CU_ASSERT_EQUAL(ipol_parse_status_range("99", &lo, &hi), -1);
  CU_ASSERT_EQUAL(ipol_parse_status_range("200-600", &lo, &hi), -1);
  CU_ASSERT_EQUAL(ipol_parse_status_range("2xx", &lo, &hi), -1);
  CU_ASSERT_EQUAL(ipol_parse_status_range("-", &lo, &hi), -1);
}

/* ---- the incremental translator: a referenced Secret or ConfigMap changes ---- */

/* The documents given parsed as one file (BASE and the web Secret first
 * when base). */
static void parse_docs(struct manifest_set *set, char **text, int base, const char *const *docs) {
  size_t cap = 0;
  FILE *f = open_memstream(text, &cap);
  if (base) {
    fputs(BASE, f);
    char *web = secret("default", "web", "kubernetes.io/tls", "tls.crt", client_crt, "tls.key",
                       client_key, NULL);
    fputs(web, f);
    free(web);
  }
  for (; *docs; docs++) fputs(*docs, f);
  fclose(f);
  manifest_set_init(set);
  manifest_parse(set, *text, strlen(*text), base ? "ingresses.yaml" : "secrets.yaml");
}

/* What the source hands the translator: the Ingress file as parsed once
 * (the same documents every time, as a dir source keeps an unchanged
 * file's), then the secrets file of this step. */
static void combine(struct manifest_set *out, const struct manifest_set *fixed,
                    const struct manifest_set *step) {
  manifest_set_init(out);
  const struct manifest_set *both[2] = {fixed, step};
  for (int k = 0; k < 2; k++)
    for (size_t d = 0; d < both[k]->n_docs; d++)
      manifest_add(out, both[k]->docs[d].obj, both[k]->docs[d].location);
}

/* The upserted resource (type, name) of update u, unpacked, or NULL. */
static Edge__V1__Resource *upserted(const struct syncd_update *u, int type, const char *name) {
  for (size_t i = 0; i < u->n_upserted; i++)
    if (u->upserted[i].type == type && !strcmp(u->upserted[i].name, name))
      return edge__v1__resource__unpack(NULL, u->upserted[i].len, u->upserted[i].bytes);
  return NULL;
}

/* A new CA in the Secret (or labelled ConfigMap) an Ingress's
 * auth-tls-secret names, or new upstream client material in its
 * proxy-ssl-secret, recompiles that Ingress only: the update carries its
 * host's VirtualHost (new CA) and its Cluster, nothing of the other host. */
static void a_changed_ca_secret_recomputes_only_the_hosts_that_use_it(void) {
  char *ca1 = secret("default", "clients", "Opaque", "ca.crt", ca_crt, NULL);
  char *ca2 = secret("default", "clients", "Opaque", "ca.crt", other_crt, NULL);
  char *cm1 = configmap("bundle", ca_crt), *cm2 = configmap("bundle", other_crt);
  char *up1 = secret("default", "mtls", "Opaque", "ca.crt", ca_crt, NULL);
  char *up2 = secret("default", "mtls", "Opaque", "ca.crt", other_crt, NULL);
  char *a =
      ingress("a", "2024-01-01T00:00:00Z", "a.test", 1, "    edge.dev/auth-tls-secret: clients\n");
  char *b = ingress("b", "2024-01-01T00:00:00Z", "b.test", 1, "    x: y\n");
  char *c = ingress("c", "2024-01-01T00:00:00Z", "c.test", 1,
                    "    edge.dev/auth-tls-configmap: bundle\n");
  struct translator *t;
  CU_ASSERT_EQUAL_FATAL(translator_new(NULL, &t), 0);
  const struct syncd_update *u;
  struct manifest_set fixed, step[4], set[4];
  char *fixed_text, *text[4];
  const char *const ings[] = {a, b, c, NULL};
  parse_docs(&fixed, &fixed_text, 1, ings);
  const char *const docs0[] = {ca1, cm1, up1, NULL};
  parse_docs(&step[0], &text[0], 0, docs0);
  combine(&set[0], &fixed, &step[0]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[0], &u), 0);
  CU_ASSERT_EQUAL(u->report->n_rejected, 0);

  const char *const docs1[] = {ca2, cm1, up1, NULL}; /* the Secret's CA changes */
  parse_docs(&step[1], &text[1], 0, docs1);
  combine(&set[1], &fixed, &step[1]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[1], &u), 0);
  CU_ASSERT_EQUAL(u->n_upserted, 1);
  Edge__V1__Resource *r = upserted(u, VH, "vh:a.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->virtual_host->client_auth);
  CU_ASSERT_EQUAL(r->virtual_host->client_auth->ca_pem.len, strlen(other_crt));
  edge__v1__resource__free_unpacked(r, NULL);
  CU_ASSERT_PTR_NULL(upserted(u, VH, "vh:b.test"));

  const char *const docs2[] = {ca2, cm2, up1, NULL}; /* the ConfigMap's CA changes */
  parse_docs(&step[2], &text[2], 0, docs2);
  combine(&set[2], &fixed, &step[2]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[2], &u), 0);
  CU_ASSERT_EQUAL(u->n_upserted, 1);
  r = upserted(u, VH, "vh:c.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL(r->virtual_host->client_auth->ca_pem.len, strlen(other_crt));
  edge__v1__resource__free_unpacked(r, NULL);

  /* the Secret goes away: the Ingress that needs it is rejected with the reason */
  const char *const docs3[] = {cm2, up1, NULL};
  parse_docs(&step[3], &text[3], 0, docs3);
  combine(&set[3], &fixed, &step[3]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[3], &u), 0);
  CU_ASSERT_EQUAL(u->n_removed, 1);
  CU_ASSERT_STRING_EQUAL(u->removed[0].name, "vh:a.test");
  CU_ASSERT_EQUAL(u->report->n_rejected, 1);
  if (u->report->n_rejected)
    CU_ASSERT_PTR_NOT_NULL(strstr(u->report->rejected[0].reason, "clients not found"));
  translator_free(t);
  for (int i = 0; i < 4; i++)
    manifest_set_free(&set[i]), manifest_set_free(&step[i]), free(text[i]);
  manifest_set_free(&fixed), free(fixed_text);
  free(ca1), free(ca2), free(cm1), free(cm2), free(up1), free(up2), free(a), free(b), free(c);
}

/* Upstream TLS material: a new CA in proxy-ssl-secret re-emits the Cluster. */
static void a_changed_upstream_secret_recomputes_the_cluster(void) {
  char *up1 = secret("default", "mtls", "Opaque", "ca.crt", ca_crt, NULL);
  char *up2 = secret("default", "mtls", "Opaque", "ca.crt", other_crt, NULL);
  char *a = ingress("a", "2024-01-01T00:00:00Z", "a.test", 0,
                    "    edge.dev/backend-protocol: https\n    edge.dev/proxy-ssl-secret: mtls\n");
  struct translator *t;
  CU_ASSERT_EQUAL_FATAL(translator_new(NULL, &t), 0);
  const struct syncd_update *u;
  struct manifest_set fixed, step[2], set[2];
  char *fixed_text, *text[2];
  const char *const ings[] = {a, NULL}, *const docs0[] = {up1, NULL}, *const docs1[] = {up2, NULL};
  parse_docs(&fixed, &fixed_text, 1, ings);
  parse_docs(&step[0], &text[0], 0, docs0);
  combine(&set[0], &fixed, &step[0]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[0], &u), 0);
  parse_docs(&step[1], &text[1], 0, docs1);
  combine(&set[1], &fixed, &step[1]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[1], &u), 0);
  CU_ASSERT_EQUAL(u->n_upserted, 1);
  Edge__V1__Resource *r = upserted(u, CL, "default/shop:80");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r->cluster->tls);
  CU_ASSERT_EQUAL(r->cluster->tls->ca_pem.len, strlen(other_crt));
  edge__v1__resource__free_unpacked(r, NULL);
  translator_free(t);
  for (int i = 0; i < 2; i++)
    manifest_set_free(&set[i]), manifest_set_free(&step[i]), free(text[i]);
  manifest_set_free(&fixed), free(fixed_text);
  free(up1), free(up2), free(a);
}

/* An htpasswd Secret (basic auth) is a dependency too: a new user list
 * re-emits the host whose route uses it, nothing else. */
static void a_changed_htpasswd_secret_recomputes_its_host(void) {
  const char *h1 = "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n";
  const char *h2 =
      "alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n";
  char *s1 = secret("default", "htpw", "Opaque", "auth", h1, NULL);
  char *s2 = secret("default", "htpw", "Opaque", "auth", h2, NULL);
  char *a = ingress("a", "2024-01-01T00:00:00Z", "a.test", 0,
                    "    edge.dev/auth-type: basic\n    edge.dev/auth-secret: htpw\n");
  char *b = ingress("b", "2024-01-01T00:00:00Z", "b.test", 0, "    x: y\n");
  struct translator *t;
  CU_ASSERT_EQUAL_FATAL(translator_new(NULL, &t), 0);
  const struct syncd_update *u;
  struct manifest_set fixed, step[2], set[2];
  char *fixed_text, *text[2];
  const char *const ings[] = {a, b, NULL}, *const docs0[] = {s1, NULL}, *const docs1[] = {s2, NULL};
  parse_docs(&fixed, &fixed_text, 1, ings);
  parse_docs(&step[0], &text[0], 0, docs0);
  combine(&set[0], &fixed, &step[0]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[0], &u), 0);
  CU_ASSERT_EQUAL(u->report->n_rejected, 0);
  parse_docs(&step[1], &text[1], 0, docs1);
  combine(&set[1], &fixed, &step[1]);
  CU_ASSERT_EQUAL_FATAL(translator_update(t, &set[1], &u), 0);
  CU_ASSERT_EQUAL(u->n_upserted, 1);
  Edge__V1__Resource *r = upserted(u, VH, "vh:a.test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(r->virtual_host->n_routes, 1);
  const Edge__V1__BasicAuth *ba = r->virtual_host->routes[0]->options->basic_auth;
  CU_ASSERT_PTR_NOT_NULL_FATAL(ba);
  CU_ASSERT_EQUAL(ba->n_htpasswd, 2);
  edge__v1__resource__free_unpacked(r, NULL);
  translator_free(t);
  for (int i = 0; i < 2; i++)
    manifest_set_free(&set[i]), manifest_set_free(&step[i]), free(text[i]);
  manifest_set_free(&fixed), free(fixed_text);
  free(s1), free(s2), free(a), free(b);
}

static int setup(void) {
  char err[256];
  const char *ca_name = "clients-ca", *cl = "alice", *ot = "other";
  if (cert_generate(&ca_name, 1, 2, 1, NULL, NULL, &ca_crt, &ca_key, err, sizeof(err)) != 0 ||
      cert_generate(&cl, 1, 2, 0, ca_crt, ca_key, &client_crt, &client_key, err, sizeof(err)) ||
      cert_generate(&ot, 1, 2, 0, NULL, NULL, &other_crt, &other_key, err, sizeof(err)))
    return -1;
  return 0;
}

static int teardown(void) {
  free(ca_crt), free(ca_key), free(client_crt), free(client_key), free(other_crt);
  free(other_key);
  return 0;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("ingress_policy", setup, teardown);
  CU_add_test(s, "auth_tls_secret_makes_a_required_policy_with_the_ca",
              auth_tls_secret_makes_a_required_policy_with_the_ca);
  CU_add_test(s, "auth_tls_configmap_optional_depth_and_chain",
              auth_tls_configmap_optional_depth_and_chain);
  CU_add_test(s, "bad_values_reject_the_ingress_with_a_reason",
              bad_values_reject_the_ingress_with_a_reason);
  CU_add_test(s, "the_oldest_ingress_sets_a_hosts_policy_and_protects_every_path",
              the_oldest_ingress_sets_a_hosts_policy_and_protects_every_path);
  CU_add_test(s, "https_backend_gets_tls_with_the_service_name_and_client_certificate",
              https_backend_gets_tls_with_the_service_name_and_client_certificate);
  CU_add_test(s, "health_check_and_breakers_become_cluster_fields",
              health_check_and_breakers_become_cluster_fields);
  CU_add_test(s, "without_annotations_nothing_is_set", without_annotations_nothing_is_set);
  CU_add_test(s, "durations_and_status_ranges_parse_within_bounds",
              durations_and_status_ranges_parse_within_bounds);
  CU_add_test(s, "a_changed_ca_secret_recomputes_only_the_hosts_that_use_it",
              a_changed_ca_secret_recomputes_only_the_hosts_that_use_it);
  CU_add_test(s, "a_changed_upstream_secret_recomputes_the_cluster",
              a_changed_upstream_secret_recomputes_the_cluster);
  CU_add_test(s, "a_changed_htpasswd_secret_recomputes_its_host",
              a_changed_htpasswd_secret_recomputes_its_host);
}
