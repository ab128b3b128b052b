/*
 * syncd/explain — Status.Explain over the store (see explain.h).
 *
 * Every call unpacks the live resources: explain is an operator's
 * question, rare and cheap next to a push, and unpacking keeps the store
 * the single owner of the state (no second copy to go stale).
 */
#include "syncd/explain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/explain.h"
#include "common/rpc.h"
#include "edge/v1/resources.pb-c.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/authz.h"
#include "syncd/store.h"

static json_t *xp_object_json(const Edge__V1__RejectedObject *o, const char *why) {
  json_t *hosts = json_array();
  for (size_t i = 0; i < o->n_hosts; i++) json_array_append_new(hosts, json_string(o->hosts[i]));
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "kind", o->kind, "namespace",
                   o->namespace_, "name", o->name, "reason", o->reason, "location", o->location,
                   "hosts", hosts, "status", why);
}

/* 1 when pattern (an Ingress host, maybe "*.x") covers host. */
static int xp_host_covers(const char *pattern, const char *host) {
  if (strcasecmp(pattern, host) == 0) return 1;
  if (pattern[0] != '*' || pattern[1] != '.') return 0;
  const char *dot = strchr(host, '.');
  return dot && dot > host && strcasecmp(dot, pattern + 1) == 0;
}

static int xp_in_array(const json_t *a, const char *s) {
  size_t i;
  const json_t *v;
  json_array_foreach(a, i,
                     v) if (json_string_value(v) && !strcmp(json_string_value(v), s)) return 1;
  return 0;
}

/* Gateway API routes that are not (fully) served, with their conditions as written to their
 * status (syncd/gateway.h): when nothing matched, every route a parent does not accept; always
 * the routes with unresolved references (their share answers 500). */
static void xp_gateway_not_served(const Edge__V1__StatusResponse *m, int matched, json_t *out) {
  for (size_t i = 0; m && i < m->n_gateway_objects; i++) {
    const Edge__V1__GatewayObjectStatus *o = m->gateway_objects[i];
    for (size_t p = 0; p < o->n_parents; p++) {
      const Edge__V1__GatewayRouteParentStatus *ps = o->parents[p];
      for (size_t c = 0; c < ps->n_conditions; c++) {
        const Edge__V1__GatewayCondition *cd = ps->conditions[c];
        int show = !cd->status && ((!strcmp(cd->type, "Accepted") && !matched) ||
                                   !strcmp(cd->type, "ResolvedRefs"));
        if (!show || json_array_size(out) >= SYNCD_EXPLAIN_MAX_NOT_SERVED) continue;
        char why[800];
        snprintf(why, sizeof(why), "Gateway %s/%s: %s=False (%s)%s%s", ps->gateway_namespace,
                 ps->gateway_name, cd->type, cd->reason, cd->message[0] ? ": " : "", cd->message);
        json_array_append_new(
            out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:[], s:s}", "kind", o->kind, "namespace",
                           o->namespace_, "name", o->name, "reason", why, "location", "", "hosts",
                           "status", "gateway"));
      }
    }
  }
}

static void xp_not_served(const struct store *store, json_t *root) {
  json_t *out = json_array();
  const Edge__V1__StatusResponse *m = store_report(store); /* typed: nothing to unpack */
  const char *host = json_string_value(json_object_get(json_object_get(root, "request"), "host"));
  int matched = json_is_true(json_object_get(root, "matched"));
  const json_t *ings = json_object_get(json_object_get(root, "host_entry"), "ingresses");
  for (size_t i = 0; m && i < m->n_ignored; i++) {
    const Edge__V1__RejectedObject *o = m->ignored[i];
    int hit = 0;
    for (size_t k = 0; k < o->n_hosts && !hit; k++) hit = host && xp_host_covers(o->hosts[k], host);
    if ((hit || (o->n_hosts == 0 && !matched)) &&
        json_array_size(out) < SYNCD_EXPLAIN_MAX_NOT_SERVED)
      json_array_append_new(out, xp_object_json(o, "ignored"));
  }
  for (size_t i = 0; m && i < m->n_rejected; i++) {
    const Edge__V1__RejectedObject *o = m->rejected[i];
    char id[600];
    snprintf(id, sizeof(id), "%s/%s", o->namespace_, o->name);
    int hit = (ings && xp_in_array(ings, id)) || (host && host[0] && strstr(o->reason, host)) ||
              (!matched && !strcmp(o->kind, "Ingress"));
    if (hit && json_array_size(out) < SYNCD_EXPLAIN_MAX_NOT_SERVED)
      json_array_append_new(out, xp_object_json(o, "rejected"));
  }
  xp_gateway_not_served(m, matched, out);
  json_object_set_new(root, "not_served", out);
}

