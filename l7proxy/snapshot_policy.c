/*
 * snapshot_policy — per-route and per-cluster policies compiled for the
 * data path (see snapshot_policy.h).
 */
#include "l7proxy/snapshot_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"
#include "l7proxy/cors.h"
#include "l7proxy/htpasswd.h"

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

int snap_policy_route(const struct l7_snapshot *s, struct l7_route *lr,
                      const Edge__V1__RouteOptions *o, char *err, size_t errlen) {
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
  if (o->external_auth) {
    lr->ext_auth = o->external_auth;
    lr->ext_auth_cluster = l7_snapshot_find_cluster(s, o->external_auth->cluster);
    if (!lr->ext_auth_cluster) {
      snprintf(err, errlen,
               "virtual host %s: route %s: external_auth references unknown cluster %s", lr->vhost,
               lr->path, o->external_auth->cluster);
      return -EINVAL;
    }
  }
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
