/*
 * gateway — Kubernetes Gateway API v1 objects → the same edge.v1 resources
 * the Ingress translator emits, plus the status conditions the
 * specification asks for. The second translator beside translate.c.
 *
 * In: the parsed manifests (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
 * ReferenceGrant and the experimental TLSRoute, with the Services,
 * EndpointSlices, Secrets and Namespaces they name; apiVersions
 * gateway.networking.k8s.io/v1, v1beta1 and, for TLSRoute, v1alpha2 and
 * v1alpha3). Out, merged into the Ingress translator's struct
 * syncd_desired:
 *   VirtualHosts "gw:http:HOST" / "gw:https:HOST" (listener LISTENER_HTTP
 *     or _HTTPS), one Route per (rule, match) with method/header/query
 *     conditions, weighted clusters, header modifiers, redirects,
 *     rewrites, mirrors and timeouts;
 *   Clusters "gw:NS/SVC:PORT" (HTTP/1.1, or h2c for appProtocol
 *     kubernetes.io/h2c), "gw:NS/SVC:PORT/grpc" (GRPCRoute backends) and
 *     "gw:NS/SVC:PORT/tcp" (TLSRoute backends);
 *   Certificates "gw:NS/SECRET" for HTTPS listeners;
 *   PassthroughHosts "pt:HOST" for TLS listeners of mode Passthrough;
 *   d->gateway_status: a packed edge.v1 StatusResponse holding only
 *     gateway_objects (GatewayClass, Gateway with listeners and addresses,
 *     routes with one entry per parentRef to one of our Gateways);
 *   rejections for what could not be served, with the reason.
 *
 * Rules: the specification (standard channel v1.x) — class by
 * controllerName (GATEWAY_CONTROLLER); listeners by protocol and port,
 * served only where the deployment listens (opts: the HTTP and HTTPS
 * ports the proxies are reached on; another port is Accepted=False
 * PortUnavailable, Programmed=False); allowedRoutes by namespace (Same,
 * All, Selector over Namespace labels) and kind; parentRefs by
 * sectionName and port; hostname intersection; cross-namespace
 * backendRefs and certificateRefs only with a ReferenceGrant; backends
 * that do not resolve keep their weight and answer 500.
 *
 * Ingress and Gateway API on one host: a host (exact name or pattern)
 * claimed by both is served by ONE of them, the one whose oldest object
 * for that host is older (creationTimestamp, then "namespace/name"; the
 * Ingress wins a tie or when neither has a timestamp). The loser is
 * reported: a rejection for the Ingress, or an Accepted condition message
 * and a rejection for the route.
 *
 * Pure: no I/O, no globals; the same input gives byte-identical output.
 * Called by syncd/source.c after translate_desired, by tests and fuzzing.
 */
#ifndef EDGE_SYNCD_GATEWAY_H
#define EDGE_SYNCD_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "syncd/manifest.h"
#include "syncd/model.h"

#define GATEWAY_CONTROLLER "edge.dev/gateway-controller"
#define GATEWAY_GROUP "gateway.networking.k8s.io"

struct gateway_opts {
  /* Ports on which the deployment's HTTP and HTTPS (and TLS passthrough)
   * listeners are reached; 0-terminated. NULL: {80} and {443}. */
  const uint32_t *http_ports, *https_ports;
  /* Written to Gateway status.addresses ("" / NULL: none, and Programmed
   * is False with AddressNotAssigned). An IP literal or a host name. */
  const char *address;
};

/*
 * Translates the Gateway API objects of `in` and merges the result into d
 * (resources added and re-sorted; losers of host conflicts removed;
 * rejections added; d->gateway_status set). 0, or -ENOMEM (d is then
 * unchanged or partly merged and must be freed).
 */
int gateway_translate(const struct manifest_set *in, const struct gateway_opts *opts,
                      struct syncd_desired *d);

#endif
