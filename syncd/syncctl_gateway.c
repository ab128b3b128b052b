/*
 * syncctl_gateway — Gateway API statuses as text and JSON (see the
 * header). A condition prints as Type=True|False (Reason), followed by its
 * message when it is False or says something.
 */
#include "syncd/syncctl_gateway.h"

#include <string.h>

static void print_conditions(FILE *out, Edge__V1__GatewayCondition **cs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const Edge__V1__GatewayCondition *c = cs[i];
    fprintf(out, "  %s=%s (%s%s%s)", c->type, c->status ? "True" : "False", c->reason,
            c->message[0] ? ": " : "", c->message);
  }
}

void syncctl_gateway_text(FILE *out, const Edge__V1__StatusResponse *r) {
  if (!r->n_gateway_objects) return;
  fprintf(out, "\nGATEWAY API (%zu objects)\n", r->n_gateway_objects);
  for (size_t i = 0; i < r->n_gateway_objects; i++) {
    const Edge__V1__GatewayObjectStatus *o = r->gateway_objects[i];
    fprintf(out, "  %s %s%s%s", o->kind, o->namespace_, o->namespace_[0] ? "/" : "", o->name);
    print_conditions(out, o->conditions, o->n_conditions);
    if (o->n_addresses) {
      fprintf(out, "  addresses");
      for (size_t k = 0; k < o->n_addresses; k++) fprintf(out, " %s", o->addresses[k]);
    }
    fprintf(out, "\n");
    for (size_t k = 0; k < o->n_listeners; k++) {
      const Edge__V1__GatewayListenerStatus *l = o->listeners[k];
      fprintf(out, "    listener %s: attached routes %u", l->name, l->attached_routes);
      print_conditions(out, l->conditions, l->n_conditions);
      fprintf(out, "\n");
    }
    for (size_t k = 0; k < o->n_parents; k++) {
      const Edge__V1__GatewayRouteParentStatus *p = o->parents[k];
      fprintf(out, "    parent Gateway %s/%s%s%s", p->gateway_namespace, p->gateway_name,
              p->section_name[0] ? " section " : "", p->section_name);
      if (p->port) fprintf(out, " port %u", p->port);
      fprintf(out, ":");
      print_conditions(out, p->conditions, p->n_conditions);
      fprintf(out, "\n");
    }
  }
}

static json_t *conditions_json(Edge__V1__GatewayCondition **cs, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "type", cs[i]->type, "status",
                                       cs[i]->status ? "True" : "False", "reason", cs[i]->reason,
                                       "message", cs[i]->message));
  return a;
}

json_t *syncctl_gateway_json(const Edge__V1__StatusResponse *r) {
  json_t *all = json_array();
  for (size_t i = 0; i < r->n_gateway_objects; i++) {
    const Edge__V1__GatewayObjectStatus *o = r->gateway_objects[i];
    json_t *obj = json_pack("{s:s, s:s, s:s, s:I, s:o}", "kind", o->kind, "namespace",
                            o->namespace_, "name", o->name, "generation", (json_int_t)o->generation,
                            "conditions", conditions_json(o->conditions, o->n_conditions));
    if (!obj) continue;
    if (o->n_listeners || !strcmp(o->kind, "Gateway")) {
      json_t *ls = json_array(), *addrs = json_array();
      for (size_t k = 0; k < o->n_listeners; k++) {
        const Edge__V1__GatewayListenerStatus *l = o->listeners[k];
        json_t *kinds = json_array();
        for (size_t j = 0; j < l->n_supported_kinds; j++)
          json_array_append_new(kinds, json_string(l->supported_kinds[j]));
        json_array_append_new(
            ls, json_pack("{s:s, s:I, s:o, s:o}", "name", l->name, "attached_routes",
                          (json_int_t)l->attached_routes, "supported_kinds", kinds, "conditions",
                          conditions_json(l->conditions, l->n_conditions)));
      }
      for (size_t k = 0; k < o->n_addresses; k++)
        json_array_append_new(addrs, json_string(o->addresses[k]));
      json_object_set_new(obj, "listeners", ls);
      json_object_set_new(obj, "addresses", addrs);
    }
    if (o->n_parents) {
      json_t *ps = json_array();
      for (size_t k = 0; k < o->n_parents; k++) {
        const Edge__V1__GatewayRouteParentStatus *p = o->parents[k];
        json_array_append_new(
            ps, json_pack("{s:s, s:s, s:s, s:I, s:o}", "gateway_namespace", p->gateway_namespace,
                          "gateway_name", p->gateway_name, "section_name", p->section_name, "port",
                          (json_int_t)p->port, "conditions",
                          conditions_json(p->conditions, p->n_conditions)));
      }
      json_object_set_new(obj, "parents", ps);
    }
    json_array_append_new(all, obj);
  }
  return all;
}
