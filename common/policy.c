/*
 * policy — checks of the per-route and per-cluster policies (see policy.h
 * for the rules). Every check is one pass over bytes with explicit
 * character classes, independent of the locale.
 */
#include "common/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...) {
  if (why && whylen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* A bounded, escaped rendering of an untrusted value for a reason. */
static const char *quote(const char *s, char *buf, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; s && s[i] && o + 5 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    else
      buf[o++] = (char)c;
  }
  if (cap) buf[o < cap ? o : cap - 1] = '\0';
  return buf;
}

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int policy_is_token(const char *s, size_t n) {
  if (!s || n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* Headers a policy may never name: framing, connection-level, pseudo. */
static const char *const forbidden_headers[] = {
    "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade",
    "te",         "trailer",        "proxy-connection",  "host",       "http2-settings"};

int policy_check_header_name(const char *s, char *why, size_t whylen) {
  char q[96];
  size_t n = s ? strlen(s) : 0;
  if (n == 0) return fail(why, whylen, "header name is empty");
  if (n > POLICY_MAX_HEADER_NAME)
    return fail(why, whylen, "header name is longer than %d bytes", POLICY_MAX_HEADER_NAME);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!is_tchar(c) || (c >= 'A' && c <= 'Z'))
      return fail(why, whylen, "header name \"%s\" is not a lower-case token",
                  quote(s, q, sizeof(q)));
  }
  for (size_t i = 0; i < sizeof(forbidden_headers) / sizeof(*forbidden_headers); i++)
    if (strcmp(s, forbidden_headers[i]) == 0)
      return fail(why, whylen, "header %s cannot be used by a policy", s);
  return 0;
}

static int is_b64(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

/* bcrypt's own base64 alphabet: ./A-Za-z0-9 */
static int is_bcrypt64(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '/';
}

int policy_check_htpasswd_line(const char *s, char *why, size_t whylen) {
  const char *colon = s ? strchr(s, ':') : NULL;
  if (!colon) return fail(why, whylen, "htpasswd line has no ':'");
  size_t ul = (size_t)(colon - s);
  if (ul == 0 || ul > POLICY_MAX_USER)
    return fail(why, whylen, "htpasswd user name is empty or longer than %d bytes",
                POLICY_MAX_USER);
  for (size_t i = 0; i < ul; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f) return fail(why, whylen, "htpasswd user name has a bad byte");
  }
  const char *h = colon + 1;
  size_t hl = strlen(h);
  /* never quote the hash: it is a secret */
  if (hl == 60 && h[0] == '$' && h[1] == '2' && (h[2] == 'a' || h[2] == 'b' || h[2] == 'y') &&
      h[3] == '$' && h[4] >= '0' && h[4] <= '3' && h[5] >= '0' && h[5] <= '9' && h[6] == '$') {
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31) return fail(why, whylen, "htpasswd bcrypt cost out of 4..31");
    for (size_t i = 7; i < hl; i++)
      if (!is_bcrypt64((unsigned char)h[i]))
        return fail(why, whylen, "htpasswd bcrypt hash is malformed");
    return 0;
  }
  if (hl == 33 && memcmp(h, "{SHA}", 5) == 0) {
    for (size_t i = 5; i < 32; i++)
      if (!is_b64((unsigned char)h[i]))
        return fail(why, whylen, "htpasswd {SHA} hash is not base64");
    if (h[32] != '=') return fail(why, whylen, "htpasswd {SHA} hash is not base64");
    return 0;
  }
  if (hl >= 6 && memcmp(h, "$apr1$", 6) == 0)
    return fail(why, whylen,
                "htpasswd hash is Apache MD5 ($apr1$), which edge refuses: use bcrypt "
                "(htpasswd -B)");
  return fail(why, whylen, "htpasswd hash is neither bcrypt ($2y$/$2b$/$2a$) nor {SHA}");
}

