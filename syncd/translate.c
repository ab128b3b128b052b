/*
 * translate — the Ingress v1 rules over plain jansson objects, one object
 * at a time (see translate.h for the rules, translate_internal.h for how
 * the engine in translate_world.c calls them).
 *
 *   - tr_compile_ingress validates one Ingress whole and turns its paths
 *     into route candidates, its backends into cluster references (looked
 *     up through the engine's Service index) and its TLS entries into
 *     claims;
 *   - tr_check_secret decides whether one Secret can be served;
 *   - tr_emit_* pack one resource from what the engine gathered for it:
 *     the winning candidates of a host, the oldest reference to a cluster,
 *     the hosts a certificate serves.
 * Nothing here knows about other objects than those passed in, so the
 * engine can run any of them again when, and only when, an input changed.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/cert_valid.h"
#include "common/hmap.h"
#include "common/validate.h"
#include "syncd/cluster_emit.h"
#include "syncd/translate_internal.h"

/* ---- small containers ---------------------------------------------------- */

void tr_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, size, cmp);
}

const char *jstr(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

json_t *jpath(json_t *o, const char *a, const char *b) {
  return json_object_get(json_object_get(o, a), b);
}

/* ---- rejections ----------------------------------------------------------- */

char *tr_vformat(const char *fmt, va_list ap) {
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) return NULL;
  return s;
}

static char *dupstr(const char *s) {
  return strdup(s ? s : "");
}

/* A reason or host list for Status, logs and terminals: control bytes of
 * tenant text quoted into it become \xHH (a CR/LF or an escape sequence
 * in an Ingress never reaches `syncctl status`). Takes s, returns a new
 * string (or s when clean; NULL stays NULL). */
static char *clean(char *s) {
  if (!s) return NULL;
  size_t extra = 0;
  for (const char *p = s; *p; p++) extra += ((unsigned char)*p < 0x20 || *p == 0x7f) ? 3 : 0;
  if (!extra) return s;
  char *out = malloc(strlen(s) + extra + 1), *o = out;
  if (!out) {
    free(s);
    return NULL;
  }
  for (const char *p = s; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch < 0x20 || ch == 0x7f)
      o += sprintf(o, "\\x%02x", ch);
    else
      *o++ = (char)ch;
  }
  *o = '\0';
  free(s);
  return out;
}

void tr_rejection_clear(struct syncd_rejection *r) {
  free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
  memset(r, 0, sizeof(*r));
}

int tr_rejection(struct syncd_rejection *r, const char *kind, const char *ns, const char *name,
                 const char *location, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = clean(tr_vformat(fmt, ap));
  va_end(ap);
  *r = (struct syncd_rejection){dupstr(kind), dupstr(ns), dupstr(name), reason, dupstr(location)};
  if (!r->kind || !r->ns || !r->name || !r->reason || !r->location) {
    tr_rejection_clear(r);
    return -ENOMEM;
  }
  return 0;
}

void rejlist_clear(struct rejlist *l) {
  for (size_t i = 0; i < l->n; i++) tr_rejection_clear(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

int rejlist_add(struct rejlist *l, struct syncd_rejection *r) {
  struct syncd_rejection *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
  if (!nv) {
    tr_rejection_clear(r);
    return -ENOMEM;
  }
  l->v = nv;
  l->v[l->n++] = *r;
  return 0;
}

int tr_rejection_copy(struct syncd_rejection *dst, const struct syncd_rejection *src) {
  *dst = (struct syncd_rejection){dupstr(src->kind), dupstr(src->ns), dupstr(src->name),
                                  dupstr(src->reason), dupstr(src->location)};
  if (!dst->kind || !dst->ns || !dst->name || !dst->reason || !dst->location) {
    tr_rejection_clear(dst);
    return -ENOMEM;
  }
  return 0;
}

/* ---- value parsing ---------------------------------------------------------- */

/* An annotation value as text (YAML may have typed it as a number or bool). */
const char *tr_annotation(struct pool *p, json_t *obj, const char *name) {
  json_t *v = json_object_get(jpath(obj, "metadata", "annotations"), name);
  if (json_is_string(v)) return json_string_value(v);
  if (json_is_integer(v)) return pool_printf(p, "%lld", (long long)json_integer_value(v));
  if (json_is_true(v)) return "true";
  if (json_is_false(v)) return "false";
  return NULL;
}

/* Decodes base64 (white space ignored) into a NUL-terminated heap buffer; NULL when invalid. */
char *tr_base64_decode(const char *in, size_t *outlen) {
  size_t n = strlen(in), cap = base64_decoded_max(n);
  uint8_t *out = malloc(cap + 1);
  if (!out) return NULL;
  ssize_t o = base64_decode(in, n, out, cap, BASE64_ALLOW_SPACE);
  if (o < 0) {
    free(out);
    return NULL;
  }
  out[o] = '\0';
  *outlen = (size_t)o;
  return (char *)out;
}

/* Lower-cases and validates an Ingress host into out. Returns 0, or -1 with why. */
static int normalize_host(const char *in, char *out, size_t outlen, int *match, const char **why) {
  size_t n = strlen(in);
  if (n == 0) {
    out[0] = '\0';
    *match = EDGE__V1__HOST_MATCH__HOST_MATCH_ANY;
    return 0;
  }
  if (n > 253 || n >= outlen) {
    *why = "is longer than 253 characters";
    return -1;
  }
  for (size_t i = 0; i <= n; i++) out[i] = (char)tolower((unsigned char)in[i]);
  const char *s = out;
  *match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  if (s[0] == '*') {
    if (s[1] != '.' || s[2] == '\0') {
      *why = "has a wildcard that is not a leading \"*.\" label";
      return -1;
    }
    *match = EDGE__V1__HOST_MATCH__HOST_MATCH_WILDCARD;
    s += 2;
  }
  size_t label = 0;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      if (label == 0) {
        *why = "has an empty label";
        return -1;
      }
      if (label > 63) {
        *why = "has a label longer than 63 characters";
        return -1;
      }
      if (p[-1] == '-' || p[-(long)label] == '-') {
        *why = "has a label that starts or ends with '-'";
        return -1;
      }
      if (*p == '\0') break;
      label = 0;
      continue;
    }
    if (!(isalnum((unsigned char)*p) && (unsigned char)*p < 0x80) && *p != '-') {
      *why = *p == '*' ? "has a wildcard that is not a leading \"*.\" label"
                       : "has a character that is not a letter, digit, '-' or '.'";
      return -1;
    }
    label++;
  }
  return 0;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out) {
  if (!s || !*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (max - (uint64_t)(*s - '0')) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* "10m", "512k", "1g", "1024" → bytes. */
static int parse_size(const char *s, uint64_t *out) {
  char num[32];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof(num)) return -1;
  uint64_t mult = 1;
  char last = (char)tolower((unsigned char)s[n - 1]);
  if (last == 'k' || last == 'm' || last == 'g') {
    mult = last == 'k' ? 1024ull : last == 'm' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
    n--;
  }
  memcpy(num, s, n);
  num[n] = '\0';
  uint64_t v;
  if (parse_uint(num, UINT64_MAX / mult, &v) < 0) return -1;
  *out = v * mult;
  return 0;
}

/* "60" or "60s" seconds → milliseconds. */
static int parse_seconds_ms(const char *s, uint32_t *out) {
  char num[32];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof(num)) return -1;
  if (s[n - 1] == 's') n--;
  memcpy(num, s, n);
  num[n] = '\0';
  uint64_t v;
  if (parse_uint(num, UINT32_MAX / 1000, &v) < 0) return -1;
  *out = (uint32_t)(v * 1000);
  return 0;
}

