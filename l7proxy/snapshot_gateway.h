/*
 * snapshot_gateway — the Gateway API part of a snapshot build: a route's
 * conditions (method, headers, query parameters, listener) compiled into
 * its common/router rule, its weighted clusters, header modifiers, mirrors
 * and rewrites resolved against the snapshot's clusters, and the TLS
 * passthrough hosts with their own SNI lookup table.
 *
 * Everything it allocates belongs to one struct snap_gateway, owned by the
 * snapshot and freed with it; strings point into the snapshot's copy of
 * the resources. Values that could corrupt the wire (header names and
 * values with control bytes) fail the build with a Nack reason, whatever
 * syncd checked before. Built on the config thread; read-only after.
 * Called by l7proxy/snapshot.c only.
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
int snap_gateway_route(struct snap_gateway *g, const struct l7_snapshot *s,
                       const Edge__V1__VirtualHost *vh, const Edge__V1__Route *pr,
                       struct l7_route *lr, struct router_rule *rule, char *err, size_t errlen);

/* Builds the passthrough hosts of the resources. 0, -EINVAL or -ENOMEM. */
int snap_gateway_passthrough(struct snap_gateway *g, const struct l7_snapshot *s,
                             const Edge__V1__Snapshot *copy, char *err, size_t errlen);

const struct l7_passthrough *snap_gateway_find_passthrough(const struct snap_gateway *g,
                                                           const char *sni, size_t len);
size_t snap_gateway_n_passthrough(const struct snap_gateway *g);

#endif
