/*
 * gateway_k8s — edge.v1 GatewayObjectStatus → Kubernetes status JSON (see
 * gateway_k8s.h). The comparison with the object as seen ignores
 * lastTransitionTime only: anything else that differs is written.
 */
#include "syncd/gateway_k8s.h"

#include <stdio.h>
#include <string.h>

#include "syncd/gateway.h"

/* The condition of type `type` in a Kubernetes conditions array, or NULL. */
static json_t *find_condition(json_t *conds, const char *type) {
  size_t i;
  json_t *c;
  json_array_foreach(conds, i, c) {
    const char *t = json_string_value(json_object_get(c, "type"));
    if (t && !strcmp(t, type)) return c;
  }
  return NULL;
}

static json_t *conditions(Edge__V1__GatewayCondition **cs, size_t n, json_t *seen, int64_t gen,
                          const char *now) {
  json_t *out = json_array();
  for (size_t i = 0; out && i < n; i++) {
    const char *status = cs[i]->status ? "True" : "False";
    const char *when = now;
    json_t *old = find_condition(seen, cs[i]->type);
    const char *ostatus = json_string_value(json_object_get(old, "status"));
    const char *oreason = json_string_value(json_object_get(old, "reason"));
    const char *otime = json_string_value(json_object_get(old, "lastTransitionTime"));
    if (ostatus && oreason && otime && !strcmp(ostatus, status) && !strcmp(oreason, cs[i]->reason))
      when = otime;
    json_array_append_new(
        out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", cs[i]->type, "status", status,
                       "reason", cs[i]->reason, "message", cs[i]->message, "observedGeneration",
                       (json_int_t)gen, "lastTransitionTime", when));
  }
  return out;
}

static int is_ip(const char *s) {
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == ':' || (*s >= 'a' && *s <= 'f') ||
          (*s >= 'A' && *s <= 'F')))
      return 0;
  return 1;
}

static json_t *listeners(const Edge__V1__GatewayObjectStatus *st, json_t *seen, const char *now) {
  json_t *out = json_array();
  for (size_t i = 0; out && i < st->n_listeners; i++) {
    const Edge__V1__GatewayListenerStatus *l = st->listeners[i];
    json_t *old = NULL, *e;
    size_t k;
    json_array_foreach(seen, k, e) {
      const char *n = json_string_value(json_object_get(e, "name"));
      if (n && !strcmp(n, l->name)) old = e;
    }
    json_t *kinds = json_array();
    for (size_t j = 0; j < l->n_supported_kinds; j++)
      json_array_append_new(
          kinds, json_pack("{s:s, s:s}", "group", GATEWAY_GROUP, "kind", l->supported_kinds[j]));
    json_array_append_new(
        out, json_pack("{s:s, s:o, s:I, s:o}", "name", l->name, "supportedKinds", kinds,
                       "attachedRoutes", (json_int_t)l->attached_routes, "conditions",
                       conditions(l->conditions, l->n_conditions,
                                  json_object_get(old, "conditions"), st->generation, now)));
  }
  return out;
}

static json_t *parent_ref(const Edge__V1__GatewayRouteParentStatus *p) {
  json_t *ref = json_pack("{s:s, s:s, s:s, s:s}", "group", GATEWAY_GROUP, "kind", "Gateway",
                          "namespace", p->gateway_namespace, "name", p->gateway_name);
  if (ref && p->section_name[0])
    json_object_set_new(ref, "sectionName", json_string(p->section_name));
  if (ref && p->port) json_object_set_new(ref, "port", json_integer(p->port));
  return ref;
}

static int same_ref(json_t *a, json_t *b) {
  const char *keys[] = {"namespace", "name", "sectionName"};
  for (int i = 0; i < 3; i++) {
    const char *x = json_string_value(json_object_get(a, keys[i]));
    const char *y = json_string_value(json_object_get(b, keys[i]));
    if (strcmp(x ? x : "", y ? y : "") != 0) return 0;
  }
  return json_integer_value(json_object_get(a, "port")) ==
         json_integer_value(json_object_get(b, "port"));
}

