/*
 * gateway_rules — one attached route's rules → edge.v1 Route messages.
 *
 * For HTTPRoute and GRPCRoute, each (rule, match) becomes one Route (a
 * rule without matches matches every request: PathPrefix "/"), shared by
 * every (listener, host) the route attached to. GRPCRoute method matches
 * become paths: service+method Exact "/svc/Method", service alone Prefix
 * "/svc/", method alone the expression "/[^/]+/Method" (RegularExpression
 * matches are anchored the same way). Filters: RequestHeaderModifier,
 * ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror
 * (HTTPRoute); the header modifiers and RequestMirror (GRPCRoute); any
 * other filter makes the route Accepted=False UnsupportedValue. Backends:
 * core Services only; one that does not resolve keeps its weight with an
 * empty cluster (its share answers 500) and sets ResolvedRefs=False with
 * the first reason (InvalidKind, BackendNotFound, RefNotPermitted). Every
 * tenant value (header names and values, paths, hostnames, expressions)
 * is checked here; a bad one rejects the route with the reason.
 *
 * TLSRoute rules become PassthroughHosts: hostnames are required (SNI is
 * the only thing a passthrough listener can match).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/validate.h"
#include "common/regex.h"
#include "syncd/gateway_internal.h"

#define MAX_MODS 16

struct rule_build {
  struct gctx *c;
  struct groute *r;
  int rule;
  const char *bad; /* why a value is unsupported (UnsupportedValue), NULL when fine */
};

static void unsupported(struct rule_build *b, const char *fmt, const char *arg) {
  if (!b->bad) b->bad = pool_printf(&b->c->pool, fmt, arg ? arg : "");
}

static void refs_fail(struct groute *r, struct gctx *c, const char *reason, const char *msg) {
  if (!r->refs_reason) {
    r->refs_reason = reason;
    r->refs_message = pool_strdup(&c->pool, msg);
  }
}

/* Gateway API durations: "1h", "30m", "10s", "500ms", combined ("1h30m"); "0s" means none. */
static int parse_duration_ms(const char *s, uint32_t *out) {
  uint64_t total = 0;
  if (!s || !*s) return -1;
  while (*s) {
    uint64_t v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 6) v = v * 10 + (uint64_t)(*s++ - '0'), digits++;
    if (!digits) return -1;
    uint64_t unit;
    if (!strncmp(s, "ms", 2))
      unit = 1, s += 2;
    else if (*s == 's')
      unit = 1000, s++;
    else if (*s == 'm')
      unit = 60000, s++;
    else if (*s == 'h')
      unit = 3600000, s++;
    else
      return -1;
    total += v * unit;
  }
  if (total > UINT32_MAX) return -1;
  *out = (uint32_t)total;
  return 0;
}

/* A path as common/validate defines one (the check syncd and every proxy make on the resources:
 * RFC 3986 path characters, no space, control byte, '?' or '#'). */
static int valid_path(const char *p) {
  return validate_path(p, NULL, 0) == 0;
}

/* ---- matches ----------------------------------------------------------------- */

