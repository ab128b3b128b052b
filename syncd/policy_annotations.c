/*
 * policy_annotations — parsing of the policy annotations (see
 * policy_annotations.h). Each reader returns 0 (absent or parsed) or -1
 * with the reason; pa_parse stops at the first problem.
 */
#include "syncd/policy_annotations.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"

#define A "edge.dev/"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* A printable rendering of a tenant value for a reason (bounded, escaped). */
static const char *shown(const char *s, char *buf, size_t cap) {
  size_t o = 0;
  for (; s && *s && o + 5 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    else
      buf[o++] = (char)c;
  }
  buf[o] = '\0';
  return buf;
}

static char *dup_n(const struct pa_env *e, const char *s, size_t n) {
  char *d = e->alloc(e->ctx, n + 1);
  if (d) memcpy(d, s, n);
  return d;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out) {
  uint64_t v = 0;
  if (!s || !*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (uint64_t)(*s - '0');
    if (v > max) return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* "1500ms", "2s", "2" (seconds) → ms. */
static int parse_ms(const char *s, uint32_t *out) {
  char num[16];
  size_t n = s ? strlen(s) : 0;
  int ms = n > 2 && strcmp(s + n - 2, "ms") == 0;
  if (ms)
    n -= 2;
  else if (n > 1 && s[n - 1] == 's')
    n--;
  if (n == 0 || n >= sizeof(num)) return -1;
  memcpy(num, s, n);
  num[n] = '\0';
  uint32_t v;
  if (parse_u32(num, ms ? 3600000 : 3600, &v) < 0) return -1;
  *out = ms ? v : v * 1000;
  return 0;
}

/* Splits a comma-separated list into trimmed items (lower-cased when
 * lower); *n items. */
static int split_list(const struct pa_env *e, const char *v, int lower, char ***out, size_t *n) {
  size_t cap = 1;
  for (const char *p = v; *p; p++) cap += *p == ',';
  char **items = e->alloc(e->ctx, cap * sizeof(*items));
  if (!items) return -1;
  *n = 0;
  const char *p = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *end = p;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t')) end--;
    if (end == s) continue;
    char *it = dup_n(e, s, (size_t)(end - s));
    if (!it) return -1;
    for (char *q = it; lower && *q; q++)
      if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    items[(*n)++] = it;
  }
  *out = items;
  return 0;
}

static int parse_bool(const char *v, int *out) {
  if (!strcmp(v, "true")) return *out = 1, 0;
  if (!strcmp(v, "false")) return *out = 0, 0;
  return -1;
}

/* ---- basic auth -------------------------------------------------------------- */

/* The htpasswd lines of Secret name (same namespace, key "auth"). */
static int read_htpasswd(const struct pa_env *e, const char *name, Edge__V1__BasicAuth *b,
                         char *err, size_t errlen) {
  char q[96];
  if (strchr(name, '/'))
    return fail(err, errlen,
                "annotation " A
                "auth-secret \"%s\" names another namespace: only Secrets of the "
                "Ingress's own namespace are read",
                shown(name, q, sizeof(q)));
  json_t *s = e->secret(e->ctx, e->ns, name);
  if (!s) return fail(err, errlen, "auth secret %s not found", shown(name, q, sizeof(q)));
  const char *type = json_string_value(json_object_get(s, "type"));
  if (type && strcmp(type, "Opaque") != 0)
    return fail(err, errlen, "auth secret %s has type %s, want Opaque", shown(name, q, sizeof(q)),
                shown(type, q + 48, 48));
  const char *plain = json_string_value(json_object_get(json_object_get(s, "stringData"), "auth"));
  const char *b64 = json_string_value(json_object_get(json_object_get(s, "data"), "auth"));
  size_t len = 0;
  char *text = NULL;
  if (plain) {
    len = strlen(plain);
    text = dup_n(e, plain, len);
  } else if (b64) {
    size_t bl = strlen(b64);
    text = e->alloc(e->ctx, bl / 4 * 3 + 4);
    int n = text && bl % 4 == 0
                ? EVP_DecodeBlock((unsigned char *)text, (const unsigned char *)b64, (int)bl)
                : -1;
    if (n < 0)
      return fail(err, errlen, "auth secret %s: key auth is not valid base64",
                  shown(name, q, sizeof(q)));
    len = (size_t)n;
    if (bl >= 1 && b64[bl - 1] == '=') len--;
    if (bl >= 2 && b64[bl - 2] == '=') len--;
    text[len] = '\0';
  } else {
    return fail(err, errlen, "auth secret %s has no key auth", shown(name, q, sizeof(q)));
  }
  if (!text || memchr(text, '\0', len)) return fail(err, errlen, "auth secret: bad content");
  size_t cap = 1;
  for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
  if (cap > POLICY_MAX_HTPASSWD_LINES + 1)
    return fail(err, errlen, "auth secret %s has more than %d lines", shown(name, q, sizeof(q)),
                POLICY_MAX_HTPASSWD_LINES);
  b->htpasswd = e->alloc(e->ctx, cap * sizeof(*b->htpasswd));
  if (!b->htpasswd) return -1;
  char *p = text;
  for (size_t lineno = 1; p && *p; lineno++) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    size_t l = strlen(p);
    if (l && p[l - 1] == '\r') p[--l] = '\0';
    char why[200];
    if (l && p[0] != '#') {
      if (policy_check_htpasswd_line(p, why, sizeof(why)) < 0)
        return fail(err, errlen, "auth secret %s line %zu: %s", shown(name, q, sizeof(q)), lineno,
                    why); /* why never holds the hash */
      b->htpasswd[b->n_htpasswd++] = p;
    }
    p = nl ? nl + 1 : NULL;
  }
  if (b->n_htpasswd == 0)
    return fail(err, errlen, "auth secret %s has no htpasswd lines", shown(name, q, sizeof(q)));
  return 0;
}

