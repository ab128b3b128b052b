/*
 * l7_apply_bench — what one push costs l7proxy's snapshot builder (a
 * command, not a test): HOSTS virtual hosts, each with its cluster and its
 * certificate (one generated key pair under HOSTS names: the TLS store is
 * lazy, so nothing is decoded), then CHANGES one-route deltas and CHANGES
 * one-certificate deltas, timed per apply (CPU of this thread).
 *
 *   l7_apply_bench [--hosts=10000] [--changes=200]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/flags.h"
#include "l7proxy/snapshot.h"
#include "l7proxy/tls.h"

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *cert_pem, *key_pem;

static Edge__V1__Resource *cluster(int i) {
  Edge__V1__Resource *r = calloc(1, sizeof(*r));
  edge__v1__resource__init(r);
  Edge__V1__Cluster *c = calloc(1, sizeof(*c));
  edge__v1__cluster__init(c);
  Edge__V1__Endpoint *e = calloc(1, sizeof(*e));
  edge__v1__endpoint__init(e);
  e->address = "10.0.0.1";
  e->port = 8080;
  e->ready = 1;
  c->endpoints = calloc(1, sizeof(*c->endpoints));
  c->endpoints[0] = e;
  c->n_endpoints = 1;
  if (asprintf(&c->name, "bench/svc%05d:80", i) < 0) abort();
  r->kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r->cluster = c;
  return r;
}

static Edge__V1__Resource *vhost(int i, const char *path) {
  Edge__V1__Resource *r = calloc(1, sizeof(*r));
  edge__v1__resource__init(r);
  Edge__V1__VirtualHost *v = calloc(1, sizeof(*v));
  edge__v1__virtual_host__init(v);
  Edge__V1__Route *rt = calloc(1, sizeof(*rt));
  edge__v1__route__init(rt);
  rt->path = (char *)path;
  rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  if (asprintf(&rt->cluster, "bench/svc%05d:80", i) < 0 ||
      asprintf(&v->name, "vh:h%05d.bench.test", i) < 0 ||
      asprintf(&v->host, "h%05d.bench.test", i) < 0 ||
      asprintf(&v->certificate, "bench/h%05d-tls", i) < 0)
    abort();
  v->host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  v->routes = calloc(1, sizeof(*v->routes));
  v->routes[0] = rt;
  v->n_routes = 1;
  r->kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r->virtual_host = v;
  return r;
}

static Edge__V1__Resource *certificate(int i) {
  Edge__V1__Resource *r = calloc(1, sizeof(*r));
  edge__v1__resource__init(r);
  Edge__V1__Certificate *c = calloc(1, sizeof(*c));
  edge__v1__certificate__init(c);
  if (asprintf(&c->name, "bench/h%05d-tls", i) < 0) abort();
  c->sni_names = calloc(1, sizeof(char *));
  if (asprintf(&c->sni_names[0], "h%05d.bench.test", i) < 0) abort();
  c->n_sni_names = 1;
  c->cert_pem.data = (uint8_t *)cert_pem;
  c->cert_pem.len = strlen(cert_pem);
  c->key_pem.data = (uint8_t *)key_pem;
  c->key_pem.len = strlen(key_pem);
  c->not_after = 2000000000;
  r->kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r->certificate = c;
  return r;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *ms, long n) {
  qsort(ms, (size_t)n, sizeof(*ms), cmp_d);
  double sum = 0;
  for (long i = 0; i < n; i++) sum += ms[i];
  printf("%s: mean %.3f ms, p50 %.3f ms, p99 %.3f ms CPU per apply\n", what, sum / n,
         ms[(n - 1) / 2], ms[(n * 99 + 99) / 100 - 1]);
}

int main(int argc, char **argv) {
  long hosts = 10000, changes = 200;
  const struct flag_def defs[] = {
      {"hosts", FLAG_INT, &hosts, "virtual hosts (each with a cluster and a certificate)", "N", 1,
       1000000},
      {"changes", FLAG_INT, &changes, "deltas of each kind to time", "N", 1, 100000},
  };
  char err[256];
  int rc = flags_parse(defs, 2, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "l7_apply_bench", "[flags]", "Times l7proxy snapshot applies.", defs, 2);
    return 0;
  }
  if (rc != FLAGS_OK) {
    fprintf(stderr, "l7_apply_bench: %s\n", err);
    return 2;
  }
  const char *names[] = {"bench.test"};
  if (cert_generate(names, 1, 30, 0, NULL, NULL, &cert_pem, &key_pem, err, sizeof(err)) != 0) {
    fprintf(stderr, "l7_apply_bench: %s\n", err);
    return 1;
  }
  size_t n = (size_t)hosts * 3;
  Edge__V1__Resource **res = calloc(n, sizeof(*res));
  for (long i = 0; i < hosts; i++) {
    res[i * 3] = cluster((int)i);
    res[i * 3 + 1] = vhost((int)i, "/");
    res[i * 3 + 2] = certificate((int)i);
  }
  struct tls_options tls = {0};
  struct l7_builder *b;
  if (l7_builder_new(&tls, &b) != 0) return 1;
  struct l7_snapshot *s;
  double t0 = cpu_ms();
  if (l7_builder_apply(b, 1, 1, res, n, NULL, 0, &s, err, sizeof(err)) != 0) {
    fprintf(stderr, "l7_apply_bench: full: %s\n", err);
    return 1;
  }
  printf("full state of %ld hosts (%zu resources): %.1f ms CPU\n", hosts, n, cpu_ms() - t0);
  l7_snapshot_unref(s);
  double *ms = calloc((size_t)changes, sizeof(*ms));
  uint64_t v = 1;
  for (long k = 0; k < changes; k++) {
    char path[32];
    snprintf(path, sizeof(path), "/v%ld", k);
    Edge__V1__Resource *up[] = {vhost((int)(k % hosts), path)};
    t0 = cpu_ms();
    if (l7_builder_apply(b, ++v, 0, up, 1, NULL, 0, &s, err, sizeof(err)) != 0) return 1;
    ms[k] = cpu_ms() - t0;
    l7_snapshot_unref(s);
  }
  report("one-route delta", ms, changes);
  for (long k = 0; k < changes; k++) {
    Edge__V1__Resource *up[] = {certificate((int)(k % hosts))};
    up[0]->certificate->not_after += k + 1; /* another resource, same name */
    t0 = cpu_ms();
    if (l7_builder_apply(b, ++v, 0, up, 1, NULL, 0, &s, err, sizeof(err)) != 0) return 1;
    ms[k] = cpu_ms() - t0;
    l7_snapshot_unref(s);
  }
  report("one-certificate delta", ms, changes);
  l7_builder_free(b);
  return 0; /* the resources are left to the exit */
}
