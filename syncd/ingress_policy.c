/*
 * ingress_policy — annotation parsing and checking for client
 * certificates, upstream TLS, health checks and circuit breakers (see
 * ingress_policy.h).
 */
#include "syncd/ingress_policy.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cert.h"

#define A "edge.dev/"
#define MAX_PATH 1024

/* ---- small checks ------------------------------------------------------------ */

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* A lower-case DNS name (labels of [a-z0-9-], no leading/trailing '-'). */
static int dns_name_ok(const char *s) {
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return 0;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    if (label == 0 && c == '-') return 0;
    if (++label > 63) return 0;
  }
  return label > 0 && s[n - 1] != '-';
}

static int ip_literal_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 45) return 0;
  int colon = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    colon |= c == ':';
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) return 0;
  }
  return colon || strspn(s, "0123456789.") == n;
}

/* "name" or "ns/name" naming an object of the Ingress's own namespace. */
static const char *object_name(const struct ipol_env *env, const char *v, const char **why) {
  const char *slash = strchr(v, '/');
  if (slash) {
    size_t nl = (size_t)(slash - v);
    if (strlen(env->ns) != nl || strncmp(v, env->ns, nl) != 0) {
      *why = "names an object of another namespace (only the Ingress's own may be used)";
      return NULL;
    }
    v = slash + 1;
  }
  if (!dns_name_ok(v)) {
    *why = "is not a Kubernetes object name";
    return NULL;
  }
  return v;
}

static int pem_cert_count(const char *pem, size_t len) {
  if (len > INT_MAX) return -1;
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  if (!b) return -1;
  int n = 0;
  X509 *x;
  while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
    n++;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  return n;
}

static int parse_bool(const char *v, const char *t, const char *f, int *out) {
  if (!strcmp(v, t)) return *out = 1, 0;
  if (!strcmp(v, f)) return *out = 0, 0;
  return -1;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
  if (!*s || strlen(s) > 10) return -1;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = (uint32_t)v;
  return 0;
}

int ipol_parse_duration_ms(const char *s, uint32_t min_ms, uint32_t max_ms, uint32_t *out) {
  size_t n = strlen(s), d = strspn(s, "0123456789");
  if (d == 0 || d > 9) return -1;
  uint64_t v = strtoull(s, NULL, 10);
  const char *unit = s + d;
  uint64_t mult = !strcmp(unit, "ms")            ? 1
                  : !strcmp(unit, "s") || !*unit ? 1000
                  : !strcmp(unit, "m")           ? 60000
                                                 : 0;
  if (mult == 0 || n > d + 2) return -1;
  v *= mult;
  if (v < min_ms || v > max_ms) return -1;
  *out = (uint32_t)v;
  return 0;
}

int ipol_parse_status_range(const char *s, uint32_t *min, uint32_t *max) {
  char lo[8], hi[8];
  const char *dash = strchr(s, '-');
  size_t ll = dash ? (size_t)(dash - s) : strlen(s);
  if (ll == 0 || ll >= sizeof(lo)) return -1;
  memcpy(lo, s, ll);
  lo[ll] = '\0';
  snprintf(hi, sizeof(hi), "%s", dash ? dash + 1 : lo);
  if ((dash && strlen(dash + 1) >= sizeof(hi)) || parse_u32(lo, 100, 599, min) != 0 ||
      parse_u32(hi, 100, 599, max) != 0 || *min > *max)
    return -1;
  return 0;
}

/* A request path for checks: '/', then visible ASCII without spaces. */
static int check_path_ok(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > MAX_PATH || p[0] != '/') return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '#') return 0;
  return 1;
}

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* ---- host side: client certificates ------------------------------------------------ */

