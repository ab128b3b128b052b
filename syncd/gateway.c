/*
 * gateway — the Gateway API translator's front half: index the objects,
 * decide which GatewayClasses and Gateways are ours, validate listeners,
 * attach routes to listeners (parentRefs, allowedRoutes, hostname
 * intersection) with the specification's conditions, then hand the
 * attached routes to gateway_rules.c and the result to gateway_emit.c and
 * gateway_status.c (see gateway.h for the rules and gateway_internal.h for
 * the shared structures).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/cert_valid.h"
#include "common/validate.h"
#include "syncd/gateway_internal.h"

/* ---- pool, vectors, small helpers ---------------------------------------- */

int gvec_reserve(void **v, size_t *cap, size_t want, size_t elem) {
  if (want <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < want) nc *= 2;
  void *nv = realloc(*v, nc * elem);
  if (!nv) return -ENOMEM;
  *v = nv;
  *cap = nc;
  return 0;
}

void gsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, size, cmp);
}

const char *gj_str(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static json_t *gj_path(json_t *o, const char *a, const char *b) {
  return json_object_get(json_object_get(o, a), b);
}

void gconds_set(struct gconds *cs, const char *type, int status, const char *reason,
                const char *message) {
  size_t i = 0;
  while (i < cs->n && strcmp(cs->c[i].type, type) != 0) i++;
  if (i == cs->n) {
    if (cs->n == GCONDS_MAX) return;
    cs->n++;
  }
  cs->c[i] = (struct gcond){type, status, reason, message ? message : ""};
}

const struct gcond *gconds_get(const struct gconds *cs, const char *type) {
  for (size_t i = 0; i < cs->n; i++)
    if (!strcmp(cs->c[i].type, type)) return &cs->c[i];
  return NULL;
}

void greject(struct gctx *c, const char *kind, const struct gobj *k, const char *fmt, ...) {
  va_list ap;
  char *reason = NULL;
  va_start(ap, fmt);
  if (vasprintf(&reason, fmt, ap) < 0) reason = NULL;
  va_end(ap);
  /* tenant text quoted into a reason reaches Status, logs and terminals: control bytes as \xHH
   * (a CR/LF or an escape sequence never shows raw) */
  size_t extra = 0;
  for (const char *p = reason; p && *p; p++) extra += ((unsigned char)*p < 0x20 || *p == 0x7f) * 3;
  if (extra) {
    char *clean = malloc(strlen(reason) + extra + 1), *o = clean;
    for (const char *p = reason; clean && *p; p++) {
      unsigned char ch = (unsigned char)*p;
      if (ch < 0x20 || ch == 0x7f)
        o += sprintf(o, "\\x%02x", ch);
      else
        *o++ = (char)ch;
    }
    if (clean) *o = '\0';
    free(reason);
    reason = clean;
  }
  struct syncd_rejection r = {strdup(kind), strdup(k->ns ? k->ns : ""),
                              strdup(k->name ? k->name : ""), reason,
                              strdup(k->location ? k->location : "")};
  if (!r.kind || !r.ns || !r.name || !r.reason || !r.location) {
    free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
    c->pool.oom = 1;
    return;
  }
  size_t before = c->rej.n;
  GVEC_PUSH(c, c->rej, r);
  if (c->rej.n == before) free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
}

static int gobj_cmp(const void *a, const void *b) {
  const struct gobj *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  if (r) return r;
  return x->seq > y->seq ? -1 : x->seq < y->seq; /* the copy read last first */
}

void *gfind(void *base, size_t n, size_t elem, const char *key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const struct gobj *k = (const struct gobj *)((char *)base + mid * elem);
    if (strcmp(k->key, key) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < n && !strcmp(((const struct gobj *)((char *)base + lo * elem))->key, key))
    return (char *)base + lo * elem;
  return NULL;
}

int gage_cmp(const struct gobj *a, const struct gobj *b) {
  if (a->created && b->created) {
    int r = strcmp(a->created, b->created);
    if (r) return r;
  } else if (a->created || b->created) {
    return a->created ? -1 : 1; /* no timestamp: newest */
  }
  return strcmp(a->key, b->key);
}

int ghost_normalize(const char *in, char *out, size_t outlen, const char **why) {
  static __thread char reason[160]; /* *why points here: valid until the next call */
  size_t n = strlen(in);
  if (n >= outlen) {
    *why = "is longer than 253 characters";
    return -1;
  }
  for (size_t i = 0; i <= n; i++) out[i] = (char)tolower((unsigned char)in[i]);
  /* common/validate's host rules (DNS labels, one leading "*." wildcard): the one definition */
  if (validate_host(out, 1, 0, reason, sizeof(reason)) != 0) {
    *why = reason;
    return -1;
  }
  return 0;
}

/* ---- index --------------------------------------------------------------- */

static int api_is(const char *api, const char *const *versions) {
  if (!api || strncmp(api, GATEWAY_GROUP "/", sizeof(GATEWAY_GROUP)) != 0) return 0;
  for (; *versions; versions++)
    if (!strcmp(api + sizeof(GATEWAY_GROUP), *versions)) return 1;
  return 0;
}

static int gobj_init(struct gctx *c, struct gobj *k, json_t *o, const char *location, size_t seq,
                     int cluster_scoped) {
  json_t *md = json_object_get(o, "metadata");
  k->o = o;
  k->location = location;
  k->seq = seq;
  k->ns = cluster_scoped ? "" : gj_str(md, "namespace");
  if (!k->ns || !*k->ns) k->ns = cluster_scoped ? "" : "default";
  k->name = gj_str(md, "name");
  if (!k->name || !*k->name) return -1;
  const char *created = gj_str(md, "creationTimestamp");
  k->created = created && *created ? created : NULL;
  k->generation = json_integer_value(json_object_get(md, "generation"));
  k->key = cluster_scoped ? pool_strdup(&c->pool, k->name)
                          : pool_printf(&c->pool, "%s/%s", k->ns, k->name);
  return k->key ? 0 : -1;
}

static void index_doc(struct gctx *c, json_t *o, const char *location, size_t seq) {
  static const char *const v1[] = {"v1", "v1beta1", NULL};
  static const char *const grant[] = {"v1beta1", "v1", "v1alpha2", NULL};
  static const char *const tls[] = {"v1alpha2", "v1alpha3", "v1", NULL};
  const char *kind = gj_str(o, "kind"), *api = gj_str(o, "apiVersion");
  if (!kind) return;
  struct gobj k = {0};
  int is_gw_api = api && !strncmp(api, GATEWAY_GROUP "/", sizeof(GATEWAY_GROUP));
  if (is_gw_api) {
    int known = !strcmp(kind, "GatewayClass") || !strcmp(kind, "Gateway") ||
                !strcmp(kind, "HTTPRoute") || !strcmp(kind, "GRPCRoute") ||
                !strcmp(kind, "ReferenceGrant") || !strcmp(kind, "TLSRoute");
    if (!known) return; /* another Gateway API kind (TCPRoute, ...): not ours to read */
    int ok = !strcmp(kind, "ReferenceGrant") ? api_is(api, grant)
             : !strcmp(kind, "TLSRoute")     ? api_is(api, tls)
                                             : api_is(api, v1);
    if (gobj_init(c, &k, o, location, seq, !strcmp(kind, "GatewayClass")) < 0) {
      if (!c->pool.oom) greject(c, kind, &k, "%s: %s has no metadata.name", location, kind);
      return;
    }
    if (!ok) {
      greject(c, kind, &k, "%s %s: apiVersion %s is not supported", kind, k.key, api);
      return;
    }
    if (!strcmp(kind, "GatewayClass")) {
      GVEC_PUSH(c, c->all_classes, k);
    } else if (!strcmp(kind, "Gateway")) {
      struct ggateway g = {.k = k};
      GVEC_PUSH(c, c->gateways, g);
    } else if (!strcmp(kind, "ReferenceGrant")) {
      GVEC_PUSH(c, c->grants, k);
    } else {
      struct groute r = {.k = k};
      r.kind = !strcmp(kind, "HTTPRoute")   ? ROUTE_HTTP
               : !strcmp(kind, "GRPCRoute") ? ROUTE_GRPC
                                            : ROUTE_TLS;
      r.kind_str = r.kind == ROUTE_HTTP   ? "HTTPRoute"
                   : r.kind == ROUTE_GRPC ? "GRPCRoute"
                                          : "TLSRoute";
      GVEC_PUSH(c, c->routes, r);
    }
    return;
  }
  if (!strcmp(kind, "Service") && api && !strcmp(api, "v1")) {
    if (gobj_init(c, &k, o, location, seq, 0) == 0) GVEC_PUSH(c, c->services, k);
  } else if (!strcmp(kind, "Secret") && api && !strcmp(api, "v1")) {
    struct gsecret s = {0};
    if (gobj_init(c, &s.k, o, location, seq, 0) == 0) GVEC_PUSH(c, c->secrets, s);
  } else if (!strcmp(kind, "Namespace") && api && !strcmp(api, "v1")) {
    if (gobj_init(c, &k, o, location, seq, 1) == 0) GVEC_PUSH(c, c->namespaces, k);
  } else if (!strcmp(kind, "EndpointSlice") && api && !strcmp(api, "discovery.k8s.io/v1")) {
    const char *svc = gj_str(gj_path(o, "metadata", "labels"), "kubernetes.io/service-name");
    if (!svc || !*svc || gobj_init(c, &k, o, location, seq, 0) < 0) return;
    k.key = pool_printf(&c->pool, "%s/%s", k.ns, svc);
    if (k.key) GVEC_PUSH(c, c->slices, k);
  }
}

/* Keeps the copy read last of each key (like kubectl apply); arrays of struct gobj-first elems. */
static size_t dedupe(void *base, size_t n, size_t elem) {
  gsort(base, n, elem, gobj_cmp);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gobj *k = (const struct gobj *)((char *)base + i * elem);
    if (kept > 0 && !strcmp(((const struct gobj *)((char *)base + (kept - 1) * elem))->key, k->key))
      continue;
    if (kept != i) memmove((char *)base + kept * elem, k, elem);
    kept++;
  }
  return kept;
}

