/*
 * cluster_emit — see cluster_emit.h.
 */
#include "syncd/cluster_emit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"
#include "edge/v1/resources.pb-c.h"

static const char *str(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static int endpoint_cmp(const void *a, const void *b) {
  const Edge__V1__Endpoint *x = a, *y = b;
  int r = strcmp(x->address, y->address);
  return r ? r : (x->port < y->port ? -1 : x->port > y->port);
}

/* As endpoint_cmp, a ready copy before a not-ready one (so the de-duplication keeps the ready
 * one), then zone and target, so the copy kept never depends on the order slices were read in. */
static int endpoint_sort_cmp(const void *a, const void *b) {
  int r = endpoint_cmp(a, b);
  if (r) return r;
  const Edge__V1__Endpoint *x = a, *y = b;
  if (x->ready != y->ready) return (int)y->ready - (int)x->ready;
  r = strcmp(x->zone, y->zone);
  return r ? r : strcmp(x->target, y->target);
}

struct eps {
  Edge__V1__Endpoint *v;
  size_t n, cap;
};

static int push(struct eps *e, const char *addr, json_int_t port, int ready, const char *zone,
                const char *target) {
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    Edge__V1__Endpoint *nv = realloc(e->v, cap * sizeof(*nv));
    if (!nv) return -ENOMEM;
    e->v = nv;
    e->cap = cap;
  }
  Edge__V1__Endpoint *ep = &e->v[e->n++];
  edge__v1__endpoint__init(ep);
  ep->address = (char *)addr;
  ep->port = (uint32_t)port;
  ep->weight = 1;
  ep->ready = ready;
  ep->zone = (char *)(zone ? zone : "");
  ep->target = (char *)(target ? target : "");
  return 0;
}

/* The endpoints of one slice for the port named port_name. */
static int slice_endpoints(json_t *slice, const char *port_name, struct eps *out) {
  json_t *p, *e, *a;
  size_t i, ai;
  json_int_t port = -1;
  json_array_foreach(json_object_get(slice, "ports"), i, p) {
    const char *n = str(p, "name");
    if (!strcmp(n ? n : "", port_name)) {
      port = json_integer_value(json_object_get(p, "port"));
      break;
    }
  }
  if (port < 1 || port > 65535) return 0;
  json_array_foreach(json_object_get(slice, "endpoints"), i, e) {
    int ready = !json_is_false(json_object_get(json_object_get(e, "conditions"), "ready"));
    json_array_foreach(json_object_get(e, "addresses"), ai, a) {
      const char *addr = json_string_value(a);
      if (addr && *addr &&
          push(out, addr, port, ready, str(e, "zone"),
               str(json_object_get(e, "targetRef"), "name")) != 0)
        return -ENOMEM;
    }
  }
  return 0;
}

int cluster_emit(const struct cluster_spec *c, json_t *const *slices, size_t n_slices,
                 uint8_t **bytes, size_t *len, char *why, size_t whylen) {
  *bytes = NULL;
  *len = 0;
  struct eps e = {0};
  const char *port_name = str(c->svc_port, "name");
  int rc = 0;
  for (size_t s = 0; rc == 0 && s < n_slices; s++)
    rc = slice_endpoints(slices[s], port_name ? port_name : "", &e);
  const char *ip = str(json_object_get(c->svc, "spec"), "clusterIP");
  if (rc == 0 && !n_slices && ip && *ip && strcmp(ip, "None") != 0)
    rc = push(&e, ip, json_integer_value(json_object_get(c->svc_port, "port")), 1, NULL, NULL);
  Edge__V1__Endpoint **ptrs = rc == 0 ? calloc(e.n + 1, sizeof(*ptrs)) : NULL;
  if (!ptrs) {
    free(e.v);
    return -ENOMEM;
  }
  if (e.n > 1) qsort(e.v, e.n, sizeof(*e.v), endpoint_sort_cmp);
  size_t n = 0;
  for (size_t i = 0; i < e.n; i++)
    if (n == 0 || endpoint_cmp(ptrs[n - 1], &e.v[i]) != 0) ptrs[n++] = &e.v[i];
  Edge__V1__Cluster cl;
  edge__v1__cluster__init(&cl);
  cl.name = (char *)c->name;
  cl.n_endpoints = n;
  cl.endpoints = ptrs;
  cl.lb_policy = c->lb;
  cl.protocol = c->protocol;
  cl.connect_timeout_ms = c->connect_timeout_ms;
  Edge__V1__SourceRef src;
  edge__v1__source_ref__init(&src);
  src.kind = "Service";
  src.namespace_ = (char *)c->svc_ns;
  src.name = (char *)c->svc_name;
  src.rule_index = src.path_index = -1;
  cl.source = &src;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r.cluster = &cl;
  if (c->decorate && c->decorate(c->decorate_arg, &cl) != 0) {
    free(ptrs);
    free(e.v);
    return -ENOMEM;
  }
  rc = validate_resource(&r, why, whylen) != 0 ? -EINVAL : 0;
  if (rc == 0) {
    *len = edge__v1__resource__get_packed_size(&r);
    *bytes = malloc(*len ? *len : 1);
    if (*bytes)
      edge__v1__resource__pack(&r, *bytes);
    else
      rc = -ENOMEM;
  }
  free(ptrs);
  free(e.v);
  return rc;
}