static Edge__V1__HeaderMatch **kv_headers(struct rule_build *b, json_t *list, size_t *n) {
  size_t cnt = json_array_size(list), i;
  json_t *h;
  Edge__V1__HeaderMatch **out = pool_alloc(&b->c->pool, (cnt + 1) * sizeof(*out));
  *n = 0;
  if (!out) return NULL;
  json_array_foreach(list, i, h) {
    const char *type = gj_str(h, "type"), *name = gj_str(h, "name"), *value = gj_str(h, "value");
    char why[200];
    if (!name || !value || validate_header(name, value, why, sizeof(why)) != 0) {
      char msg[320];
      snprintf(msg, sizeof(msg), "header match %.100s: %s", name ? name : "",
               name && value ? why : "missing");
      unsupported(b, "%s", msg);
      return out;
    }
    int regex = type && !strcmp(type, "RegularExpression");
    if (type && !regex && strcmp(type, "Exact") != 0) {
      unsupported(b, "header match type %.40s is not supported", type);
      return out;
    }
    if (regex && regex_check(value, why, sizeof(why)) < 0) {
      unsupported(b, "header regular expression: %s", why);
      return out;
    }
    /* Only the first of several matches with one name counts (the specification). */
    int dup = 0;
    for (size_t k = 0; k < *n; k++) dup |= !strcasecmp(out[k]->name, name);
    if (dup) continue;
    Edge__V1__HeaderMatch *m = pool_alloc(&b->c->pool, sizeof(*m));
    if (!m) return out;
    edge__v1__header_match__init(m);
    m->name = pool_strdup(&b->c->pool, name);
    for (char *p = m->name; p && *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    m->value = (char *)value;
    m->type = regex ? EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX
                    : EDGE__V1__STRING_MATCH__STRING_MATCH_EXACT;
    out[(*n)++] = m;
  }
  return out;
}

static Edge__V1__QueryParamMatch **kv_query(struct rule_build *b, json_t *list, size_t *n) {
  size_t cnt = json_array_size(list), i;
  json_t *q;
  Edge__V1__QueryParamMatch **out = pool_alloc(&b->c->pool, (cnt + 1) * sizeof(*out));
  *n = 0;
  if (!out) return NULL;
  json_array_foreach(list, i, q) {
    const char *type = gj_str(q, "type"), *name = gj_str(q, "name"), *value = gj_str(q, "value");
    char why[200];
    if (!name || !*name || !value || validate_header("q", value, why, sizeof(why)) != 0 ||
        validate_name(name, NULL, 0) != 0 || strpbrk(name, "&=#?")) {
      unsupported(b, "query parameter match %.100s is not valid", name ? name : "");
      return out;
    }
    int regex = type && !strcmp(type, "RegularExpression");
    if (regex && regex_check(value, why, sizeof(why)) < 0) {
      unsupported(b, "query regular expression: %s", why);
      return out;
    }
    int dup = 0;
    for (size_t k = 0; k < *n; k++) dup |= !strcmp(out[k]->name, name);
    if (dup) continue;
    Edge__V1__QueryParamMatch *m = pool_alloc(&b->c->pool, sizeof(*m));
    if (!m) return out;
    edge__v1__query_param_match__init(m);
    m->name = (char *)name;
    m->value = (char *)value;
    m->type = regex ? EDGE__V1__STRING_MATCH__STRING_MATCH_REGEX
                    : EDGE__V1__STRING_MATCH__STRING_MATCH_EXACT;
    out[(*n)++] = m;
  }
  return out;
}

static void http_path(struct rule_build *b, json_t *match, Edge__V1__Route *rt) {
  json_t *path = json_object_get(match, "path");
  const char *type = gj_str(path, "type"), *value = gj_str(path, "value");
  if (!value) value = "/";
  char why[200];
  rt->path = (char *)value;
  if (!type || !strcmp(type, "PathPrefix")) {
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
    if (!valid_path(value)) unsupported(b, "path %.200s is not a valid path", value);
  } else if (!strcmp(type, "Exact")) {
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT;
    if (!valid_path(value)) unsupported(b, "path %.200s is not a valid path", value);
  } else if (!strcmp(type, "RegularExpression")) {
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX;
    if (regex_check(value, why, sizeof(why)) < 0)
      unsupported(b, "path regular expression: %s", why);
  } else {
    unsupported(b, "path match type %.40s is not supported", type);
  }
}

static int grpc_name_ok(const char *s) {
  for (; s && *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '.'))
      return 0;
  return 1;
}

static void grpc_path(struct rule_build *b, json_t *match, Edge__V1__Route *rt) {
  json_t *m = json_object_get(match, "method");
  const char *type = gj_str(m, "type"), *svc = gj_str(m, "service"), *meth = gj_str(m, "method");
  if (svc && !*svc) svc = NULL;
  if (meth && !*meth) meth = NULL;
  rt->method = "POST";
  if (!svc && !meth) {
    rt->path = "/";
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
    return;
  }
  if (type && !strcmp(type, "RegularExpression")) {
    char why[200];
    rt->path = pool_printf(&b->c->pool, "/(%s)/(%s)", svc ? svc : "[^/]+", meth ? meth : "[^/]+");
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX;
    if (rt->path && regex_check(rt->path, why, sizeof(why)) < 0)
      unsupported(b, "gRPC method regular expression: %s", why);
    return;
  }
  if (!grpc_name_ok(svc) || !grpc_name_ok(meth)) {
    unsupported(b, "gRPC service or method %s is not a valid name", svc ? svc : meth);
    return;
  }
  if (svc && meth) {
    rt->path = pool_printf(&b->c->pool, "/%s/%s", svc, meth);
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT;
  } else if (svc) {
    rt->path = pool_printf(&b->c->pool, "/%s", svc);
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  } else {
    rt->path = pool_printf(&b->c->pool, "/[^/]+/%s", meth);
    rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX;
  }
}

