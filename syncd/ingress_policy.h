/*
 * ingress_policy — the issue-20 Ingress annotations that become typed
 * edge.v1 fields (never configuration snippets), validated where they
 * enter:
 *
 *   host side (VirtualHost.client_auth):
 *     edge.dev/auth-tls-secret: NAME        CA bundle: the Secret's ca.crt
 *     edge.dev/auth-tls-configmap: NAME     ... or the ConfigMap's ca.crt
 *     edge.dev/auth-tls-verify-client: on | optional | off   (default on)
 *     edge.dev/auth-tls-verify-depth: N     intermediates allowed, 1..16 (1)
 *     edge.dev/auth-tls-pass-certificate-to-upstream: "true" | "false"
 *   cluster side (Cluster.tls, .health_check, .circuit_breakers):
 *     edge.dev/backend-protocol: https | grpcs      TLS to the endpoints
 *     edge.dev/proxy-ssl-secret: NAME   ca.crt to verify with (else the
 *                                       system's trust store), tls.crt +
 *                                       tls.key: a client certificate
 *     edge.dev/proxy-ssl-verify: on | off          (default on)
 *     edge.dev/proxy-ssl-name: NAME     SNI and the name verified
 *                                       (default SERVICE.NAMESPACE.svc)
 *     edge.dev/health-check-path: /PATH  turns active checks on
 *     edge.dev/health-check-host, -interval, -timeout (5s, 500ms, or
 *       seconds), -rise, -fall (1..100), -expected-status (200 or 200-399),
 *       -port (an HTTP/1.1 health port on the endpoint's address)
 *     edge.dev/max-connections, max-pending-requests, max-retries (0..1e6)
 *
 * A Secret or ConfigMap must be in the Ingress's namespace ("NAME" or
 * "NAMESPACE/NAME" with its own namespace): a tenant reaches only its own
 * objects. Every value is checked (no control characters, bounded
 * lengths, DNS names, PEM that parses, a key that matches its
 * certificate); a bad one rejects the Ingress with a reason naming the
 * annotation. The proxy checks again when it loads the resource.
 *
 * Pure over what translate.c hands it (struct ipol_env): no I/O, no
 * globals; strings it returns live in the env's allocator (the
 * translation's pool). Callers: syncd/translate.c, unit tests.
 */
#ifndef EDGE_SYNCD_INGRESS_POLICY_H
#define EDGE_SYNCD_INGRESS_POLICY_H

#include <stddef.h>

#include "edge/v1/resources.pb-c.h"

/* What translate.c answers from its indexes, for one Ingress. */
struct ipol_env {
  void *ctx;
  const char *ns; /* the Ingress's namespace */
  /* The Ingress's annotation name as text, or NULL. */
  const char *(*annotation)(void *ctx, const char *name);
  /* data[key] (base64-decoded) or stringData[key] of Secret / ConfigMap
   * ns/name; NULL with *why ("not found", "has no key ca.crt"). */
  const char *(*secret_key)(void *ctx, const char *ns, const char *name, const char *key,
                            size_t *len, const char **why);
  const char *(*configmap_key)(void *ctx, const char *ns, const char *name, const char *key,
                               size_t *len, const char **why);
  /* Zeroed memory that lives until the translation ends; NULL when out of
   * memory (the translation then fails). */
  void *(*alloc)(void *ctx, size_t n);
};

/* The policies one Ingress asks for. */
struct ipol_ingress {
  int tls; /* backend-protocol https or grpcs */
  Edge__V1__UpstreamTls upstream_tls;
  int has_health_check;
  Edge__V1__HealthCheck health_check;
  int has_breakers;
  Edge__V1__CircuitBreakers breakers;
  int has_client_auth;
  Edge__V1__ClientAuth client_auth;
};

/* Reads and checks the annotations. protocol_tls: the backend-protocol
 * annotation said https or grpcs. 0, or -1 with a reason naming the
 * annotation ("annotation edge.dev/auth-tls-secret: secret ca not found").
 * Returns -2 when out of memory. */
int ipol_parse(const struct ipol_env *env, int protocol_tls, struct ipol_ingress *out, char *err,
               size_t errlen);

/* Fills the cluster fields for a backend Service svc (ns/svc): tls (with
 * the default server name SVC.NS.svc when none was set), health_check,
 * circuit_breakers, pointing into p (and env's allocator). 0 or -2 when
 * out of memory. */
int ipol_cluster(const struct ipol_env *env, struct ipol_ingress *p, const char *svc,
                 Edge__V1__Cluster *cl);

/* 1 when a and b ask the same of clients (used to report a host whose
 * Ingresses disagree). */
int ipol_same_client_auth(const Edge__V1__ClientAuth *a, const Edge__V1__ClientAuth *b);

/* Pure parsers (exposed for tests): "5s", "500ms", "2m", "3" (seconds) →
 * milliseconds within [min_ms, max_ms]; "200" or "200-399" within
 * 100..599. 0 or -1. */
int ipol_parse_duration_ms(const char *s, uint32_t min_ms, uint32_t max_ms, uint32_t *out);
int ipol_parse_status_range(const char *s, uint32_t *min, uint32_t *max);

#endif