static int parse_basic(const struct pa_env *e, struct pa_route *r, char *err, size_t errlen) {
  const char *type = e->get(e->ctx, A "auth-type");
  const char *secret = e->get(e->ctx, A "auth-secret");
  char q[96];
  if (!type && !secret) return 0;
  if (!type || strcmp(type, "basic") != 0)
    return fail(err, errlen, "annotation " A "auth-type must be \"basic\" (not \"%s\")",
                shown(type ? type : "", q, sizeof(q)));
  if (!secret || !*secret)
    return fail(err, errlen, "annotation " A "auth-type basic needs " A "auth-secret");
  Edge__V1__BasicAuth *b = e->alloc(e->ctx, sizeof(*b));
  if (!b) return -1;
  edge__v1__basic_auth__init(b);
  const char *realm = e->get(e->ctx, A "auth-realm");
  b->realm = (char *)(realm ? realm : "");
  char *sname = e->alloc(e->ctx, strlen(e->ns) + strlen(secret) + 2);
  if (!sname) return -1;
  sprintf(sname, "%s/%s", e->ns, secret);
  b->secret = sname;
  if (read_htpasswd(e, secret, b, err, errlen) < 0) return -1;
  r->basic_auth = b;
  return 0;
}

/* ---- external auth ----------------------------------------------------------- */

