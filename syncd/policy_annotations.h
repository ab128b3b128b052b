/*
 * policy_annotations — the Ingress annotations of the per-route and
 * per-cluster policies (issue 20) turned into typed edge.v1 messages:
 * basic auth from an htpasswd Secret, external auth, rate limits, CORS,
 * cookie affinity and consistent hashing. The table of names is in
 * README ("Ingress annotations").
 *
 * Every value is a tenant's: each is parsed strictly, then the messages
 * are checked with common/policy (the same checks l7proxy runs), and the
 * first problem rejects the Ingress with a reason naming the annotation
 * (syncctl status shows it). Values are never copied into a message raw:
 * names are lower-cased tokens, lists are split and checked one by one.
 * Hashes read from a Secret are never put in a reason.
 *
 * translate.c supplies the environment (annotation lookup, Secrets,
 * Service resolution, its allocation pool) so this file knows nothing of
 * its indexes. Pure over its inputs; single-threaded (translation).
 */
#ifndef EDGE_SYNCD_POLICY_ANNOTATIONS_H
#define EDGE_SYNCD_POLICY_ANNOTATIONS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/v1/resources.pb-c.h"

struct pa_env {
  void *ctx;
  const char *ns; /* the Ingress's namespace */
  /* The annotation's value as text, or NULL. */
  const char *(*get)(void *ctx, const char *name);
  /* The Secret namespace/name as JSON, or NULL. */
  json_t *(*secret)(void *ctx, const char *ns, const char *name);
  /* The cluster name of Service svc port port in the Ingress's namespace
   * (and records that the cluster is used), or NULL with err. */
  const char *(*service)(void *ctx, const char *svc, long port, char *err, size_t errlen);
  /* Zeroed memory freed with the translation; NULL when out of memory. */
  void *(*alloc)(void *ctx, size_t n);
};

struct pa_route {
  Edge__V1__BasicAuth *basic_auth;
  Edge__V1__ExternalAuth *external_auth;
  Edge__V1__RateLimit *rate_limit;
  Edge__V1__Cors *cors;
};

struct pa_cluster {
  Edge__V1__CookieAffinity *cookie_affinity; /* hmac_key filled by pa_affinity_key */
  Edge__V1__ConsistentHash *consistent_hash;
};

/* Reads every policy annotation. 0, or -1 with the reason in err
 * ("annotation edge.dev/limit-rps \"ten\" is not a number"). */
int pa_parse(const struct pa_env *e, struct pa_route *r, struct pa_cluster *c, char *err,
             size_t errlen);

/* The affinity key of a cluster: HMAC-SHA-256(secret, cluster name), so
 * every syncd with the same secret gives every proxy the same key. */
void pa_affinity_key(const uint8_t *secret, size_t secret_len, const char *cluster,
                     uint8_t out[32]);

#endif
