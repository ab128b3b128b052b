/*
 * snapshot_policy — the issue-20 policies of a resource, compiled once
 * with it (snapshot_build.c calls these when it compiles a resource, and
 * l7_res_unref when it frees one): a cluster's upstream TLS context,
 * health check and circuit breakers; a virtual host's client-certificate
 * policy; the /config text of both. A resource a push does not touch
 * keeps its compiled policies, so a push costs only what it changes.
 *
 * Tenant values were validated by syncd; they are checked again here
 * (paths, hosts, status ranges, server names) because a --config file or
 * a foreign control plane may send anything. A TLS configuration the
 * library refuses costs only its cluster (requests get 502 with the
 * reason), never the push.
 *
 * Threads: the builder's thread. Ownership: the compiled cluster holds
 * one utls_ctx reference and its tls_error string, the virtual host one
 * cauth_policy reference; the breaker record is process-wide (breaker.h).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7proxy/breaker.h"
#include "l7proxy/client_auth.h"
#include "l7proxy/snapshot_internal.h"
#include "l7proxy/upstream_tls.h"

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