static int parse_client_auth(const struct ipol_env *env, struct ipol_ingress *out, char *err,
                             size_t errlen) {
  const char *sec = env->annotation(env->ctx, A "auth-tls-secret");
  const char *cm = env->annotation(env->ctx, A "auth-tls-configmap");
  const char *mode = env->annotation(env->ctx, A "auth-tls-verify-client");
  const char *depth = env->annotation(env->ctx, A "auth-tls-verify-depth");
  const char *pass = env->annotation(env->ctx, A "auth-tls-pass-certificate-to-upstream");
  if (!sec && !cm) {
    const char *stray = mode    ? "auth-tls-verify-client"
                        : depth ? "auth-tls-verify-depth"
                        : pass  ? "auth-tls-pass-certificate-to-upstream"
                                : NULL;
    if (stray)
      return BAD("annotation " A "%s needs " A "auth-tls-secret or " A "auth-tls-configmap", stray);
    return 0;
  }
  if (sec && cm)
    return BAD("annotations " A "auth-tls-secret and " A "auth-tls-configmap: choose one");
  Edge__V1__ClientAuth *ca = &out->client_auth;
  edge__v1__client_auth__init(ca);
  ca->mode = EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED;
  if (mode) {
    if (!strcmp(mode, "on") || !strcmp(mode, "required")) {
      ca->mode = EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_REQUIRED;
    } else if (!strcmp(mode, "optional")) {
      ca->mode = EDGE__V1__CLIENT_AUTH_MODE__CLIENT_AUTH_MODE_OPTIONAL;
    } else if (!strcmp(mode, "off")) {
      return 0; /* the CA is named but not used */
    } else {
      return BAD("annotation " A "auth-tls-verify-client must be on, optional or off%s",
                 !strcmp(mode, "optional_no_ca") ? " (optional_no_ca is not supported: an "
                                                   "unverified certificate is never passed on)"
                                                 : "");
    }
  }
  uint32_t d = 1;
  if (depth && parse_u32(depth, 1, 16, &d) != 0)
    return BAD("annotation " A "auth-tls-verify-depth must be a number from 1 to 16");
  ca->verify_depth = d;
  int pc = 0;
  if (pass && parse_bool(pass, "true", "false", &pc) != 0)
    return BAD("annotation " A
               "auth-tls-pass-certificate-to-upstream must be \"true\" or "
               "\"false\"");
  ca->pass_certificate = pc;
  const char *why = NULL, *which = sec ? "auth-tls-secret" : "auth-tls-configmap";
  const char *name = object_name(env, sec ? sec : cm, &why);
  if (!name) return BAD("annotation " A "%s %s", which, why);
  size_t len = 0;
  const char *pem = sec ? env->secret_key(env->ctx, env->ns, name, "ca.crt", &len, &why)
                        : env->configmap_key(env->ctx, env->ns, name, "ca.crt", &len, &why);
  if (!pem)
    return BAD("annotation " A "%s: %s %s %s", which, sec ? "secret" : "configmap", name, why);
  if (pem_cert_count(pem, len) <= 0)
    return BAD("annotation " A "%s: ca.crt of %s holds no PEM certificate", which, name);
  ca->ca_pem = (ProtobufCBinaryData){len, (uint8_t *)pem};
  size_t sl = strlen(env->ns) + strlen(name) + 16;
  char *src = env->alloc(env->ctx, sl);
  if (!src) return -2;
  snprintf(src, sl, "%s %s/%s", sec ? "Secret" : "ConfigMap", env->ns, name);
  ca->ca_source = src;
  out->has_client_auth = 1;
  return 0;
}

/* ---- cluster side ----------------------------------------------------------------- */

