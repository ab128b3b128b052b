/*
 * snapshot — an immutable, reference-counted l7proxy configuration built
 * from a set of edge.v1 resources (VirtualHost, Cluster, Certificate,
 * DefaultBackend; see proto/edge/v1/resources.proto).
 *
 * Building validates everything a worker will rely on (endpoint addresses,
 * cluster references, certificate/key pairs) and precompiles the Ingress
 * route lookup (common/router). A snapshot that exists is therefore usable;
 * a rejected set of resources yields a reason for the Nack and no snapshot.
 *
 * Invariants: after l7_snapshot_build returns, nothing in the snapshot
 * changes until the last reference is dropped. Every pointer returned by an
 * accessor (routes, clusters, endpoints, strings, certificates) stays valid
 * while the caller holds a reference. The snapshot owns deep copies of the
 * resources it was built from; the caller's resources may be freed at once.
 *
 * Threads: build on any thread; ref/unref are atomic; lookups are read-only
 * and allocation-free, so any number of workers may use one snapshot.
 *
 * Callers: config_store builds snapshots; config_client publishes them;
 * workers take l7_snapshot_current() per connection/request; the TLS code
 * iterates certificates; the admin endpoint dumps l7_snapshot_to_json().
 */
#ifndef EDGE_L7PROXY_SNAPSHOT_H
#define EDGE_L7PROXY_SNAPSHOT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "edge/v1/resources.pb-c.h"
#include "l7proxy/affinity.h"
#include "l7proxy/ratelimit.h"

struct htpasswd;
struct cors_policy;

/* Defaults filled into clusters whose resource leaves them 0. */
#define L7_DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define L7_DEFAULT_IDLE_TIMEOUT_MS 60000u
#define L7_DEFAULT_MAX_IDLE_PER_ENDPOINT 32u

/* A ready endpoint (endpoints with ready=false are not part of a snapshot). */
struct l7_endpoint {
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char name[64];   /* "10.0.0.1:8080", "[::1]:8080" */
  uint32_t weight; /* >= 1 (0 in the resource means 1) */
};

struct l7_cluster {
  const char *name; /* "namespace/service:port" */
  uint32_t index;   /* dense 0..n_clusters-1 within this snapshot */
  const struct l7_endpoint *endpoints;
  size_t n_endpoints; /* may be 0: the data path answers 503 */
  int lb_policy;      /* EDGE__V1__LB_POLICY__* (UNSPECIFIED = round robin) */
  int protocol;       /* EDGE__V1__UPSTREAM_PROTOCOL__* */
  uint32_t connect_timeout_ms, idle_timeout_ms, max_idle_per_endpoint; /* defaults filled in */
  /* Balancing policies (snapshot_policy.c; NULL: none). Per endpoint, in
   * endpoint order: the affinity cookie token, the rendezvous seed. */
  const Edge__V1__CookieAffinity *affinity;
  const char *affinity_cookie; /* the cookie name (default filled in) */
  char (*affinity_tokens)[AFFINITY_TOKEN_LEN + 1];
  const Edge__V1__ConsistentHash *chash;
  uint64_t *hash_seeds;
  uint32_t *hash_weights; /* NULL when every weight is 1 */
};

/* What a request matched. */
struct l7_route {
  const char *vhost;        /* VirtualHost resource name */
  const char *host_pattern; /* "shop.example.com", "*.example.com", "" (any) */
  int host_match;           /* EDGE__V1__HOST_MATCH__* */
  const char *path;
  int path_type; /* EDGE__V1__PATH_TYPE__* */
  /* NULL when the route only redirects or names no cluster (→ 503). */
  const struct l7_cluster *cluster;
  uint32_t request_timeout_ms, response_header_timeout_ms, retries; /* 0 = proxy default */
  uint64_t max_body_bytes;                                          /* 0 = proxy default */
  const char *rewrite_prefix;                                       /* "" none */
  const Edge__V1__Redirect *redirect;                               /* NULL none */
  int host_has_tls;         /* the vhost names a certificate: plain HTTP → https redirect */
  int disable_ssl_redirect; /* ... unless this is set */
  /* Upgrade protocols allowed (lower case); none listed: websocket. */
  char *const *upgrade_protocols;
  size_t n_upgrade_protocols;
  const char *source; /* "ns/ingress" ("" unknown) */
  /* Per-route policies (snapshot_policy.c; NULL: none). */
  struct htpasswd *basic_auth;
  char *basic_challenge; /* WWW-Authenticate value */
  const Edge__V1__ExternalAuth *ext_auth;
  const struct l7_cluster *ext_auth_cluster;
  const Edge__V1__RateLimit *rate_limit;
  struct rl_params rl;
  char *rl_bucket; /* the route's identity in bucket keys: "vhost\npath\ntype" */
  struct cors_policy *cors;
};

/* A certificate for the TLS code. PEM buffers are not NUL-terminated. */
struct l7_certificate {
  const char *name; /* "namespace/secret" */
  const char *const *sni_names;
  size_t n_sni_names;
  const uint8_t *cert_pem;
  size_t cert_pem_len;
  const uint8_t *key_pem; /* key material: never log or dump */
  size_t key_pem_len;
  int64_t not_after;
  int is_default;
};

