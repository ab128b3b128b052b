/*
 * snapshot_policy — the issue-20 policies of a resource, compiled once
 * with it (see snapshot_policy.h). snapshot_build.c calls these when it
 * compiles a resource and when its last reference goes, so a push that
 * does not touch a resource keeps its compiled policies: a push costs
 * only what it changes.
 *
 * Tenant values were validated by syncd; they are checked again here
 * (common/policy for the route policies; paths, hosts, status ranges and
 * server names for the cluster ones) because a --config file or a foreign
 * control plane may send anything. A TLS configuration the library
 * refuses costs only its cluster (requests get 502 with the reason),
 * never the push.
 */
#include "l7proxy/snapshot_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"
#include "l7proxy/breaker.h"
#include "l7proxy/client_auth.h"
#include "l7proxy/cors.h"
#include "l7proxy/htpasswd.h"
#include "l7proxy/upstream_tls.h"

/* ---- client and upstream TLS, health checks, circuit breakers (p20a) ---- */

static int server_name_ok(const char *s) {
  return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-:") == strlen(s);
}

int l7_policy_cluster(const Edge__V1__Cluster *pc, struct l7_cluster *cl, char *err,
                      size_t errlen) {
  cl->tls_error = "";
  if (pc->tls && pc->tls->server_name[0] && !server_name_ok(pc->tls->server_name)) {
    snprintf(err, errlen, "cluster %s: tls: server_name is not a DNS name or an IP address",
             pc->name);
    return -EINVAL;
  }
  if (pc->tls) {
    int h2 = pc->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_H2C ||
             pc->protocol == EDGE__V1__UPSTREAM_PROTOCOL__UPSTREAM_PROTOCOL_GRPC;
    char why[256];
    if (utls_ctx_get(pc->tls, h2, &cl->tls, why, sizeof(why)) != 0) {
      char *e = NULL;
      if (asprintf(&e, "cluster %s: upstream tls: %s", pc->name, why) < 0) return -ENOMEM;
      cl->tls_error = e; /* freed with the resource (l7_policy_cluster_free) */
    }
  }
  const Edge__V1__HealthCheck *hc = pc->health_check;
  if (hc) {
    if (!hc->path[0] || hc->path[0] != '/' || strpbrk(hc->path, " \r\n\t") ||
        strpbrk(hc->host, " \r\n\t") || hc->expected_status_min > hc->expected_status_max ||
        hc->expected_status_max > 599 || hc->port > 65535) {
      snprintf(err, errlen, "cluster %s: health_check: bad path, host or expected status",
               pc->name);
      return -EINVAL;
    }
    cl->health_check = hc;
  }
  const Edge__V1__CircuitBreakers *cb = pc->circuit_breakers;
  if (cb && (cb->max_connections || cb->max_pending_requests || cb->max_retries)) {
    cl->max_connections = cb->max_connections;
    cl->max_pending_requests = cb->max_pending_requests;
    cl->max_retries = cb->max_retries;
    cl->breaker = breaker_get(pc->name);
    if (!cl->breaker) return -ENOMEM;
  }
  return 0;
}

void l7_policy_cluster_free(struct l7_cluster *cl) {
  utls_ctx_unref(cl->tls);
  cl->tls = NULL;
  if (cl->tls_error && cl->tls_error[0]) free((char *)cl->tls_error);
  cl->tls_error = "";
}

int l7_policy_vhost(const Edge__V1__VirtualHost *vh, struct cauth_policy **out, char *err,
                    size_t errlen) {
  *out = NULL;
  if (!vh->client_auth) return 0;
  return cauth_policy_new(vh->client_auth, vh->name, out, err, errlen) == 0 ? 0 : -EINVAL;
}

