/*
 * gateway_k8s — Gateway API status as the Kubernetes API wants it: the
 * merge-patch body and the path of a GatewayClass, Gateway or route's
 * status subresource, from the edge.v1 GatewayObjectStatus the translator
 * computed (syncd/gateway.h) and the object as last seen from the API.
 *
 * Conditions carry observedGeneration and keep their lastTransitionTime
 * when neither status nor reason changed. A route's status.parents keeps
 * the entries other controllers wrote (another controllerName) and
 * replaces ours; a merge-patch replaces lists, so the body holds the whole
 * list. When the object already carries what we would write (times
 * aside), there is nothing to write: NULL, so a status write never
 * triggers another.
 *
 * Pure functions over jansson values; no I/O. Called by
 * syncd/source_k8s.c (write-back) and tests.
 */
#ifndef EDGE_SYNCD_GATEWAY_K8S_H
#define EDGE_SYNCD_GATEWAY_K8S_H

#include <jansson.h>

#include "edge/v1/status.pb-c.h"

/*
 * The body {"status": {...}} to PATCH, a new reference, or NULL when obj
 * (may be NULL: not seen yet) already says the same. now is an RFC 3339
 * time ("2026-12-02T18:00:00Z") for conditions that changed.
 */
json_t *gateway_k8s_status_body(json_t *obj, const Edge__V1__GatewayObjectStatus *st,
                                const char *now);

/* "/apis/gateway.networking.k8s.io/VERSION/[namespaces/NS/]PLURAL/NAME/status" into buf; the
 * version is taken from api_version ("gateway.networking.k8s.io/v1beta1"), v1 when absent.
 * 0, or -1 when the kind is not a Gateway API kind or buf is too small. */
int gateway_k8s_status_path(const Edge__V1__GatewayObjectStatus *st, const char *api_version,
                            char *buf, size_t len);

#endif