static int is_host_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int policy_check_origin(const char *s, char *why, size_t whylen) {
  char q[96];
  size_t n = s ? strlen(s) : 0;
  if (n == 1 && s[0] == '*') return 0;
  if (n == 0 || n > POLICY_MAX_ORIGIN) return fail(why, whylen, "origin is empty or too long");
  const char *p = strstr(s, "://");
  if (!p || p == s) return fail(why, whylen, "origin \"%s\" has no scheme", quote(s, q, sizeof(q)));
  for (const char *c = s; c < p; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' ||
          *c == '.'))
      return fail(why, whylen, "origin \"%s\" has a bad scheme", quote(s, q, sizeof(q)));
  const char *h = p + 3;
  if (h[0] == '*') {
    if (h[1] != '.')
      return fail(why, whylen, "origin \"%s\": '*' must be a whole leading label",
                  quote(s, q, sizeof(q)));
    h += 2;
  }
  const char *colon = strchr(h, ':');
  size_t hl = colon ? (size_t)(colon - h) : strlen(h);
  if (hl == 0) return fail(why, whylen, "origin \"%s\" has no host", quote(s, q, sizeof(q)));
  for (size_t i = 0; i < hl; i++)
    if (!is_host_char((unsigned char)h[i]))
      return fail(why, whylen,
                  "origin \"%s\" has a host that is not lower-case letters, digits, "
                  "'-' and '.'",
                  quote(s, q, sizeof(q)));
  if (colon) {
    const char *port = colon + 1;
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5)
      return fail(why, whylen, "origin \"%s\" has a bad port", quote(s, q, sizeof(q)));
    unsigned v = 0;
    for (size_t i = 0; i < pl; i++) {
      if (port[i] < '0' || port[i] > '9')
        return fail(why, whylen, "origin \"%s\" has a bad port", quote(s, q, sizeof(q)));
      v = v * 10 + (unsigned)(port[i] - '0');
    }
    if (v == 0 || v > 65535)
      return fail(why, whylen, "origin \"%s\" has a bad port", quote(s, q, sizeof(q)));
  }
  return 0;
}

/* Visible ASCII without '"' and '\' (quoted-string safe), at most max. */
static int check_visible(const char *s, size_t max, int allow_space) {
  size_t n = s ? strlen(s) : 0;
  if (n > max) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' && allow_space) continue;
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return -1;
  }
  return 0;
}

/* A path with an optional query: '/' first, visible ASCII, no '#'. */
static int check_path_query(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max || s[0] != '/') return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '#' || c == '"' || c == '\\') return -1;
  }
  return 0;
}

static int check_header_list(const char *what, char *const *v, size_t n, char *why, size_t whylen) {
  if (n > POLICY_MAX_HEADERS)
    return fail(why, whylen, "%s: more than %d headers", what, POLICY_MAX_HEADERS);
  char sub[200];
  for (size_t i = 0; i < n; i++)
    if (policy_check_header_name(v[i], sub, sizeof(sub)) < 0)
      return fail(why, whylen, "%s: %s", what, sub);
  return 0;
}

static int check_basic_auth(const Edge__V1__BasicAuth *b, char *why, size_t whylen) {
  if (check_visible(b->realm, POLICY_MAX_REALM, 1) < 0)
    return fail(why, whylen,
                "basic_auth: realm must be at most %d visible characters without "
                "'\"' or '\\'",
                POLICY_MAX_REALM);
  if (b->n_htpasswd == 0) return fail(why, whylen, "basic_auth: no htpasswd lines");
  if (b->n_htpasswd > POLICY_MAX_HTPASSWD_LINES)
    return fail(why, whylen, "basic_auth: more than %d htpasswd lines", POLICY_MAX_HTPASSWD_LINES);
  char sub[200];
  for (size_t i = 0; i < b->n_htpasswd; i++)
    if (policy_check_htpasswd_line(b->htpasswd[i], sub, sizeof(sub)) < 0)
      return fail(why, whylen, "basic_auth: line %zu: %s", i + 1, sub);
  if (check_visible(b->secret, 512, 0) < 0) return fail(why, whylen, "basic_auth: bad secret name");
  return 0;
}

static int check_ext_auth(const Edge__V1__ExternalAuth *e, char *why, size_t whylen) {
  if (!e->cluster || !e->cluster[0] || check_visible(e->cluster, 512, 0) < 0)
    return fail(why, whylen, "external_auth: cluster must be a resource name");
  if (check_path_query(e->path, 1024) < 0)
    return fail(why, whylen,
                "external_auth: path must start with '/' and hold only visible "
                "characters");
  if (e->host && e->host[0]) {
    for (const char *p = e->host; *p; p++)
      if (!is_host_char((unsigned char)*p) && *p != ':')
        return fail(why, whylen, "external_auth: host must be a lower-case host[:port]");
    if (strlen(e->host) > 260) return fail(why, whylen, "external_auth: host is too long");
  }
  if (check_header_list("external_auth: request_headers", e->request_headers, e->n_request_headers,
                        why, whylen) < 0 ||
      check_header_list("external_auth: response_headers", e->response_headers,
                        e->n_response_headers, why, whylen) < 0)
    return -1;
  if (e->timeout_ms > POLICY_MAX_AUTH_TIMEOUT_MS)
    return fail(why, whylen, "external_auth: timeout above %u ms", POLICY_MAX_AUTH_TIMEOUT_MS);
  return 0;
}