static int parse_upstream_tls(const struct ipol_env *env, int protocol_tls,
                              struct ipol_ingress *out, char *err, size_t errlen) {
  const char *sec = env->annotation(env->ctx, A "proxy-ssl-secret");
  const char *verify = env->annotation(env->ctx, A "proxy-ssl-verify");
  const char *name = env->annotation(env->ctx, A "proxy-ssl-name");
  if (!protocol_tls) {
    const char *stray = sec      ? "proxy-ssl-secret"
                        : verify ? "proxy-ssl-verify"
                        : name   ? "proxy-ssl-name"
                                 : NULL;
    if (stray) return BAD("annotation " A "%s needs " A "backend-protocol https or grpcs", stray);
    return 0;
  }
  Edge__V1__UpstreamTls *t = &out->upstream_tls;
  edge__v1__upstream_tls__init(t);
  out->tls = 1;
  int on = 1;
  if (verify && parse_bool(verify, "on", "off", &on) != 0)
    return BAD("annotation " A "proxy-ssl-verify must be on or off");
  t->insecure_skip_verify = !on;
  if (name) {
    if (!dns_name_ok(name) && !ip_literal_ok(name))
      return BAD("annotation " A "proxy-ssl-name is not a DNS name or an IP address");
    t->server_name = (char *)name;
  }
  if (!sec) return 0;
  const char *why = NULL;
  const char *obj = object_name(env, sec, &why);
  if (!obj) return BAD("annotation " A "proxy-ssl-secret %s", why);
  size_t len = 0, clen = 0, klen = 0;
  const char *ca = env->secret_key(env->ctx, env->ns, obj, "ca.crt", &len, &why);
  if (ca) {
    if (pem_cert_count(ca, len) <= 0)
      return BAD("annotation " A "proxy-ssl-secret: ca.crt of %s holds no PEM certificate", obj);
    t->ca_pem = (ProtobufCBinaryData){len, (uint8_t *)ca};
  } else if (strcmp(why, "not found") == 0) {
    return BAD("annotation " A "proxy-ssl-secret: secret %s not found", obj);
  }
  const char *crt = env->secret_key(env->ctx, env->ns, obj, "tls.crt", &clen, &why);
  const char *key = env->secret_key(env->ctx, env->ns, obj, "tls.key", &klen, &why);
  if (!!crt != !!key)
    return BAD("annotation " A "proxy-ssl-secret: secret %s has %s without %s", obj,
               crt ? "tls.crt" : "tls.key", crt ? "tls.key" : "tls.crt");
  if (!ca && !crt)
    return BAD("annotation " A "proxy-ssl-secret: secret %s has neither ca.crt nor tls.crt", obj);
  if (crt) {
    char kwhy[128];
    if (cert_check_key(crt, clen, key, klen, kwhy, sizeof(kwhy)) != 0)
      return BAD("annotation " A "proxy-ssl-secret: secret %s: %s", obj, kwhy);
    t->cert_pem = (ProtobufCBinaryData){clen, (uint8_t *)crt};
    t->key_pem = (ProtobufCBinaryData){klen, (uint8_t *)key};
  }
  size_t sl = strlen(env->ns) + strlen(obj) + 16;
  char *src = env->alloc(env->ctx, sl);
  if (!src) return -2;
  snprintf(src, sl, "Secret %s/%s", env->ns, obj);
  t->source = src;
  return 0;
}

