/*
 * snapshot_policy — compiles the per-route and per-cluster policies of a
 * snapshot (common/policy checks them first): htpasswd tables, CORS
 * policies, rate-limit parameters and bucket ids, the external-auth
 * cluster, affinity tokens and rendezvous seeds. Kept beside snapshot.c so
 * the snapshot's own build stays about resources and routing.
 *
 * Ownership: what it allocates hangs off the l7_route / l7_cluster and is
 * freed by snap_policy_*_free when the snapshot goes. Runs on the thread
 * that builds the snapshot. Callers: snapshot.c only.
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
int snap_policy_route(const struct l7_snapshot *s, struct l7_route *lr,
                      const Edge__V1__RouteOptions *o, char *err, size_t errlen);
void snap_policy_cluster_free(struct l7_cluster *cl);
void snap_policy_route_free(struct l7_route *lr);

/* /config: what the policies are, without hashes or keys. */
void snap_policy_cluster_json(json_t *o, const struct l7_cluster *cl);
void snap_policy_route_json(json_t *o, const struct l7_route *lr);

#endif
