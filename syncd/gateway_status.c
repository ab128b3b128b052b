/*
 * gateway_status — the conditions gateway.c and gateway_rules.c decided,
 * as edge.v1 GatewayObjectStatus messages packed into d->gateway_status
 * (a StatusResponse with only gateway_objects). syncd keeps it as part of
 * its Status meta (syncctl status / explain print it) and the kubernetes
 * source writes it back to each object (syncd/gateway_k8s.c).
 *
 * Objects appear in a fixed order (GatewayClasses, Gateways, then routes,
 * each sorted by namespace/name) so the same input packs to the same
 * bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/status.pb-c.h"
#include "syncd/gateway_internal.h"

static Edge__V1__GatewayCondition **conds_out(struct gctx *c, const struct gconds *cs) {
  Edge__V1__GatewayCondition *v = pool_alloc(&c->pool, (cs->n + 1) * sizeof(*v));
  Edge__V1__GatewayCondition **p = pool_alloc(&c->pool, (cs->n + 1) * sizeof(*p));
  if (!v || !p) return NULL;
  for (size_t i = 0; i < cs->n; i++) {
    edge__v1__gateway_condition__init(&v[i]);
    v[i].type = (char *)cs->c[i].type;
    v[i].status = cs->c[i].status;
    v[i].reason = (char *)cs->c[i].reason;
    v[i].message = (char *)cs->c[i].message;
    p[i] = &v[i];
  }
  return p;
}

static Edge__V1__GatewayObjectStatus *obj(struct gctx *c, const char *kind, const struct gobj *k) {
  Edge__V1__GatewayObjectStatus *o = pool_alloc(&c->pool, sizeof(*o));
  if (!o) return NULL;
  edge__v1__gateway_object_status__init(o);
  o->kind = (char *)kind;
  o->namespace_ = (char *)k->ns;
  o->name = (char *)k->name;
  o->generation = k->generation;
  return o;
}

static Edge__V1__GatewayObjectStatus *class_status(struct gctx *c, const struct gobj *k) {
  Edge__V1__GatewayObjectStatus *o = obj(c, "GatewayClass", k);
  struct gconds cs = {0};
  if (!o) return NULL;
  if (json_object_get(json_object_get(k->o, "spec"), "parametersRef"))
    gconds_set(&cs, "Accepted", 0, "InvalidParameters",
               "edge's GatewayClass takes no parameters (parametersRef must be empty)");
  else
    gconds_set(&cs, "Accepted", 1, "Accepted", "");
  gconds_set(&cs, "SupportedVersion", 1, "SupportedVersion", "");
  o->conditions = conds_out(c, &cs);
  o->n_conditions = cs.n;
  return o;
}

static Edge__V1__GatewayObjectStatus *gateway_status(struct gctx *c, const struct ggateway *g) {
  Edge__V1__GatewayObjectStatus *o = obj(c, "Gateway", &g->k);
  if (!o) return NULL;
  o->conditions = conds_out(c, &g->conds);
  o->n_conditions = g->conds.n;
  Edge__V1__GatewayListenerStatus *ls = pool_alloc(&c->pool, (g->n_ls + 1) * sizeof(*ls));
  Edge__V1__GatewayListenerStatus **lp = pool_alloc(&c->pool, (g->n_ls + 1) * sizeof(*lp));
  if (!ls || !lp) return NULL;
  for (size_t i = 0; i < g->n_ls; i++) {
    const struct glistener *l = &g->ls[i];
    edge__v1__gateway_listener_status__init(&ls[i]);
    ls[i].name = (char *)l->name;
    ls[i].attached_routes = l->attached;
    ls[i].conditions = conds_out(c, &l->conds);
    ls[i].n_conditions = l->conds.n;
    char **kinds = pool_alloc(&c->pool, 4 * sizeof(*kinds));
    if (!kinds) return NULL;
    static const unsigned order[] = {ROUTE_HTTP, ROUTE_GRPC, ROUTE_TLS};
    static const char *const names[] = {"HTTPRoute", "GRPCRoute", "TLSRoute"};
    for (int k = 0; k < 3; k++)
      if (l->kinds & order[k]) kinds[ls[i].n_supported_kinds++] = (char *)names[k];
    ls[i].supported_kinds = kinds;
    lp[i] = &ls[i];
  }
  o->listeners = lp;
  o->n_listeners = g->n_ls;
  const char *addr = c->opts ? c->opts->address : NULL;
  if (addr && *addr) {
    o->addresses = pool_alloc(&c->pool, sizeof(char *));
    if (!o->addresses) return NULL;
    o->addresses[0] = (char *)addr;
    o->n_addresses = 1;
  }
  return o;
}

static Edge__V1__GatewayObjectStatus *route_status(struct gctx *c, struct groute *r) {
  Edge__V1__GatewayObjectStatus *o = obj(c, r->kind_str, &r->k);
  if (!o) return NULL;
  Edge__V1__GatewayRouteParentStatus *ps = pool_alloc(&c->pool, r->n_parents * sizeof(*ps));
  Edge__V1__GatewayRouteParentStatus **pp = pool_alloc(&c->pool, r->n_parents * sizeof(*pp));
  if (!ps || !pp) return NULL;
  for (size_t i = 0; i < r->n_parents; i++) {
    struct gparent *p = &r->parents[i];
    const struct gcond *acc = gconds_get(&p->conds, "Accepted");
    if (acc && acc->status && r->value_reason)
      gconds_set(&p->conds, "Accepted", 0, r->value_reason, r->value_message);
    else if (acc && acc->status && r->host_lost)
      gconds_set(
          &p->conds, "Accepted", 1, "Accepted",
          pool_printf(&c->pool, "hosts served by an older Ingress instead: %s", r->host_lost));
    if (r->refs_reason)
      gconds_set(&p->conds, "ResolvedRefs", 0, r->refs_reason, r->refs_message);
    else
      gconds_set(&p->conds, "ResolvedRefs", 1, "ResolvedRefs", "");
    edge__v1__gateway_route_parent_status__init(&ps[i]);
    ps[i].gateway_namespace = (char *)p->gw->k.ns;
    ps[i].gateway_name = (char *)p->gw->k.name;
    ps[i].section_name = (char *)(p->section ? p->section : "");
    ps[i].port = p->port;
    ps[i].conditions = conds_out(c, &p->conds);
    ps[i].n_conditions = p->conds.n;
    pp[i] = &ps[i];
  }
  o->parents = pp;
  o->n_parents = r->n_parents;
  return o;
}

static int route_key_cmp(const void *a, const void *b) {
  const Edge__V1__GatewayObjectStatus *x = *(Edge__V1__GatewayObjectStatus *const *)a;
  const Edge__V1__GatewayObjectStatus *y = *(Edge__V1__GatewayObjectStatus *const *)b;
  int r = strcmp(x->kind, y->kind);
  if (r) return r;
  r = strcmp(x->namespace_, y->namespace_);
  return r ? r : strcmp(x->name, y->name);
}

int gstatus_pack(struct gctx *c, struct syncd_desired *d) {
  size_t n = c->classes.n + c->gateways.n + c->routes.n, k = 0;
  Edge__V1__GatewayObjectStatus **objs = pool_alloc(&c->pool, (n + 1) * sizeof(*objs));
  if (!objs) return -ENOMEM;
  for (size_t i = 0; i < c->classes.n; i++) objs[k++] = class_status(c, &c->classes.v[i]);
  for (size_t i = 0; i < c->gateways.n; i++) objs[k++] = gateway_status(c, &c->gateways.v[i]);
  size_t routes0 = k;
  for (size_t i = 0; i < c->routes.n; i++)
    if (c->routes.v[i].n_parents) objs[k++] = route_status(c, &c->routes.v[i]);
  for (size_t i = 0; i < k; i++)
    if (!objs[i]) return -ENOMEM;
  gsort(objs + routes0, k - routes0, sizeof(*objs), route_key_cmp);
  free(d->gateway_status);
  d->gateway_status = NULL;
  d->gateway_status_len = 0;
  if (k == 0) return 0;
  Edge__V1__StatusResponse resp;
  edge__v1__status_response__init(&resp);
  resp.gateway_objects = objs;
  resp.n_gateway_objects = k;
  size_t len = edge__v1__status_response__get_packed_size(&resp);
  d->gateway_status = malloc(len ? len : 1);
  if (!d->gateway_status) return -ENOMEM;
  edge__v1__status_response__pack(&resp, d->gateway_status);
  d->gateway_status_len = len;
  return 0;
}