/* ---- one Ingress ------------------------------------------------------------------- */

int ting_age_cmp(const struct ting *x, const struct ting *y) {
  if (x->created && y->created) {
    int r = strcmp(x->created, y->created);
    if (r) return r;
  } else if (x->created || y->created) {
    return x->created ? -1 : 1; /* no timestamp: newest */
  }
  return strcmp(x->id, y->id); /* ids are unique */
}

const char *tr_class_name(json_t *o) {
  const char *cls = jstr(json_object_get(o, "spec"), "ingressClassName");
  if (cls && *cls) return cls;
  json_t *v = json_object_get(jpath(o, "metadata", "annotations"), "kubernetes.io/ingress.class");
  return json_is_string(v) && *json_string_value(v) ? json_string_value(v) : NULL;
}

/* Records why an Ingress is not ours, with the hosts its rules name. */
static int ignore_ingress(struct ting *g, json_t *o, const struct tclasses *cl) {
  json_t *spec = json_object_get(o, "spec");
  const char *cls = g->class_name;
  char *reason = NULL;
  int n;
  if (cls) {
    const char *controller = hmap_gets(cl->foreign, cls);
    if (controller)
      n = asprintf(&reason, "IngressClass %s is not ours (controller %s, ours is %s)", cls,
                   controller, TRANSLATE_CONTROLLER);
    else
      n = asprintf(&reason, "IngressClass %s does not exist", cls);
  } else {
    n = asprintf(&reason, "no ingressClassName and none of our IngressClasses is the default");
  }
  size_t hl = 0;
  char *hosts = calloc(1, 1);
  json_t *rule;
  size_t ri;
  json_array_foreach(json_object_get(spec, "rules"), ri, rule) {
    const char *h = jstr(rule, "host");
    if (!h || !*h || !hosts) continue;
    char *nh = realloc(hosts, hl + strlen(h) + 2);
    if (!nh) {
      free(hosts);
      hosts = NULL;
      break;
    }
    hosts = nh;
    hl += (size_t)sprintf(hosts + hl, "%s%s", hl ? "," : "", h);
  }
  struct syncd_rejection *r = &g->ignored;
  *r = (struct syncd_rejection){dupstr("Ingress"), dupstr(g->ns), dupstr(g->name),
                                clean(n < 0 ? NULL : reason), clean(hosts)};
  if (!r->kind || !r->ns || !r->name || !r->reason || !r->location) {
    tr_rejection_clear(r);
    return -ENOMEM;
  }
  g->has_ignored = 1;
  return 0;
}

/* A header name (RFC 9110 token) and, when value is set, a value without control bytes. */
static int canary_header_ok(const char *name, const char *value) {
  if (!name || !*name || strlen(name) > 128) return 0;
  for (const char *p = name; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p)) return 0;
  for (const char *p = value; p && *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) return 0;
  return !value || strlen(value) <= 256;
}

/* edge.dev/canary, -weight, -weight-total, -by-header, -by-header-value (ingress-nginx's
 * semantics: the header decides first — "always" or the given value: canary, "never": not —
 * then the weight). Every canary-* annotation needs edge.dev/canary: "true". */
