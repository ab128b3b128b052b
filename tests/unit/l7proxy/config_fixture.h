/*
 * Test fixture for the l7proxy configuration tests: builds edge.v1
 * resources in a per-test arena so tests read as a list of resources.
 * Everything allocated here is released by fx_reset().
 */
#ifndef EDGE_TESTS_L7PROXY_CONFIG_FIXTURE_H
#define EDGE_TESTS_L7PROXY_CONFIG_FIXTURE_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/resources.pb-c.h"

static void **fx_allocs;
static size_t fx_n, fx_cap;

static inline void *fx_alloc(size_t n) {
  if (fx_n == fx_cap) {
    fx_cap = fx_cap ? fx_cap * 2 : 256;
    fx_allocs = realloc(fx_allocs, fx_cap * sizeof(*fx_allocs));
  }
  void *p = calloc(1, n);
  fx_allocs[fx_n++] = p;
  return p;
}

static inline char *fx_str(const char *s) {
  char *p = fx_alloc(strlen(s) + 1);
  strcpy(p, s);
  return p;
}

static inline void fx_reset(void) {
  for (size_t i = 0; i < fx_n; i++) free(fx_allocs[i]);
  free(fx_allocs);
  fx_allocs = NULL;
  fx_n = fx_cap = 0;
}

/* A cluster with endpoints "ADDR:PORT" given as address, port pairs. */
static inline Edge__V1__Resource *fx_cluster(const char *name, size_t n_eps, ...) {
  Edge__V1__Cluster *c = fx_alloc(sizeof(*c));
  edge__v1__cluster__init(c);
  c->name = fx_str(name);
  c->n_endpoints = n_eps;
  c->endpoints = fx_alloc((n_eps ? n_eps : 1) * sizeof(*c->endpoints));
  va_list ap;
  va_start(ap, n_eps);
  for (size_t i = 0; i < n_eps; i++) {
    Edge__V1__Endpoint *e = fx_alloc(sizeof(*e));
    edge__v1__endpoint__init(e);
    e->address = fx_str(va_arg(ap, const char *));
    e->port = va_arg(ap, unsigned);
    e->ready = 1;
    c->endpoints[i] = e;
  }
  va_end(ap);
  Edge__V1__Resource *r = fx_alloc(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r->cluster = c;
  return r;
}

static inline Edge__V1__Route *fx_route(const char *path, int type, const char *cluster) {
  Edge__V1__Route *rt = fx_alloc(sizeof(*rt));
  edge__v1__route__init(rt);
  rt->path = fx_str(path);
  rt->path_type = type;
  rt->cluster = fx_str(cluster);
  return rt;
}

/* A virtual host with n routes (Edge__V1__Route *). */
static inline Edge__V1__Resource *fx_vhost(const char *name, const char *host, int match, size_t n,
                                           ...) {
  Edge__V1__VirtualHost *v = fx_alloc(sizeof(*v));
  edge__v1__virtual_host__init(v);
  v->name = fx_str(name);
  v->host = fx_str(host);
  v->host_match = match;
  v->n_routes = n;
  v->routes = fx_alloc((n ? n : 1) * sizeof(*v->routes));
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) v->routes[i] = va_arg(ap, Edge__V1__Route *);
  va_end(ap);
  Edge__V1__Resource *r = fx_alloc(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r->virtual_host = v;
  return r;
}

static inline Edge__V1__Resource *fx_default(const char *cluster) {
  Edge__V1__DefaultBackend *d = fx_alloc(sizeof(*d));
  edge__v1__default_backend__init(d);
  d->name = fx_str("default");
  d->cluster = fx_str(cluster);
  Edge__V1__Resource *r = fx_alloc(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND;
  r->default_backend = d;
  return r;
}

static inline Edge__V1__Resource *fx_cert(const char *name, const char *cert_pem,
                                          const char *key_pem, int is_default) {
  Edge__V1__Certificate *c = fx_alloc(sizeof(*c));
  edge__v1__certificate__init(c);
  c->name = fx_str(name);
  c->cert_pem.data = (uint8_t *)fx_str(cert_pem);
  c->cert_pem.len = strlen(cert_pem);
  c->key_pem.data = (uint8_t *)fx_str(key_pem);
  c->key_pem.len = strlen(key_pem);
  c->is_default = is_default;
  Edge__V1__Resource *r = fx_alloc(sizeof(*r));
  edge__v1__resource__init(r);
  r->kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r->certificate = c;
  return r;
}

static inline Edge__V1__ResourceName *fx_name(int type, const char *name) {
  Edge__V1__ResourceName *n = fx_alloc(sizeof(*n));
  edge__v1__resource_name__init(n);
  n->type = type;
  n->name = fx_str(name);
  return n;
}

#define FX_EX EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT
#define FX_PF EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX
#define FX_HOST EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT
#define FX_WILD EDGE__V1__HOST_MATCH__HOST_MATCH_WILDCARD
#define FX_ANY EDGE__V1__HOST_MATCH__HOST_MATCH_ANY

#endif
