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

#include "syncd/manifest.h"
#include "syncd/model.h"

#define TRANSLATE_CONTROLLER "edge.dev/ingress-controller"
#define TRANSLATE_ANNOTATION_PREFIX "edge.dev/"

/*
 * Results of TLS secret checks kept between translations, keyed by a
 * SHA-256 of the certificate and key: even with default_cert_check's fast
 * path a pair costs ~0.4 ms under OpenSSL 3 (d2i_X509), so 10,000 secrets
 * would otherwise cost 4 s per change.
 * Entries not used by the latest translation are dropped. Not thread-safe:
 * one cache per caller thread. Owned by the caller.
 */
struct translate_cache;
struct translate_cache *translate_cache_new(void);
void translate_cache_free(struct translate_cache *c);

struct translate_opts {
  /* The default certificate (PEM, NUL-terminated) emitted as Certificate "default" with
   * is_default; NULL: none is emitted (hosts that fall back still name "default"). */
  const char *default_cert_pem, *default_key_pem;
  /* Optional cache of secret checks (NULL: check every secret every time). Updated in place. */
  struct translate_cache *cache;
  /* The secret cookie-affinity keys are derived from (per cluster, HMAC-SHA-256); NULL:
   * the edge.dev/affinity annotation has no effect. */
  const uint8_t *affinity_secret;
  size_t affinity_secret_len;
};

/*
 * Translates every document in `in` (its parse errors become rejections).
 * On success returns 0 and *out, owned by the caller (syncd_desired_free).
 * Returns -ENOMEM on allocation failure (never for bad input).
 */
int translate_desired(const struct manifest_set *in, const struct translate_opts *opts,
                      struct syncd_desired **out);

#endif
