/*
 * syncctl_gateway — how `syncctl status` shows the Gateway API objects
 * syncd owns: each GatewayClass, Gateway (with its listeners and
 * addresses) and route (per parentRef) with the conditions and the
 * specification's reasons syncd also writes to the objects' status, so
 * `kubectl get gateway,httproute -o yaml` and syncctl tell the same story.
 * Printing only; called by syncd/syncctl.c.
 */
#ifndef EDGE_SYNCD_SYNCCTL_GATEWAY_H
#define EDGE_SYNCD_SYNCCTL_GATEWAY_H

#include <jansson.h>
#include <stdio.h>

#include "edge/v1/status.pb-c.h"

/* The "GATEWAY API" section (nothing when there are no objects). */
void syncctl_gateway_text(FILE *out, const Edge__V1__StatusResponse *r);
/* The same as a JSON array (new reference). */
json_t *syncctl_gateway_json(const Edge__V1__StatusResponse *r);

#endif