static int parse_canary(struct pool *p, json_t *o, struct canary *cy, char *err, size_t errlen) {
  const char *on = tr_annotation(p, o, "edge.dev/canary");
  const char *w = tr_annotation(p, o, "edge.dev/canary-weight");
  const char *t = tr_annotation(p, o, "edge.dev/canary-weight-total");
  cy->header = tr_annotation(p, o, "edge.dev/canary-by-header");
  cy->header_value = tr_annotation(p, o, "edge.dev/canary-by-header-value");
  uint64_t x;
  cy->total = 100;
  if (on && strcmp(on, "true") != 0 && strcmp(on, "false") != 0)
    return snprintf(err, errlen, "annotation edge.dev/canary must be \"true\" or \"false\""), -1;
  cy->on = on && !strcmp(on, "true");
  if (!cy->on && (w || t || cy->header || cy->header_value))
    return snprintf(err, errlen,
                    "canary annotations need edge.dev/canary: \"true\" (ingress-nginx semantics)"),
           -1;
  if (t) {
    if (parse_uint(t, 1000000, &x) < 0 || x == 0)
      return snprintf(err, errlen,
                      "annotation edge.dev/canary-weight-total \"%.40s\" is not 1..1000000", t),
             -1;
    cy->total = (uint32_t)x;
  }
  if (w) {
    if (parse_uint(w, cy->total, &x) < 0)
      return snprintf(err, errlen, "annotation edge.dev/canary-weight \"%.40s\" is not 0..%u", w,
                      cy->total),
             -1;
    cy->weight = (uint32_t)x;
  }
  if (cy->header_value && !cy->header)
    return snprintf(err, errlen, "edge.dev/canary-by-header-value needs edge.dev/canary-by-header"),
           -1;
  if (cy->header && !canary_header_ok(cy->header, cy->header_value))
    return snprintf(err, errlen,
                    "annotation edge.dev/canary-by-header is not a header name, or its value "
                    "has control characters"),
           -1;
  return 0;
}