/* ---- references -------------------------------------------------------- */

static int grant_allows_from(json_t *grant, const char *group, const char *kind, const char *ns) {
  size_t i;
  json_t *f;
  json_array_foreach(gj_path(grant, "spec", "from"), i, f) {
    const char *g = gj_str(f, "group"), *k = gj_str(f, "kind"), *n = gj_str(f, "namespace");
    if (strcmp(g ? g : "", group) == 0 && k && !strcmp(k, kind) && n && !strcmp(n, ns)) return 1;
  }
  return 0;
}

static int grant_allows_to(json_t *grant, const char *group, const char *kind, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(gj_path(grant, "spec", "to"), i, t) {
    const char *g = gj_str(t, "group"), *k = gj_str(t, "kind"), *n = gj_str(t, "name");
    if (strcmp(g ? g : "", group) == 0 && k && !strcmp(k, kind) && (!n || !*n || !strcmp(n, name)))
      return 1;
  }
  return 0;
}

int gref_permitted(const struct gctx *c, const char *from_group, const char *from_kind,
                   const char *from_ns, const char *to_group, const char *to_kind,
                   const char *to_ns, const char *to_name) {
  if (!strcmp(from_ns, to_ns)) return 1;
  for (size_t i = 0; i < c->grants.n; i++) {
    const struct gobj *g = &c->grants.v[i];
    if (strcmp(g->ns, to_ns) != 0) continue; /* a grant lives in the target's namespace */
    if (grant_allows_from(g->o, from_group, from_kind, from_ns) &&
        grant_allows_to(g->o, to_group, to_kind, to_name))
      return 1;
  }
  return 0;
}

