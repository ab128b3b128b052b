/*
 * validate — character-class checks for tenant values and the resource
 * walk over every field that can reach the wire, a log or Status (see
 * validate.h for the rules and who calls what).
 *
 * Every check is a single pass over bytes with an explicit class table, so
 * nothing depends on the locale (isalnum and friends do).
 */
#include "common/validate.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/policy.h"

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

static int is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
static int is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* RFC 3986 unreserved / sub-delims / ':' / '@' (pchar without pct-encoded). */
static int is_pchar(unsigned char c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

/* The reason for a byte that is not allowed: control bytes get their own. */
static int bad_byte(char *why, size_t whylen, unsigned char c, const char *what) {
  if (c < 0x20 || c == 0x7f) return fail(why, whylen, "contains a control character (0x%02x)", c);
  if (c >= 0x80) return fail(why, whylen, "contains a non-ASCII byte (0x%02x)", c);
  if (c == ' ') return fail(why, whylen, "contains a space");
  return fail(why, whylen, "contains '%c', which is not allowed in %s", c, what);
}

int validate_host(const char *s, int allow_wildcard, int allow_empty, char *why, size_t whylen) {
  if (!s) return fail(why, whylen, "is missing");
  size_t n = strlen(s);
  if (n == 0) return allow_empty ? 0 : fail(why, whylen, "is empty");
  if (n > VALIDATE_MAX_HOST)
    return fail(why, whylen, "is longer than %d characters", VALIDATE_MAX_HOST);
  const char *p = s;
  if (p[0] == '*') {
    if (!allow_wildcard) return fail(why, whylen, "is a wildcard, which is not allowed here");
    if (p[1] != '.' || p[2] == '\0')
      return fail(why, whylen, "has a wildcard that is not a leading \"*.\" label");
    p += 2;
  }
  size_t label = 0;
  for (const char *q = p;; q++) {
    unsigned char c = (unsigned char)*q;
    if (c == '.' || c == '\0') {
      if (label == 0) return fail(why, whylen, "has an empty label");
      if (label > 63) return fail(why, whylen, "has a label longer than 63 characters");
      if (q[-1] == '-' || q[-(long)label] == '-')
        return fail(why, whylen, "has a label that starts or ends with '-'");
      if (c == '\0') return 0;
      label = 0;
      continue;
    }
    if (c == '*') return fail(why, whylen, "has a wildcard that is not a leading \"*.\" label");
    if (!is_alpha(c) && !is_digit(c) && c != '-') {
      if (c < 0x20 || c >= 0x7f) return bad_byte(why, whylen, c, "a host name");
      return fail(why, whylen, "has a character that is not a letter, digit, '-' or '.'");
    }
    label++;
  }
}

/* Path characters; query: also '?' and what follows it. */
static int check_path(const char *s, int query, char *why, size_t whylen) {
  if (!s) return fail(why, whylen, "is missing");
  size_t n = strlen(s);
  if (n == 0 || s[0] != '/') return fail(why, whylen, "does not start with /");
  if (n > VALIDATE_MAX_PATH)
    return fail(why, whylen, "is longer than %d characters", VALIDATE_MAX_PATH);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
        return fail(why, whylen, "has a '%%' that is not followed by two hex digits");
      i += 2;
      continue;
    }
    if (c == '/' || is_pchar(c)) continue;
    if (query && c == '?') continue;
    return bad_byte(why, whylen, c, query ? "a redirect path" : "a path");
  }
  return 0;
}

int validate_path(const char *s, char *why, size_t whylen) {
  return check_path(s, 0, why, whylen);
}

int validate_name(const char *s, char *why, size_t whylen) {
  if (!s) return fail(why, whylen, "is missing");
  size_t n = strlen(s);
  if (n == 0) return fail(why, whylen, "is empty");
  if (n > VALIDATE_MAX_NAME)
    return fail(why, whylen, "is longer than %d characters", VALIDATE_MAX_NAME);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') return bad_byte(why, whylen, c, "a name");
  }
  return 0;
}

