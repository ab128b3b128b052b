/*
 * cluster_emit — one Service port as an edge.v1 Cluster: the one place
 * both translators (the Ingress rules in translate.c, the Gateway API in
 * gateway_emit.c) turn a Service and its EndpointSlices into endpoints.
 *
 * Endpoints come from the slices' entries for the port's name (ready and
 * not ready: proxies skip the not-ready ones, explain shows them), or,
 * with no slice at all, the Service's ClusterIP at the Service port.
 * Duplicates (address, port) keep one copy, the ready one first; the
 * result is sorted, so the bytes never depend on the order slices were
 * read in. The Cluster is checked with common/validate before it is
 * packed, as every proxy checks what it receives. Pure: the same input
 * gives the same bytes. Strings are read, never kept.
 */
#ifndef EDGE_SYNCD_CLUSTER_EMIT_H
#define EDGE_SYNCD_CLUSTER_EMIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct Edge__V1__Cluster;

struct cluster_spec {
  const char *name;              /* the Cluster's resource name */
  json_t *svc;                   /* the Service object */
  json_t *svc_port;              /* its spec.ports[] entry */
  const char *svc_ns, *svc_name; /* the SourceRef */
  int protocol, lb;              /* Edge__V1__UpstreamProtocol, Edge__V1__LbPolicy */
  uint32_t connect_timeout_ms;
  /* Optional: sets more Cluster fields before the check and the packing
   * (the Ingress translator's issue-20 policies: upstream TLS, health
   * checks, breakers, affinity, hashing); what it points cl at must live
   * until cluster_emit returns. 0, or -ENOMEM. */
  int (*decorate)(void *arg, struct Edge__V1__Cluster *cl);
  void *decorate_arg;
};

/* Packs the Cluster of c with the endpoints of slices[0..n) (the Service's EndpointSlice
 * objects). 0 and *bytes (malloc'd, *len bytes); -EINVAL when common/validate refuses the
 * Cluster (the check every proxy makes: reason in why, nothing packed); or -ENOMEM. */
int cluster_emit(const struct cluster_spec *c, json_t *const *slices, size_t n_slices,
                 uint8_t **bytes, size_t *len, char *why, size_t whylen);

#endif