static int check_rate_limit(const Edge__V1__RateLimit *r, char *why, size_t whylen) {
  if (r->requests == 0 || r->requests > POLICY_MAX_RATE)
    return fail(why, whylen, "rate_limit: requests %u is not in 1..%u", r->requests,
                POLICY_MAX_RATE);
  if (r->period_seconds > POLICY_MAX_PERIOD_S)
    return fail(why, whylen, "rate_limit: period %u s is above %u s", r->period_seconds,
                POLICY_MAX_PERIOD_S);
  if (r->burst > POLICY_MAX_RATE)
    return fail(why, whylen, "rate_limit: burst %u is above %u", r->burst, POLICY_MAX_RATE);
  if (r->by != EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_CLIENT_ADDRESS &&
      r->by != EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER)
    return fail(why, whylen, "rate_limit: unknown key %d", (int)r->by);
  if (r->scope != EDGE__V1__RATE_LIMIT_SCOPE__RATE_LIMIT_SCOPE_LOCAL &&
      r->scope != EDGE__V1__RATE_LIMIT_SCOPE__RATE_LIMIT_SCOPE_CLUSTER)
    return fail(why, whylen, "rate_limit: unknown scope %d", (int)r->scope);
  char sub[200];
  if (r->by == EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER &&
      policy_check_header_name(r->header, sub, sizeof(sub)) < 0)
    return fail(why, whylen, "rate_limit: %s", sub);
  return 0;
}

static int check_cors(const Edge__V1__Cors *c, char *why, size_t whylen) {
  if (c->n_allow_origins == 0) return fail(why, whylen, "cors: no allowed origins");
  if (c->n_allow_origins > POLICY_MAX_ORIGINS)
    return fail(why, whylen, "cors: more than %d origins", POLICY_MAX_ORIGINS);
  char sub[200];
  for (size_t i = 0; i < c->n_allow_origins; i++)
    if (policy_check_origin(c->allow_origins[i], sub, sizeof(sub)) < 0)
      return fail(why, whylen, "cors: %s", sub);
  if (c->n_allow_methods > POLICY_MAX_HEADERS)
    return fail(why, whylen, "cors: more than %d methods", POLICY_MAX_HEADERS);
  for (size_t i = 0; i < c->n_allow_methods; i++) {
    const char *m = c->allow_methods[i];
    size_t n = m ? strlen(m) : 0;
    int upper = n > 0 && n <= 32 && policy_is_token(m, n);
    for (size_t k = 0; upper && k < n; k++)
      if (m[k] >= 'a' && m[k] <= 'z') upper = 0;
    if (!upper) return fail(why, whylen, "cors: method %zu is not an upper-case token", i + 1);
  }
  if (check_header_list("cors: allow_headers", c->allow_headers, c->n_allow_headers, why, whylen) <
          0 ||
      check_header_list("cors: expose_headers", c->expose_headers, c->n_expose_headers, why,
                        whylen) < 0)
    return -1;
  if (c->max_age_seconds > POLICY_MAX_CORS_MAX_AGE)
    return fail(why, whylen, "cors: max_age above %u s", POLICY_MAX_CORS_MAX_AGE);
  return 0;
}

int policy_check_route(const Edge__V1__RouteOptions *o, char *why, size_t whylen) {
  if (!o) return 0;
  if (o->basic_auth && check_basic_auth(o->basic_auth, why, whylen) < 0) return -1;
  if (o->external_auth && check_ext_auth(o->external_auth, why, whylen) < 0) return -1;
  if (o->rate_limit && check_rate_limit(o->rate_limit, why, whylen) < 0) return -1;
  if (o->cors && check_cors(o->cors, why, whylen) < 0) return -1;
  return 0;
}

int policy_check_cluster(const Edge__V1__Cluster *c, char *why, size_t whylen) {
  if (!c) return 0;
  if (c->cookie_affinity && c->consistent_hash)
    return fail(why, whylen, "both cookie affinity and consistent hashing are set");
  const Edge__V1__CookieAffinity *a = c->cookie_affinity;
  if (a) {
    if (a->name && a->name[0] &&
        (strlen(a->name) > 64 || !policy_is_token(a->name, strlen(a->name))))
      return fail(why, whylen, "cookie_affinity: name is not a token of at most 64 bytes");
    if (a->path && a->path[0]) {
      if (check_path_query(a->path, 512) < 0 || strchr(a->path, ';') || strchr(a->path, ','))
        return fail(why, whylen,
                    "cookie_affinity: path must start with '/' and hold no ';', "
                    "',' or control character");
    }
    if (a->hmac_key.len < 16 || a->hmac_key.len > 64)
      return fail(why, whylen, "cookie_affinity: key must be 16..64 bytes");
  }
  const Edge__V1__ConsistentHash *h = c->consistent_hash;
  if (h) {
    char sub[200];
    if (h->on != EDGE__V1__HASH_ON__HASH_ON_SOURCE_ADDRESS &&
        h->on != EDGE__V1__HASH_ON__HASH_ON_HEADER)
      return fail(why, whylen, "consistent_hash: unknown key %d", (int)h->on);
    if (h->on == EDGE__V1__HASH_ON__HASH_ON_HEADER &&
        policy_check_header_name(h->header, sub, sizeof(sub)) < 0)
      return fail(why, whylen, "consistent_hash: %s", sub);
  }
  return 0;
}