/* Decodes base64 into a NUL-terminated pool buffer (common/base64); NULL when invalid. */
static char *b64_decode(struct pool *p, const char *in, size_t *outlen) {
  size_t n = strlen(in), cap = base64_decoded_max(n) + 1;
  uint8_t *out = pool_alloc(p, cap);
  if (!out) return NULL;
  ssize_t len = base64_decode(in, n, out, cap - 1, BASE64_ALLOW_SPACE);
  if (len < 0) return NULL;
  out[len] = '\0';
  *outlen = (size_t)len;
  return (char *)out;
}

struct gsecret *gsecret_usable(struct gctx *c, const char *ns, const char *name, const char **why) {
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ns, name);
  struct gsecret *s = gfind(c->secrets.v, c->secrets.n, sizeof(*s), key);
  if (!s) {
    *why = "not found";
    return NULL;
  }
  if (!s->checked) {
    s->checked = 1;
    const char *type = gj_str(s->k.o, "type");
    json_t *data = json_object_get(s->k.o, "data"), *sdata = json_object_get(s->k.o, "stringData");
    const char *names[2] = {"tls.crt", "tls.key"}, *vals[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    if (!type || strcmp(type, "kubernetes.io/tls") != 0) {
      s->problem =
          pool_printf(&c->pool, "has type %s, want kubernetes.io/tls", type ? type : "(none)");
      goto done;
    }
    for (int k = 0; k < 2; k++) {
      const char *plain = gj_str(sdata, names[k]), *b64 = gj_str(data, names[k]);
      if (plain) {
        vals[k] = plain;
        lens[k] = strlen(plain);
      } else if (b64 && !(vals[k] = b64_decode(&c->pool, b64, &lens[k]))) {
        s->problem = pool_printf(&c->pool, "key %s is not valid base64", names[k]);
        goto done;
      }
      if (!vals[k] || lens[k] == 0) {
        s->problem = pool_printf(&c->pool, "missing key %s", names[k]);
        goto done;
      }
    }
    char err[160];
    if (cert_valid_check((const uint8_t *)vals[0], lens[0], (const uint8_t *)vals[1], lens[1],
                         &s->not_after, err, sizeof(err))) {
      s->problem = pool_strdup(&c->pool, err);
      goto done;
    }
    s->ok = 1;
    s->crt = vals[0], s->crt_len = lens[0];
    s->key = vals[1], s->key_len = lens[1];
  }
done:
  if (!s->ok) *why = s->problem ? s->problem : "is invalid";
  return s->ok ? s : NULL;
}

