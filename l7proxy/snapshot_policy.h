/*
 * snapshot_policy — compiles the issue-20 policies of one resource
 * (common/policy checks the route ones first): a cluster's upstream TLS
 * context, health check, circuit breakers, affinity tokens and rendezvous
 * seeds; a virtual host's client-certificate policy; a route's htpasswd
 * table, CORS policy, rate-limit parameters and bucket id, external auth.
 * Kept beside snapshot_build.c so the builder stays about resources and
 * routing.
 *
 * Ownership: what it allocates hangs off the l7_route / l7_cluster / the
 * virtual host and is freed by the *_free functions when the resource's
 * last reference goes (a resource is shared by every snapshot it is in).
 * The compiled cluster holds one utls_ctx reference and its tls_error
 * string, the virtual host one cauth_policy reference; breaker records
 * are process-wide (breaker.h). Runs on the builder's thread. Callers:
 * snapshot_build.c and snapshot.c (the /config text).
 */
#ifndef EDGE_L7PROXY_SNAPSHOT_POLICY_H
#define EDGE_L7PROXY_SNAPSHOT_POLICY_H

#include <jansson.h>
#include <stddef.h>

#include "l7proxy/snapshot.h"

/* 0, or -EINVAL / -ENOMEM with the Nack reason in err. The snapshot's
 * clusters are built (ext auth names one). */
int snap_policy_cluster(struct l7_cluster *cl, const Edge__V1__Cluster *pc, char *err,
                        size_t errlen);
/* A route's policies; its external-auth cluster is named, not looked up:
 * the builder gives it a slot and checks it exists. */
int snap_policy_route(struct l7_route *lr, const Edge__V1__RouteOptions *o, char *err,
                      size_t errlen);
void snap_policy_cluster_free(struct l7_cluster *cl);
void snap_policy_route_free(struct l7_route *lr);

/* /config: what the policies are, without hashes or keys. */
void snap_policy_cluster_json(json_t *o, const struct l7_cluster *cl);
void snap_policy_route_json(json_t *o, const struct l7_route *lr);

/* Upstream TLS, health check and circuit breakers of a cluster; a virtual
 * host's client-certificate policy (*out one reference, NULL: none). 0 or
 * -EINVAL/-ENOMEM with a reason. */
struct cauth_policy;
int l7_policy_cluster(const Edge__V1__Cluster *pc, struct l7_cluster *cl, char *err, size_t errlen);
void l7_policy_cluster_free(struct l7_cluster *cl);
int l7_policy_vhost(const Edge__V1__VirtualHost *vh, struct cauth_policy **out, char *err,
                    size_t errlen);
void l7_policy_cluster_json(json_t *o, const struct l7_cluster *c);
void l7_policy_route_json(json_t *o, const struct l7_route *r);

#endif
