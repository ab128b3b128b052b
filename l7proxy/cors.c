/*
 * cors — origin matching and the Access-Control-* answer headers (see
 * cors.h). Lists are joined once at compile time, so a request only
 * compares bytes and points at the joined strings.
 */
#include "l7proxy/cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cors_origin {
  char *scheme; /* "https" */
  char *host;   /* exact host, or the suffix after "*." */
  char *port;   /* "" when none */
  int wildcard;
};

struct cors_policy {
  struct cors_origin *origins;
  size_t n_origins;
  int any; /* "*" listed */
  char **methods;
  size_t n_methods;
  char **headers;
  size_t n_headers;
  char *methods_joined, *headers_joined, *expose_joined;
  int credentials;
  char max_age[16]; /* "" : not sent */
};

static const char *const default_methods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                              "PATCH", "DELETE", "OPTIONS"};
/* ingress-nginx's default cors-allow-headers, lower case */
static const char *const default_headers[] = {
    "dnt",           "keep-alive",   "user-agent", "x-requested-with", "if-modified-since",
    "cache-control", "content-type", "range",      "authorization"};

static char *join(char *const *v, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(v[i]) + 2;
  char *s = malloc(len), *p = s;
  if (!s) return NULL;
  *p = '\0';
  for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? ", " : "", v[i]);
  return s;
}

static char **copy_list(char *const *v, size_t n, const char *const *dflt, size_t nd,
                        size_t *out_n) {
  if (n == 0) v = (char *const *)dflt, n = nd;
  char **out = calloc(n ? n : 1, sizeof(*out));
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(out[i] = strdup(v[i]))) {
      for (size_t k = 0; k < i; k++) free(out[k]);
      free(out);
      return NULL;
    }
  *out_n = n;
  return out;
}

static int parse_origin(const char *s, struct cors_origin *o) {
  const char *p = strstr(s, "://");
  if (!p) return -1;
  o->scheme = strndup(s, (size_t)(p - s));
  const char *h = p + 3;
  if (h[0] == '*' && h[1] == '.') o->wildcard = 1, h += 2;
  const char *colon = strchr(h, ':');
  o->host = colon ? strndup(h, (size_t)(colon - h)) : strdup(h);
  o->port = strdup(colon ? colon + 1 : "");
  return o->scheme && o->host && o->port ? 0 : -1;
}

void cors_free(struct cors_policy *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_origins; i++)
    free(p->origins[i].scheme), free(p->origins[i].host), free(p->origins[i].port);
  free(p->origins);
  for (size_t i = 0; i < p->n_methods; i++) free(p->methods[i]);
  for (size_t i = 0; i < p->n_headers; i++) free(p->headers[i]);
  free(p->methods), free(p->headers);
  free(p->methods_joined), free(p->headers_joined), free(p->expose_joined);
  free(p);
}

struct cors_policy *cors_compile(const Edge__V1__Cors *c) {
  struct cors_policy *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->origins = calloc(c->n_allow_origins ? c->n_allow_origins : 1, sizeof(*p->origins));
  if (!p->origins) goto fail;
  for (size_t i = 0; i < c->n_allow_origins; i++) {
    if (strcmp(c->allow_origins[i], "*") == 0) {
      p->any = 1;
      continue;
    }
    if (parse_origin(c->allow_origins[i], &p->origins[p->n_origins++]) < 0) goto fail;
  }
  p->methods = copy_list(c->allow_methods, c->n_allow_methods, default_methods,
                         sizeof(default_methods) / sizeof(*default_methods), &p->n_methods);
  p->headers = copy_list(c->allow_headers, c->n_allow_headers, default_headers,
                         sizeof(default_headers) / sizeof(*default_headers), &p->n_headers);
  if (!p->methods || !p->headers) goto fail;
  p->methods_joined = join(p->methods, p->n_methods);
  p->headers_joined = join(p->headers, p->n_headers);
  p->expose_joined = join(c->expose_headers, c->n_expose_headers);
  if (!p->methods_joined || !p->headers_joined || !p->expose_joined) goto fail;
  p->credentials = c->allow_credentials;
  if (c->max_age_seconds) snprintf(p->max_age, sizeof(p->max_age), "%u", c->max_age_seconds);
  return p;
fail:
  cors_free(p);
  return NULL;
}

static int eq_ci(const char *a, size_t an, const char *b) {
  return strlen(b) == an && strncasecmp(a, b, an) == 0;
}