/* ---- backends ------------------------------------------------------------------ */

/* Resolves a backendRef to a cluster name ("" when it does not resolve). */
static const char *backend_cluster(struct rule_build *b, json_t *ref, int purpose) {
  struct gctx *c = b->c;
  struct groute *r = b->r;
  const char *group = gj_str(ref, "group"), *kind = gj_str(ref, "kind"),
             *name = gj_str(ref, "name");
  const char *ns = gj_str(ref, "namespace");
  if (!ns || !*ns) ns = r->k.ns;
  json_int_t port = json_integer_value(json_object_get(ref, "port"));
  char msg[400];
  if ((group && *group) || (kind && strcmp(kind, "Service") != 0)) {
    snprintf(msg, sizeof(msg), "backendRef %s%s%s %s is not a core Service",
             group && *group ? group : "", group && *group ? "/" : "", kind ? kind : "", name);
    refs_fail(r, c, "InvalidKind", msg);
    return "";
  }
  if (!name) return "";
  if (!gref_permitted(c, GATEWAY_GROUP, r->kind_str, r->k.ns, "", "Service", ns, name)) {
    snprintf(msg, sizeof(msg),
             "Service %s/%s is in another namespace and no ReferenceGrant allows it", ns, name);
    refs_fail(r, c, "RefNotPermitted", msg);
    return "";
  }
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ns, name);
  const struct gobj *svc = gfind(c->services.v, c->services.n, sizeof(struct gobj), key);
  json_t *found = NULL, *p;
  size_t i;
  json_array_foreach(json_object_get(json_object_get(svc ? svc->o : NULL, "spec"), "ports"), i, p) {
    if (json_integer_value(json_object_get(p, "port")) == port) found = p;
  }
  if (!svc || !found || port < 1 || port > 65535) {
    snprintf(msg, sizeof(msg), svc ? "Service %s has no port %lld" : "Service %s not found (%lld)",
             key, (long long)port);
    refs_fail(r, c, "BackendNotFound", msg);
    return "";
  }
  int protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1;
  const char *suffix = "";
  const char *app = gj_str(found, "appProtocol");
  if (purpose == ROUTE_GRPC)
    protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC, suffix = "/grpc";
  else if (purpose == ROUTE_TLS)
    suffix = "/tcp";
  else if (app && !strcmp(app, "kubernetes.io/h2c"))
    protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C, suffix = "/h2c";
  const char *cl = pool_printf(&c->pool, "gw:%s:%lld%s", key, (long long)port, suffix);
  struct gcluster_ref ref_out = {cl, svc, found, protocol};
  if (cl) GVEC_PUSH(c, c->clusters, ref_out);
  return cl ? cl : "";
}

static void backends(struct rule_build *b, json_t *rule, Edge__V1__Route *rt) {
  json_t *refs = json_object_get(rule, "backendRefs"), *ref;
  size_t n = json_array_size(refs), i;
  Edge__V1__WeightedCluster **wc = pool_alloc(&b->c->pool, (n + 1) * sizeof(*wc));
  if (!wc) return;
  int all_plain = 1;
  json_array_foreach(refs, i, ref) {
    json_t *w = json_object_get(ref, "weight");
    Edge__V1__WeightedCluster *x = pool_alloc(&b->c->pool, sizeof(*x));
    if (!x) return;
    edge__v1__weighted_cluster__init(x);
    x->cluster = (char *)backend_cluster(b, ref, b->r->kind);
    x->weight = w ? (uint32_t)json_integer_value(w) : 1;
    if (json_integer_value(w) < 0 || json_integer_value(w) > 1000000)
      unsupported(b, "backend weight %s is out of range", gj_str(ref, "name"));
    if (json_array_size(json_object_get(ref, "filters")))
      unsupported(b, "filters on backendRefs (%s) are not supported", gj_str(ref, "name"));
    all_plain &= x->cluster[0] != '\0' && x->weight > 0;
    wc[i] = x;
  }
  if (n == 0) {
    /* No backend: every request gets 500 (unless a redirect answers it). */
    rt->options->direct_status = 500;
  } else if (n == 1 && all_plain) {
    rt->cluster = wc[0]->cluster;
  } else {
    rt->weighted_clusters = wc;
    rt->n_weighted_clusters = n;
  }
}

