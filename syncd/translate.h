/*
 * translate — Kubernetes objects → the desired state (DESIGN §7), exactly.
 *
 * A pure function: the parsed manifests (Ingress, IngressClass, Service,
 * EndpointSlice, Secret) go in, a struct syncd_desired comes out with
 * VirtualHost, Cluster, Certificate and DefaultBackend resources sorted by
 * (type, name), every rejected object with its reason and location, the
 * objects seen per kind and the Ingresses served. No I/O, no globals: the
 * same input always gives byte-identical output (the optional cache only
 * remembers results, it never changes them).
 *
 * Rules in brief: an Ingress is served when its class is one of ours
 * (controller edge.dev/ingress-controller), or it has no class and one of
 * ours is the default class. An invalid Ingress is rejected whole; a
 * conflicting path (same host, path and pathType) goes to the oldest
 * Ingress (creationTimestamp, then namespace/name; no timestamp counts as
 * newest) and the loser is reported; a bad TLS secret makes the host use
 * the default certificate (tls_fallback) and is reported. Called by the
 * sources (syncd/source*.c), tests and the fuzz target.
 */
#ifndef EDGE_SYNCD_TRANSLATE_H
#define EDGE_SYNCD_TRANSLATE_H

#include "syncd/gateway.h"
#include "syncd/manifest.h"
#include "syncd/model.h"

#define TRANSLATE_CONTROLLER "edge.dev/ingress-controller"
#define TRANSLATE_ANNOTATION_PREFIX "edge.dev/"

struct translate_opts {
  /* The default certificate (PEM, NUL-terminated) emitted as Certificate "default" with
   * is_default; NULL: none is emitted (hosts that fall back still name "default"). */
  const char *default_cert_pem, *default_key_pem;
  /* The secret cookie-affinity keys are derived from (per cluster, HMAC-SHA-256; copied by
   * translator_new); NULL: the edge.dev/affinity annotation has no effect. */
  const uint8_t *affinity_secret;
  size_t affinity_secret_len;
  /* The Gateway API translation's options (copied by translator_new; NULL: its defaults). */
  const struct gateway_opts *gateway;
};

/*
 * Translates every document in `in` (its parse errors become rejections)
 * from scratch. On success returns 0 and *out, owned by the caller
 * (syncd_desired_free). Returns -ENOMEM on allocation failure (never for
 * bad input). The same as a new translator's first update.
 */
int translate_desired(const struct manifest_set *in, const struct translate_opts *opts,
                      struct syncd_desired **out);

/*
 * The incremental translator (translate_world.c): it keeps the objects of
 * the last update and an index from every object to what depends on it —
 * an IngressClass to the Ingresses naming it, a Service to the Ingresses
 * that resolved (or failed to resolve) a backend through it and so to
 * their clusters, an EndpointSlice to its Service's clusters, a Secret to
 * the hosts that claim it and its Certificate, an Ingress to its hosts,
 * clusters and the default backend. An update finds the objects that
 * changed (documents are compared by identity, then by content, so an
 * unchanged object from a re-read file costs nothing) and runs the rules
 * again only for what depends on them; the result is the same, byte for
 * byte, as translating everything from scratch (tested).
 *
 * The Gateway API objects (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
 * TLSRoute, ReferenceGrant, and the Namespaces their selectors read) take
 * part as one more unit (translate_gateway.c): syncd/gateway.h translates
 * them again when one of them changes, when a Service, EndpointSlice or
 * Secret changes in a namespace they name, or when an Ingress host they
 * served or contested changes; its resources are compared with what it
 * emitted before, so only the VirtualHosts, Clusters, Certificates and
 * PassthroughHosts whose bytes changed are in the update. A host both
 * claim goes to the older side (gateway.h); the Ingress VirtualHost of a
 * host the Gateway API keeps is withheld until the host is given back.
 *
 * One translator per source; not thread-safe (the source's loop).
 */
struct translator;

/* opts is copied. 0 or -ENOMEM. */
int translator_new(const struct translate_opts *opts, struct translator **out);
void translator_free(struct translator *t);

/*
 * Brings the translation up to date with `in`, the source's current
 * objects (documents the translator already holds are recognised by
 * pointer; it keeps a reference to each). On success 0 and *out, owned by
 * the translator and valid until the next update: the first update is
 * full (upserted holds every resource); later ones hold what changed.
 * -ENOMEM leaves the translator needing a full rebuild, which the next
 * update does.
 */
int translator_update(struct translator *t, const struct manifest_set *in,
                      const struct syncd_update **out);

/* How many times the Gateway API unit has been translated (tests, logs). */
unsigned long translator_gateway_runs(const struct translator *t);

#endif