/* ---- classes and Gateways -------------------------------------------------- */

static void classes_decide(struct gctx *c) {
  for (size_t i = 0; i < c->all_classes.n; i++) {
    struct gobj *k = &c->all_classes.v[i];
    const char *ctl = gj_str(json_object_get(k->o, "spec"), "controllerName");
    if (!ctl || strcmp(ctl, GATEWAY_CONTROLLER) != 0) continue;
    GVEC_PUSH(c, c->classes, *k);
  }
}

static int class_is_ours(const struct gctx *c, const char *name) {
  for (size_t i = 0; i < c->classes.n; i++)
    if (name && !strcmp(c->classes.v[i].name, name) &&
        !json_object_get(json_object_get(c->classes.v[i].o, "spec"), "parametersRef"))
      return 1;
  return 0;
}

static int port_in(const uint32_t *ports, const uint32_t *dflt, uint32_t port) {
  for (const uint32_t *p = ports ? ports : dflt; *p; p++)
    if (*p == port) return 1;
  return 0;
}

/* allowedRoutes.kinds: the kinds the listener accepts; invalid ones make ResolvedRefs false. */
static void listener_kinds(struct gctx *c, struct glistener *l, json_t *ar) {
  unsigned possible = l->protocol == PROTO_TLS ? ROUTE_TLS : ROUTE_HTTP | ROUTE_GRPC;
  json_t *kinds = json_object_get(ar, "kinds"), *k;
  size_t i;
  if (json_array_size(kinds) == 0) {
    l->kinds = possible;
    return;
  }
  l->kinds = 0;
  const char *bad = NULL;
  json_array_foreach(kinds, i, k) {
    const char *g = gj_str(k, "group"), *kind = gj_str(k, "kind");
    unsigned bit = 0;
    if ((!g || !strcmp(g, GATEWAY_GROUP)) && kind)
      bit = !strcmp(kind, "HTTPRoute")   ? ROUTE_HTTP
            : !strcmp(kind, "GRPCRoute") ? ROUTE_GRPC
            : !strcmp(kind, "TLSRoute")  ? ROUTE_TLS
                                         : 0;
    if (bit & possible)
      l->kinds |= bit;
    else
      bad = kind ? kind : "(none)";
  }
  if (bad)
    gconds_set(&l->conds, "ResolvedRefs", 0, "InvalidRouteKinds",
               pool_printf(&c->pool, "route kind %s is not supported on a %s listener", bad,
                           l->protocol_str));
}

static void listener_tls(struct gctx *c, struct ggateway *g, struct glistener *l, json_t *tls) {
  const char *mode = gj_str(tls, "mode");
  l->passthrough = mode && !strcmp(mode, "Passthrough");
  if (l->protocol == PROTO_TLS) {
    if (!l->passthrough) {
      gconds_set(&l->conds, "Accepted", 0, "UnsupportedValue",
                 "a TLS listener must use mode Passthrough (TLS termination is done by HTTPS "
                 "listeners)");
      l->usable = 0;
    }
    return;
  }
  if (l->passthrough) {
    gconds_set(&l->conds, "Accepted", 0, "UnsupportedValue",
               "an HTTPS listener terminates TLS: mode Passthrough needs protocol TLS");
    l->usable = 0;
    return;
  }
  json_t *refs = json_object_get(tls, "certificateRefs"), *ref = json_array_get(refs, 0);
  if (!ref) {
    gconds_set(&l->conds, "ResolvedRefs", 0, "InvalidCertificateRef",
               "an HTTPS listener needs tls.certificateRefs");
    l->usable = 0;
    return;
  }
  const char *group = gj_str(ref, "group"), *kind = gj_str(ref, "kind"),
             *name = gj_str(ref, "name");
  const char *ns = gj_str(ref, "namespace");
  if (!ns || !*ns) ns = g->k.ns;
  const char *why = NULL;
  if ((group && *group) || (kind && strcmp(kind, "Secret") != 0) || !name) {
    gconds_set(&l->conds, "ResolvedRefs", 0, "InvalidCertificateRef",
               pool_printf(&c->pool, "certificateRef %s/%s is not a core Secret", kind ? kind : "",
                           name ? name : ""));
  } else if (!gref_permitted(c, GATEWAY_GROUP, "Gateway", g->k.ns, "", "Secret", ns, name)) {
    gconds_set(&l->conds, "ResolvedRefs", 0, "RefNotPermitted",
               pool_printf(&c->pool,
                           "Secret %s/%s is in another namespace and no ReferenceGrant allows it",
                           ns, name));
  } else if (!(l->secret = gsecret_usable(c, ns, name, &why))) {
    gconds_set(&l->conds, "ResolvedRefs", 0, "InvalidCertificateRef",
               pool_printf(&c->pool, "Secret %s/%s %s", ns, name, why));
  } else {
    l->cert = pool_printf(&c->pool, "gw:%s/%s", ns, name);
    return;
  }
  l->usable = 0;
}

