/*
 * translate — Ingress v1 semantics over plain jansson objects.
 *
 * The work is a few passes over sorted arrays, so 10,000 Ingresses cost
 * sorting, not quadratic lookups:
 *   1. index the objects by kind (Services, Secrets, EndpointSlices sorted
 *      by "namespace/name" for binary search; our IngressClasses);
 *   2. select our Ingresses, order them oldest first and validate each one
 *      whole, turning its paths into route candidates, its backends into
 *      cluster references and its TLS entries into claims;
 *   3. sort the candidates by (host, path, pathType, age): the first of
 *      each run wins, the rest are conflicts reported against the winner;
 *   4. build and pack the resources, sorted by (type, name).
 * Temporary strings live in a pool freed in one shot at the end; only the
 * struct syncd_desired escapes.
 */
#include "syncd/translate.h"

#include "syncd/policy_annotations.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "syncd/default_cert.h"

/* qsort that accepts an empty (NULL) array, which qsort itself must not be given. */
static void sort_array(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  if (n > 1) qsort(base, n, size, cmp);
}

/* ---- small containers ---------------------------------------------------- */

struct pool {
  void **ptrs;
  size_t n, cap;
  int oom;
};

static void *pool_keep(struct pool *p, void *ptr) {
  if (!ptr) {
    p->oom = 1;
    return NULL;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 256;
    void **np = realloc(p->ptrs, cap * sizeof(*np));
    if (!np) {
      free(ptr);
      p->oom = 1;
      return NULL;
    }
    p->ptrs = np;
    p->cap = cap;
  }
  p->ptrs[p->n++] = ptr;
  return ptr;
}

static void *pool_alloc(struct pool *p, size_t n) {
  return pool_keep(p, calloc(1, n ? n : 1));
}