/* "http://SVC[.NS[.svc[.cluster.local]]][:PORT][/PATH]" */
static int parse_ext(const struct pa_env *e, struct pa_route *r, char *err, size_t errlen) {
  const char *url = e->get(e->ctx, A "auth-url");
  char q[160];
  if (!url) return 0;
  if (strncmp(url, "http://", 7) != 0)
    return fail(err, errlen, "annotation " A "auth-url \"%s\" must start with http://",
                shown(url, q, sizeof(q)));
  const char *h = url + 7, *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  char host[256];
  if (hl == 0 || hl >= sizeof(host))
    return fail(err, errlen, "annotation " A "auth-url \"%s\" has no service",
                shown(url, q, sizeof(q)));
  memcpy(host, h, hl);
  host[hl] = '\0';
  long port = 80;
  char *colon = strchr(host, ':');
  if (colon) {
    uint32_t p;
    if (parse_u32(colon + 1, 65535, &p) < 0 || p == 0)
      return fail(err, errlen, "annotation " A "auth-url \"%s\" has a bad port",
                  shown(url, q, sizeof(q)));
    port = p;
    *colon = '\0';
  }
  char *dot = strchr(host, '.');
  if (dot) {
    *dot = '\0';
    const char *ns = dot + 1;
    size_t nl = strcspn(ns, ".");
    const char *rest = ns + nl;
    if (nl != strlen(e->ns) || strncmp(ns, e->ns, nl) != 0 ||
        (*rest && strcmp(rest, ".svc") != 0 && strcmp(rest, ".svc.cluster.local") != 0))
      return fail(err, errlen,
                  "annotation " A
                  "auth-url \"%s\" must name a Service of the Ingress's own "
                  "namespace (SERVICE, SERVICE.%s or SERVICE.%s.svc[.cluster.local])",
                  shown(url, q, sizeof(q)), e->ns, e->ns);
  }
  Edge__V1__ExternalAuth *x = e->alloc(e->ctx, sizeof(*x));
  if (!x) return -1;
  edge__v1__external_auth__init(x);
  char why[300];
  const char *cl = e->service(e->ctx, host, port, why, sizeof(why));
  if (!cl) return fail(err, errlen, "annotation " A "auth-url: %s", why);
  x->cluster = (char *)cl;
  x->path = (char *)(slash ? slash : "/");
  const char *v;
  if ((v = e->get(e->ctx, A "auth-request-headers")) &&
      split_list(e, v, 1, &x->request_headers, &x->n_request_headers) < 0)
    return -1;
  if ((v = e->get(e->ctx, A "auth-response-headers")) &&
      split_list(e, v, 1, &x->response_headers, &x->n_response_headers) < 0)
    return -1;
  if ((v = e->get(e->ctx, A "auth-timeout")) && parse_ms(v, &x->timeout_ms) < 0)
    return fail(err, errlen, "annotation " A "auth-timeout \"%s\" is not a duration (2s, 500ms)",
                shown(v, q, sizeof(q)));
  int b;
  if ((v = e->get(e->ctx, A "auth-fail-open"))) {
    if (parse_bool(v, &b) < 0)
      return fail(err, errlen, "annotation " A "auth-fail-open must be true or false");
    x->fail_open = b;
  }
  r->external_auth = x;
  return 0;
}

/* ---- rate limits -------------------------------------------------------------- */