void l7_policy_cluster_json(json_t *o, const struct l7_cluster *c) {
  if (!o) return;
  if (c->tls || (c->tls_error && c->tls_error[0]))
    json_object_set_new(o, "tls",
                        json_pack("{s:s, s:b, s:s}", "server_name", utls_ctx_server_name(c->tls),
                                  "h2", utls_ctx_h2(c->tls), "error", c->tls_error));
  const Edge__V1__HealthCheck *hc = c->health_check;
  if (hc)
    json_object_set_new(
        o, "health_check",
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "path", hc->path, "host", hc->host,
                  "interval_ms", (json_int_t)hc->interval_ms, "timeout_ms",
                  (json_int_t)hc->timeout_ms, "rise", (json_int_t)hc->rise, "fall",
                  (json_int_t)hc->fall, "expected_status_min", (json_int_t)hc->expected_status_min,
                  "expected_status_max", (json_int_t)hc->expected_status_max));
  if (c->breaker)
    json_object_set_new(
        o, "circuit_breakers",
        json_pack("{s:I, s:I, s:I}", "max_connections", (json_int_t)c->max_connections,
                  "max_pending_requests", (json_int_t)c->max_pending_requests, "max_retries",
                  (json_int_t)c->max_retries));
}

void l7_policy_route_json(json_t *o, const struct l7_route *r) {
  if (o && r->client_auth)
    json_object_set_new(
        o, "client_auth",
        json_string(cauth_policy_required(r->client_auth) ? "required" : "optional"));
}

/* ---- authentication, rate limits, CORS, affinity, hashing (p20b) ---- */

int snap_policy_cluster(struct l7_cluster *cl, const Edge__V1__Cluster *pc, char *err,
                        size_t errlen) {
  char why[256];
  if (policy_check_cluster(pc, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "cluster %s: %s", pc->name, why);
    return -EINVAL;
  }
  size_t n = cl->n_endpoints ? cl->n_endpoints : 1;
  if (pc->cookie_affinity) {
    const Edge__V1__CookieAffinity *a = pc->cookie_affinity;
    cl->affinity = a;
    cl->affinity_cookie = a->name[0] ? a->name : POLICY_DEFAULT_COOKIE;
    cl->affinity_tokens = calloc(n, sizeof(*cl->affinity_tokens));
    if (!cl->affinity_tokens) return -ENOMEM;
    for (size_t i = 0; i < cl->n_endpoints; i++)
      affinity_token(a->hmac_key.data, a->hmac_key.len, cl->name, cl->endpoints[i].name,
                     cl->affinity_tokens[i]);
  }
  if (pc->consistent_hash) {
    cl->chash = pc->consistent_hash;
    cl->hash_seeds = calloc(n, sizeof(*cl->hash_seeds));
    if (!cl->hash_seeds) return -ENOMEM;
    int weighted = 0;
    for (size_t i = 0; i < cl->n_endpoints; i++) {
      const char *name = cl->endpoints[i].name;
      cl->hash_seeds[i] = affinity_hash_key(name, strlen(name));
      weighted |= cl->endpoints[i].weight != 1;
    }
    if (weighted) {
      cl->hash_weights = calloc(n, sizeof(*cl->hash_weights));
      if (!cl->hash_weights) return -ENOMEM;
      for (size_t i = 0; i < cl->n_endpoints; i++) cl->hash_weights[i] = cl->endpoints[i].weight;
    }
  }
  return 0;
}

int snap_policy_route(struct l7_route *lr, const Edge__V1__RouteOptions *o, char *err,
                      size_t errlen) {
  char why[256];
  if (!o) return 0;
  if (policy_check_route(o, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "virtual host %s: route %s: %s", lr->vhost, lr->path, why);
    return -EINVAL;
  }
  if (o->basic_auth) {
    int rc = htpasswd_build(o->basic_auth->htpasswd, o->basic_auth->n_htpasswd, &lr->basic_auth,
                            why, sizeof(why));
    if (rc < 0) {
      snprintf(err, errlen, "virtual host %s: route %s: basic_auth: %s", lr->vhost, lr->path, why);
      return rc;
    }
    const char *realm = o->basic_auth->realm[0] ? o->basic_auth->realm : "edge";
    if (asprintf(&lr->basic_challenge, "Basic realm=\"%s\", charset=\"UTF-8\"", realm) < 0) {
      lr->basic_challenge = NULL;
      return -ENOMEM;
    }
  }
  if (o->external_auth) /* its cluster: by name and slot, checked by the builder */
    lr->ext_auth = o->external_auth;
  if (o->rate_limit) {
    const Edge__V1__RateLimit *r = o->rate_limit;
    lr->rate_limit = r;
    rl_params_of(r->requests, r->period_seconds, r->burst, &lr->rl);
    if (asprintf(&lr->rl_bucket, "%s\n%s\n%d", lr->vhost, lr->path, lr->path_type) < 0) {
      lr->rl_bucket = NULL;
      return -ENOMEM;
    }
  }
  if (o->cors && !(lr->cors = cors_compile(o->cors))) return -ENOMEM;
  lr->has_request_policy = lr->cors || lr->rate_limit || lr->basic_auth || lr->ext_auth;
  return 0;
}