static void listener_build(struct gctx *c, struct ggateway *g, struct glistener *l, json_t *js) {
  const struct gateway_opts *o = c->opts;
  static const uint32_t http_dflt[] = {80, 0}, https_dflt[] = {443, 0};
  l->name = gj_str(js, "name");
  if (!l->name) l->name = "";
  l->protocol_str = gj_str(js, "protocol");
  if (!l->protocol_str) l->protocol_str = "";
  l->protocol = !strcmp(l->protocol_str, "HTTP")    ? PROTO_HTTP
                : !strcmp(l->protocol_str, "HTTPS") ? PROTO_HTTPS
                : !strcmp(l->protocol_str, "TLS")   ? PROTO_TLS
                                                    : PROTO_OTHER;
  json_int_t port = json_integer_value(json_object_get(js, "port"));
  l->port = port > 0 && port < 65536 ? (uint32_t)port : 0;
  l->usable = 1;
  gconds_set(&l->conds, "Accepted", 1, "Accepted", "");
  gconds_set(&l->conds, "ResolvedRefs", 1, "ResolvedRefs", "");
  gconds_set(&l->conds, "Conflicted", 0, "NoConflicts", "");
  const char *host = gj_str(js, "hostname"), *why;
  char buf[300];
  if (host && *host) {
    if (ghost_normalize(host, buf, sizeof(buf), &why) < 0) {
      gconds_set(&l->conds, "Accepted", 0, "UnsupportedValue",
                 pool_printf(&c->pool, "hostname %.260s %s", host, why));
      l->usable = 0;
    } else {
      l->hostname = pool_strdup(&c->pool, buf);
    }
  }
  json_t *ar = json_object_get(js, "allowedRoutes");
  const char *from = gj_str(json_object_get(ar, "namespaces"), "from");
  l->from = from && !strcmp(from, "All")        ? FROM_ALL
            : from && !strcmp(from, "Selector") ? FROM_SELECTOR
                                                : FROM_SAME;
  l->selector = gj_path(ar, "namespaces", "selector");
  if (l->protocol == PROTO_OTHER) {
    gconds_set(
        &l->conds, "Accepted", 0, "UnsupportedProtocol",
        pool_printf(&c->pool, "protocol %s is not supported (HTTP, HTTPS, TLS)", l->protocol_str));
    l->usable = 0;
    l->kinds = 0;
  } else {
    listener_kinds(c, l, ar);
    if (l->protocol == PROTO_HTTPS || l->protocol == PROTO_TLS)
      listener_tls(c, g, l, json_object_get(js, "tls"));
    int served = l->protocol == PROTO_HTTP
                     ? port_in(o ? o->http_ports : NULL, http_dflt, l->port)
                     : port_in(o ? o->https_ports : NULL, https_dflt, l->port);
    if (!served) {
      gconds_set(&l->conds, "Accepted", 0, "PortUnavailable",
                 pool_printf(&c->pool, "the proxies serve %s on other ports than %u",
                             l->protocol == PROTO_HTTP ? "HTTP" : "HTTPS and TLS", l->port));
      l->usable = 0;
    }
  }
}

/* Two listeners of one Gateway on one port: HTTP beside HTTPS/TLS is a protocol conflict, the
 * same hostname twice a hostname conflict. */
static void listeners_conflicts(struct gctx *c, struct ggateway *g) {
  for (size_t i = 0; i < g->n_ls; i++) {
    for (size_t j = 0; j < g->n_ls; j++) {
      struct glistener *a = &g->ls[i], *b = &g->ls[j];
      if (i == j || a->port != b->port || a->protocol == PROTO_OTHER || b->protocol == PROTO_OTHER)
        continue;
      int a_http = a->protocol == PROTO_HTTP, b_http = b->protocol == PROTO_HTTP;
      if (a_http != b_http) {
        gconds_set(&a->conds, "Conflicted", 1, "ProtocolConflict",
                   pool_printf(&c->pool, "listener %s uses port %u with another protocol", b->name,
                               a->port));
      } else if (strcmp(a->hostname ? a->hostname : "", b->hostname ? b->hostname : "") == 0) {
        gconds_set(&a->conds, "Conflicted", 1, "HostnameConflict",
                   pool_printf(&c->pool, "listener %s has the same port and hostname", b->name));
      } else {
        continue;
      }
      a->usable = 0;
    }
  }
}