int validate_k8s_name(const char *s, int subdomain, char *why, size_t whylen) {
  if (!s || !*s) return fail(why, whylen, "is empty");
  size_t n = strlen(s), max = subdomain ? 253 : 63;
  if (n > max) return fail(why, whylen, "is longer than %zu characters", max);
  size_t label = 0;
  for (size_t i = 0;; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c == '.' && subdomain) || c == '\0') {
      if (label == 0 || s[i - 1] == '-' || s[i - label] == '-')
        return fail(why, whylen,
                    "is not a valid Kubernetes name (lower-case letters, digits, '-'%s; starting "
                    "and ending with a letter or digit)",
                    subdomain ? ", '.'" : "");
      if (c == '\0') return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-')) {
      if (c < 0x20 || c >= 0x7f) return bad_byte(why, whylen, c, "a Kubernetes name");
      return fail(why, whylen,
                  "is not a valid Kubernetes name (lower-case letters, digits, '-'%s; starting "
                  "and ending with a letter or digit)",
                  subdomain ? ", '.'" : "");
    }
    label++;
  }
}

int validate_redirect(const Edge__V1__Redirect *r, char *why, size_t whylen) {
  char w[160];
  const char *scheme = r->scheme ? r->scheme : "";
  if (*scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
    return fail(why, whylen, "redirect scheme must be http or https");
  if (validate_host(r->host, 0, 1, w, sizeof(w)) != 0)
    return fail(why, whylen, "redirect host %s", w);
  if (r->port > 65535) return fail(why, whylen, "redirect port %u is out of range", r->port);
  if (r->path && *r->path && check_path(r->path, 1, w, sizeof(w)) != 0)
    return fail(why, whylen, "redirect path %s", w);
  switch (r->status) {
    case 0:
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
      return 0;
    default:
      return fail(why, whylen, "redirect status %u is not 301, 302, 303, 307 or 308", r->status);
  }
}

const char *validate_quote(const char *s, char *buf, size_t buflen) {
  if (!buf || buflen == 0) return "";
  if (buflen < 8) {
    buf[0] = '\0';
    return buf;
  }
  size_t o = 0;
  buf[o++] = '"';
  const char *p = s ? s : "";
  for (; *p; p++) {
    unsigned char c = (unsigned char)*p;
    char esc[8];
    size_t k;
    if (c == '"' || c == '\\')
      k = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
    else if (c == '\r')
      k = (size_t)snprintf(esc, sizeof(esc), "\\r");
    else if (c == '\n')
      k = (size_t)snprintf(esc, sizeof(esc), "\\n");
    else if (c == '\t')
      k = (size_t)snprintf(esc, sizeof(esc), "\\t");
    else if (c < 0x20 || c >= 0x7f)
      k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
    else
      esc[0] = (char)c, esc[1] = '\0', k = 1;
    if (o + k + 5 > buflen) break; /* room for "...\"" and NUL */
    memcpy(buf + o, esc, k);
    o += k;
  }
  if (*p) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

/* ---- Gateway API values ---------------------------------------------------- */

static int opt_name(const char *s, char *why, size_t whylen);

/* An RFC 9110 token (a header name, a method). */
static int check_token(const char *s, size_t max, char *why, size_t whylen) {
  if (!s || !*s) return fail(why, whylen, "is empty");
  if (strlen(s) > max) return fail(why, whylen, "is longer than %zu characters", max);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (!is_alpha(c) && !is_digit(c) && !strchr("!#$%&'*+-.^_`|~", c))
      return bad_byte(why, whylen, c, "a header name or method");
  }
  return 0;
}

/* A header value or a match expression: visible ASCII, spaces and tabs; never CR, LF or another
 * control byte. */
static int check_text(const char *s, size_t max, char *why, size_t whylen) {
  if (!s) return fail(why, whylen, "is missing");
  if (strlen(s) > max) return fail(why, whylen, "is longer than %zu characters", max);
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c < 0x20 && c != '\t') || c >= 0x7f) return bad_byte(why, whylen, c, "a value");
  }
  return 0;
}