void snap_policy_cluster_free(struct l7_cluster *cl) {
  free(cl->affinity_tokens);
  free(cl->hash_seeds);
  free(cl->hash_weights);
}

void snap_policy_route_free(struct l7_route *lr) {
  htpasswd_free(lr->basic_auth);
  free(lr->basic_challenge);
  free(lr->rl_bucket);
  cors_free(lr->cors);
}

static json_t *strings(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

void snap_policy_cluster_json(json_t *o, const struct l7_cluster *cl) {
  if (!o) return;
  if (cl->affinity) /* the key is key material: never dumped */
    json_object_set_new(o, "cookie_affinity",
                        json_pack("{s:s, s:s, s:I}", "name", cl->affinity_cookie, "path",
                                  cl->affinity->path[0] ? cl->affinity->path : "/",
                                  "max_age_seconds", (json_int_t)cl->affinity->max_age_seconds));
  if (cl->chash)
    json_object_set_new(
        o, "consistent_hash",
        json_pack("{s:s, s:s}", "on",
                  cl->chash->on == EDGE__V1__HASH_ON__HASH_ON_HEADER ? "header" : "source_address",
                  "header", cl->chash->header));
}

void snap_policy_route_json(json_t *o, const struct l7_route *lr) {
  if (!o) return;
  if (lr->basic_auth) /* how many users, never their hashes */
    json_object_set_new(o, "basic_auth",
                        json_pack("{s:s, s:I}", "challenge", lr->basic_challenge, "users",
                                  (json_int_t)htpasswd_count(lr->basic_auth)));
  if (lr->ext_auth)
    json_object_set_new(
        o, "external_auth",
        json_pack("{s:s, s:s, s:o, s:o, s:I, s:b}", "cluster", lr->ext_auth->cluster, "path",
                  lr->ext_auth->path, "request_headers",
                  strings(lr->ext_auth->request_headers, lr->ext_auth->n_request_headers),
                  "response_headers",
                  strings(lr->ext_auth->response_headers, lr->ext_auth->n_response_headers),
                  "timeout_ms", (json_int_t)lr->ext_auth->timeout_ms, "fail_open",
                  lr->ext_auth->fail_open));
  if (lr->rate_limit)
    json_object_set_new(
        o, "rate_limit",
        json_pack("{s:I, s:I, s:I, s:s, s:s, s:s}", "requests",
                  (json_int_t)lr->rate_limit->requests, "period_seconds",
                  (json_int_t)(lr->rate_limit->period_seconds ? lr->rate_limit->period_seconds : 1),
                  "burst", (json_int_t)(lr->rl.capacity_us / lr->rl.interval_us), "by",
                  lr->rate_limit->by == EDGE__V1__RATE_LIMIT_KEY__RATE_LIMIT_KEY_HEADER
                      ? "header"
                      : "client_address",
                  "header", lr->rate_limit->header, "scope",
                  lr->rate_limit->scope == EDGE__V1__RATE_LIMIT_SCOPE__RATE_LIMIT_SCOPE_CLUSTER
                      ? "cluster"
                      : "local"));
  if (lr->cors) json_object_set_new(o, "cors", json_true());
}
