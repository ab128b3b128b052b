/*
 * snapshot_gateway — the Gateway API part of compiling one resource: a
 * route's conditions (method, headers, query parameters, listener)
 * compiled into its common/router rule, its weighted clusters, header
 * modifiers, mirrors and rewrites; a PassthroughHost's description.
 * Clusters are recorded by name (slot UINT32_MAX): the builder gives them
 * their slots and checks that they exist, as for a route's own cluster.
 *
 * Everything it allocates belongs to one struct snap_gateway, owned by the
 * compiled resource and freed with it; strings point into the resource's
 * message. Values that could corrupt the wire (header names and values
 * with control bytes) fail the build with a Nack reason, whatever syncd
 * checked before. Built on the config thread; read-only after. Called by
 * l7proxy/snapshot_build.c only.
 */
#ifndef EDGE_L7PROXY_SNAPSHOT_GATEWAY_H
#define EDGE_L7PROXY_SNAPSHOT_GATEWAY_H

#include <stddef.h>

#include "common/router.h"
#include "edge/v1/resources.pb-c.h"
#include "l7proxy/snapshot.h"

struct snap_gateway;

struct snap_gateway *snap_gateway_new(void);
void snap_gateway_free(struct snap_gateway *g);

/* Fills lr's Gateway API fields and rule's conditions for route pr of vh.
 * 0, -EINVAL (reason in err) or -ENOMEM. */
int snap_gateway_route(struct snap_gateway *g, const Edge__V1__VirtualHost *vh,
                       const Edge__V1__Route *pr, struct l7_route *lr, struct router_rule *rule,
                       char *err, size_t errlen);

/* Fills p from ph. 0, -EINVAL (reason in err) or -ENOMEM. */
int snap_gateway_passthrough(struct snap_gateway *g, const Edge__V1__PassthroughHost *ph,
                             struct l7_passthrough *p, char *err, size_t errlen);

#endif