int validate_header(const char *name, const char *value, char *why, size_t whylen) {
  char w[160];
  if (check_token(name, 256, w, sizeof(w)) != 0) return fail(why, whylen, "header name %s", w);
  if (value && check_text(value, 4096, w, sizeof(w)) != 0)
    return fail(why, whylen, "header value %s", w);
  return 0;
}

/* A regular-expression path (common/regex.h compiles it in the proxy): visible ASCII only. */
static int check_regex_path(const char *s, char *why, size_t whylen) {
  if (!s || !*s) return fail(why, whylen, "is empty");
  if (strlen(s) > VALIDATE_MAX_PATH)
    return fail(why, whylen, "is longer than %d characters", VALIDATE_MAX_PATH);
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return bad_byte(why, whylen, (unsigned char)*p, "a regular expression");
  return 0;
}

/* One header (header = 1) or query-parameter match: the name a token (header) or visible text,
 * the value (an exact value or an expression) text without control bytes. */
static int check_match(const char *name, const char *value, int header, char *w, size_t wl) {
  char x[160] = "", q[96];
  if (header ? check_token(name, 256, x, sizeof(x))
             : (check_text(name, 256, x, sizeof(x)) || !name[0]))
    return fail(w, wl, "%s match name %s %s", header ? "header" : "query",
                validate_quote(name, q, sizeof(q)), x[0] ? x : "is empty");
  if (check_text(value, 4096, x, sizeof(x)) != 0)
    return fail(w, wl, "%s match %s: value %s", header ? "header" : "query",
                validate_quote(name, q, sizeof(q)), x);
  return 0;
}

static int check_matches(const Edge__V1__Route *r, char *w, size_t wl) {
  for (size_t i = 0; i < r->n_headers; i++)
    if (!r->headers[i] || check_match(r->headers[i]->name, r->headers[i]->value, 1, w, wl) != 0)
      return r->headers[i] ? -1 : fail(w, wl, "header match %zu missing", i);
  for (size_t i = 0; i < r->n_query_params; i++)
    if (!r->query_params[i] ||
        check_match(r->query_params[i]->name, r->query_params[i]->value, 0, w, wl) != 0)
      return r->query_params[i] ? -1 : fail(w, wl, "query match %zu missing", i);
  return 0;
}

static int check_header_mod(const Edge__V1__HeaderModifier *m, const char *what, char *w,
                            size_t wl) {
  char x[160], q[96];
  if (!m) return 0;
  for (size_t i = 0; i < m->n_set + m->n_add; i++) {
    const Edge__V1__HeaderValue *h = i < m->n_set ? m->set[i] : m->add[i - m->n_set];
    if (!h) return fail(w, wl, "%s header %zu missing", what, i);
    if (check_token(h->name, 256, x, sizeof(x)) != 0)
      return fail(w, wl, "%s header name %s %s", what, validate_quote(h->name, q, sizeof(q)), x);
    if (check_text(h->value, 4096, x, sizeof(x)) != 0)
      return fail(w, wl, "%s header %s: value %s", what, h->name, x);
  }
  for (size_t i = 0; i < m->n_remove; i++)
    if (check_token(m->remove[i], 256, x, sizeof(x)) != 0)
      return fail(w, wl, "%s header to remove %s %s", what,
                  validate_quote(m->remove[i], q, sizeof(q)), x);
  return 0;
}

static int check_weighted(Edge__V1__WeightedCluster *const *c, size_t n, char *w, size_t wl) {
  char x[160];
  for (size_t i = 0; i < n; i++)
    if (!c[i] || opt_name(c[i]->cluster, x, sizeof(x)) != 0)
      return fail(w, wl, "weighted cluster %zu %s", i, c[i] ? x : "missing");
  return 0;
}

