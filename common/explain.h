/*
 * explain — answers "what happens to this request?" from a set of edge.v1
 * resources: the host entry and route that serve a URL (common/router, the
 * one implementation of the Ingress rules), the Ingress each came from, the
 * cluster and its endpoints with readiness, the certificate a TLS client
 * gets for its SNI (common/sni, the table the proxy's handshake selects
 * with), any redirect and path rewrite (common/redirect, common/rewrite,
 * the functions the data path calls) (a route redirect, or the
 * http → https 308 of a host with TLS), and when nothing matches the
 * closest candidates with why each did not match.
 *
 * Both syncd (from its store) and l7proxy (from the snapshot it serves)
 * call explain_build on their resources, so the two answers come from the
 * same code and differ only when the resources differ (a stale or NACKing
 * proxy). Pure code: no I/O, no globals, thread-safe.
 *
 * JSON shape (stable; tests and syncctl rely on it):
 *   {"request":   {"url","scheme","host","port","path","sni","headers":[..]},
 *    "matched":   bool,
 *    "host_entry":{"vhost","host","host_match":"EXACT|WILDCARD|ANY",
 *                  "ingresses":[..],"certificate","tls_fallback"} | null,
 *    "route":     {"path","path_type","cluster","source":"ns/name",
 *                  "source_kind":"Ingress|HTTPRoute|GRPCRoute"
 *                  [,"method","headers":[..],"query":[..]]  (Gateway API conditions)
 *                  [,"listener":"HTTP|HTTPS"]
 *                  [,"weighted_clusters":[{"cluster","weight"}],"picked"]
 *                  [,"request_headers","response_headers":{"set","add","remove"}]
 *                  [,"mirrors":[{"cluster","per_million"}]]} | null;
 *                  a weighted route's cluster is the one the request's
 *                  X-Request-Id picks (common/weighted, as the proxy does),
 *                  or "" without one,
 *    "passthrough": {"name","host","clusters":[..],"source"} | null: the
 *                  SNI names a TLS passthrough host (not terminated),
 *    "default_backend": cluster name | "" (only when matched is false),
 *    "cluster":   {"name","endpoints":[{"address","port","ready","zone"}],
 *                  "ready_endpoints":N} | null,
 *    "certificate": {"name","match":"exact|wildcard|default","sni_names",
 *                  "issuer","not_after","source","is_default"} | null
 *                  (plain http without SNI, or no certificate at all),
 *    "redirect":  {"status","location","reason"} | null (common/redirect),
 *    "rewrite":   {"path"} | null: the target sent upstream when the route
 *                  rewrites it (common/rewrite),
 *    "candidates":[{"vhost","host","host_match","path","path_type",
 *                   "cluster","source","source_kind","verdict"[,"hint"]}], closest first,
 *                  at most EXPLAIN_MAX_CANDIDATES, the winner excluded;
 *                  "hint" flags a host within 2 edits (a typo?)
 *    "problems":  ["cluster default/api:80 has no ready endpoints", ..]}
 * Callers: syncd/explain.c (Explain RPC), l7proxy/config_client.c (GET
 * /explain).
 */
#ifndef EDGE_COMMON_EXPLAIN_H
#define EDGE_COMMON_EXPLAIN_H

#include <jansson.h>
#include <stddef.h>

#include "edge/v1/resources.pb-c.h"

enum {
  EXPLAIN_ERR_INVALID = -1, /* bad URL or request (reason in err) */
  EXPLAIN_ERR_NOMEM = -2,
};

/* At most this many candidates are listed. */
#define EXPLAIN_MAX_CANDIDATES 10

struct explain_request {
  /* "https://shop.example.com:8443/cart?x=1"; "shop.example.com/cart"
   * (scheme http); NULL: use host and path below. */
  const char *url;
  const char *host; /* when url is NULL; may carry a port */
  const char *path; /* when url is NULL; NULL means "/" */
  /* Server name a TLS client sends; NULL or "": the URL's host for https
   * (no certificate is reported for plain http without an SNI). */
  const char *sni;
  /* "Name: value" strings. A Host header replaces the URL's host for
   * routing, as it does for a real request. */
  const char *const *headers;
  size_t n_headers;
  /* The proxy's HTTPS port for the http → https Location (0: 443). */
  unsigned https_port;
  /* Request method (NULL or "": GET): Gateway API method conditions. */
  const char *method;
};

/*
 * Explains req against res[0..n) (any mix of VirtualHost, Cluster,
 * Certificate and DefaultBackend; unknown kinds are skipped). On success
 * returns 0 and *out, a new JSON object the caller json_decref's. Returns
 * EXPLAIN_ERR_INVALID with a reason in err for a URL that cannot be parsed
 * or resources the router rejects; never crashes on bad input.
 */
int explain_build(Edge__V1__Resource *const *res, size_t n, const struct explain_request *req,
                  json_t **out, char *err, size_t errlen);

/*
 * Splits url into scheme ("http"/"https"), host (no port, no brackets),
 * port (the default of the scheme when absent) and path (with query).
 * 0 or EXPLAIN_ERR_INVALID.
 */
int explain_parse_url(const char *url, char *scheme, size_t schemelen, char *host, size_t hostlen,
                      unsigned *port, char *path, size_t pathlen);

/* Renders an explain_build result for people (the syncctl explain text).
 * Returns a malloc'd string (caller frees) or NULL. */
char *explain_format_text(const json_t *result);

#endif