static json_t *parents(const Edge__V1__GatewayObjectStatus *st, json_t *seen, const char *now) {
  json_t *out = json_array(), *e;
  size_t k;
  /* Entries of other controllers stay as they are. */
  json_array_foreach(seen, k, e) {
    const char *ctl = json_string_value(json_object_get(e, "controllerName"));
    if (!ctl || strcmp(ctl, GATEWAY_CONTROLLER) != 0) json_array_append(out, e);
  }
  for (size_t i = 0; out && i < st->n_parents; i++) {
    const Edge__V1__GatewayRouteParentStatus *p = st->parents[i];
    json_t *ref = parent_ref(p), *old = NULL;
    json_array_foreach(seen, k, e) {
      const char *ctl = json_string_value(json_object_get(e, "controllerName"));
      if (ctl && !strcmp(ctl, GATEWAY_CONTROLLER) && same_ref(json_object_get(e, "parentRef"), ref))
        old = e;
    }
    json_array_append_new(
        out, json_pack("{s:o, s:s, s:o}", "parentRef", ref, "controllerName", GATEWAY_CONTROLLER,
                       "conditions",
                       conditions(p->conditions, p->n_conditions,
                                  json_object_get(old, "conditions"), st->generation, now)));
  }
  return out;
}

json_t *gateway_k8s_status_body(json_t *obj, const Edge__V1__GatewayObjectStatus *st,
                                const char *now) {
  json_t *seen = json_object_get(obj, "status");
  json_t *status = json_object();
  if (!status) return NULL;
  if (!strcmp(st->kind, "GatewayClass") || !strcmp(st->kind, "Gateway"))
    json_object_set_new(status, "conditions",
                        conditions(st->conditions, st->n_conditions,
                                   json_object_get(seen, "conditions"), st->generation, now));
  if (!strcmp(st->kind, "Gateway")) {
    json_t *addrs = json_array();
    for (size_t i = 0; i < st->n_addresses; i++)
      json_array_append_new(
          addrs, json_pack("{s:s, s:s}", "type", is_ip(st->addresses[i]) ? "IPAddress" : "Hostname",
                           "value", st->addresses[i]));
    json_object_set_new(status, "addresses", addrs);
    json_object_set_new(status, "listeners",
                        listeners(st, json_object_get(seen, "listeners"), now));
  } else if (strcmp(st->kind, "GatewayClass") != 0) {
    json_object_set_new(status, "parents", parents(st, json_object_get(seen, "parents"), now));
  }
  /* Nothing to write when the object already says all of it (the times were kept above). */
  int same = 1;
  const char *key;
  json_t *v;
  json_object_foreach(status, key, v) {
    if (!json_equal(v, json_object_get(seen, key))) same = 0;
  }
  if (same) {
    json_decref(status);
    return NULL;
  }
  return json_pack("{s:o}", "status", status);
}

int gateway_k8s_status_path(const Edge__V1__GatewayObjectStatus *st, const char *api_version,
                            char *buf, size_t len) {
  const char *plural = !strcmp(st->kind, "GatewayClass") ? "gatewayclasses"
                       : !strcmp(st->kind, "Gateway")    ? "gateways"
                       : !strcmp(st->kind, "HTTPRoute")  ? "httproutes"
                       : !strcmp(st->kind, "GRPCRoute")  ? "grpcroutes"
                       : !strcmp(st->kind, "TLSRoute")   ? "tlsroutes"
                                                         : NULL;
  if (!plural) return -1;
  const char *version = "v1";
  size_t g = strlen(GATEWAY_GROUP);
  if (api_version && !strncmp(api_version, GATEWAY_GROUP "/", g + 1)) version = api_version + g + 1;
  int n = st->namespace_[0] ? snprintf(buf, len, "/apis/%s/%s/namespaces/%s/%s/%s/status",
                                       GATEWAY_GROUP, version, st->namespace_, plural, st->name)
                            : snprintf(buf, len, "/apis/%s/%s/%s/%s/status", GATEWAY_GROUP, version,
                                       plural, st->name);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}