/* The Gateway API fields of a route (all empty for an Ingress route). */
static int check_route_gateway(const Edge__V1__Route *r, char *w, size_t wl) {
  char x[160], q[96];
  if (r->method && *r->method && check_token(r->method, 32, x, sizeof(x)) != 0)
    return fail(w, wl, "method %s %s", validate_quote(r->method, q, sizeof(q)), x);
  if (check_matches(r, w, wl) ||
      check_weighted(r->weighted_clusters, r->n_weighted_clusters, w, wl) ||
      check_header_mod(r->request_headers, "request", w, wl) ||
      check_header_mod(r->response_headers, "response", w, wl))
    return -1;
  for (size_t i = 0; i < r->n_mirrors; i++)
    if (!r->mirrors[i] || validate_name(r->mirrors[i]->cluster, x, sizeof(x)) != 0)
      return fail(w, wl, "mirror %zu: cluster %s", i, r->mirrors[i] ? x : "missing");
  const Edge__V1__RouteOptions *o = r->options;
  if (!o) return 0;
  if (o->rewrite_path && *o->rewrite_path && validate_path(o->rewrite_path, x, sizeof(x)) != 0)
    return fail(w, wl, "rewrite_path %s %s", validate_quote(o->rewrite_path, q, sizeof(q)), x);
  if (validate_host(o->rewrite_host, 0, 1, x, sizeof(x)) != 0)
    return fail(w, wl, "rewrite_host %s", x);
  if (o->direct_status && (o->direct_status < 200 || o->direct_status > 599))
    return fail(w, wl, "direct_status %u is not an HTTP status", o->direct_status);
  return 0;
}

/* ---- resources ----------------------------------------------------------- */

#define CHECK(call, ...)                                       \
  do {                                                         \
    if ((call) != 0) return fail(err, errlen, __VA_ARGS__, w); \
  } while (0)

/* "" or a name. */
static int opt_name(const char *s, char *why, size_t whylen) {
  return s && *s ? validate_name(s, why, whylen) : 0;
}

static int check_source(const Edge__V1__SourceRef *src, char *why, size_t whylen) {
  char w[160];
  if (!src) return 0;
  if (opt_name(src->kind, w, sizeof(w)) || opt_name(src->namespace_, w, sizeof(w)) ||
      opt_name(src->name, w, sizeof(w)))
    return fail(why, whylen, "source %s", w);
  return 0;
}

static int check_route(const Edge__V1__Route *r, char *w, size_t wl) {
  char q[96], x[160];
  if (r->path_type < 0 || r->path_type > EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX)
    return fail(w, wl, "unknown path_type %d", (int)r->path_type);
  if ((r->path_type == EDGE__V1__PATH_TYPE__PATH_TYPE_REGEX
           ? check_regex_path(r->path, x, sizeof(x))
           : validate_path(r->path, x, sizeof(x))) != 0)
    return fail(w, wl, "path %s %s", validate_quote(r->path, q, sizeof(q)), x);
  if (opt_name(r->cluster, x, sizeof(x)) != 0) return fail(w, wl, "cluster %s", x);
  if (check_route_gateway(r, w, wl) != 0) return -1;
  const Edge__V1__RouteOptions *o = r->options;
  if (o) {
    if (o->rewrite_prefix && *o->rewrite_prefix &&
        validate_path(o->rewrite_prefix, x, sizeof(x)) != 0)
      return fail(w, wl, "rewrite_prefix %s %s", validate_quote(o->rewrite_prefix, q, sizeof(q)),
                  x);
    if (o->redirect && validate_redirect(o->redirect, x, sizeof(x)) != 0)
      return fail(w, wl, "%s", x);
    /* issue 20: auth, rate limits, CORS (common/policy: header names, origins, bounds) */
    if (policy_check_route(o, x, sizeof(x)) != 0) return fail(w, wl, "%s", x);
  }
  return check_source(r->source, w, wl);
}