int syncd_explain_json(const struct store *store, const char *url, const char *sni,
                       const char *const *headers, size_t n_headers, unsigned https_port,
                       const char *method, char **json, char *err, size_t errlen) {
  *json = NULL;
  size_t n;
  struct store_entry *const *e = store_entries(store, &n);
  Edge__V1__Resource **res = calloc(n + 1, sizeof(*res));
  if (!res) return EXPLAIN_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (e[i]->removed) continue;
    Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, e[i]->len, e[i]->bytes);
    if (r) res[k++] = r;
  }
  struct explain_request req = {.url = url,
                                .sni = sni,
                                .headers = headers,
                                .n_headers = n_headers,
                                .https_port = https_port,
                                .method = method};
  json_t *root = NULL;
  int rc = explain_build(res, k, &req, &root, err, errlen);
  for (size_t i = 0; i < k; i++) edge__v1__resource__free_unpacked(res[i], NULL);
  free(res);
  if (rc != 0) return rc;
  json_object_set_new(root, "version", json_integer((json_int_t)store_version(store)));
  xp_not_served(store, root);
  *json = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return *json ? 0 : EXPLAIN_ERR_NOMEM;
}

struct xp_ctx {
  struct store *store;
  struct authz *authz;
};

static void xp_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  const struct xp_ctx *x = ud;
  struct store *store = x->store;
  char why[256];
  if (authz_check(x->authz, call, "Explain", AUTHZ_SYNCCTL, NULL, why, sizeof(why)) != 0) {
    rpc_call_finish(call, RPC_STATUS_PERMISSION_DENIED, why);
    return;
  }
  Edge__V1__ExplainRequest *req = edge__v1__explain_request__unpack(NULL, len, data);
  if (!req) {
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT, "unparseable ExplainRequest");
    return;
  }
  char err[512] = "";
  char *json = NULL;
  int rc =
      syncd_explain_json(store, req->url, req->sni, (const char *const *)req->headers,
                         req->n_headers, req->https_port, req->method, &json, err, sizeof(err));
  edge__v1__explain_request__free_unpacked(req, NULL);
  if (rc != 0) {
    rpc_call_finish(call,
                    rc == EXPLAIN_ERR_INVALID ? RPC_STATUS_INVALID_ARGUMENT : RPC_STATUS_INTERNAL,
                    err[0] ? err : "explain failed");
    return;
  }
  Edge__V1__ExplainResponse resp = EDGE__V1__EXPLAIN_RESPONSE__INIT;
  resp.json = json;
  resp.version = store_version(store);
  size_t olen = edge__v1__explain_response__get_packed_size(&resp);
  uint8_t *out = malloc(olen ? olen : 1);
  if (!out) {
    free(json);
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  edge__v1__explain_response__pack(&resp, out);
  free(json);
  rpc_call_send(call, out, olen);
  free(out);
  rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

int syncd_explain_register(struct store *store, struct authz *authz, struct rpc_server *srv) {
  static const struct rpc_call_handler h = {.on_message = xp_on_message};
  static struct xp_ctx ctx; /* one server per process */
  ctx.store = store;
  ctx.authz = authz;
  return rpc_server_add_method(srv, SYNCD_EXPLAIN_METHOD, RPC_UNARY, &h, &ctx);
}