static int parse_rate(const struct pa_env *e, struct pa_route *r, char *err, size_t errlen) {
  const char *rps = e->get(e->ctx, A "limit-rps"), *rpm = e->get(e->ctx, A "limit-rpm");
  char q[96];
  if (!rps && !rpm) {
    if (e->get(e->ctx, A "limit-burst") || e->get(e->ctx, A "limit-key") ||
        e->get(e->ctx, A "limit-scope"))
      return fail(err, errlen,
                  "annotation " A "limit-burst/-key/-scope needs " A "limit-rps or " A "limit-rpm");
    return 0;
  }
  if (rps && rpm)
    return fail(err, errlen, "annotations " A "limit-rps and " A "limit-rpm both set");
  Edge__V1__RateLimit *l = e->alloc(e->ctx, sizeof(*l));
  if (!l) return -1;
  edge__v1__rate_limit__init(l);
  const char *v = rps ? rps : rpm;
  if (parse_u32(v, POLICY_MAX_RATE, &l->requests) < 0 || l->requests == 0)
    return fail(err, errlen, "annotation " A "%s \"%s\" is not a number in 1..%u",
                rps ? "limit-rps" : "limit-rpm", shown(v, q, sizeof(q)), POLICY_MAX_RATE);
  l->period_seconds = rps ? 1 : 60;
  if ((v = e->get(e->ctx, A "limit-burst")) && parse_u32(v, POLICY_MAX_RATE, &l->burst) < 0)
    return fail(err, errlen, "annotation " A "limit-burst \"%s\" is not a number",
                shown(v, q, sizeof(q)));
  if ((v = e->get(e->ctx, A "limit-key"))) {
    if (!strcmp(v, "client-address")) {
      l->by = EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_CLIENT_ADDRESS;
    } else if (!strncmp(v, "header:", 7)) {
      l->by = EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER;
      char **items;
      size_t n;
      if (split_list(e, v + 7, 1, &items, &n) < 0) return -1;
      if (n != 1) return fail(err, errlen, "annotation " A "limit-key needs one header name");
      l->header = items[0];
    } else {
      return fail(err, errlen,
                  "annotation " A "limit-key \"%s\" must be client-address or header:NAME",
                  shown(v, q, sizeof(q)));
    }
  }
  if ((v = e->get(e->ctx, A "limit-scope"))) {
    if (!strcmp(v, "cluster"))
      l->scope = EDGE__V1__RATE_LIMIT_SCOPE__RATE_LIMIT_SCOPE_CLUSTER;
    else if (strcmp(v, "local") != 0)
      return fail(err, errlen, "annotation " A "limit-scope must be local or cluster");
  }
  r->rate_limit = l;
  return 0;
}

/* ---- CORS ---------------------------------------------------------------------- */