static int check_vhost(const Edge__V1__VirtualHost *v, char *err, size_t errlen) {
  char w[300];
  CHECK(validate_name(v->name, w, sizeof(w)), "virtual host: name %s");
  const char *vn = v->name; /* validated: printable, no quotes */
  if (validate_host(v->host, 1, 1, w, sizeof(w)) != 0)
    return fail(err, errlen, "virtual host %s: host %s", vn, w);
  if (v->host_match < 0 || v->host_match > EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX)
    return fail(err, errlen, "virtual host %s: unknown host_match %d", vn, (int)v->host_match);
  if (v->listener < 0 || v->listener > EDGE__V1__LISTENER__LISTENER_HTTPS)
    return fail(err, errlen, "virtual host %s: unknown listener %d", vn, (int)v->listener);
  for (size_t i = 0; i < v->n_gateway_routes; i++) /* "HTTPRoute ns/name" */
    if (check_text(v->gateway_routes[i], VALIDATE_MAX_NAME, w, sizeof(w)) != 0)
      return fail(err, errlen, "virtual host %s: gateway route %zu %s", vn, i, w);
  if (opt_name(v->certificate, w, sizeof(w)) != 0)
    return fail(err, errlen, "virtual host %s: certificate %s", vn, w);
  for (size_t i = 0; i < v->n_ingresses; i++)
    if (validate_name(v->ingresses[i], w, sizeof(w)) != 0)
      return fail(err, errlen, "virtual host %s: ingress %s", vn, w);
  const Edge__V1__ClientAuth *ca = v->client_auth; /* issue 20 */
  if (ca && ((ca->mode != EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED &&
              ca->mode != EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_OPTIONAL) ||
             ca->verify_depth > 16 || !ca->ca_pem.len))
    return fail(err, errlen, "virtual host %s: client_auth: bad mode, depth or empty CA bundle",
                vn);
  for (size_t i = 0; i < v->n_routes; i++)
    if (!v->routes[i] || check_route(v->routes[i], w, sizeof(w)) != 0)
      return fail(err, errlen, "virtual host %s: route %zu: %s", vn, i,
                  v->routes[i] ? w : "missing");
  return 0;
}

/* A host a proxy sends or verifies (TLS server name, health-check Host):
 * "" (allow_empty), a DNS name, or an IPv4/IPv6 literal. */
static int check_name_or_ip(const char *s, int allow_empty, char *why, size_t whylen) {
  unsigned char ip[16];
  if (s && (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1)) return 0;
  return validate_host(s ? s : "", 0, allow_empty, why, whylen);
}

/* Issue 20: upstream TLS, health checks, breakers, affinity, hashing. */
static int check_cluster_policies(const Edge__V1__Cluster *c, char *w, size_t wl) {
  char x[160], q[96];
  if (c->tls && check_name_or_ip(c->tls->server_name, 1, x, sizeof(x)) != 0)
    return fail(w, wl, "tls: server_name %s", x);
  const Edge__V1__HealthCheck *hc = c->health_check;
  if (hc) {
    if (check_path(hc->path, 1, x, sizeof(x)) != 0)
      return fail(w, wl, "health_check: path %s %s", validate_quote(hc->path, q, sizeof(q)), x);
    if (check_name_or_ip(hc->host, 1, x, sizeof(x)) != 0)
      return fail(w, wl, "health_check: host %s", x);
    if (hc->expected_status_min > hc->expected_status_max || hc->expected_status_max > 599 ||
        hc->port > 65535)
      return fail(w, wl, "health_check: bad expected status or port");
  }
  return policy_check_cluster(c, w, wl);
}

