/*
 * syncd/explain — the Status.Explain RPC: answers `syncctl explain` from
 * syncd's current state.
 *
 * The live resources of the store go through common/explain (the same
 * code l7proxy's GET /explain runs, so both agree on the same resources),
 * and syncd adds what only it knows: "version", and "not_served" — objects
 * that never became routes: Ingresses of another IngressClass whose rules
 * name the request host, and rejected Ingresses (with their reasons) that
 * contributed to the matched host, mention the host, or — when nothing
 * matched — any rejected Ingress (at most SYNCD_EXPLAIN_MAX_NOT_SERVED).
 * Both lists come from the store's meta (a packed StatusResponse that
 * main keeps with `rejected` and `ignored`).
 *
 * Runs on syncd's loop thread. Called by syncd/main.c and tests.
 */
#ifndef EDGE_SYNCD_EXPLAIN_H
#define EDGE_SYNCD_EXPLAIN_H

#include <stddef.h>

struct store;
struct rpc_server;

#define SYNCD_EXPLAIN_METHOD "/edge.v1.Status/Explain"
#define SYNCD_EXPLAIN_MAX_NOT_SERVED 20

/*
 * Explains url (sni and headers[0..n_headers) optional) against the
 * store (https_port: the proxies' --https port for the Location of an
 * http → https redirect, 0 for 443; method NULL for GET). On success 0 and *json, a malloc'd
 * NUL-terminated document the caller frees. On a bad request a negative error with the reason in
 * err.
 */
int syncd_explain_json(const struct store *store, const char *url, const char *sni,
                       const char *const *headers, size_t n_headers, unsigned https_port,
                       const char *method, char **json, char *err, size_t errlen);

/* Registers Status.Explain on srv; store and authz (may be NULL: no
 * checks; else callers need a spiffe://edge/syncctl/ identity) must
 * outlive the server. */
struct authz;
int syncd_explain_register(struct store *store, struct authz *authz, struct rpc_server *srv);

#endif