static char *pool_printf(struct pool *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *pool_printf(struct pool *p, const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return pool_keep(p, s);
}

static void pool_free(struct pool *p) {
  for (size_t i = 0; i < p->n; i++) free(p->ptrs[i]);
  free(p->ptrs);
}

#define VEC(T)     \
  struct {         \
    T *v;          \
    size_t n, cap; \
  }

static int vec_reserve(void **v, size_t *cap, size_t want, size_t elem) {
  if (want <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < want) nc *= 2;
  void *nv = realloc(*v, nc * elem);
  if (!nv) return -ENOMEM;
  *v = nv;
  *cap = nc;
  return 0;
}

/* Appends item; on allocation failure sets c->pool.oom and drops it. */
#define VEC_PUSH(c, vec, item)                                                         \
  do {                                                                                 \
    if (vec_reserve((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) < 0) \
      (c)->pool.oom = 1;                                                               \
    else                                                                               \
      (vec).v[(vec).n++] = (item);                                                     \
  } while (0)

/* ---- the secret-check cache ----------------------------------------------- */

struct check_result {
  unsigned char digest[32];
  int ok;
  char *problem; /* NULL when ok */
  int64_t not_after;
};

struct translate_cache {
  struct check_result *old; /* sorted by digest: the previous translation's results */
  size_t n_old;
  VEC(struct check_result) next; /* results used by the current translation */
};

struct translate_cache *translate_cache_new(void) {
  return calloc(1, sizeof(struct translate_cache));
}

static void results_free(struct check_result *r, size_t n) {
  for (size_t i = 0; i < n; i++) free(r[i].problem);
  free(r);
}

void translate_cache_free(struct translate_cache *c) {
  if (!c) return;
  results_free(c->old, c->n_old);
  results_free(c->next.v, c->next.n);
  free(c);
}

static int result_cmp(const void *a, const void *b) {
  return memcmp(((const struct check_result *)a)->digest, ((const struct check_result *)b)->digest,
                32);
}

/* Ends a translation: the results it used become the cache's contents. */
static void cache_rotate(struct translate_cache *c) {
  results_free(c->old, c->n_old);
  sort_array(c->next.v, c->next.n, sizeof(*c->next.v), result_cmp);
  size_t n = 0;
  for (size_t i = 0; i < c->next.n; i++) {
    if (n > 0 && !result_cmp(&c->next.v[n - 1], &c->next.v[i])) {
      free(c->next.v[i].problem);
      continue;
    }
    c->next.v[n++] = c->next.v[i];
  }
  c->old = c->next.v;
  c->n_old = n;
  memset(&c->next, 0, sizeof(c->next));
}

/* ---- the objects --------------------------------------------------------- */

/* A namespaced object indexed by "namespace/name" (EndpointSlices: by "namespace/service"). */
struct kobj {
  json_t *o;
  const char *location;
  const char *ns, *name;
  char *key;
  size_t seq; /* position in the input: of two objects with one key, the later wins */
};

/* A Secret, validated at most once however many Ingresses use it. */
struct secret {
  struct kobj k;
  int checked, ok;
  const char *problem; /* "missing key tls.key", ... */
  const char *crt, *key;
  size_t crt_len, key_len;
  int64_t not_after;
};

struct ingress {
  struct kobj k;
  const char *created; /* creationTimestamp, NULL when absent */
  char *id;            /* "namespace/name" */
  int order;           /* position oldest first */
};

struct route_opts {
  uint32_t response_header_timeout_ms;
  uint64_t max_body_bytes;
  const char *rewrite_prefix;
  int disable_ssl_redirect;
  struct pa_route policy; /* auth, rate limit, CORS (syncd/policy_annotations.c) */
};

struct annotations {
  int protocol; /* Edge__V1__UpstreamProtocol */
  int lb;       /* Edge__V1__LbPolicy */
  uint32_t connect_timeout_ms;
  struct route_opts ro;
  struct pa_cluster cpolicy; /* affinity, consistent hashing */
};

/* One path of one served Ingress, before conflicts are settled. */
struct cand {
  const char *host; /* lower-case, "*.x" wildcard, "" any */
  const char *path;
  const char *key_path; /* path compared for conflicts and length (Prefix: no trailing slash) */
  size_t key_len;
  int type; /* Edge__V1__PathType as written */
  int eff;  /* EXACT or PREFIX: how it behaves */
  const char *cluster;
  struct route_opts ro;
  int ing, rule, pidx; /* ing: index into ingresses (oldest first) */
};

/* A Cluster as referenced by a served Ingress; the oldest reference sets the options. */
struct cluster_ref {
  const char *name; /* "ns/service:port" */
  const struct kobj *svc;
  json_t *svc_port;
  int ing;
  int protocol, lb;
  uint32_t connect_timeout_ms;
  struct pa_cluster policy;
};

struct tls_claim {
  const char *host;
  int ing;
  const char *secret; /* NULL: no secretName (use the default certificate, no fallback) */
};

struct ctx {
  struct pool pool;
  const struct translate_opts *opts;
  VEC(struct ingress) ingresses;
  VEC(struct kobj) services;
  VEC(struct kobj) slices;
  VEC(struct secret) secrets;
  VEC(const char *) classes;        /* names of our IngressClasses */
  VEC(struct kobj) foreign_classes; /* IngressClasses of other controllers (for ignored) */
  int have_default_class;
  VEC(struct cand) cands;
  VEC(struct cluster_ref) clusters;
  VEC(struct tls_claim) claims;
  int default_backend_ing; /* -1: none */
  const char *default_backend_cluster;
  VEC(struct syncd_resource) res;
  VEC(struct syncd_rejection) rej;
  VEC(struct syncd_rejection) ign; /* Ingresses of another class */
  VEC(struct syncd_count) counts;
  VEC(char *) served;
};

/* ---- helpers --------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static json_t *jpath(json_t *o, const char *a, const char *b) {
  return json_object_get(json_object_get(o, a), b);
}

static char *dupstr(const char *s) {
  return strdup(s ? s : "");
}

static void reject(struct ctx *c, const char *kind, const char *ns, const char *name,
                   const char *location, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void reject(struct ctx *c, const char *kind, const char *ns, const char *name,
                   const char *location, const char *fmt, ...) {
  va_list ap;
  char *reason = NULL;
  va_start(ap, fmt);
  if (vasprintf(&reason, fmt, ap) < 0) reason = NULL;
  va_end(ap);
  struct syncd_rejection r = {dupstr(kind), dupstr(ns), dupstr(name), reason, dupstr(location)};
  if (!r.kind || !r.ns || !r.name || !r.reason || !r.location) {
    free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
    c->pool.oom = 1;
    return;
  }
  size_t before = c->rej.n;
  VEC_PUSH(c, c->rej, r);
  if (c->rej.n == before) free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
}

static void count_kind(struct ctx *c, const char *kind) {
  for (size_t i = 0; i < c->counts.n; i++) {
    if (strcmp(c->counts.v[i].kind, kind) == 0) {
      c->counts.v[i].count++;
      return;
    }
  }
  struct syncd_count n = {strdup(kind), 1};
  if (!n.kind) {
    c->pool.oom = 1;
    return;
  }
  size_t before = c->counts.n;
  VEC_PUSH(c, c->counts, n);
  if (c->counts.n == before) free(n.kind);
}

static int kobj_cmp(const void *a, const void *b) {
  const struct kobj *x = a, *y = b;
  int r = strcmp(x->key, y->key);
  if (r) return r;
  return x->seq > y->seq ? -1 : x->seq < y->seq; /* later first: find_first returns it */
}

/* First element with key (arrays sorted by key; struct kobj first in elem). */
static void *find_first(void *base, size_t n, size_t elem, const char *key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const struct kobj *k = (const struct kobj *)((char *)base + mid * elem);
    if (strcmp(k->key, key) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < n && strcmp(((const struct kobj *)((char *)base + lo * elem))->key, key) == 0)
    return (char *)base + lo * elem;
  return NULL;
}

/* An annotation value as text (YAML may have typed it as a number or bool). */
static const char *annotation(struct ctx *c, json_t *obj, const char *name) {
  json_t *v = json_object_get(jpath(obj, "metadata", "annotations"), name);
  if (json_is_string(v)) return json_string_value(v);
  if (json_is_integer(v)) return pool_printf(&c->pool, "%lld", (long long)json_integer_value(v));
  if (json_is_true(v)) return "true";
  if (json_is_false(v)) return "false";
  return NULL;
}

/* Decodes base64 (white space ignored). Returns a NUL-terminated pool buffer or NULL when invalid.
 */
static char *base64_decode_pool(struct pool *p, const char *in, size_t *outlen) {
  size_t n = strlen(in), cap = base64_decoded_max(n);
  uint8_t *out = pool_alloc(p, cap + 1);
  if (!out) return NULL;
  ssize_t o = base64_decode(in, n, out, cap, BASE64_ALLOW_SPACE);
  if (o < 0) return NULL;
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

/* ---- pass 1: index ------------------------------------------------------------ */

static int kobj_init(struct ctx *c, struct kobj *k, json_t *o, const char *location) {
  k->o = o;
  k->location = location;
  k->ns = jstr(json_object_get(o, "metadata"), "namespace");
  if (!k->ns || !*k->ns) k->ns = "default";
  k->name = jstr(json_object_get(o, "metadata"), "name");
  if (!k->name || !*k->name) return -1;
  k->key = pool_printf(&c->pool, "%s/%s", k->ns, k->name);
  return k->key ? 0 : -1;
}

static void index_object(struct ctx *c, json_t *o, const char *location, size_t seq) {
  const char *kind = jstr(o, "kind");
  if (!kind || !*kind) {
    reject(c, "", "", "", location, "%s: object has no kind", location);
    return;
  }
  count_kind(c, kind);
  const char *api = jstr(o, "apiVersion");
  const char *want = !strcmp(kind, "Ingress") || !strcmp(kind, "IngressClass")
                         ? "networking.k8s.io/v1"
                     : !strcmp(kind, "EndpointSlice")                      ? "discovery.k8s.io/v1"
                     : !strcmp(kind, "Service") || !strcmp(kind, "Secret") ? "v1"
                                                                           : NULL;
  if (!want) return; /* a kind we do not use: counted, otherwise ignored */
  struct kobj k = {.seq = seq};
  if (kobj_init(c, &k, o, location) < 0) {
    reject(c, kind, k.ns, "", location, "%s: %s has no metadata.name", location, kind);
    return;
  }
  if (!api || strcmp(api, want) != 0) {
    reject(c, kind, k.ns, k.name, location, "%s: apiVersion %s is not supported (want %s)", k.key,
           api ? api : "(none)", want);
    return;
  }
  if (!strcmp(kind, "Ingress")) {
    const char *created = jstr(json_object_get(o, "metadata"), "creationTimestamp");
    struct ingress ig = {.k = k, .created = created && *created ? created : NULL, .id = k.key};
    VEC_PUSH(c, c->ingresses, ig);
  } else if (!strcmp(kind, "IngressClass")) {
    if (strcmp(jstr(json_object_get(o, "spec"), "controller") ?: "", TRANSLATE_CONTROLLER) != 0) {
      VEC_PUSH(c, c->foreign_classes, k);
      return;
    }
    VEC_PUSH(c, c->classes, k.name);
    const char *def = annotation(c, o, "ingressclass.kubernetes.io/is-default-class");
    if (def && !strcmp(def, "true")) c->have_default_class = 1;
  } else if (!strcmp(kind, "Service")) {
    VEC_PUSH(c, c->services, k);
  } else if (!strcmp(kind, "EndpointSlice")) {
    const char *svc = jstr(jpath(o, "metadata", "labels"), "kubernetes.io/service-name");
    if (!svc || !*svc) return; /* not owned by a Service: nothing routes to it */
    k.key = pool_printf(&c->pool, "%s/%s", k.ns, svc);
    if (k.key) VEC_PUSH(c, c->slices, k);
  } else { /* Secret */
    const char *type = jstr(o, "type");
    (void)type; /* checked when an Ingress uses it, so the reason names the Ingress */
    struct secret s = {.k = k};
    VEC_PUSH(c, c->secrets, s);
  }
}

static int is_our_class(const struct ctx *c, const char *name) {
  for (size_t i = 0; i < c->classes.n; i++)
    if (strcmp(c->classes.v[i], name) == 0) return 1;
  return 0;
}

static int ingress_is_ours(struct ctx *c, const struct ingress *ig) {
  const char *cls = jstr(json_object_get(ig->k.o, "spec"), "ingressClassName");
  if (cls && *cls) return is_our_class(c, cls);
  const char *legacy = annotation(c, ig->k.o, "kubernetes.io/ingress.class");
  if (legacy && *legacy) return is_our_class(c, legacy);
  return c->have_default_class;
}

/* Records why an Ingress is not ours, with the hosts its rules name. */
static void ignore_ingress(struct ctx *c, const struct ingress *ig) {
  json_t *spec = json_object_get(ig->k.o, "spec");
  const char *cls = jstr(spec, "ingressClassName");
  if (!cls || !*cls) cls = annotation(c, ig->k.o, "kubernetes.io/ingress.class");
  char *reason = NULL;
  int n = -1;
  if (cls && *cls) {
    const char *controller = NULL;
    for (size_t i = 0; i < c->foreign_classes.n; i++)
      if (!strcmp(c->foreign_classes.v[i].name, cls))
        controller = jstr(json_object_get(c->foreign_classes.v[i].o, "spec"), "controller");
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
  struct syncd_rejection r = {dupstr("Ingress"), dupstr(ig->k.ns), dupstr(ig->k.name),
                              n < 0 ? NULL : reason, hosts};
  if (!r.kind || !r.ns || !r.name || !r.reason || !r.location) {
    free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
    c->pool.oom = 1;
    return;
  }
  size_t before = c->ign.n;
  VEC_PUSH(c, c->ign, r);
  if (c->ign.n == before) free(r.kind), free(r.ns), free(r.name), free(r.reason), free(r.location);
}

static int ingress_age_cmp(const void *a, const void *b) {
  const struct ingress *x = a, *y = b;
  if (x->created && y->created) {
    int r = strcmp(x->created, y->created);
    if (r) return r;
  } else if (x->created || y->created) {
    return x->created ? -1 : 1; /* no timestamp: newest */
  }
  return strcmp(x->id, y->id); /* ids are unique by now */
}

static int ingress_id_cmp(const void *a, const void *b) {
  const struct ingress *x = a, *y = b;
  int r = strcmp(x->id, y->id);
  if (r) return r;
  return x->k.seq > y->k.seq ? -1 : x->k.seq < y->k.seq; /* the copy read last first */
}

/* ---- pass 2: one Ingress ------------------------------------------------------- */

static int parse_annotations(struct ctx *c, const struct ingress *ig, struct annotations *a,
                             char *err, size_t errlen) {
  memset(a, 0, sizeof(*a));
  const char *v;
  json_t *o = ig->k.o;
  if ((v = annotation(c, o, "edge.dev/backend-protocol"))) {
    if (!strcasecmp(v, "http1") || !strcasecmp(v, "http"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_HTTP1;
    else if (!strcasecmp(v, "h2c"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C;
    else if (!strcasecmp(v, "grpc"))
      a->protocol = EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC;
    else
      return snprintf(err, errlen,
                      "annotation edge.dev/backend-protocol has unknown value \"%s\" (want "
                      "http1, h2c or grpc)",
                      v),
             -1;
  }
  if ((v = annotation(c, o, "edge.dev/load-balance"))) {
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
  if ((v = annotation(c, o, "edge.dev/ssl-redirect"))) {
    if (!strcmp(v, "false"))
      a->ro.disable_ssl_redirect = 1;
    else if (strcmp(v, "true") != 0)
      return snprintf(err, errlen,
                      "annotation edge.dev/ssl-redirect must be \"true\" or \"false\", not \"%s\"",
                      v),
             -1;
  }
  if ((v = annotation(c, o, "edge.dev/rewrite-target"))) {
    if (v[0] != '/')
      return snprintf(err, errlen,
                      "annotation edge.dev/rewrite-target must start with /, not \"%s\"", v),
             -1;
    a->ro.rewrite_prefix = v;
  }
  if ((v = annotation(c, o, "edge.dev/proxy-body-size")) &&
      parse_size(v, &a->ro.max_body_bytes) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-body-size \"%s\" is not a size (like 10m, 512k "
                    "or bytes)",
                    v),
           -1;
  if ((v = annotation(c, o, "edge.dev/proxy-read-timeout")) &&
      parse_seconds_ms(v, &a->ro.response_header_timeout_ms) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-read-timeout \"%s\" is not a number of seconds", v),
           -1;
  if ((v = annotation(c, o, "edge.dev/proxy-connect-timeout")) &&
      parse_seconds_ms(v, &a->connect_timeout_ms) < 0)
    return snprintf(err, errlen,
                    "annotation edge.dev/proxy-connect-timeout \"%s\" is not a number of seconds",
                    v),
           -1;
  return 0;
}

/* Resolves an IngressBackend to a cluster name, recording the reference. NULL with err on error. */
static const char *resolve_backend(struct ctx *c, int ing_index, json_t *backend,
                                   const struct annotations *a, char *err, size_t errlen) {
  const struct ingress *ig = &c->ingresses.v[ing_index];
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
  json_t *port = json_object_get(svc, "port");
  json_t *num = json_object_get(port, "number");
  const char *pname = jstr(port, "name");
  if (!json_is_integer(num) && !(pname && *pname)) {
    snprintf(err, errlen, "backend service %s has no port number or name", name);
    return NULL;
  }
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ig->k.ns, name);
  const struct kobj *s = find_first(c->services.v, c->services.n, sizeof(struct kobj), key);
  if (!s) {
    snprintf(err, errlen, "service %s not found", name);
    return NULL;
  }
  json_t *ports = jpath(s->o, "spec", "ports"), *p, *found = NULL;
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
  const char *cl = pool_printf(&c->pool, "%s/%s:%lld", ig->k.ns, name, (long long)pnum);
  if (!cl) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  struct cluster_ref r = {cl,        s, found, ing_index, a->protocol, a->lb, a->connect_timeout_ms,
                          a->cpolicy};
  VEC_PUSH(c, c->clusters, r);
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

static int valid_path_chars(const char *p) {
  for (; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return 0;
  return 1;
}

/* ---- policy annotations (syncd/policy_annotations.c) -------------------------- */

struct pa_ctx {
  struct ctx *c;
  int ing;
};

static const char *pa_get(void *ctx, const char *name) {
  struct pa_ctx *p = ctx;
  return annotation(p->c, p->c->ingresses.v[p->ing].k.o, name);
}

static json_t *pa_secret(void *ctx, const char *ns, const char *name) {
  struct pa_ctx *p = ctx;
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ns, name);
  struct secret *s = find_first(p->c->secrets.v, p->c->secrets.n, sizeof(struct secret), key);
  return s ? s->k.o : NULL;
}

/* The auth service's cluster: plain HTTP/1.1 and no balancing policy, whatever the
 * Ingress's own backends use. */
static const char *pa_service(void *ctx, const char *svc, long port, char *err, size_t errlen) {
  struct pa_ctx *p = ctx;
  json_t *b =
      json_pack("{s:{s:s, s:{s:I}}}", "service", "name", svc, "port", "number", (json_int_t)port);
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  struct annotations plain;
  memset(&plain, 0, sizeof(plain));
  const char *cl = resolve_backend(p->c, p->ing, b, &plain, err, errlen);
  json_decref(b);
  return cl;
}

static void *pa_alloc(void *ctx, size_t n) {
  struct pa_ctx *p = ctx;
  return pool_alloc(&p->c->pool, n);
}

/* Validates Ingress i whole and, when it is valid, adds its candidates, clusters and claims. */
static void add_ingress(struct ctx *c, int i) {
  struct ingress *ig = &c->ingresses.v[i];
  json_t *spec = json_object_get(ig->k.o, "spec");
  size_t cands0 = c->cands.n, clusters0 = c->clusters.n, claims0 = c->claims.n;
  char err[512] = "";
  struct annotations a;
  const char *db_cluster = NULL;
  if (parse_annotations(c, ig, &a, err, sizeof(err)) < 0) goto bad;
  struct pa_ctx pctx = {c, i};
  struct pa_env penv = {&pctx, ig->k.ns, pa_get, pa_secret, pa_service, pa_alloc};
  if (pa_parse(&penv, &a.ro.policy, &a.cpolicy, err, sizeof(err)) < 0) goto bad;
  json_t *db = json_object_get(spec, "defaultBackend");
  if (db && !json_is_null(db)) {
    if (!(db_cluster = resolve_backend(c, i, db, &a, err, sizeof(err)))) {
      char tmp[512];
      snprintf(tmp, sizeof(tmp), "defaultBackend: %.480s", err);
      memcpy(err, tmp, sizeof(err));
      goto bad;
    }
  }
  json_t *rules = json_object_get(spec, "rules"), *rule;
  size_t ri;
  json_array_foreach(rules, ri, rule) {
    const char *raw = jstr(rule, "host");
    char host[300];
    int match;
    const char *why;
    json_t *hv = json_object_get(rule, "host");
    if (hv && !json_is_null(hv) && !raw) {
      snprintf(err, sizeof(err), "rule %zu has a host that is not a string", ri);
      goto bad;
    }
    if (normalize_host(raw ? raw : "", host, sizeof(host), &match, &why) < 0) {
      snprintf(err, sizeof(err), "host \"%.260s\" %s", raw, why);
      goto bad;
    }
    const char *h = pool_printf(&c->pool, "%s", host);
    if (!h) return; /* out of memory: c->pool.oom fails the whole translation */
    json_t *paths = jpath(rule, "http", "paths"), *p;
    size_t pi;
    json_array_foreach(paths, pi, p) {
      struct cand cd = {.host = h, .ing = i, .rule = (int)ri, .pidx = (int)pi, .ro = a.ro};
      const char *pt = jstr(p, "pathType");
      cd.path = jstr(p, "path");
      json_t *pv = json_object_get(p, "path");
      if (pv && !json_is_null(pv) && !cd.path) {
        snprintf(err, sizeof(err), "rule %zu has a path that is not a string", ri);
        goto bad;
      }
      if (path_type(pt, &cd.type, &cd.eff) < 0) {
        if (pt)
          snprintf(err, sizeof(err), "path %.200s has unknown pathType \"%.100s\"",
                   cd.path ? cd.path : "(none)", pt);
        else
          snprintf(err, sizeof(err), "path %.200s has no pathType", cd.path ? cd.path : "(none)");
        goto bad;
      }
      if (!cd.path && cd.type == EDGE__V1__PATH_TYPE__PATH_TYPE_IMPLEMENTATION_SPECIFIC)
        cd.path = "/";
      if (!cd.path || cd.path[0] != '/') {
        snprintf(err, sizeof(err), "path \"%.200s\" does not start with /", cd.path ? cd.path : "");
        goto bad;
      }
      if (!valid_path_chars(cd.path)) {
        snprintf(err, sizeof(err), "path \"%.200s\" contains spaces or control characters",
                 cd.path);
        goto bad;
      }
      cd.key_path = cd.path;
      cd.key_len = strlen(cd.path);
      if (cd.eff == EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX)
        while (cd.key_len > 1 && cd.path[cd.key_len - 1] == '/') cd.key_len--;
      char perr[400];
      cd.cluster = resolve_backend(c, i, json_object_get(p, "backend"), &a, perr, sizeof(perr));
      if (!cd.cluster) {
        snprintf(err, sizeof(err), "path %.200s: %.290s", cd.path, perr);
        goto bad;
      }
      VEC_PUSH(c, c->cands, cd);
    }
  }
  json_t *tls = json_object_get(spec, "tls"), *t;
  size_t ti;
  json_array_foreach(tls, ti, t) {
    const char *secret = jstr(t, "secretName");
    json_t *hosts = json_object_get(t, "hosts"), *hv;
    size_t hi;
    json_array_foreach(hosts, hi, hv) {
      char host[300];
      int match;
      const char *why;
      const char *raw = json_string_value(hv);
      if (!raw || !*raw) continue;
      if (normalize_host(raw, host, sizeof(host), &match, &why) < 0) {
        snprintf(err, sizeof(err), "tls host \"%.260s\" %s", raw, why);
        goto bad;
      }
      struct tls_claim cl = {pool_printf(&c->pool, "%s", host), i,
                             secret && *secret ? secret : NULL};
      if (!cl.host) return;
      VEC_PUSH(c, c->claims, cl);
    }
  }
  if (db_cluster && c->default_backend_ing < 0) {
    c->default_backend_ing = i;
    c->default_backend_cluster = db_cluster;
  }
  char *id = strdup(ig->id);
  if (!id) {
    c->pool.oom = 1;
    return;
  }
  size_t before = c->served.n;
  VEC_PUSH(c, c->served, id);
  if (c->served.n == before) free(id);
  return;
bad:
  c->cands.n = cands0;
  c->clusters.n = clusters0;
  c->claims.n = claims0;
  reject(c, "Ingress", ig->k.ns, ig->k.name, ig->k.location, "%s: %s", ig->id, err);
}

/* ---- pass 3: conflicts and virtual hosts ------------------------------------------ */

static int cand_conflict_cmp(const void *a, const void *b) {
  const struct cand *x = a, *y = b;
  int r = strcmp(x->host, y->host);
  if (r) return r;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  r = memcmp(x->key_path, y->key_path, n);
  if (r) return r;
  if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
  if (x->eff != y->eff) return x->eff < y->eff ? -1 : 1;
  if (x->ing != y->ing) return x->ing < y->ing ? -1 : 1;
  if (x->rule != y->rule) return x->rule < y->rule ? -1 : 1;
  return x->pidx < y->pidx ? -1 : x->pidx > y->pidx;
}

/* Route order inside a host: longest path first, Exact before Prefix, then path text. */
static int cand_route_cmp(const void *a, const void *b) {
  const struct cand *x = *(const struct cand *const *)a, *y = *(const struct cand *const *)b;
  if (x->key_len != y->key_len) return x->key_len > y->key_len ? -1 : 1;
  if (x->eff != y->eff) return x->eff < y->eff ? -1 : 1; /* EXACT (1) < PREFIX (2) */
  int r = memcmp(x->key_path, y->key_path, x->key_len);
  if (r) return r;
  return x->ing < y->ing ? -1 : x->ing > y->ing;
}

static int int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return x < y ? -1 : x > y;
}

static int claim_cmp(const void *a, const void *b) {
  const struct tls_claim *x = a, *y = b;
  int r = strcmp(x->host, y->host);
  if (r) return r;
  return x->ing < y->ing ? -1 : x->ing > y->ing;
}

static void push_resource(struct ctx *c, int type, const char *name, Edge__V1__Resource *r) {
  size_t len = edge__v1__resource__get_packed_size(r);
  struct syncd_resource out = {type, strdup(name), malloc(len ? len : 1), len};
  if (!out.name || !out.bytes) {
    free(out.name);
    free(out.bytes);
    c->pool.oom = 1;
    return;
  }
  edge__v1__resource__pack(r, out.bytes);
  size_t before = c->res.n;
  VEC_PUSH(c, c->res, out);
  if (c->res.n == before) free(out.name), free(out.bytes);
}

/* Checks a certificate/key pair through the cache. 0 when usable, else -1 with s->problem. */
static int check_pair(struct ctx *c, const char *vals[2], const size_t lens[2], struct secret *s) {
  struct translate_cache *tc = c->opts ? c->opts->cache : NULL;
  struct check_result r = {{0}};
  if (tc) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dl = 0;
    uint64_t l0 = lens[0];
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, &l0, sizeof(l0)) && EVP_DigestUpdate(md, vals[0], lens[0]) &&
             EVP_DigestUpdate(md, vals[1], lens[1]) && EVP_DigestFinal_ex(md, r.digest, &dl);
    EVP_MD_CTX_free(md);
    if (!ok) tc = NULL;
  }
  const struct check_result *hit =
      tc && tc->n_old ? bsearch(&r, tc->old, tc->n_old, sizeof(r), result_cmp) : NULL;
  if (hit) {
    r.ok = hit->ok;
    r.not_after = hit->not_after;
    r.problem = hit->problem ? strdup(hit->problem) : NULL;
  } else {
    char why[128];
    r.ok =
        default_cert_check(vals[0], lens[0], vals[1], lens[1], &r.not_after, why, sizeof(why)) == 0;
    r.problem = r.ok ? NULL : strdup(why);
  }
  if (!r.ok && !r.problem) {
    c->pool.oom = 1;
    return -1;
  }
  s->not_after = r.not_after;
  if (!r.ok) s->problem = pool_printf(&c->pool, "%s", r.problem);
  int ok = r.ok;
  if (tc) {
    size_t before = tc->next.n;
    VEC_PUSH(c, tc->next, r);
    if (tc->next.n == before) free(r.problem);
  } else {
    free(r.problem);
  }
  return ok ? 0 : -1;
}

/* Validates secret ns/name for use by Ingress ig; returns it when usable, else NULL and *why. */
static struct secret *usable_secret(struct ctx *c, const struct ingress *ig, const char *name,
                                    const char **why) {
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ig->k.ns, name);
  struct secret *s = find_first(c->secrets.v, c->secrets.n, sizeof(struct secret), key);
  if (!s) {
    *why = "not found";
    return NULL;
  }
  if (!s->checked) {
    s->checked = 1;
    const char *type = jstr(s->k.o, "type");
    json_t *data = json_object_get(s->k.o, "data"), *sdata = json_object_get(s->k.o, "stringData");
    const char *names[2] = {"tls.crt", "tls.key"};
    const char *vals[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    if (!type || strcmp(type, "kubernetes.io/tls") != 0) {
      s->problem =
          pool_printf(&c->pool, "has type %s, want kubernetes.io/tls", type ? type : "(none)");
      goto done;
    }
    for (int k = 0; k < 2; k++) {
      const char *plain = jstr(sdata, names[k]), *b64 = jstr(data, names[k]);
      if (plain) {
        vals[k] = plain;
        lens[k] = strlen(plain);
      } else if (b64) {
        vals[k] = base64_decode_pool(&c->pool, b64, &lens[k]);
        if (!vals[k]) {
          s->problem = pool_printf(&c->pool, "key %s is not valid base64", names[k]);
          goto done;
        }
      }
      if (!vals[k] || lens[k] == 0) {
        s->problem = pool_printf(&c->pool, "missing key %s", names[k]);
        goto done;
      }
    }
    if (check_pair(c, vals, lens, s) < 0) goto done;
    s->ok = 1;
    s->crt = vals[0], s->crt_len = lens[0];
    s->key = vals[1], s->key_len = lens[1];
  }
done:
  if (!s->ok) {
    *why = s->problem ? s->problem : "is invalid";
    return NULL;
  }
  return s;
}

struct cert_use {
  const char *cert; /* "ns/secret" */
  struct secret *secret;
  const char *host;
  int ing;
};

static int cert_use_cmp(const void *a, const void *b) {
  const struct cert_use *x = a, *y = b;
  int r = strcmp(x->cert, y->cert);
  return r ? r : strcmp(x->host, y->host);
}

static Edge__V1__SourceRef *ingress_ref(struct ctx *c, int ing, int rule, int pidx) {
  Edge__V1__SourceRef *s = pool_alloc(&c->pool, sizeof(*s));
  if (!s) return NULL;
  edge__v1__source_ref__init(s);
  s->kind = "Ingress";
  s->namespace_ = (char *)c->ingresses.v[ing].k.ns;
  s->name = (char *)c->ingresses.v[ing].k.name;
  s->rule_index = rule;
  s->path_index = pidx;
  return s;
}

/* Emits one VirtualHost for winners w[0..n) (all the same host); records certificate uses. */
static void emit_vhost(struct ctx *c, struct cand **w, size_t n) {
  sort_array(w, n, sizeof(*w), cand_route_cmp);
  const char *host = w[0]->host;
  Edge__V1__VirtualHost vh;
  edge__v1__virtual_host__init(&vh);
  vh.name = pool_printf(&c->pool, "vh:%s", host[0] ? host : "*");
  vh.host = (char *)host;
  vh.host_match = !host[0]         ? EDGE__V1__HOST_MATCH__HOST_MATCH_ANY
                  : host[0] == '*' ? EDGE__V1__HOST_MATCH__HOST_MATCH_WILDCARD
                                   : EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  Edge__V1__Route **routes = pool_alloc(&c->pool, n * sizeof(*routes));
  Edge__V1__Route *rv = pool_alloc(&c->pool, n * sizeof(*rv));
  Edge__V1__RouteOptions *ov = pool_alloc(&c->pool, n * sizeof(*ov));
  char **ings = pool_alloc(&c->pool, n * sizeof(*ings));
  if (!vh.name || !routes || !rv || !ov || !ings) return;
  size_t n_ings = 0;
  for (size_t i = 0; i < n; i++) {
    edge__v1__route__init(&rv[i]);
    edge__v1__route_options__init(&ov[i]);
    rv[i].path = (char *)w[i]->path;
    rv[i].path_type = w[i]->type;
    rv[i].cluster = (char *)w[i]->cluster;
    ov[i].response_header_timeout_ms = w[i]->ro.response_header_timeout_ms;
    ov[i].max_body_bytes = w[i]->ro.max_body_bytes;
    ov[i].rewrite_prefix = (char *)(w[i]->ro.rewrite_prefix ? w[i]->ro.rewrite_prefix : "");
    ov[i].disable_ssl_redirect = w[i]->ro.disable_ssl_redirect;
    ov[i].basic_auth = w[i]->ro.policy.basic_auth;
    ov[i].external_auth = w[i]->ro.policy.external_auth;
    ov[i].rate_limit = w[i]->ro.policy.rate_limit;
    ov[i].cors = w[i]->ro.policy.cors;
    rv[i].options = &ov[i];
    rv[i].source = ingress_ref(c, w[i]->ing, w[i]->rule, w[i]->pidx);
    routes[i] = &rv[i];
  }
  /* Contributing Ingresses, oldest first. */
  int *order = pool_alloc(&c->pool, n * sizeof(*order));
  if (!order) return;
  for (size_t i = 0; i < n; i++) order[i] = w[i]->ing;
  sort_array(order, n, sizeof(*order), int_cmp);
  for (size_t i = 0; i < n; i++)
    if (i == 0 || order[i] != order[i - 1]) ings[n_ings++] = c->ingresses.v[order[i]].id;
  vh.n_routes = n;
  vh.routes = routes;
  vh.n_ingresses = n_ings;
  vh.ingresses = ings;
  vh.certificate = "";
  if (host[0]) {
    struct tls_claim key = {host, -1, NULL};
    /* lowest ing for this host: claims sorted by (host, ing) */
    size_t lo = 0, hi = c->claims.n;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (claim_cmp(&c->claims.v[mid], &key) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo < c->claims.n && strcmp(c->claims.v[lo].host, host) == 0) {
      const struct tls_claim *cl = &c->claims.v[lo];
      const struct ingress *ig = &c->ingresses.v[cl->ing];
      const char *why = NULL;
      struct secret *s = cl->secret ? usable_secret(c, ig, cl->secret, &why) : NULL;
      if (s) {
        vh.certificate = s->k.key; /* its Certificate is emitted from the claims */
      } else {
        vh.certificate = "default";
        if (cl->secret) {
          vh.tls_fallback = 1;
          reject(c, "Ingress", ig->k.ns, ig->k.name, ig->k.location, "%s: secret %s %s", ig->id,
                 cl->secret, why);
        }
      }
    }
  }
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  push_resource(c, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, vh.name, &r);
}

static void emit_vhosts(struct ctx *c) {
  VEC(struct cert_use) uses = {0};
  sort_array(c->cands.v, c->cands.n, sizeof(struct cand), cand_conflict_cmp);
  sort_array(c->claims.v, c->claims.n, sizeof(struct tls_claim), claim_cmp);
  struct cand **winners = calloc(c->cands.n + 1, sizeof(*winners));
  if (!winners) {
    c->pool.oom = 1;
    return;
  }
  size_t nw = 0;
  const struct cand *run = NULL; /* first (oldest) candidate of the current (host, path, type) */
  for (size_t i = 0; i < c->cands.n; i++) {
    struct cand *cd = &c->cands.v[i];
    if (nw > 0 && strcmp(winners[nw - 1]->host, cd->host) != 0) {
      emit_vhost(c, winners, nw);
      nw = 0;
    }
    if (run && !strcmp(run->host, cd->host) && run->key_len == cd->key_len &&
        !memcmp(run->key_path, cd->key_path, cd->key_len) && run->eff == cd->eff) {
      const struct ingress *win = &c->ingresses.v[run->ing];
      const struct ingress *lose = &c->ingresses.v[cd->ing];
      reject(c, "Ingress", lose->k.ns, lose->k.name, lose->k.location,
             "%s: path %s on host %s conflicts with %s", lose->id, cd->path,
             cd->host[0] ? cd->host : "*", win->id);
      continue;
    }
    run = cd;
    winners[nw++] = cd;
  }
  if (nw > 0) emit_vhost(c, winners, nw);
  free(winners);

  /* Every host named in a served Ingress's tls section gets its certificate for SNI, even when
   * its routes come from a rule without host; the oldest claim on a host wins. */
  for (size_t i = 0; i < c->claims.n; i++) {
    const struct tls_claim *cl = &c->claims.v[i];
    if (!cl->secret || (i > 0 && !strcmp(c->claims.v[i - 1].host, cl->host))) continue;
    const struct ingress *ig = &c->ingresses.v[cl->ing];
    const char *why = NULL;
    struct secret *s = usable_secret(c, ig, cl->secret, &why);
    if (!s) {
      reject(c, "Ingress", ig->k.ns, ig->k.name, ig->k.location, "%s: secret %s %s", ig->id,
             cl->secret, why);
      continue;
    }
    struct cert_use u = {s->k.key, s, cl->host, cl->ing};
    VEC_PUSH(c, uses, u);
  }

  /* Certificates: one per secret in use, SNI names = the hosts using it. */
  sort_array(uses.v, uses.n, sizeof(struct cert_use), cert_use_cmp);
  for (size_t i = 0; i < uses.n;) {
    size_t j = i;
    while (j < uses.n && !strcmp(uses.v[j].cert, uses.v[i].cert)) j++;
    char **sni = pool_alloc(&c->pool, (j - i) * sizeof(*sni));
    if (!sni) break;
    size_t n_sni = 0;
    for (size_t k = i; k < j; k++)
      if (n_sni == 0 || strcmp(sni[n_sni - 1], uses.v[k].host) != 0)
        sni[n_sni++] = (char *)uses.v[k].host;
    struct secret *s = uses.v[i].secret;
    Edge__V1__Certificate cert;
    edge__v1__certificate__init(&cert);
    cert.name = (char *)s->k.key;
    cert.n_sni_names = n_sni;
    cert.sni_names = sni;
    cert.cert_pem = (ProtobufCBinaryData){s->crt_len, (uint8_t *)s->crt};
    cert.key_pem = (ProtobufCBinaryData){s->key_len, (uint8_t *)s->key};
    cert.not_after = s->not_after;
    Edge__V1__SourceRef src;
    edge__v1__source_ref__init(&src);
    src.kind = "Secret";
    src.namespace_ = (char *)s->k.ns;
    src.name = (char *)s->k.name;
    src.rule_index = src.path_index = -1;
    cert.source = &src;
    Edge__V1__Resource r;
    edge__v1__resource__init(&r);
    r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
    r.certificate = &cert;
    push_resource(c, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, cert.name, &r);
    i = j;
  }
  free(uses.v);
}

/* ---- clusters ---------------------------------------------------------------- */

static int cluster_ref_cmp(const void *a, const void *b) {
  const struct cluster_ref *x = a, *y = b;
  int r = strcmp(x->name, y->name);
  return r ? r : (x->ing < y->ing ? -1 : x->ing > y->ing);
}

static int endpoint_cmp(const void *a, const void *b) {
  const Edge__V1__Endpoint *x = a, *y = b;
  int r = strcmp(x->address, y->address);
  return r ? r : (x->port < y->port ? -1 : x->port > y->port);
}

/* Sort order: as endpoint_cmp, a ready copy before a not-ready one, so the
 * de-duplication below keeps the ready one. */
static int endpoint_sort_cmp(const void *a, const void *b) {
  int r = endpoint_cmp(a, b);
  if (r) return r;
  const Edge__V1__Endpoint *x = a, *y = b;
  return (int)y->ready - (int)x->ready;
}

static void emit_cluster(struct ctx *c, const struct cluster_ref *ref) {
  VEC(Edge__V1__Endpoint) eps = {0};
  const char *port_name = jstr(ref->svc_port, "name");
  if (!port_name) port_name = "";
  json_int_t svc_port = json_integer_value(json_object_get(ref->svc_port, "port"));
  const struct kobj *first =
      find_first(c->slices.v, c->slices.n, sizeof(struct kobj), ref->svc->key);
  if (first) {
    for (const struct kobj *sl = first;
         sl < c->slices.v + c->slices.n && !strcmp(sl->key, ref->svc->key); sl++) {
      json_t *ports = json_object_get(sl->o, "ports"), *p;
      size_t i;
      json_int_t port = -1;
      json_array_foreach(ports, i, p) {
        const char *n = jstr(p, "name");
        if (!strcmp(n ? n : "", port_name)) {
          port = json_integer_value(json_object_get(p, "port"));
          break;
        }
      }
      if (port < 1 || port > 65535) continue;
      json_t *endpoints = json_object_get(sl->o, "endpoints"), *e;
      json_array_foreach(endpoints, i, e) {
        /* Not-ready endpoints are sent with ready = false: proxies never
         * use them, but explain shows them ("0 of 2 endpoints ready"). */
        int ready = !json_is_false(jpath(e, "conditions", "ready"));
        json_t *addrs = json_object_get(e, "addresses"), *a;
        size_t ai;
        json_array_foreach(addrs, ai, a) {
          const char *addr = json_string_value(a);
          if (!addr || !*addr) continue;
          Edge__V1__Endpoint ep;
          edge__v1__endpoint__init(&ep);
          ep.address = (char *)addr;
          ep.port = (uint32_t)port;
          ep.weight = 1;
          ep.ready = ready;
          ep.zone = (char *)(jstr(e, "zone") ? jstr(e, "zone") : "");
          ep.target = (char *)(jstr(json_object_get(e, "targetRef"), "name")
                                   ? jstr(json_object_get(e, "targetRef"), "name")
                                   : "");
          VEC_PUSH(c, eps, ep);
        }
      }
    }
  } else {
    const char *ip = jstr(json_object_get(ref->svc->o, "spec"), "clusterIP");
    if (ip && *ip && strcmp(ip, "None") != 0) {
      Edge__V1__Endpoint ep;
      edge__v1__endpoint__init(&ep);
      ep.address = (char *)ip;
      ep.port = (uint32_t)svc_port;
      ep.weight = 1;
      ep.ready = 1;
      VEC_PUSH(c, eps, ep);
    }
  }
  sort_array(eps.v, eps.n, sizeof(*eps.v), endpoint_sort_cmp);
  Edge__V1__Endpoint **ptrs = pool_alloc(&c->pool, (eps.n + 1) * sizeof(*ptrs));
  size_t n = 0;
  for (size_t i = 0; ptrs && i < eps.n; i++)
    if (n == 0 || endpoint_cmp(ptrs[n - 1], &eps.v[i]) != 0) ptrs[n++] = &eps.v[i];
  Edge__V1__Cluster cl;
  edge__v1__cluster__init(&cl);
  cl.name = (char *)ref->name;
  cl.n_endpoints = n;
  cl.endpoints = ptrs;
  cl.lb_policy = ref->lb;
  cl.protocol = ref->protocol;
  cl.connect_timeout_ms = ref->connect_timeout_ms;
  /* the oldest referencing Ingress's affinity or hashing; the cookie key is derived
   * from syncd's secret and the cluster name, the same on every syncd */
  Edge__V1__CookieAffinity aff;
  uint8_t aff_key[32];
  if (ref->policy.cookie_affinity && c->opts && c->opts->affinity_secret) {
    aff = *ref->policy.cookie_affinity;
    pa_affinity_key(c->opts->affinity_secret, c->opts->affinity_secret_len, ref->name, aff_key);
    aff.hmac_key = (ProtobufCBinaryData){sizeof(aff_key), aff_key};
    cl.cookie_affinity = &aff;
  }
  cl.consistent_hash = ref->policy.consistent_hash;
  Edge__V1__SourceRef src;
  edge__v1__source_ref__init(&src);
  src.kind = "Service";
  src.namespace_ = (char *)ref->svc->ns;
  src.name = (char *)ref->svc->name;
  src.rule_index = src.path_index = -1;
  cl.source = &src;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r.cluster = &cl;
  if (ptrs) push_resource(c, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER, cl.name, &r);
  free(eps.v);
}

static void emit_clusters(struct ctx *c) {
  sort_array(c->clusters.v, c->clusters.n, sizeof(struct cluster_ref), cluster_ref_cmp);
  for (size_t i = 0; i < c->clusters.n; i++)
    if (i == 0 || strcmp(c->clusters.v[i - 1].name, c->clusters.v[i].name) != 0)
      emit_cluster(c, &c->clusters.v[i]);
}

static void emit_default_backend(struct ctx *c) {
  Edge__V1__DefaultBackend db;
  edge__v1__default_backend__init(&db);
  db.name = "default";
  db.cluster = (char *)(c->default_backend_cluster ? c->default_backend_cluster : "");
  if (c->default_backend_ing >= 0) db.source = ingress_ref(c, c->default_backend_ing, -1, -1);
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND;
  r.default_backend = &db;
  push_resource(c, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND, "default", &r);
}

static void emit_default_cert(struct ctx *c) {
  const struct translate_opts *o = c->opts;
  if (!o || !o->default_cert_pem || !o->default_key_pem) return;
  Edge__V1__Certificate cert;
  edge__v1__certificate__init(&cert);
  cert.name = "default";
  cert.is_default = 1;
  cert.cert_pem =
      (ProtobufCBinaryData){strlen(o->default_cert_pem), (uint8_t *)o->default_cert_pem};
  cert.key_pem = (ProtobufCBinaryData){strlen(o->default_key_pem), (uint8_t *)o->default_key_pem};
  char why[128];
  if (default_cert_check(o->default_cert_pem, cert.cert_pem.len, o->default_key_pem,
                         cert.key_pem.len, &cert.not_after, why, sizeof(why)) < 0)
    cert.not_after = 0;
  Edge__V1__Resource r;
  edge__v1__resource__init(&r);
  r.kind_case = EDGE__V1__RESOURCE__KIND_CERTIFICATE;
  r.certificate = &cert;
  push_resource(c, EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE, "default", &r);
}

/* ---- entry point ---------------------------------------------------------------- */

static int resource_cmp(const void *a, const void *b) {
  const struct syncd_resource *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int rejection_cmp(const void *a, const void *b) {
  const struct syncd_rejection *x = a, *y = b;
  int r = strcmp(x->location, y->location);
  if (r) return r;
  return strcmp(x->reason, y->reason);
}

static int ignored_cmp(const void *a, const void *b) {
  const struct syncd_rejection *x = a, *y = b;
  int r = strcmp(x->ns, y->ns);
  return r ? r : strcmp(x->name, y->name);
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int count_cmp(const void *a, const void *b) {
  return strcmp(((const struct syncd_count *)a)->kind, ((const struct syncd_count *)b)->kind);
}

void syncd_desired_free(struct syncd_desired *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_resources; i++) {
    free(d->resources[i].name);
    free(d->resources[i].bytes);
  }
  for (size_t i = 0; i < d->n_rejected; i++) {
    struct syncd_rejection *r = &d->rejected[i];
    free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
  }
  for (size_t i = 0; i < d->n_ignored; i++) {
    struct syncd_rejection *r = &d->ignored[i];
    free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
  }
  for (size_t i = 0; i < d->n_counts; i++) free(d->counts[i].kind);
  for (size_t i = 0; i < d->n_served; i++) free(d->served_ingresses[i]);
  free(d->resources);
  free(d->rejected);
  free(d->ignored);
  free(d->counts);
  free(d->served_ingresses);
  free(d);
}

int translate_desired(const struct manifest_set *in, const struct translate_opts *opts,
                      struct syncd_desired **out) {
  struct ctx c = {.opts = opts, .default_backend_ing = -1};
  *out = NULL;
  for (size_t i = 0; i < in->n_errors; i++)
    reject(&c, "", "", "", in->errors[i].location, "%s: %s", in->errors[i].location,
           in->errors[i].message);
  for (size_t i = 0; i < in->n_docs; i++)
    index_object(&c, in->docs[i].obj, in->docs[i].location, i);

  /* Duplicate objects (same kind and namespace/name): the last one read wins, like kubectl
   * apply (kobj_cmp puts it first). */
  sort_array(c.services.v, c.services.n, sizeof(struct kobj), kobj_cmp);
  sort_array(c.secrets.v, c.secrets.n, sizeof(struct secret), kobj_cmp);
  /* Stable order among slices of one service is not needed: endpoints are sorted later. */
  sort_array(c.slices.v, c.slices.n, sizeof(struct kobj), kobj_cmp);

  /* Drop duplicates (one Ingress in two files): the copy read last is kept. */
  sort_array(c.ingresses.v, c.ingresses.n, sizeof(struct ingress), ingress_id_cmp);
  size_t kept = 0;
  for (size_t i = 0; i < c.ingresses.n; i++) {
    struct ingress *ig = &c.ingresses.v[i];
    if (kept > 0 && !strcmp(c.ingresses.v[kept - 1].id, ig->id)) {
      reject(&c, "Ingress", ig->k.ns, ig->k.name, ig->k.location,
             "%s: duplicate Ingress (also at %s)", ig->id, c.ingresses.v[kept - 1].k.location);
      continue;
    }
    c.ingresses.v[kept++] = *ig;
  }
  c.ingresses.n = kept;
  kept = 0;
  for (size_t i = 0; i < c.ingresses.n; i++) {
    if (ingress_is_ours(&c, &c.ingresses.v[i]))
      c.ingresses.v[kept++] = c.ingresses.v[i];
    else
      ignore_ingress(&c, &c.ingresses.v[i]);
  }
  c.ingresses.n = kept;
  sort_array(c.ingresses.v, c.ingresses.n, sizeof(struct ingress), ingress_age_cmp);
  for (size_t i = 0; i < c.ingresses.n; i++) {
    c.ingresses.v[i].order = (int)i;
    add_ingress(&c, (int)i);
  }
  emit_vhosts(&c);
  emit_clusters(&c);
  emit_default_backend(&c);
  emit_default_cert(&c);

  if (opts && opts->cache) cache_rotate(opts->cache);
  int rc = c.pool.oom ? -ENOMEM : 0;
  sort_array(c.res.v, c.res.n, sizeof(*c.res.v), resource_cmp);
  sort_array(c.rej.v, c.rej.n, sizeof(*c.rej.v), rejection_cmp);
  sort_array(c.ign.v, c.ign.n, sizeof(*c.ign.v), ignored_cmp);
  sort_array(c.counts.v, c.counts.n, sizeof(*c.counts.v), count_cmp);
  sort_array(c.served.v, c.served.n, sizeof(*c.served.v), str_cmp);
  /* Drop repeated rejections (one bad secret used by several hosts of one Ingress). */
  size_t nr = 0;
  for (size_t i = 0; i < c.rej.n; i++) {
    if (nr > 0 && !rejection_cmp(&c.rej.v[nr - 1], &c.rej.v[i])) {
      struct syncd_rejection *r = &c.rej.v[i];
      free(r->kind), free(r->ns), free(r->name), free(r->reason), free(r->location);
      continue;
    }
    c.rej.v[nr++] = c.rej.v[i];
  }
  c.rej.n = nr;
  struct syncd_desired *d = calloc(1, sizeof(*d));
  struct syncd_desired parts = {c.res.v,    c.res.n,    c.rej.v,    c.rej.n,
                                c.counts.v, c.counts.n, c.served.v, c.served.n};
  parts.ignored = c.ign.v;
  parts.n_ignored = c.ign.n;
  if (d) *d = parts;
  if (!d || rc < 0) { /* free what was built, through a heap copy syncd_desired_free accepts */
    struct syncd_desired *tmp = d ? d : malloc(sizeof(*tmp));
    if (tmp) {
      *tmp = parts;
      syncd_desired_free(tmp);
    }
    d = NULL;
    rc = -ENOMEM;
  }
  free(c.ingresses.v);
  free(c.services.v);
  free(c.slices.v);
  free(c.secrets.v);
  free(c.classes.v);
  free(c.foreign_classes.v);
  free(c.cands.v);
  free(c.clusters.v);
  free(c.claims.v);
  pool_free(&c.pool);
  *out = d;
  return rc;
}