static int check_cluster(const Edge__V1__Cluster *c, char *err, size_t errlen) {
  char w[300];
  CHECK(validate_name(c->name, w, sizeof(w)), "cluster: name %s");
  const char *cn = c->name; /* validated: printable, no quotes */
  if (c->lb_policy < 0 || c->lb_policy > EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST)
    return fail(err, errlen, "cluster %s: unknown lb_policy %d", cn, (int)c->lb_policy);
  if (c->protocol < 0 || c->protocol > EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC)
    return fail(err, errlen, "cluster %s: unknown protocol %d", cn, (int)c->protocol);
  for (size_t i = 0; i < c->n_endpoints; i++) {
    const Edge__V1__Endpoint *e = c->endpoints[i];
    if (!e) return fail(err, errlen, "cluster %s: endpoint %zu missing", cn, i);
    w[0] = '\0';
    if (validate_name(e->address, w, sizeof(w)) != 0 || strlen(e->address) > 64)
      return fail(err, errlen, "cluster %s: endpoint %zu: address %s", cn, i,
                  w[0] ? w : "too long");
    if (opt_name(e->zone, w, sizeof(w)) || opt_name(e->target, w, sizeof(w)))
      return fail(err, errlen, "cluster %s: endpoint %zu: %s", cn, i, w);
  }
  if (check_source(c->source, w, sizeof(w)) != 0) return fail(err, errlen, "cluster %s: %s", cn, w);
  if (check_cluster_policies(c, w, sizeof(w)) != 0)
    return fail(err, errlen, "cluster %s: %s", cn, w);
  return 0;
}

static int check_certificate(const Edge__V1__Certificate *c, char *err, size_t errlen) {
  char w[300];
  CHECK(validate_name(c->name, w, sizeof(w)), "certificate: name %s");
  const char *cn = c->name; /* validated: printable, no quotes */
  for (size_t i = 0; i < c->n_sni_names; i++)
    if (validate_host(c->sni_names[i], 1, 0, w, sizeof(w)) != 0)
      return fail(err, errlen, "certificate %s: server name %zu %s", cn, i, w);
  if (check_source(c->source, w, sizeof(w)) != 0)
    return fail(err, errlen, "certificate %s: %s", cn, w);
  return 0;
}

static int check_default_backend(const Edge__V1__DefaultBackend *d, char *err, size_t errlen) {
  char w[300];
  CHECK(validate_name(d->name, w, sizeof(w)), "default backend: name %s");
  const char *dn = d->name; /* validated: printable, no quotes */
  if (opt_name(d->cluster, w, sizeof(w)) != 0)
    return fail(err, errlen, "default backend %s: cluster %s", dn, w);
  if (check_source(d->source, w, sizeof(w)) != 0)
    return fail(err, errlen, "default backend %s: %s", dn, w);
  return 0;
}

static int check_passthrough(const Edge__V1__PassthroughHost *p, char *err, size_t errlen) {
  char w[300];
  CHECK(validate_name(p->name, w, sizeof(w)), "passthrough host: name %s");
  const char *pn = p->name; /* validated: printable, no quotes */
  if (validate_host(p->host, 1, 0, w, sizeof(w)) != 0)
    return fail(err, errlen, "passthrough host %s: host %s", pn, w);
  if (p->host_match != EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT &&
      p->host_match != EDGE__V1__HOST_MATCH__HOST_MATCH_SUFFIX)
    return fail(err, errlen, "passthrough host %s: host_match must be EXACT or SUFFIX", pn);
  if (check_weighted(p->clusters, p->n_clusters, w, sizeof(w)) != 0)
    return fail(err, errlen, "passthrough host %s: %s", pn, w);
  if (check_source(p->source, w, sizeof(w)) != 0)
    return fail(err, errlen, "passthrough host %s: %s", pn, w);
  return 0;
}

int validate_resource(const Edge__V1__Resource *r, char *err, size_t errlen) {
  if (!r) return fail(err, errlen, "resource missing");
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      return r->virtual_host ? check_vhost(r->virtual_host, err, errlen)
                             : fail(err, errlen, "virtual host missing");
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      return r->cluster ? check_cluster(r->cluster, err, errlen)
                        : fail(err, errlen, "cluster missing");
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      return r->certificate ? check_certificate(r->certificate, err, errlen)
                            : fail(err, errlen, "certificate missing");
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      return r->default_backend ? check_default_backend(r->default_backend, err, errlen)
                                : fail(err, errlen, "default backend missing");
    case EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST:
      return r->passthrough_host ? check_passthrough(r->passthrough_host, err, errlen)
                                 : fail(err, errlen, "passthrough host missing");
    default:
      return fail(err, errlen, "resource with no kind set");
  }
}