static int parse_annotations(struct ting *g, json_t *o, const struct ipol_env *env,
                             struct annotations *a, char *err, size_t errlen) {
  memset(a, 0, sizeof(*a));
  const char *v;
  struct pool *p = &g->pool;
  int proto_tls = 0;
  if ((v = tr_annotation(p, o, "edge.dev/backend-protocol"))) {
    if (!strcasecmp(v, "https") || !strcasecmp(v, "grpcs")) {
      proto_tls = 1;
      a->protocol = !strcasecmp(v, "grpcs") ? EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC
                                            : EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1;
    } else if (!strcasecmp(v, "http1") || !strcasecmp(v, "http"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1;
    else if (!strcasecmp(v, "h2c"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C;
    else if (!strcasecmp(v, "grpc"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC;
    else
      return snprintf(err, errlen,
                      "annotation edge.dev/backend-protocol has unknown value \"%s\" (want "
                      "http1, h2c, grpc, https or grpcs)",
                      v),
             -1;
  }
  if ((v = tr_annotation(p, o, "edge.dev/load-balance"))) {
    if (!strcmp(v, "round_robin"))
      a->lb = EDGE__V1__LB_POLICY__LB_POLICY_ROUND_ROBIN;
    else if (!strcmp(v, "least_request"))
      a->lb = EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST;
    else
      return snprintf(err, errlen,
                      "annotation edge.dev/load-balance has unknown value \"%s\" (want "
                      "round_robin or least_request)",
                      v),
             -1;
  }
  if ((v = tr_annotation(p, o, "edge.dev/ssl-redirect"))) {
    if (!strcmp(v, "false"))
      a->ro.disable_ssl_redirect = 1;
    else if (strcmp(v, "true") != 0)
      return snprintf(err, errlen,
                      "annotation edge.dev/ssl-redirect must be \"true\" or \"false\", not \"%s\"",
                      v),
             -1;
  }
  if ((v = tr_annotation(p, o, "edge.dev/rewrite-target"))) {
    /* it becomes part of the upstream request line: path characters only */
    char why[160], q[96];
    if (validate_path(v, why, sizeof(why)) != 0)
      return snprintf(err, errlen, "annotation edge.dev/rewrite-target %s %s",
                      validate_quote(v, q, sizeof(q)), why),
             -1;
    a->ro.rewrite_prefix = pool_strdup(p, v);
  }
  if ((v = tr_annotation(p, o, "edge.dev/proxy-body-size")) &&
      parse_size(v, &a->ro.max_body_bytes) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-body-size \"%s\" is not a size (like 10m, 512k "
                    "or bytes)",
                    v),
           -1;
  if ((v = tr_annotation(p, o, "edge.dev/proxy-read-timeout")) &&
      parse_seconds_ms(v, &a->ro.response_header_timeout_ms) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-read-timeout \"%s\" is not a number of seconds", v),
           -1;
  if ((v = tr_annotation(p, o, "edge.dev/proxy-connect-timeout")) &&
      parse_seconds_ms(v, &a->connect_timeout_ms) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-connect-timeout \"%s\" is not a number of seconds",
                    v),
           -1;
  int rc = ipol_parse(env, proto_tls, &a->pol, err, errlen);
  if (rc == -2) p->oom = 1;
  if (rc < 0) return -1;
  return parse_canary(p, o, &a->cy, err, errlen);
}

/* Growable arrays inside a ting (freed by tr_ting_clear). */
#define TING_PUSH(g, arr, n, item)                                      \
  do {                                                                  \
    void *grown_ = realloc((g)->arr, ((g)->n + 1) * sizeof(*(g)->arr)); \
    if (!grown_) {                                                      \
      (g)->pool.oom = 1;                                                \
    } else {                                                            \
      (g)->arr = grown_;                                                \
      (g)->arr[(g)->n++] = (item);                                      \
    }                                                                   \
  } while (0)

void tr_note_key(struct ting *g, char ***arr, size_t *n, const char *key) {
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*arr)[i], key)) return;
  char *copy = pool_strdup(&g->pool, key);
  char **grown = realloc(*arr, (*n + 1) * sizeof(*grown));
  if (!copy || !grown) {
    g->pool.oom = 1;
    if (grown) *arr = grown;
    return;
  }
  *arr = grown;
  (*arr)[(*n)++] = copy;
}

/* Resolves an IngressBackend to a cluster name, recording the reference. NULL with err on error. */
const char *tr_resolve_backend(struct ting *g, json_t *backend, const struct annotations *a,
                               tr_service_fn svc_fn, void *svc_ud, char *err, size_t errlen) {
  json_t *svc = json_object_get(backend, "service");
  if (!json_is_object(svc)) {
    if (json_object_get(backend, "resource"))
      snprintf(err, errlen, "resource backends are not supported");
    else
      snprintf(err, errlen, "backend has no service");
    return NULL;
  }
  const char *name = jstr(svc, "name");
  if (!name || !*name) {
    snprintf(err, errlen, "backend service has no name");
    return NULL;
  }
  char q[96];
  if (validate_k8s_name(name, 1, NULL, 0) != 0) {
    snprintf(err, errlen, "backend service name %s is not a valid Kubernetes name",
             validate_quote(name, q, sizeof(q)));
    return NULL;
  }
  json_t *port = json_object_get(svc, "port");
  json_t *num = json_object_get(port, "number");
  const char *pname = jstr(port, "name");
  if (!json_is_integer(num) && !(pname && *pname)) {
    snprintf(err, errlen, "backend service %s has no port number or name", name);
    return NULL;
  }
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", g->ns, name);
  tr_note_key(g, &g->svc_keys, &g->n_svc_keys, key);
  json_t *s = svc_fn(svc_ud, key);
  if (!s) {
    snprintf(err, errlen, "service %s not found", name);
    return NULL;
  }
  json_t *ports = jpath(s, "spec", "ports"), *p, *found = NULL;
  size_t i;
  json_array_foreach(ports, i, p) {
    if (json_is_integer(num)
            ? json_integer_value(json_object_get(p, "port")) == json_integer_value(num)
            : (jstr(p, "name") && !strcmp(jstr(p, "name"), pname))) {
      found = p;
      break;
    }
  }
  if (!found) {
    if (json_is_integer(num))
      snprintf(err, errlen, "service %s has no port %lld", name,
               (long long)json_integer_value(num));
    else
      snprintf(err, errlen, "service %s has no port named %s", name, pname);
    return NULL;
  }
  json_int_t pnum = json_integer_value(json_object_get(found, "port"));
  if (pnum < 1 || pnum > 65535) {
    snprintf(err, errlen, "service %s has an invalid port number", name);
    return NULL;
  }
  const char *cl = pool_printf(&g->pool, "%s/%s:%lld", g->ns, name, (long long)pnum);
  const char *sk = pool_strdup(&g->pool, key);
  if (!cl || !sk) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  int held = 0;
  for (size_t h = 0; h < g->n_held; h++) held |= g->held[h] == s;
  if (!held) {
    json_incref(s);
    TING_PUSH(g, held, n_held, s);
    if (g->pool.oom) json_decref(s);
  }
  struct cluster_ref r = {cl,     sk,        s, found, g, a->protocol, a->lb, a->connect_timeout_ms,
                          a->pol, a->cpolicy};
  TING_PUSH(g, refs, n_refs, r);
  return cl;
}

static int path_type(const char *s, int *type, int *eff) {
  if (!s) return -1;
  if (!strcmp(s, "Exact")) {
    *type = *eff = EDGE__V1__PATH_TYPE__PATH_TYPE_EXACT;
    return 0;
  }
  if (!strcmp(s, "Prefix")) {
    *type = *eff = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
    return 0;
  }
  if (!strcmp(s, "ImplementationSpecific")) {
    *type = EDGE__V1__PATH_TYPE__PATH_TYPE_IMPLEMENTATION_SPECIFIC;
    *eff = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
    return 0;
  }
  return -1;
}

/* The paths of one rule as candidates. 0, or -1 with err. */
static int add_rule(struct ting *g, json_t *rule, size_t ri, const struct annotations *a,
                    tr_service_fn svc_fn, void *svc_ud, char *err, size_t errlen) {
  const char *raw = jstr(rule, "host");
  char host[300];
  int match;
  const char *why;
  json_t *hv = json_object_get(rule, "host");
  if (hv && !json_is_null(hv) && !raw)
    return snprintf(err, errlen, "rule %zu has a host that is not a string", ri), -1;
  if (normalize_host(raw ? raw : "", host, sizeof(host), &match, &why) < 0)
    return snprintf(err, errlen, "host \"%.260s\" %s", raw, why), -1;
  const char *h = pool_strdup(&g->pool, host);
  if (!h) return snprintf(err, errlen, "out of memory"), -1;
  json_t *paths = jpath(rule, "http", "paths"), *p;
  size_t pi;
  json_array_foreach(paths, pi, p) {
    struct cand cd = {
        .host = h, .ing = g, .rule = (int)ri, .pidx = (int)pi, .ro = a->ro, .cy = a->cy};
    const char *pt = jstr(p, "pathType");
    cd.path = jstr(p, "path");
    json_t *pv = json_object_get(p, "path");
    if (pv && !json_is_null(pv) && !cd.path)
      return snprintf(err, errlen, "rule %zu has a path that is not a string", ri), -1;
    if (path_type(pt, &cd.type, &cd.eff) < 0) {
      if (pt)
        snprintf(err, errlen, "path %.200s has unknown pathType \"%.100s\"",
                 cd.path ? cd.path : "(none)", pt);
      else
        snprintf(err, errlen, "path %.200s has no pathType", cd.path ? cd.path : "(none)");
      return -1;
    }
    if (!cd.path && cd.type == EDGE__V1__PATH_TYPE__PATH_TYPE_IMPLEMENTATION_SPECIFIC)
      cd.path = "/";
    if (!cd.path || cd.path[0] != '/')
      return snprintf(err, errlen, "path \"%.200s\" does not start with /", cd.path ? cd.path : ""),
             -1;
    char pwhy[160], pq[96];
    if (validate_path(cd.path, pwhy, sizeof(pwhy)) != 0)
      return snprintf(err, errlen, "path %s %s", validate_quote(cd.path, pq, sizeof(pq)), pwhy), -1;
    cd.path = pool_strdup(&g->pool, cd.path);
    if (!cd.path) return snprintf(err, errlen, "out of memory"), -1;
    cd.key_path = cd.path;
    cd.key_len = strlen(cd.path);
    if (cd.eff == EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX)
      while (cd.key_len > 1 && cd.path[cd.key_len - 1] == '/') cd.key_len--;
    char perr[400];
    cd.cluster =
        tr_resolve_backend(g, json_object_get(p, "backend"), a, svc_fn, svc_ud, perr, sizeof(perr));
    if (!cd.cluster) return snprintf(err, errlen, "path %.200s: %.290s", cd.path, perr), -1;
    TING_PUSH(g, cands, n_cands, cd);
  }
  return 0;
}

/* The TLS entries as claims. 0, or -1 with err. */
static int add_tls(struct ting *g, json_t *spec, char *err, size_t errlen) {
  json_t *tls = json_object_get(spec, "tls"), *t;
  size_t ti;
  int order = 0;
  json_array_foreach(tls, ti, t) {
    const char *secret = jstr(t, "secretName");
    char q[96];
    if (secret && *secret && validate_k8s_name(secret, 1, NULL, 0) != 0)
      return snprintf(err, errlen, "tls secretName %s is not a valid Kubernetes name",
                      validate_quote(secret, q, sizeof(q))),
             -1;
    json_t *hosts = json_object_get(t, "hosts"), *hv;
    size_t hi;
    json_array_foreach(hosts, hi, hv) {
      char host[300];
      int match;
      const char *why;
      const char *raw = json_string_value(hv);
      if (!raw || !*raw) continue;
      if (normalize_host(raw, host, sizeof(host), &match, &why) < 0)
        return snprintf(err, errlen, "tls host \"%.260s\" %s", raw, why), -1;
      struct tls_claim cl = {pool_strdup(&g->pool, host),
                             secret && *secret ? pool_strdup(&g->pool, secret) : NULL, g, order++};
      if (!cl.host) return snprintf(err, errlen, "out of memory"), -1;
      if (cl.secret) {
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", g->ns, cl.secret);
        tr_note_key(g, &g->secret_keys, &g->n_secret_keys, key);
      }
      TING_PUSH(g, claims, n_claims, cl);
    }
  }
  return 0;
}

void tr_ting_clear(struct ting *g) {
  free(g->cands);
  free(g->refs);
  free(g->claims);
  free(g->svc_keys);
  free(g->secret_keys);
  free(g->policy_keys);
  g->policy_keys = NULL;
  g->n_policy_keys = 0;
  g->pol = NULL;
  for (size_t i = 0; i < g->n_held; i++) json_decref(g->held[i]);
  free(g->held);
  g->cands = NULL, g->refs = NULL, g->claims = NULL, g->svc_keys = NULL, g->secret_keys = NULL;
  g->held = NULL;
  g->n_cands = g->n_refs = g->n_claims = g->n_svc_keys = g->n_secret_keys = g->n_held = 0;
  g->db_cluster = NULL;
  g->served = g->valid = 0;
  if (g->has_ignored) tr_rejection_clear(&g->ignored);
  g->has_ignored = 0;
  rejlist_clear(&g->rej);
  pool_free(&g->pool);
}

int tr_compile_ingress(struct ting *g, json_t *o, const struct tclasses *cl, tr_service_fn svc_fn,
                       tr_object_fn obj_fn, void *svc_ud) {
  g->served = g->class_name ? hmap_gets(cl->ours, g->class_name) != NULL : cl->have_default;
  if (!g->served) return ignore_ingress(g, o, cl);
  json_t *spec = json_object_get(o, "spec");
  char err[512] = "";
  struct annotations a;
  struct tr_policy_ctx pc = {g, o, svc_fn, obj_fn, svc_ud};
  struct ipol_env env;
  struct pa_env penv;
  tr_policy_envs(&pc, &env, &penv);
  if (parse_annotations(g, o, &env, &a, err, sizeof(err)) < 0) goto bad;
  if (pa_parse(&penv, &a.ro.policy, &a.cpolicy, err, sizeof(err)) < 0) goto bad;
  json_t *db = json_object_get(spec, "defaultBackend");
  if (db && !json_is_null(db)) {
    char why[480];
    if (!(g->db_cluster = tr_resolve_backend(g, db, &a, svc_fn, svc_ud, why, sizeof(why)))) {
      snprintf(err, sizeof(err), "defaultBackend: %s", why);
      goto bad;
    }
  }
  json_t *rule;
  size_t ri;
  json_array_foreach(json_object_get(spec, "rules"), ri, rule) {
    if (add_rule(g, rule, ri, &a, svc_fn, svc_ud, err, sizeof(err)) < 0) goto bad;
  }
  if (add_tls(g, spec, err, sizeof(err)) < 0) goto bad;
  if (a.pol.has_client_auth && tr_client_auth_hosts_have_tls(g, err, sizeof(err)) != 0) goto bad;
  if (!(g->pol = pool_alloc(&g->pool, sizeof(*g->pol)))) return -ENOMEM;
  *g->pol = a.pol;
  if (g->pool.oom) return -ENOMEM;
  g->valid = 1;
  return 0;
bad:
  if (g->pool.oom) return -ENOMEM;
  /* rejected whole: nothing of it is served, but what it looked up stays
   * recorded, so a Service appearing later makes it try again */
  g->n_cands = g->n_refs = g->n_claims = 0;
  g->db_cluster = NULL;
  struct syncd_rejection r;
  if (tr_rejection(&r, "Ingress", g->ns, g->name, g->location, "%s: %s", g->id, err) < 0 ||
      rejlist_add(&g->rej, &r) < 0)
    return -ENOMEM;
  return 0;
}

/* ---- one Secret --------------------------------------------------------------------------- */

static void secret_problem(struct tobj *s, int *oom, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void secret_problem(struct tobj *s, int *oom, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  s->problem = tr_vformat(fmt, ap);
  va_end(ap);
  if (!s->problem) *oom = 1;
}

/* The decoded tls.crt and tls.key of Secret object o (heap, the caller
 * frees both). 0, or -1 with why (NULL when out of memory). */
static int secret_values(json_t *o, char *vals[2], size_t lens[2], char **why) {
  static const char *const names[2] = {"tls.crt", "tls.key"};
  json_t *data = json_object_get(o, "data"), *sdata = json_object_get(o, "stringData");
  vals[0] = vals[1] = NULL;
  *why = NULL;
  for (int k = 0; k < 2; k++) {
    const char *plain = jstr(sdata, names[k]), *b64 = jstr(data, names[k]);
    if (plain) {
      lens[k] = strlen(plain);
      if (!(vals[k] = strdup(plain))) goto fail;
    } else if (b64) {
      vals[k] = tr_base64_decode(b64, &lens[k]);
      if (!vals[k]) {
        if (asprintf(why, "key %s is not valid base64", names[k]) < 0) *why = NULL;
        goto fail;
      }
    }
    if (!vals[k] || lens[k] == 0) {
      if (asprintf(why, "missing key %s", names[k]) < 0) *why = NULL;
      goto fail;
    }
  }
  return 0;
fail:
  free(vals[0]);
  free(vals[1]);
  vals[0] = vals[1] = NULL;
  return -1;
}

void tr_check_secret(struct tobj *s, int *oom) {
  if (s->checked) return;
  s->checked = 1;
  const char *type = jstr(s->o, "type");
  if (!type || strcmp(type, "kubernetes.io/tls") != 0) {
    secret_problem(s, oom, "has type %s, want kubernetes.io/tls", type ? type : "(none)");
    return;
  }
  char *vals[2];
  size_t lens[2];
  char *why = NULL;
  if (secret_values(s->o, vals, lens, &why) != 0) {
    s->problem = why;
    if (!why) *oom = 1;
    return;
  }
  /* the proxies' own decision: the same OpenSSL loader and security level */
  char reason[256];
  if (cert_valid_check((const uint8_t *)vals[0], lens[0], (const uint8_t *)vals[1], lens[1],
                       &s->not_after, reason, sizeof(reason)) != 0)
    secret_problem(s, oom, "%s", reason);
  else
    s->ok = 1;
  free(vals[0]);
  free(vals[1]);
}

/* ---- emitting ------------------------------------------------------------------------------ */

int cand_conflict_cmp(const struct cand *x, const struct cand *y) {
  int r = strcmp(x->host, y->host);
  if (r) return r;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  r = memcmp(x->key_path, y->key_path, n);
  if (r) return r;
  if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
  if (x->eff != y->eff) return x->eff < y->eff ? -1 : 1;
  if (x->ing != y->ing) return ting_age_cmp(x->ing, y->ing);
  if (x->rule != y->rule) return x->rule < y->rule ? -1 : 1;
  return x->pidx < y->pidx ? -1 : x->pidx > y->pidx;
}

/* Route order inside a host: longest path first, Exact before Prefix, then path text. */
int cand_route_cmp(const struct cand *x, const struct cand *y) {
  if (x->key_len != y->key_len) return x->key_len > y->key_len ? -1 : 1;
  if (x->eff != y->eff) return x->eff < y->eff ? -1 : 1; /* EXACT (1) < PREFIX (2) */
  int r = memcmp(x->key_path, y->key_path, x->key_len);
  if (r) return r;
  return x->ing == y->ing ? 0 : ting_age_cmp(x->ing, y->ing);
}

static int cand_route_pcmp(const void *a, const void *b) {
  return cand_route_cmp(*(const struct cand *const *)a, *(const struct cand *const *)b);
}

static int ting_ptr_age_cmp(const void *a, const void *b) {
  return ting_age_cmp(*(const struct ting *const *)a, *(const struct ting *const *)b);
}

/* The object a resource came from, for a rejection. */
static const Edge__V1__SourceRef *resource_source(const Edge__V1__Resource *r) {
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      return r->virtual_host->n_routes ? r->virtual_host->routes[0]->source : NULL;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      return r->cluster->source;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      return r->certificate->source;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      return r->default_backend->source;
    default:
      return NULL;
  }
}

/* Packs r, unless the check every proxy runs on what it receives
 * (common/validate) refuses it: the values were checked where they
 * entered, so this only catches what slipped through, and nothing that
 * would make a proxy Nack is ever published (out->refused, out->rej). */
static int pack(Edge__V1__Resource *r, struct emitted *out) {
  char why[512];
  out->refused = 0;
  if (validate_resource(r, why, sizeof(why)) != 0) {
    const Edge__V1__SourceRef *src = resource_source(r);
    out->bytes = NULL;
    out->len = 0;
    out->refused = 1;
    return tr_rejection(&out->rej, src && src->kind ? src->kind : "", src ? src->namespace_ : "",
                        src ? src->name : "", "", "not published: %s", why);
  }
  out->len = edge__v1__resource__get_packed_size(r);
  out->bytes = malloc(out->len ? out->len : 1);
  if (!out->bytes) return -ENOMEM;
  edge__v1__resource__pack(r, out->bytes);
  return 0;
}

static void ingress_ref(Edge__V1__SourceRef *s, const struct ting *g, int rule, int pidx) {
  edge__v1__source_ref__init(s);
  s->kind = "Ingress";
  s->namespace_ = (char *)g->ns;
  s->name = (char *)g->name;
  s->rule_index = rule;
  s->path_index = pidx;
}

/* Route `r` for path `p` served by `by` (the path itself, or its canary), with a header
 * condition when header is set. Options come from the Ingress serving it; o, s and m are r's
 * storage. */
static void fill_route(Edge__V1__Route *r, Edge__V1__RouteOptions *o, Edge__V1__SourceRef *s,
                       Edge__V1__HeaderMatch *m, Edge__V1__HeaderMatch **mp, const struct cand *p,
                       const struct cand *by, const char *header, const char *value) {
  edge__v1__route__init(r);
  edge__v1__route_options__init(o);
  r->path = (char *)p->path;
  r->path_type = p->type;
  r->cluster = (char *)by->cluster;
  o->response_header_timeout_ms = by->ro.response_header_timeout_ms;
  o->max_body_bytes = by->ro.max_body_bytes;
  o->rewrite_prefix = (char *)(by->ro.rewrite_prefix ? by->ro.rewrite_prefix : "");
  o->disable_ssl_redirect = p->ro.disable_ssl_redirect;
  o->basic_auth = by->ro.policy.basic_auth; /* issue 20: auth, limits, CORS */
  o->external_auth = by->ro.policy.external_auth;
  o->rate_limit = by->ro.policy.rate_limit;
  o->cors = by->ro.policy.cors;
  r->options = o;
  ingress_ref(s, by->ing, by->rule, by->pidx);
  r->source = s;
  if (header) { /* the name was checked a token: lower case is the data plane's form */
    edge__v1__header_match__init(m);
    m->name = (char *)header;
    m->value = (char *)value;
    mp[0] = m;
    r->headers = mp;
    r->n_headers = 1;
  }
}

/* The main path's route splits its traffic with the canary by weight; wc/wp are storage. */
static void fill_weights(Edge__V1__Route *r, Edge__V1__WeightedCluster *wc,
                         Edge__V1__WeightedCluster **wp, const struct cand *main,
                         const struct cand *cy) {
  edge__v1__weighted_cluster__init(&wc[0]);
  edge__v1__weighted_cluster__init(&wc[1]);
  wc[0].cluster = (char *)main->cluster;
  wc[0].weight = cy->cy.total - cy->cy.weight;
  wc[1].cluster = (char *)cy->cluster;
  wc[1].weight = cy->cy.weight;
  wp[0] = &wc[0];
  wp[1] = &wc[1];
  r->weighted_clusters = wp;
  r->n_weighted_clusters = 2;
}

/* Per route of a vhost: everything a route points at. */
struct route_store {
  Edge__V1__Route r;
  Edge__V1__RouteOptions o;
  Edge__V1__SourceRef s;
  Edge__V1__HeaderMatch m, *mp[1];
  Edge__V1__WeightedCluster wc[2], *wp[2];
  char header[130];
};

int tr_emit_vhost(const char *host, struct cand **w, size_t n, const char *certificate,
                  int tls_fallback, const Edge__V1__ClientAuth *client_auth, struct emitted *out) {
  tr_sort(w, n, sizeof(*w), cand_route_pcmp);
  Edge__V1__VirtualHost vh;
  edge__v1__virtual_host__init(&vh);
  char name[300];
  snprintf(name, sizeof(name), "vh:%s", host[0] ? host : "*");
  vh.name = name;
  vh.host = (char *)host;
  vh.host_match = !host[0]         ? EDGE__V1__HOST_MATCH__HOST_MATCH_ANY
                  : host[0] == '*' ? EDGE__V1__HOST_MATCH__HOST_MATCH_WILDCARD
                                   : EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  /* A path with a canary may need two more routes: header = value/"always" → canary and
   * header = "never" → the main path. */
  size_t cap = 3 * n;
  Edge__V1__Route **routes = calloc(cap + 1, sizeof(*routes));
  struct route_store *rs = calloc(cap + 1, sizeof(*rs));
  const struct ting **order = calloc(2 * n + 1, sizeof(*order));
  char **ings = calloc(2 * n + 1, sizeof(*ings));
  int rc = -ENOMEM;
  size_t nr = 0, no = 0;
  if (!routes || !rs || !order || !ings) goto out;
  for (size_t i = 0; i < n; i++) {
    struct route_store *x = &rs[nr];
    fill_route(&x->r, &x->o, &x->s, &x->m, x->mp, w[i], w[i], NULL, NULL);
    routes[nr++] = &x->r;
    order[no++] = w[i]->ing;
    const struct cand *cy = w[i]->canary;
    if (!cy) continue;
    order[no++] = cy->ing;
    if (cy->cy.weight > 0) fill_weights(&x->r, x->wc, x->wp, w[i], cy);
    if (!cy->cy.header) continue;
    const char *hv = cy->cy.header_value ? cy->cy.header_value : "always";
    x = &rs[nr];
    snprintf(x->header, sizeof(x->header), "%s", cy->cy.header);
    for (char *q = x->header; *q; q++) *q = (char)tolower((unsigned char)*q);
    fill_route(&x->r, &x->o, &x->s, &x->m, x->mp, w[i], cy, x->header, hv);
    routes[nr++] = &x->r;
    if (cy->cy.header_value) continue;
    struct route_store *y = &rs[nr];
    fill_route(&y->r, &y->o, &y->s, &y->m, y->mp, w[i], w[i], x->header, "never");
    routes[nr++] = &y->r;
  }
  /* Contributing Ingresses (canaries too), oldest first. */
  tr_sort(order, no, sizeof(*order), ting_ptr_age_cmp);
  size_t n_ings = 0;
  for (size_t i = 0; i < no; i++)
    if (i == 0 || order[i] != order[i - 1]) ings[n_ings++] = (char *)order[i]->id;
  vh.n_routes = nr;
  vh.routes = routes;
  vh.n_ingresses = n_ings;
  vh.ingresses = ings;
  vh.certificate = (char *)certificate;
  vh.tls_fallback = tls_fallback;
  vh.client_auth = (Edge__V1__ClientAuth *)client_auth;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  rc = pack(&r, out);
out:
  free(routes), free(rs), free(order), free(ings);
  return rc;
}

int tr_emit_cluster(const struct cluster_ref *ref, json_t *const *slices, size_t n_slices,
                    const struct translate_opts *opts, struct emitted *out) {
  const char *slash = strchr(ref->svc_key, '/');
  char ns[300];
  snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - ref->svc_key) : 0, ref->svc_key);
  struct tr_cluster_decor d = {
      .ref = ref, .opts = opts, .ns = ns, .svc = slash ? slash + 1 : ref->svc_key};
  struct cluster_spec c = {.name = ref->name,
                           .svc = ref->svc,
                           .svc_port = ref->svc_port,
                           .svc_ns = ns,
                           .svc_name = slash ? slash + 1 : ref->svc_key,
                           .protocol = ref->protocol,
                           .lb = ref->lb,
                           .connect_timeout_ms = ref->connect_timeout_ms,
                           .decorate = tr_decorate_cluster,
                           .decorate_arg = &d};
  char why[512];
  memset(out, 0, sizeof(*out));
  int rc = cluster_emit(&c, slices, n_slices, &out->bytes, &out->len, why, sizeof(why));
  pool_free(&d.tmp);
  if (rc != -EINVAL) return rc;
  out->refused = 1; /* as pack() does for the other resources */
  return tr_rejection(&out->rej, "Service", c.svc_ns, c.svc_name, "", "not published: %s", why);
}

int tr_emit_certificate(const struct tobj *s, const char *const *sni, size_t n,
                        struct emitted *out) {
  char *vals[2], *why = NULL;
  size_t lens[2];
  if (secret_values(s->o, vals, lens, &why) != 0) { /* checked ok: only memory fails */
    free(why);
    return -ENOMEM;
  }
  Edge__V1__Certificate cert;
  edge__v1__certificate__init(&cert);
  cert.name = (char *)s->key;
  cert.n_sni_names = n;
  cert.sni_names = (char **)sni;
  cert.cert_pem = (ProtobufCBinaryData){lens[0], (uint8_t *)vals[0]};
  cert.key_pem = (ProtobufCBinaryData){lens[1], (uint8_t *)vals[1]};
  cert.not_after = s->not_after;
  Edge__V1__SourceRef src;
  edge__v1__source_ref__init(&src);
  src.kind = "Secret";
  src.namespace_ = (char *)s->ns;
  src.name = (char *)s->name;
  src.rule_index = src.path_index = -1;
  cert.source = &src;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r.certificate = &cert;
  int rc = pack(&r, out);
  free(vals[0]);
  free(vals[1]);
  return rc;
}

int tr_emit_default_backend(const char *cluster, const struct ting *g, struct emitted *out) {
  Edge__V1__DefaultBackend db;
  edge__v1__default_backend__init(&db);
  db.name = "default";
  db.cluster = (char *)(cluster ? cluster : "");
  Edge__V1__SourceRef src;
  if (g) {
    ingress_ref(&src, g, -1, -1);
    db.source = &src;
  }
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND;
  r.default_backend = &db;
  return pack(&r, out);
}

int tr_emit_default_cert(const struct translate_opts *o, struct emitted *out) {
  out->bytes = NULL;
  out->len = 0;
  out->refused = 0;
  if (!o || !o->default_cert_pem || !o->default_key_pem) return 0;
  Edge__V1__Certificate cert;
  edge__v1__certificate__init(&cert);
  cert.name = "default";
  cert.is_default = 1;
  cert.cert_pem =
      (ProtobufCBinaryData){strlen(o->default_cert_pem), (uint8_t *)o->default_cert_pem};
  cert.key_pem = (ProtobufCBinaryData){strlen(o->default_key_pem), (uint8_t *)o->default_key_pem};
  char why[256];
  if (cert_valid_check(cert.cert_pem.data, cert.cert_pem.len, cert.key_pem.data, cert.key_pem.len,
                       &cert.not_after, why, sizeof(why)) < 0)
    cert.not_after = 0;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r.certificate = &cert;
  return pack(&r, out);
}