static int parse_cors(const struct pa_env *e, struct pa_route *r, char *err, size_t errlen) {
  const char *en = e->get(e->ctx, A "enable-cors");
  int on = 0;
  if (!en) return 0;
  if (parse_bool(en, &on) < 0)
    return fail(err, errlen, "annotation " A "enable-cors must be true or false");
  if (!on) return 0;
  Edge__V1__Cors *c = e->alloc(e->ctx, sizeof(*c));
  if (!c) return -1;
  edge__v1__cors__init(c);
  const char *v = e->get(e->ctx, A "cors-allow-origin");
  if (split_list(e, v ? v : "*", 1, &c->allow_origins, &c->n_allow_origins) < 0) return -1;
  if ((v = e->get(e->ctx, A "cors-allow-methods"))) {
    if (split_list(e, v, 0, &c->allow_methods, &c->n_allow_methods) < 0) return -1;
    for (size_t i = 0; i < c->n_allow_methods; i++)
      for (char *p = c->allow_methods[i]; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
  }
  if ((v = e->get(e->ctx, A "cors-allow-headers")) &&
      split_list(e, v, 1, &c->allow_headers, &c->n_allow_headers) < 0)
    return -1;
  if ((v = e->get(e->ctx, A "cors-expose-headers")) &&
      split_list(e, v, 1, &c->expose_headers, &c->n_expose_headers) < 0)
    return -1;
  int b;
  if ((v = e->get(e->ctx, A "cors-allow-credentials"))) {
    if (parse_bool(v, &b) < 0)
      return fail(err, errlen, "annotation " A "cors-allow-credentials must be true or false");
    c->allow_credentials = b;
  }
  if ((v = e->get(e->ctx, A "cors-max-age")) &&
      parse_u32(v, POLICY_MAX_CORS_MAX_AGE, &c->max_age_seconds) < 0)
    return fail(err, errlen, "annotation " A "cors-max-age is not a number of seconds up to %u",
                POLICY_MAX_CORS_MAX_AGE);
  r->cors = c;
  return 0;
}

/* ---- affinity and hashing ------------------------------------------------------ */

static int parse_cluster(const struct pa_env *e, struct pa_cluster *out, char *err, size_t errlen) {
  const char *aff = e->get(e->ctx, A "affinity"), *hash = e->get(e->ctx, A "upstream-hash-by");
  char q[96];
  if (aff) {
    if (strcmp(aff, "cookie") != 0)
      return fail(err, errlen, "annotation " A "affinity must be \"cookie\" (not \"%s\")",
                  shown(aff, q, sizeof(q)));
    Edge__V1__CookieAffinity *a = e->alloc(e->ctx, sizeof(*a));
    if (!a) return -1;
    edge__v1__cookie_affinity__init(a);
    const char *v;
    a->name = (char *)((v = e->get(e->ctx, A "session-cookie-name")) ? v : "");
    a->path = (char *)((v = e->get(e->ctx, A "session-cookie-path")) ? v : "");
    if ((v = e->get(e->ctx, A "session-cookie-max-age")) &&
        parse_u32(v, 10u * 365 * 86400, &a->max_age_seconds) < 0)
      return fail(err, errlen, "annotation " A "session-cookie-max-age is not a number of seconds");
    out->cookie_affinity = a;
  }
  if (hash) {
    Edge__V1__ConsistentHash *h = e->alloc(e->ctx, sizeof(*h));
    if (!h) return -1;
    edge__v1__consistent_hash__init(h);
    if (!strcmp(hash, "source-address")) {
      h->on = EDGE__V1__HASH_ON__HASH_ON_SOURCE_ADDRESS;
    } else if (!strncmp(hash, "header:", 7)) {
      char **items;
      size_t n;
      if (split_list(e, hash + 7, 1, &items, &n) < 0) return -1;
      if (n != 1) return fail(err, errlen, "annotation " A "upstream-hash-by needs one header");
      h->on = EDGE__V1__HASH_ON__HASH_ON_HEADER;
      h->header = items[0];
    } else {
      return fail(err, errlen,
                  "annotation " A "upstream-hash-by \"%s\" must be source-address or header:NAME",
                  shown(hash, q, sizeof(q)));
    }
    out->consistent_hash = h;
  }
  return 0;
}

int pa_parse(const struct pa_env *e, struct pa_route *r, struct pa_cluster *c, char *err,
             size_t errlen) {
  memset(r, 0, sizeof(*r));
  memset(c, 0, sizeof(*c));
  if (parse_basic(e, r, err, errlen) < 0 || parse_ext(e, r, err, errlen) < 0 ||
      parse_rate(e, r, err, errlen) < 0 || parse_cors(e, r, err, errlen) < 0 ||
      parse_cluster(e, c, err, errlen) < 0) {
    if (!err[0]) snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* the checks l7proxy runs again: a value that passes here passes there */
  Edge__V1__RouteOptions ro = EDGE__V1__ROUTE_OPTIONS__INIT;
  ro.basic_auth = r->basic_auth;
  ro.external_auth = r->external_auth;
  ro.rate_limit = r->rate_limit;
  ro.cors = r->cors;
  char why[300];
  if (policy_check_route(&ro, why, sizeof(why)) < 0)
    return fail(err, errlen, "policy annotations: %s", why);
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  Edge__V1__CookieAffinity aff;
  static uint8_t probe_key[32];
  if (c->cookie_affinity) {
    aff = *c->cookie_affinity;
    aff.hmac_key = (ProtobufCBinaryData){sizeof(probe_key), probe_key};
    cl.cookie_affinity = &aff;
  }
  cl.consistent_hash = c->consistent_hash;
  cl.name = "";
  if (policy_check_cluster(&cl, why, sizeof(why)) < 0)
    return fail(err, errlen, "policy annotations: %s", why);
  return 0;
}

void pa_affinity_key(const uint8_t *secret, size_t secret_len, const char *cluster,
                     uint8_t out[32]) {
  unsigned int ol = 32;
  if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)cluster, strlen(cluster),
            out, &ol))
    memset(out, 0, 32);
}