static void gateway_build(struct gctx *c, struct ggateway *g) {
  json_t *spec = json_object_get(g->k.o, "spec");
  json_t *ls = json_object_get(spec, "listeners"), *l;
  size_t i, n_ok = 0;
  g->n_ls = json_array_size(ls);
  g->ls = pool_alloc(&c->pool, (g->n_ls + 1) * sizeof(*g->ls));
  if (!g->ls) return;
  json_array_foreach(ls, i, l) listener_build(c, g, &g->ls[i], l);
  listeners_conflicts(c, g);
  for (i = 0; i < g->n_ls; i++) {
    struct glistener *x = &g->ls[i];
    n_ok += x->usable;
    if (x->usable) {
      gconds_set(&x->conds, "Programmed", 1, "Programmed", "");
    } else {
      const struct gcond *a = gconds_get(&x->conds, "Accepted");
      gconds_set(&x->conds, "Programmed", 0, "Invalid",
                 a && !a->status ? a->message : "the listener is not valid (see its conditions)");
    }
  }
  const char *addr = c->opts && c->opts->address && *c->opts->address ? c->opts->address : NULL;
  json_t *want = json_object_get(spec, "addresses"), *a;
  const char *unsupported = NULL;
  json_array_foreach(want, i, a) {
    const char *v = gj_str(a, "value");
    if (!v || !addr || strcmp(v, addr) != 0) unsupported = v ? v : "(empty)";
  }
  if (unsupported) {
    gconds_set(&g->conds, "Accepted", 0, "UnsupportedAddress",
               pool_printf(&c->pool, "address %s cannot be assigned: the L4 tier publishes %s",
                           unsupported, addr ? addr : "no address"));
    for (i = 0; i < g->n_ls; i++) g->ls[i].usable = 0;
    n_ok = 0;
  } else if (n_ok < g->n_ls) {
    gconds_set(
        &g->conds, "Accepted", n_ok > 0, "ListenersNotValid",
        pool_printf(&c->pool, "%zu of %zu listeners are not valid", g->n_ls - n_ok, g->n_ls));
  } else {
    gconds_set(&g->conds, "Accepted", 1, "Accepted", "");
  }
  if (!addr)
    gconds_set(&g->conds, "Programmed", 0, "AddressNotAssigned",
               "syncd has no --publish-address for the Gateway's status");
  else if (n_ok == 0)
    gconds_set(&g->conds, "Programmed", 0, "Invalid", "no listener can be served");
  else
    gconds_set(&g->conds, "Programmed", 1, "Programmed", "");
}

/* ---- namespaces ------------------------------------------------------------ */

/* The value of label `key` on namespace ns (kubernetes.io/metadata.name is implied). */
static const char *ns_label(const struct gctx *c, const char *ns, const char *key) {
  if (!strcmp(key, "kubernetes.io/metadata.name")) return ns;
  const struct gobj *n = gfind(c->namespaces.v, c->namespaces.n, sizeof(struct gobj), ns);
  return n ? gj_str(gj_path(n->o, "metadata", "labels"), key) : NULL;
}

static int selector_matches(const struct gctx *c, json_t *sel, const char *ns) {
  const char *key;
  json_t *v, *e;
  json_object_foreach(json_object_get(sel, "matchLabels"), key, v) {
    const char *have = ns_label(c, ns, key);
    if (!have || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0) return 0;
  }
  size_t i;
  json_array_foreach(json_object_get(sel, "matchExpressions"), i, e) {
    const char *k = gj_str(e, "key"), *op = gj_str(e, "operator");
    const char *have = k ? ns_label(c, ns, k) : NULL;
    int in = 0;
    size_t j;
    json_t *val;
    json_array_foreach(json_object_get(e, "values"), j, val) {
      if (have && json_is_string(val) && !strcmp(have, json_string_value(val))) in = 1;
    }
    if (!op || !k) return 0;
    if (!strcmp(op, "In") && !in) return 0;
    if (!strcmp(op, "NotIn") && in) return 0;
    if (!strcmp(op, "Exists") && !have) return 0;
    if (!strcmp(op, "DoesNotExist") && have) return 0;
  }
  return 1;
}

static int listener_allows(const struct gctx *c, const struct ggateway *g,
                           const struct glistener *l, const struct groute *r) {
  if (!l->usable || !(l->kinds & (unsigned)r->kind)) return 0;
  if (l->from == FROM_ALL) return 1;
  if (l->from == FROM_SAME) return !strcmp(g->k.ns, r->k.ns);
  return selector_matches(c, l->selector, r->k.ns);
}

/* ---- hostnames -------------------------------------------------------------- */