/* ---- filters ---------------------------------------------------------------------- */

static Edge__V1__HeaderModifier *header_modifier(struct rule_build *b, json_t *f) {
  Edge__V1__HeaderModifier *m = pool_alloc(&b->c->pool, sizeof(*m));
  if (!m) return NULL;
  edge__v1__header_modifier__init(m);
  const char *lists[2] = {"set", "add"};
  for (int k = 0; k < 2; k++) {
    json_t *arr = json_object_get(f, lists[k]), *h;
    size_t n = json_array_size(arr), i;
    if (n > MAX_MODS) unsupported(b, "more than 16 headers in %s", lists[k]);
    Edge__V1__HeaderValue **hv = pool_alloc(&b->c->pool, (n + 1) * sizeof(*hv));
    if (!hv) return NULL;
    json_array_foreach(arr, i, h) {
      const char *name = gj_str(h, "name"), *value = gj_str(h, "value");
      char why[200];
      if (!name || !value || validate_header(name, value, why, sizeof(why)) != 0) {
        char msg[420];
        snprintf(msg, sizeof(msg), "header %.100s has an invalid name or value (%s)",
                 name ? name : "", name && value ? why : "missing");
        unsupported(b, "%s", msg);
        return NULL;
      }
      Edge__V1__HeaderValue *x = pool_alloc(&b->c->pool, sizeof(*x));
      if (!x) return NULL;
      edge__v1__header_value__init(x);
      x->name = pool_strdup(&b->c->pool, name);
      for (char *p = x->name; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
      x->value = (char *)value;
      hv[i] = x;
    }
    if (k == 0)
      m->set = hv, m->n_set = n;
    else
      m->add = hv, m->n_add = n;
  }
  json_t *rm = json_object_get(f, "remove"), *x;
  size_t n = json_array_size(rm), i;
  m->remove = pool_alloc(&b->c->pool, (n + 1) * sizeof(char *));
  if (!m->remove) return NULL;
  json_array_foreach(rm, i, x) {
    const char *name = json_string_value(x);
    if (!name || validate_header(name, NULL, NULL, 0) != 0) {
      unsupported(b, "header to remove %.100s is not a valid name", name);
      return NULL;
    }
    m->remove[m->n_remove] = pool_strdup(&b->c->pool, name);
    for (char *p = m->remove[m->n_remove]; p && *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    m->n_remove++;
  }
  return m;
}

static int host_ok(const char *h) {
  char buf[300];
  const char *why;
  return h && h[0] != '*' && ghost_normalize(h, buf, sizeof(buf), &why) == 0;
}

static void redirect(struct rule_build *b, json_t *f, Edge__V1__Route *rt) {
  Edge__V1__Redirect *rd = pool_alloc(&b->c->pool, sizeof(*rd));
  if (!rd) return;
  edge__v1__redirect__init(rd);
  const char *scheme = gj_str(f, "scheme"), *host = gj_str(f, "hostname");
  if (scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
    unsupported(b, "redirect scheme %.20s is not http or https", scheme);
  if (host && !host_ok(host)) unsupported(b, "redirect hostname %.200s is not valid", host);
  rd->scheme = (char *)(scheme ? scheme : "");
  rd->host = (char *)(host ? host : "");
  json_int_t port = json_integer_value(json_object_get(f, "port"));
  if (port < 0 || port > 65535) unsupported(b, "redirect port out of range%s", "");
  rd->port = (uint32_t)port;
  json_int_t code = json_integer_value(json_object_get(f, "statusCode"));
  if (code == 0) code = 302; /* the specification's default */
  if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
    unsupported(b, "redirect statusCode is not 301, 302, 303, 307 or 308%s", "");
  rd->status = (uint32_t)code;
  json_t *path = json_object_get(f, "path");
  const char *type = gj_str(path, "type");
  rd->path = "";
  rd->path_prefix = "";
  if (type && !strcmp(type, "ReplaceFullPath")) {
    rd->path = (char *)(gj_str(path, "replaceFullPath") ? gj_str(path, "replaceFullPath") : "/");
    if (!valid_path(rd->path)) unsupported(b, "redirect path %.200s is not valid", rd->path);
  } else if (type && !strcmp(type, "ReplacePrefixMatch")) {
    rd->path_prefix =
        (char *)(gj_str(path, "replacePrefixMatch") ? gj_str(path, "replacePrefixMatch") : "/");
    if (!valid_path(rd->path_prefix))
      unsupported(b, "redirect prefix %.200s is not valid", rd->path_prefix);
    if (rt->path_type != EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX)
      unsupported(b, "ReplacePrefixMatch needs a PathPrefix match%s", "");
  } else if (type) {
    unsupported(b, "redirect path type %.40s is not supported", type);
  }
  rt->options->redirect = rd;
}

static void url_rewrite(struct rule_build *b, json_t *f, Edge__V1__Route *rt) {
  const char *host = gj_str(f, "hostname");
  if (host) {
    if (!host_ok(host)) unsupported(b, "rewrite hostname %.200s is not valid", host);
    rt->options->rewrite_host = (char *)host;
  }
  json_t *path = json_object_get(f, "path");
  const char *type = gj_str(path, "type");
  if (type && !strcmp(type, "ReplaceFullPath")) {
    const char *p = gj_str(path, "replaceFullPath");
    rt->options->rewrite_path = (char *)(p ? p : "/");
    if (!valid_path(rt->options->rewrite_path)) unsupported(b, "rewrite path %.200s is invalid", p);
  } else if (type && !strcmp(type, "ReplacePrefixMatch")) {
    const char *p = gj_str(path, "replacePrefixMatch");
    rt->options->rewrite_prefix = (char *)(p ? p : "/");
    if (!valid_path(rt->options->rewrite_prefix))
      unsupported(b, "rewrite prefix %.200s is invalid", p);
    if (rt->path_type != EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX)
      unsupported(b, "ReplacePrefixMatch needs a PathPrefix match%s", "");
  } else if (type) {
    unsupported(b, "rewrite path type %.40s is not supported", type);
  }
}

static void mirror(struct rule_build *b, json_t *f, Edge__V1__Route *rt) {
  const char *cl = backend_cluster(b, json_object_get(f, "backendRef"), b->r->kind);
  if (!cl[0]) return; /* ResolvedRefs already says why; nothing is mirrored */
  uint32_t ppm = 0;
  json_t *pct = json_object_get(f, "percent"), *frac = json_object_get(f, "fraction");
  if (pct) {
    json_int_t v = json_integer_value(pct);
    if (v <= 0) return; /* 0 %: never */
    ppm = v >= 100 ? 0 : (uint32_t)(v * 10000);
  } else if (frac) {
    json_int_t num = json_integer_value(json_object_get(frac, "numerator"));
    json_int_t den = json_integer_value(json_object_get(frac, "denominator"));
    if (!json_object_get(frac, "denominator")) den = 100;
    if (den <= 0 || num < 0) {
      unsupported(b, "mirror fraction is invalid%s", "");
      return;
    }
    if (num == 0) return;
    ppm = num >= den ? 0 : (uint32_t)(num * 1000000 / den);
  }
  Edge__V1__Mirror *m = pool_alloc(&b->c->pool, sizeof(*m));
  Edge__V1__Mirror **nv = pool_alloc(&b->c->pool, (rt->n_mirrors + 1) * sizeof(*nv));
  if (!m || !nv) return;
  edge__v1__mirror__init(m);
  m->cluster = (char *)cl;
  m->per_million = ppm;
  if (rt->n_mirrors) memcpy(nv, rt->mirrors, rt->n_mirrors * sizeof(*nv));
  nv[rt->n_mirrors++] = m;
  rt->mirrors = nv;
}

static void filters(struct rule_build *b, json_t *list, Edge__V1__Route *rt) {
  json_t *f;
  size_t i;
  int seen_req = 0, seen_resp = 0;
  json_array_foreach(list, i, f) {
    const char *type = gj_str(f, "type");
    if (!type) type = "";
    if (!strcmp(type, "RequestHeaderModifier") && !seen_req++) {
      rt->request_headers = header_modifier(b, json_object_get(f, "requestHeaderModifier"));
    } else if (!strcmp(type, "ResponseHeaderModifier") && !seen_resp++) {
      rt->response_headers = header_modifier(b, json_object_get(f, "responseHeaderModifier"));
    } else if (!strcmp(type, "RequestMirror")) {
      mirror(b, json_object_get(f, "requestMirror"), rt);
    } else if (!strcmp(type, "RequestRedirect") && b->r->kind == ROUTE_HTTP) {
      redirect(b, json_object_get(f, "requestRedirect"), rt);
    } else if (!strcmp(type, "URLRewrite") && b->r->kind == ROUTE_HTTP) {
      url_rewrite(b, json_object_get(f, "urlRewrite"), rt);
    } else {
      unsupported(b, "filter %.60s is not supported", type);
    }
  }
  if (rt->options->redirect && (rt->options->rewrite_path[0] || rt->options->rewrite_prefix[0] ||
                                rt->options->rewrite_host[0]))
    unsupported(b, "a rule may not both redirect and rewrite%s", "");
}

static void timeouts(struct rule_build *b, json_t *rule, Edge__V1__Route *rt) {
  json_t *t = json_object_get(rule, "timeouts");
  const char *req = gj_str(t, "request"), *be = gj_str(t, "backendRequest");
  uint32_t v;
  if (req) {
    if (parse_duration_ms(req, &v) < 0)
      unsupported(b, "timeouts.request %.40s is not a duration", req);
    else
      rt->options->request_timeout_ms = v;
  }
  if (be) {
    if (parse_duration_ms(be, &v) < 0)
      unsupported(b, "timeouts.backendRequest %.40s is not a duration", be);
    else
      rt->options->backend_request_timeout_ms = v;
  }
}

/* ---- entries ------------------------------------------------------------------------- */

/* The hosts a route serves on listener l (intersections, deduplicated). */
static size_t route_hosts(struct gctx *c, const struct groute *r, const struct glistener *l,
                          const char **out) {
  size_t n = 0;
  if (r->n_hostnames == 0) {
    out[n++] = l->hostname ? l->hostname : "";
    return n;
  }
  for (size_t k = 0; k < r->n_hostnames; k++) {
    const char *h = ghost_intersect(l->hostname, r->hostnames[k]);
    int dup = !h;
    for (size_t j = 0; j < n && !dup; j++) dup = !strcmp(out[j], h);
    if (!dup) out[n++] = h;
  }
  (void)c;
  return n;
}

static void add_entries(struct gctx *c, const struct groute *r, int rule, int match,
                        Edge__V1__Route *msg) {
  const char **hosts = pool_alloc(&c->pool, (r->n_hostnames + 1) * sizeof(*hosts));
  if (!hosts) return;
  for (size_t p = 0; p < r->n_parents; p++) {
    const struct gparent *par = &r->parents[p];
    for (size_t a = 0; a < par->n_attached; a++) {
      const struct glistener *l = par->attached[a];
      size_t nh = route_hosts(c, r, l, hosts);
      for (size_t h = 0; h < nh; h++) {
        struct groute_entry e = {.listener = l->protocol == PROTO_HTTPS
                                                 ? EDGE__V1__LISTENER__LISTENER_HTTPS
                                                 : EDGE__V1__LISTENER__LISTENER_HTTP,
                                 .host = hosts[h],
                                 .cert = l->cert,
                                 .route = r,
                                 .rule = rule,
                                 .match = match,
                                 .seq = c->entries.n,
                                 .msg = msg};
        GVEC_PUSH(c, c->entries, e);
      }
    }
  }
}

static void add_passthrough(struct gctx *c, struct groute *r, int rule, Edge__V1__Route *rt) {
  const char **hosts = pool_alloc(&c->pool, (r->n_hostnames + 1) * sizeof(*hosts));
  if (!hosts) return;
  Edge__V1__WeightedCluster **wc = rt->weighted_clusters;
  size_t n = rt->n_weighted_clusters;
  Edge__V1__WeightedCluster *one = NULL;
  if (!wc && rt->cluster && rt->cluster[0]) {
    one = pool_alloc(&c->pool, sizeof(*one));
    wc = pool_alloc(&c->pool, sizeof(*wc));
    if (!one || !wc) return;
    edge__v1__weighted_cluster__init(one);
    one->cluster = rt->cluster;
    one->weight = 1;
    wc[0] = one;
    n = 1;
  }
  for (size_t p = 0; p < r->n_parents; p++) {
    for (size_t a = 0; a < r->parents[p].n_attached; a++) {
      size_t nh = route_hosts(c, r, r->parents[p].attached[a], hosts);
      for (size_t h = 0; h < nh; h++) {
        if (!hosts[h][0]) {
          greject(c, "TLSRoute", &r->k,
                  "TLSRoute %s: neither the route nor the listener names a hostname, and a "
                  "passthrough host is matched by SNI",
                  r->k.key);
          continue;
        }
        struct gpassthrough pt = {hosts[h], r, rule, wc, n};
        GVEC_PUSH(c, c->passthrough, pt);
      }
    }
  }
}

static Edge__V1__Route *new_route(struct gctx *c, const struct groute *r, int rule, int match) {
  Edge__V1__Route *rt = pool_alloc(&c->pool, sizeof(*rt));
  Edge__V1__RouteOptions *o = pool_alloc(&c->pool, sizeof(*o));
  Edge__V1__SourceRef *src = pool_alloc(&c->pool, sizeof(*src));
  if (!rt || !o || !src) return NULL;
  edge__v1__route__init(rt);
  edge__v1__route_options__init(o);
  edge__v1__source_ref__init(src);
  src->kind = (char *)r->kind_str;
  src->namespace_ = (char *)r->k.ns;
  src->name = (char *)r->k.name;
  src->rule_index = rule;
  src->path_index = match;
  rt->options = o;
  rt->source = src;
  rt->path = "/";
  rt->path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  return rt;
}

void grules_build(struct gctx *c, struct groute *r, int refs_only) {
  json_t *rules = json_object_get(json_object_get(r->k.o, "spec"), "rules"), *rule;
  size_t ri;
  struct rule_build b = {.c = c, .r = r};
  size_t entries0 = c->entries.n, pt0 = c->passthrough.n, clusters0 = c->clusters.n;
  json_array_foreach(rules, ri, rule) {
    b.rule = (int)ri;
    json_t *matches = json_object_get(rule, "matches");
    size_t nm = json_array_size(matches);
    if (r->kind == ROUTE_TLS) {
      Edge__V1__Route *rt = new_route(c, r, (int)ri, -1);
      if (!rt) return;
      backends(&b, rule, rt);
      if (!b.bad) add_passthrough(c, r, (int)ri, rt);
      continue;
    }
    for (size_t mi = 0; mi < (nm ? nm : 1); mi++) {
      json_t *m = json_array_get(matches, mi);
      Edge__V1__Route *rt = new_route(c, r, (int)ri, (int)mi);
      if (!rt) return;
      if (r->kind == ROUTE_GRPC) {
        grpc_path(&b, m, rt);
      } else {
        http_path(&b, m, rt);
        const char *method = gj_str(m, "method");
        if (method) rt->method = (char *)method;
      }
      rt->headers = kv_headers(&b, json_object_get(m, "headers"), &rt->n_headers);
      if (r->kind == ROUTE_HTTP)
        rt->query_params = kv_query(&b, json_object_get(m, "queryParams"), &rt->n_query_params);
      filters(&b, json_object_get(rule, "filters"), rt);
      if (!rt->options->redirect) backends(&b, rule, rt);
      timeouts(&b, rule, rt);
      add_entries(c, r, (int)ri, (int)mi, rt);
    }
  }
  if (refs_only) {
    /* attached nowhere: only its ResolvedRefs finding is kept, nothing is served */
    c->entries.n = entries0;
    c->passthrough.n = pt0;
    c->clusters.n = clusters0;
    return;
  }
  if (b.bad) {
    /* An unsupported value rejects the whole route: a partial route would route differently
     * from what its author wrote. */
    c->entries.n = entries0;
    c->passthrough.n = pt0;
    c->clusters.n = clusters0;
    for (size_t p = 0; p < r->n_parents; p++)
      for (size_t a = 0; a < r->parents[p].n_attached; a++) r->parents[p].attached[a]->attached--;
    r->value_reason = "UnsupportedValue";
    r->value_message = b.bad;
    greject(c, r->kind_str, &r->k, "%s %s: %s", r->kind_str, r->k.key, b.bad);
  }
}