static int parse_health_check(const struct ipol_env *env, struct ipol_ingress *out, char *err,
                              size_t errlen) {
  static const char *const others[] = {"health-check-host",    "health-check-interval",
                                       "health-check-timeout", "health-check-rise",
                                       "health-check-fall",    "health-check-expected-status",
                                       "health-check-port"};
  const char *path = env->annotation(env->ctx, A "health-check-path");
  if (!path) {
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
      char n[96];
      snprintf(n, sizeof(n), A "%s", others[i]);
      if (env->annotation(env->ctx, n)) return BAD("annotation %s needs " A "health-check-path", n);
    }
    return 0;
  }
  Edge__V1__HealthCheck *h = &out->health_check;
  edge__v1__health_check__init(h);
  if (!check_path_ok(path))
    return BAD("annotation " A
               "health-check-path must start with / and hold no spaces or "
               "control characters (at most %d bytes)",
               MAX_PATH);
  h->path = (char *)path;
  const char *v;
  if ((v = env->annotation(env->ctx, A "health-check-host"))) {
    if (!dns_name_ok(v) && !ip_literal_ok(v))
      return BAD("annotation " A "health-check-host is not a DNS name or an IP address");
    h->host = (char *)v;
  }
  if ((v = env->annotation(env->ctx, A "health-check-interval")) &&
      ipol_parse_duration_ms(v, 100, 3600000, &h->interval_ms) != 0)
    return BAD("annotation " A
               "health-check-interval must be a duration from 100ms to 1h "
               "(5s, 500ms, 2m or seconds)");
  if ((v = env->annotation(env->ctx, A "health-check-timeout")) &&
      ipol_parse_duration_ms(v, 100, 3600000, &h->timeout_ms) != 0)
    return BAD("annotation " A "health-check-timeout must be a duration from 100ms to 1h");
  if ((v = env->annotation(env->ctx, A "health-check-rise")) && parse_u32(v, 1, 100, &h->rise))
    return BAD("annotation " A "health-check-rise must be a number from 1 to 100");
  if ((v = env->annotation(env->ctx, A "health-check-fall")) && parse_u32(v, 1, 100, &h->fall))
    return BAD("annotation " A "health-check-fall must be a number from 1 to 100");
  if ((v = env->annotation(env->ctx, A "health-check-port")) && parse_u32(v, 1, 65535, &h->port))
    return BAD("annotation " A "health-check-port must be a port number from 1 to 65535");
  if ((v = env->annotation(env->ctx, A "health-check-expected-status")) &&
      ipol_parse_status_range(v, &h->expected_status_min, &h->expected_status_max) != 0)
    return BAD("annotation " A
               "health-check-expected-status must be a status (200) or a "
               "range (200-399) within 100..599");
  out->has_health_check = 1;
  return 0;
}

static int parse_breakers(const struct ipol_env *env, struct ipol_ingress *out, char *err,
                          size_t errlen) {
  static const char *const names[] = {"max-connections", "max-pending-requests", "max-retries"};
  Edge__V1__CircuitBreakers *b = &out->breakers;
  edge__v1__circuit_breakers__init(b);
  uint32_t *dst[] = {&b->max_connections, &b->max_pending_requests, &b->max_retries};
  for (size_t i = 0; i < 3; i++) {
    char n[64];
    snprintf(n, sizeof(n), A "%s", names[i]);
    const char *v = env->annotation(env->ctx, n);
    if (!v) continue;
    if (parse_u32(v, 0, 1000000, dst[i]) != 0)
      return BAD("annotation %s must be a number from 0 (unlimited) to 1000000", n);
    out->has_breakers = 1;
  }
  return 0;
}

int ipol_parse(const struct ipol_env *env, int protocol_tls, struct ipol_ingress *out, char *err,
               size_t errlen) {
  memset(out, 0, sizeof(*out));
  int rc;
  if ((rc = parse_client_auth(env, out, err, errlen)) != 0) return rc;
  if ((rc = parse_upstream_tls(env, protocol_tls, out, err, errlen)) != 0) return rc;
  if ((rc = parse_health_check(env, out, err, errlen)) != 0) return rc;
  return parse_breakers(env, out, err, errlen);
}

int ipol_cluster(const struct ipol_env *env, struct ipol_ingress *p, const char *svc,
                 Edge__V1__Cluster *cl) {
  if (p->tls) {
    if (!p->upstream_tls.server_name || !p->upstream_tls.server_name[0]) {
      size_t n = strlen(svc) + strlen(env->ns) + 8;
      char *sn = env->alloc(env->ctx, n);
      if (!sn) return -2;
      snprintf(sn, n, "%s.%s.svc", svc, env->ns);
      p->upstream_tls.server_name = sn;
    }
    cl->tls = &p->upstream_tls;
  }
  if (p->has_health_check) cl->health_check = &p->health_check;
  if (p->has_breakers) cl->circuit_breakers = &p->breakers;
  return 0;
}

int ipol_same_client_auth(const Edge__V1__ClientAuth *a, const Edge__V1__ClientAuth *b) {
  return a->mode == b->mode && a->verify_depth == b->verify_depth &&
         a->pass_certificate == b->pass_certificate && a->ca_pem.len == b->ca_pem.len &&
         memcmp(a->ca_pem.data, b->ca_pem.data, a->ca_pem.len) == 0;
}