/* "*.a.com" covers "x.a.com" and "x.y.a.com" (Gateway API suffix wildcards). */
static int wildcard_covers(const char *w, const char *h) {
  size_t wl = strlen(w) - 1, hl = strlen(h); /* w + 1 = ".a.com" */
  return hl > wl && !strcmp(h + hl - wl, w + 1) && h[0] != '*';
}

/* The intersection of a listener hostname and a route hostname (NULL = none; "" = any). */
const char *ghost_intersect(const char *lh, const char *rh) {
  if (!lh || !*lh) return rh ? rh : "";
  if (!rh || !*rh) return lh;
  if (!strcmp(lh, rh)) return lh;
  int lw = lh[0] == '*', rw = rh[0] == '*';
  if (lw && !rw) return wildcard_covers(lh, rh) ? rh : NULL;
  if (rw && !lw) return wildcard_covers(rh, lh) ? lh : NULL;
  if (lw && rw) {
    /* two wildcards: the longer one when the shorter's suffix covers it */
    size_t a = strlen(lh), b = strlen(rh);
    const char *longer = a > b ? lh : rh, *shorter = a > b ? rh : lh;
    size_t sl = strlen(shorter) - 1;
    return !strcmp(longer + strlen(longer) - sl, shorter + 1) ? longer : NULL;
  }
  return NULL;
}

/* ---- routes: parents ---------------------------------------------------------- */

static int route_hostnames(struct gctx *c, struct groute *r) {
  json_t *hs = json_object_get(json_object_get(r->k.o, "spec"), "hostnames"), *h;
  size_t i;
  r->hostnames = pool_alloc(&c->pool, (json_array_size(hs) + 1) * sizeof(*r->hostnames));
  if (!r->hostnames) return -1;
  json_array_foreach(hs, i, h) {
    char buf[300];
    const char *why, *s = json_string_value(h);
    if (!s || ghost_normalize(s, buf, sizeof(buf), &why) < 0) {
      greject(c, r->kind_str, &r->k, "%s %s: hostname \"%.200s\" %s", r->kind_str, r->k.key,
              s ? s : "", s ? why : "is not a string");
      return -1;
    }
    r->hostnames[r->n_hostnames++] = pool_strdup(&c->pool, buf);
  }
  return 0;
}

static void parent_attach(struct gctx *c, struct groute *r, struct gparent *p) {
  struct ggateway *g = p->gw;
  size_t matched = 0, allowed = 0;
  p->attached = pool_alloc(&c->pool, (g->n_ls + 1) * sizeof(*p->attached));
  if (!p->attached) return;
  for (size_t i = 0; i < g->n_ls; i++) {
    struct glistener *l = &g->ls[i];
    if (p->section && strcmp(p->section, l->name) != 0) continue;
    if (p->port && p->port != l->port) continue;
    matched++;
    if (!listener_allows(c, g, l, r)) continue;
    allowed++;
    int hosts = r->n_hostnames == 0;
    for (size_t k = 0; k < r->n_hostnames && !hosts; k++)
      hosts = ghost_intersect(l->hostname, r->hostnames[k]) != NULL;
    if (hosts) p->attached[p->n_attached++] = l;
  }
  if (matched == 0)
    gconds_set(&p->conds, "Accepted", 0, "NoMatchingParent",
               pool_printf(&c->pool, "Gateway %s has no listener%s%s%s", g->k.key,
                           p->section ? " named " : "", p->section ? p->section : "",
                           p->port ? " on that port" : ""));
  else if (allowed == 0)
    gconds_set(&p->conds, "Accepted", 0, "NotAllowedByListeners",
               pool_printf(&c->pool, "no listener of Gateway %s allows a %s from namespace %s",
                           g->k.key, r->kind_str, r->k.ns));
  else if (p->n_attached == 0)
    gconds_set(&p->conds, "Accepted", 0, "NoMatchingListenerHostname",
               "no listener hostname intersects the route's hostnames");
  else
    gconds_set(&p->conds, "Accepted", 1, "Accepted", "");
  for (size_t i = 0; i < p->n_attached; i++) p->attached[i]->attached++;
  if (p->n_attached) r->accepted_anywhere = 1;
}