static int origin_matches(const struct cors_origin *o, const char *s, size_t n) {
  const char *end = s + n;
  const char *p = NULL;
  for (const char *q = s; q + 3 <= end; q++)
    if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
      p = q;
      break;
    }
  if (!p || !eq_ci(s, (size_t)(p - s), o->scheme)) return 0;
  const char *h = p + 3;
  const char *colon = memchr(h, ':', (size_t)(end - h));
  const char *hend = colon ? colon : end;
  size_t port_len = colon ? (size_t)(end - colon - 1) : 0;
  if (!eq_ci(colon ? colon + 1 : "", port_len, o->port)) return 0;
  size_t hl = (size_t)(hend - h), sl = strlen(o->host);
  if (hl == 0 || memchr(h, '/', hl)) return 0;
  if (!o->wildcard) return hl == sl && strncasecmp(h, o->host, hl) == 0;
  /* one or more labels, then ".suffix" */
  return hl > sl + 1 && h[hl - sl - 1] == '.' && strncasecmp(h + hl - sl, o->host, sl) == 0 &&
         h[0] != '.';
}

int cors_origin_allowed(const struct cors_policy *p, const char *origin, size_t n) {
  if (!origin || n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)origin[i] <= 0x20 || (unsigned char)origin[i] >= 0x7f) return 0;
  if (p->any) return 1;
  for (size_t i = 0; i < p->n_origins; i++)
    if (origin_matches(&p->origins[i], origin, n)) return 1;
  return 0;
}

int cors_is_preflight(const struct msg_head *req) {
  return req->method == MSG_OPTIONS && msg_find(req, "origin") &&
         msg_find(req, "access-control-request-method");
}

static int method_allowed(const struct cors_policy *p, const char *m, size_t n) {
  for (size_t i = 0; i < p->n_methods; i++)
    if (strlen(p->methods[i]) == n && memcmp(p->methods[i], m, n) == 0) return 1;
  return 0;
}

static int header_allowed(const struct cors_policy *p, const char *h, size_t n) {
  for (size_t i = 0; i < p->n_headers; i++)
    if (eq_ci(h, n, p->headers[i])) return 1;
  return 0;
}

/* Every name of every Access-Control-Request-Headers line is allowed. */
static int requested_headers_allowed(const struct cors_policy *p, const struct msg_head *req) {
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct msg_header *h = &req->headers[i];
    if (!eq_ci(h->name, h->name_len, "access-control-request-headers")) continue;
    const char *v = h->value, *end = v + h->value_len;
    while (v < end) {
      while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
      const char *s = v;
      while (v < end && *v != ',' && *v != ' ' && *v != '\t') v++;
      if (v > s && !header_allowed(p, s, (size_t)(v - s))) return 0;
    }
  }
  return 1;
}

static size_t allow_origin(const struct cors_policy *p, const char *origin, size_t n,
                           struct msg_header *out, size_t k, size_t cap) {
  if (k < cap) {
    if (p->any && !p->credentials)
      out[k++] = (struct msg_header){"access-control-allow-origin", 27, "*", 1};
    else
      out[k++] = (struct msg_header){"access-control-allow-origin", 27, origin, n};
  }
  if (p->credentials && k < cap)
    out[k++] = (struct msg_header){"access-control-allow-credentials", 32, "true", 4};
  return k;
}

size_t cors_preflight_headers(const struct cors_policy *p, const struct msg_head *req,
                              struct msg_header *out, size_t cap) {
  size_t k = 0;
  if (k < cap) out[k++] = (struct msg_header){"vary", 4, "origin", 6};
  const struct msg_header *o = msg_find(req, "origin");
  const struct msg_header *m = msg_find(req, "access-control-request-method");
  if (!o || !m || !cors_origin_allowed(p, o->value, o->value_len)) return k;
  if (!method_allowed(p, m->value, m->value_len) || !requested_headers_allowed(p, req)) return k;
  k = allow_origin(p, o->value, o->value_len, out, k, cap);
  if (k < cap)
    out[k++] = (struct msg_header){"access-control-allow-methods", 28, p->methods_joined,
                                   strlen(p->methods_joined)};
  if (k < cap)
    out[k++] = (struct msg_header){"access-control-allow-headers", 28, p->headers_joined,
                                   strlen(p->headers_joined)};
  if (p->max_age[0] && k < cap)
    out[k++] = (struct msg_header){"access-control-max-age", 22, p->max_age, strlen(p->max_age)};
  return k;
}

size_t cors_response_headers(const struct cors_policy *p, const char *origin, size_t n,
                             struct msg_header *out, size_t cap) {
  size_t k = 0;
  if (!(p->any && !p->credentials) && k < cap)
    out[k++] = (struct msg_header){"vary", 4, "origin", 6};
  if (!origin || !cors_origin_allowed(p, origin, n)) return k;
  k = allow_origin(p, origin, n, out, k, cap);
  if (p->expose_joined[0] && k < cap)
    out[k++] = (struct msg_header){"access-control-expose-headers", 29, p->expose_joined,
                                   strlen(p->expose_joined)};
  return k;
}

int cors_is_cors_header(const char *name, size_t n) {
  return n > 15 && strncasecmp(name, "access-control-", 15) == 0;
}