struct l7_snapshot; /* opaque */

/*
 * Builds a snapshot from res[0..n). Resources are deep-copied; the caller
 * keeps ownership of res. On success returns 0 and *out holds one reference.
 * On failure returns negative (-EINVAL for bad resources, -ENOMEM) and
 * writes the reason for the Nack to err, e.g.
 *   "cluster default/x:80: endpoint 1.2.3:80: bad address"
 *   "virtual host vh:a.com: route /api references unknown cluster default/y:80"
 *   "certificate default/shop: key does not match certificate"
 */
int l7_snapshot_build(uint64_t version, Edge__V1__Resource *const *res, size_t n,
                      struct l7_snapshot **out, char *err, size_t errlen);

/* l7_snapshot_build_ex flags. */
enum {
  /* Every Certificate in res already passed l7_snapshot_check_certificate
   * (config_store checks each certificate once, when it arrives, instead of
   * re-checking thousands of keys on every delta). */
  L7_SNAPSHOT_CERTS_CHECKED = 1u << 0,
};
int l7_snapshot_build_ex(uint64_t version, Edge__V1__Resource *const *res, size_t n, unsigned flags,
                         struct l7_snapshot **out, char *err, size_t errlen);

/* Checks that a certificate's key matches its leaf (reason in err, e.g.
 * "certificate default/shop: tls.key does not match the certificate") and
 * fills c->not_after from the leaf when it is 0. 0 or -EINVAL. */
int l7_snapshot_check_certificate(Edge__V1__Certificate *c, char *err, size_t errlen);

/* Adds a reference (atomic); returns s. s may be NULL. */
struct l7_snapshot *l7_snapshot_ref(struct l7_snapshot *s);
/* Drops a reference (atomic); frees at zero. s may be NULL. */
void l7_snapshot_unref(struct l7_snapshot *s);

uint64_t l7_snapshot_version(const struct l7_snapshot *s);

/*
 * Ingress lookup (DESIGN §7, see common/router.h for the exact rules).
 * host may carry a port and any case ("Shop.Example.com:8080", "[::1]:80");
 * path is the request path without query (a '?' or '#' ends it anyway).
 * No allocation. Returns NULL when nothing matches (then use
 * l7_snapshot_default_cluster).
 */
const struct l7_route *l7_snapshot_match(const struct l7_snapshot *s, const char *host,
                                         size_t hostlen, const char *path, size_t pathlen);
/* The DefaultBackend's cluster; NULL → answer 404 locally. */
const struct l7_cluster *l7_snapshot_default_cluster(const struct l7_snapshot *s);

size_t l7_snapshot_n_clusters(const struct l7_snapshot *s);
/* i < n_clusters; cluster(i)->index == i. */
const struct l7_cluster *l7_snapshot_cluster(const struct l7_snapshot *s, size_t i);
/* By resource name; NULL if absent. */
const struct l7_cluster *l7_snapshot_find_cluster(const struct l7_snapshot *s, const char *name);

size_t l7_snapshot_n_routes(const struct l7_snapshot *s);
const struct l7_route *l7_snapshot_route(const struct l7_snapshot *s, size_t i);

size_t l7_snapshot_n_certificates(const struct l7_snapshot *s);
const struct l7_certificate *l7_snapshot_certificate(const struct l7_snapshot *s, size_t i);
/* The certificate marked is_default, or NULL. */
const struct l7_certificate *l7_snapshot_default_certificate(const struct l7_snapshot *s);

/* JSON dump for the admin /config endpoint, without key material.
 * Returns a malloc'd NUL-terminated string (caller frees) or NULL. */
char *l7_snapshot_to_json(const struct l7_snapshot *s);

/* What this snapshot does with a request: common/explain over the
 * resources the snapshot was built from (the same code syncd's Explain
 * runs), plus "version". req->url or req->host (+path), optional sni and
 * headers. On success 0 and *json, a malloc'd string (caller frees); a bad
 * request gives a negative code and the reason in err. */
struct explain_request;
int l7_snapshot_explain(const struct l7_snapshot *s, const struct explain_request *req, char **json,
                        char *err, size_t errlen);
/* l7_snapshot_explain for host (may carry a port) and path; NULL on a bad
 * request. Returns a malloc'd string (caller frees). */
char *l7_snapshot_explain_json(const struct l7_snapshot *s, const char *host, const char *path);

/* ---- the process-wide current snapshot ------------------------------- */

/* Returns a new reference to the current snapshot (caller unrefs), or NULL
 * before the first publish. Safe from any thread. */
struct l7_snapshot *l7_snapshot_current(void);
/* Makes s current, taking ownership of one reference of s, and drops the
 * previous current's reference. Connections holding the old snapshot keep
 * it until they unref. s may be NULL (clears). Safe from any thread. */
void l7_snapshot_publish(struct l7_snapshot *s);
/* Increases with every publish; one relaxed atomic load, no lock. A worker
 * may keep its own reference and call l7_snapshot_current() only when the
 * generation differs from the one it last saw (at most one request later
 * than a publish, it sees the new snapshot). */
uint64_t l7_snapshot_generation(void);

#endif