static void route_parents(struct gctx *c, struct groute *r) {
  json_t *refs = json_object_get(json_object_get(r->k.o, "spec"), "parentRefs"), *ref;
  size_t i;
  r->parents = pool_alloc(&c->pool, (json_array_size(refs) + 1) * sizeof(*r->parents));
  if (!r->parents) return;
  int bad_hosts = route_hostnames(c, r) < 0;
  json_array_foreach(refs, i, ref) {
    const char *group = gj_str(ref, "group"), *kind = gj_str(ref, "kind");
    const char *ns = gj_str(ref, "namespace"), *name = gj_str(ref, "name");
    if ((group && strcmp(group, GATEWAY_GROUP) != 0) || (kind && strcmp(kind, "Gateway") != 0) ||
        !name)
      continue; /* another parent kind (a Service for GAMMA): not ours */
    char key[600];
    snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : r->k.ns, name);
    struct ggateway *g = gfind(c->gateways.v, c->gateways.n, sizeof(*g), key);
    if (!g) continue; /* not one of our Gateways: its controller writes this parent's status */
    struct gparent *p = &r->parents[r->n_parents++];
    p->gw = g;
    p->section = gj_str(ref, "sectionName");
    if (p->section && !*p->section) p->section = NULL;
    json_int_t port = json_integer_value(json_object_get(ref, "port"));
    p->port = port > 0 && port < 65536 ? (uint32_t)port : 0;
    if (bad_hosts)
      gconds_set(&p->conds, "Accepted", 0, "UnsupportedValue", "a hostname is not valid");
    else
      parent_attach(c, r, p);
  }
}

/* ---- entry point ------------------------------------------------------------- */

static int gateway_age_cmp(const void *a, const void *b) {
  return gage_cmp(&((const struct groute *)a)->k, &((const struct groute *)b)->k);
}

static void gctx_free(struct gctx *c) {
  for (size_t i = 0; i < c->rej.n; i++) {
    struct syncd_rejection *r = &c->rej.v[i];
    free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
  }
  free(c->rej.v);
  free(c->classes.v), free(c->all_classes.v), free(c->gateways.v), free(c->routes.v);
  free(c->grants.v), free(c->services.v), free(c->slices.v), free(c->secrets.v);
  free(c->namespaces.v), free(c->entries.v), free(c->passthrough.v), free(c->clusters.v);
  pool_free(&c->pool);
}

/* Appends c's rejections to d (they move) and re-sorts d's by (location, reason). */
static int merge_rejections(struct gctx *c, struct syncd_desired *d) {
  if (c->rej.n == 0) return 0;
  struct syncd_rejection *nr = realloc(d->rejected, (d->n_rejected + c->rej.n) * sizeof(*nr));
  if (!nr) return -ENOMEM;
  d->rejected = nr;
  memcpy(nr + d->n_rejected, c->rej.v, c->rej.n * sizeof(*nr));
  d->n_rejected += c->rej.n;
  c->rej.n = 0;
  return 0;
}

int gateway_translate(const struct manifest_set *in, const struct gateway_opts *opts,
                      struct syncd_desired *d) {
  struct gctx c = {.opts = opts};
  for (size_t i = 0; i < in->n_docs; i++) index_doc(&c, in->docs[i].obj, in->docs[i].location, i);
  c.all_classes.n = dedupe(c.all_classes.v, c.all_classes.n, sizeof(struct gobj));
  c.gateways.n = dedupe(c.gateways.v, c.gateways.n, sizeof(struct ggateway));
  c.routes.n = dedupe(c.routes.v, c.routes.n, sizeof(struct groute));
  c.grants.n = dedupe(c.grants.v, c.grants.n, sizeof(struct gobj));
  c.services.n = dedupe(c.services.v, c.services.n, sizeof(struct gobj));
  c.secrets.n = dedupe(c.secrets.v, c.secrets.n, sizeof(struct gsecret));
  c.namespaces.n = dedupe(c.namespaces.v, c.namespaces.n, sizeof(struct gobj));
  gsort(c.slices.v, c.slices.n, sizeof(struct gobj), gobj_cmp);
  classes_decide(&c);
  /* Our Gateways only (sorted by key for lookups); their listeners and conditions. */
  size_t kept = 0;
  for (size_t i = 0; i < c.gateways.n; i++) {
    const char *cls = gj_str(json_object_get(c.gateways.v[i].k.o, "spec"), "gatewayClassName");
    if (class_is_ours(&c, cls)) c.gateways.v[kept++] = c.gateways.v[i];
  }
  c.gateways.n = kept;
  for (size_t i = 0; i < c.gateways.n; i++) gateway_build(&c, &c.gateways.v[i]);
  /* Routes oldest first: the order of entries is the final tie-break of precedence. */
  gsort(c.routes.v, c.routes.n, sizeof(struct groute), gateway_age_cmp);
  for (size_t i = 0; i < c.routes.n; i++) route_parents(&c, &c.routes.v[i]);
  for (size_t i = 0; i < c.routes.n; i++)
    grules_build(&c, &c.routes.v[i], !c.routes.v[i].accepted_anywhere);
  int rc = c.pool.oom ? -ENOMEM : 0;
  if (rc == 0) rc = gemit_merge(&c, in, d);
  if (rc == 0) rc = gstatus_pack(&c, d);
  if (rc == 0) rc = merge_rejections(&c, d);
  if (rc == 0 && c.pool.oom) rc = -ENOMEM;
  gctx_free(&c);
  return rc;
}
