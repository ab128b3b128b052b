/*
 * authz — who may open which syncd stream: node identity and role bound to
 * the client certificate.
 *
 * With mTLS every node presents a certificate carrying exactly one SPIFFE
 * identity as a URI subjectAltName:
 *
 *     spiffe://edge/l7proxy/NAME   may open ConfigSync with node_id NAME
 *                                  (receives routes, certificates, keys)
 *     spiffe://edge/l4lb/NAME      may open Membership.Watch as NAME
 *                                  (receives the replica set, never keys)
 *     spiffe://edge/syncctl/NAME   may call Status and Explain
 *
 * NAME "*" binds the role but not the name (one certificate shared by the
 * replicas of a Kubernetes Deployment, whose pod names are not known when
 * the certificate is issued); a per-node certificate is the stronger
 * choice. A Hello or WatchRequest whose node id or role does not match is
 * refused (PERMISSION_DENIED), logged (msg=stream_refused), counted
 * (edge_syncd_refusals_total{method,reason}) and kept for Status (the last
 * AUTHZ_MAX_REFUSALS distinct refusals, with a count). Without TLS
 * (--insecure, loopback only) there are no identities and nothing is
 * checked.
 *
 * authz_decide is a pure function over the certificate's URIs (unit
 * tested); authz_check wraps it with the logging, counting and recording.
 * Runs on syncd's loop thread. Callers: config_sync.c, membership.c,
 * status.c, explain.c; status.c reads the refusals.
 */
#ifndef EDGE_SYNCD_AUTHZ_H
#define EDGE_SYNCD_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#define AUTHZ_TRUST_DOMAIN "edge"
#define AUTHZ_MAX_REFUSALS 32

enum authz_role { AUTHZ_L7PROXY = 0, AUTHZ_L4LB, AUTHZ_SYNCCTL, AUTHZ_N_ROLES };

struct rpc_call;
struct metrics_registry;
struct authz;

/* One distinct refusal, as Status shows it. */
struct authz_refusal {
  char method[32];
  char peer[96];
  char identity[256];
  char node_id[128];
  char reason[200];
  int64_t last_at;
  uint64_t count;
};

/* "l7proxy", "l4lb", "syncctl". */
const char *authz_role_name(enum authz_role role);

/*
 * The decision: 0 when a certificate with URI SANs uris[0..n) may act as
 * `role` with node id `node_id` (NULL: any name, e.g. syncctl), else -1
 * with the reason ("the certificate carries no spiffe://edge/ identity",
 * "the certificate is for role l4lb, not l7proxy", "the certificate is for
 * node l7-a, not l7-b").
 */
int authz_decide(const char *const *uris, size_t n, enum authz_role role, const char *node_id,
                 char *why, size_t whylen);

/* metrics may be NULL. enabled: 0 for an insecure server (no identities). */
int authz_new(int enabled, struct metrics_registry *metrics, struct authz **out);
void authz_free(struct authz *a);

/* authz_decide for call; on refusal also logs, counts and records it.
 * method names the service ("ConfigSync"). 0 allowed, -1 refused (why). */
int authz_check(struct authz *a, struct rpc_call *call, const char *method, enum authz_role role,
                const char *node_id, char *why, size_t whylen);

/* Recorded refusals, oldest first; valid until the next authz_check. */
size_t authz_refusals(const struct authz *a, const struct authz_refusal **out);

#endif
