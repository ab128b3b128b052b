/*
 * snapshot — an immutable, reference-counted l7proxy configuration built
 * from a set of edge.v1 resources (VirtualHost, Cluster, Certificate,
 * DefaultBackend; see proto/edge/v1/resources.proto), together with the
 * TLS store of the same certificates: one generation, published once.
 *
 * Building validates everything a worker will rely on (endpoint addresses,
 * cluster and certificate references, host patterns and paths) and
 * precompiles the route lookup: host tables (exact, one-label wildcard,
 * Gateway API suffix wildcard; per listener) to compiled virtual hosts,
 * each with its own matcher (common/router: paths, and the Gateway API's
 * method, header and query conditions). PassthroughHosts (Gateway API
 * TLSRoute) get their own SNI tables. A snapshot that
 * exists is therefore usable; a rejected change yields a reason for the
 * Nack and no snapshot. Certificates are not decoded here: the TLS store
 * loads one on its first handshake (tls.h).
 *
 * Incremental: a builder (struct l7_builder) keeps the current resources,
 * each compiled once and shared by every snapshot that holds it. Applying
 * a push compiles only the resources it carries and makes the next
 * snapshot from the previous one's tables, changing only the hosts,
 * clusters and certificates the push touched; a route names its cluster by
 * a slot (stable per cluster name), so a changed cluster does not touch the
 * virtual hosts that use it. A push that changes no certificate shares the
 * previous TLS store.
 *
 * Invariants: a snapshot never changes after it is built. Every pointer
 * returned by an accessor (routes, clusters, endpoints, strings,
 * certificates) stays valid while the caller holds a reference to it.
 *
 * Threads: the builder belongs to one thread (the config client's loop);
 * snapshot ref/unref are atomic; lookups are read-only and allocation-free,
 * so any number of workers may use one snapshot.
 *
 * Callers: config_store builds snapshots; config_client publishes them;
 * workers take l7_snapshot_current() per connection/request (and the TLS
 * store from it); the admin endpoint dumps l7_snapshot_to_json().
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
#define L7_DEFAULT_MAX_IDLE_PER_ENDPOINT \
  256u /* like ingress-nginx's upstream-keepalive-connections (320) */

/* A ready endpoint (endpoints with ready=false are not part of a snapshot). */
struct l7_endpoint {
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char name[64];   /* "10.0.0.1:8080", "[::1]:8080" */
  uint32_t weight; /* >= 1 (0 in the resource means 1) */
};

struct l7_cluster {
  const char *name; /* "namespace/service:port" */
  uint32_t slot;    /* stable while a cluster of this name exists; small and dense-ish */
  const struct l7_endpoint *endpoints;
  size_t n_endpoints; /* may be 0: the data path answers 503 */
  int lb_policy;      /* EDGE__V1__LB_POLICY__* (UNSPECIFIED = round robin) */
  int protocol;       /* EDGE__V1__UPSTREAM_PROTOCOL__* */
  uint32_t connect_timeout_ms, idle_timeout_ms, max_idle_per_endpoint; /* defaults filled in */
  /* issue 20: upstream TLS, health checks, circuit breakers (compiled with
   * the cluster resource, l7proxy/snapshot_policy.c) */
  struct utls_ctx *tls;  /* TLS to the endpoints (the resource's reference); NULL: plain */
  const char *tls_error; /* the TLS configuration was refused: requests get 502 ("" none) */
  const Edge__V1__HealthCheck *health_check; /* NULL: none (active checks off) */
  struct breaker *breaker;                   /* process-wide counters; NULL when no limit is set */
  uint32_t max_connections, max_pending_requests, max_retries; /* 0: unlimited */
  /* Balancing policies (snapshot_policy.c; NULL: none). Per endpoint, in
   * endpoint order: the affinity cookie token, the rendezvous seed. */
  const Edge__V1__CookieAffinity *affinity;
  const char *affinity_cookie; /* the cookie name (default filled in) */
  char (*affinity_tokens)[AFFINITY_TOKEN_LEN + 1];
  const Edge__V1__ConsistentHash *chash;
  uint64_t *hash_seeds;
  uint32_t *hash_weights; /* NULL when every weight is 1 */
};

/* One backend of a weighted route or passthrough host: a cluster by name
 * and slot, like a route's (l7_snapshot_weighted_cluster gives it). */
struct l7_weighted_cluster {
  const char *name; /* "": a backend that did not resolve (its share gets 500) */
  uint32_t slot;
  uint32_t weight; /* 0: never chosen */
};

/* A fire-and-forget copy of the request (Gateway API RequestMirror). */
struct l7_mirror {
  const char *name; /* the cluster, by name and slot */
  uint32_t slot;
  uint32_t per_million; /* 0: every request */
};

struct headermod;

/* What a request matched. */
struct l7_route {
  const char *vhost;        /* VirtualHost resource name */
  const char *host_pattern; /* "shop.example.com", "*.example.com", "" (any) */
  int host_match;           /* EDGE__V1__HOST_MATCH__* */
  const char *path;
  int path_type; /* EDGE__V1__PATH_TYPE__* */
  /* The cluster by name ("" when the route only redirects or names none,
   * → 503) and slot: l7_snapshot_route_cluster() gives this snapshot's. */
  const char *cluster_name;
  uint32_t cluster_slot;
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
  /* issue 20: the host's client certificate policy (the virtual host
   * resource's; NULL: none) */
  const struct cauth_policy *client_auth;
  /* Per-route policies (snapshot_policy.c; NULL: none). */
  struct htpasswd *basic_auth;
  char *basic_challenge; /* WWW-Authenticate value */
  const Edge__V1__ExternalAuth *ext_auth;
  uint32_t ext_auth_slot; /* its cluster's slot: l7_snapshot_ext_auth_cluster() */
  const Edge__V1__RateLimit *rate_limit;
  struct rl_params rl;
  char *rl_bucket; /* the route's identity in bucket keys: "vhost\npath\ntype" */
  struct cors_policy *cors;
  int has_request_policy; /* cors, rate_limit, basic_auth or ext_auth: rp_request has work */
  /* Gateway API (and Ingress canary) additions; all empty for a plain Ingress route. */
  const struct l7_weighted_cluster *weighted; /* when n_weighted > 0, replaces cluster */
  size_t n_weighted;
  const struct headermod *request_headers, *response_headers; /* NULL: none */
  const struct l7_mirror *mirrors;
  size_t n_mirrors;
  const char *rewrite_path, *rewrite_host; /* "" none */
  uint32_t backend_request_timeout_ms;     /* 0 none */
  uint32_t direct_status;                  /* answer locally with it (500: no valid backend) */
  int listener;                            /* EDGE__V1__LISTENER__*: ANY, HTTP or HTTPS */
};

/* A TLS passthrough host: SNI → TCP splice to one of the clusters. */
struct l7_passthrough {
  const char *name;
  const char *host; /* "a.com" or "*.a.com" (suffix) */
  int host_match;
  const struct l7_weighted_cluster *clusters;
  size_t n_clusters;
  const char *source; /* "ns/tlsroute" */
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
  /* issue 20: the OCSP response syncd fetched, stapled while current */
  const uint8_t *ocsp_response; /* DER; NULL/0: none */
  size_t ocsp_response_len;
  int64_t ocsp_next_update; /* seconds since the epoch; 0: none given */
};

struct l7_snapshot; /* opaque */
struct tls_options;
struct utls_ctx;
struct breaker;
struct cauth_policy;

/*
 * The builder: the current resources and what indexes them. tls (copied;
 * NULL when the proxy has no HTTPS listener) configures the TLS store
 * every snapshot carries.
 */
struct l7_builder;
int l7_builder_new(const struct tls_options *tls, struct l7_builder **out);
void l7_builder_free(struct l7_builder *b);

/*
 * Applies a change: with full, upserted is the whole new state; otherwise
 * upserted are added or replaced and removed dropped (absent names are not
 * an error). Resources are deep-copied. On success 0 and *out, a new
 * snapshot (one reference for the caller) of version; the builder holds
 * the new state. On failure a negative code (-EINVAL bad resources,
 * -ENOMEM), the reason for the Nack in err, and the builder unchanged:
 *   "cluster default/x:80: endpoint 1.2.3:80: bad address"
 *   "virtual host vh:a.com: route /api references unknown cluster default/y:80"
 *   "cluster default/y:80: removed but still used by virtual host vh:a.com"
 */
int l7_builder_apply(struct l7_builder *b, uint64_t version, int full,
                     Edge__V1__Resource *const *upserted, size_t n_upserted,
                     Edge__V1__ResourceName *const *removed, size_t n_removed,
                     struct l7_snapshot **out, char *err, size_t errlen);
/* Whether the TLS store decodes every certificate when it is built (a key
 * decode: ~2 ms each on OpenSSL 3) instead of on its first handshake. Off
 * by default: syncd makes the same check (common/cert_valid) before it
 * sends a certificate. On for configuration files, which nothing checked
 * before, so /config lists what they hold that OpenSSL refuses. Either
 * way a refused certificate never fails the apply: its names get the
 * default certificate and tls_store_problem reports it (issue 15). */
void l7_builder_set_verify_keys(struct l7_builder *b, int on);
/*
 * l7_builder_apply that takes the upserted messages instead of copying
 * them: each upserted[i] must come from protobuf-c's unpack with the
 * default allocator (a Push or Snapshot the caller unpacked) or be NULL.
 * On return every entry is NULL (kept by the builder or freed), whatever
 * the result; the caller frees the enclosing message as usual.
 */
int l7_builder_apply_adopt(struct l7_builder *b, uint64_t version, int full,
                           Edge__V1__Resource **upserted, size_t n_upserted,
                           Edge__V1__ResourceName *const *removed, size_t n_removed,
                           struct l7_snapshot **out, char *err, size_t errlen);
/* Version of the builder's current state (0 before any). */
uint64_t l7_builder_version(const struct l7_builder *b);
/* The current resource of that type and name, or NULL (valid until the
 * next apply). type is EDGE__V1__RESOURCE_TYPE__*. */
const Edge__V1__Resource *l7_builder_get(const struct l7_builder *b, int type, const char *name);
/* The current snapshot (borrowed; NULL before any apply). */
struct l7_snapshot *l7_builder_snapshot(const struct l7_builder *b);

/*
 * Builds a snapshot from res[0..n) alone (a builder used once, checking
 * keys; no TLS store). Same contract and reasons as l7_builder_apply with
 * full.
 */
int l7_snapshot_build(uint64_t version, Edge__V1__Resource *const *res, size_t n,
                      struct l7_snapshot **out, char *err, size_t errlen);

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
/* The full lookup (common/router.h: method, headers, query, listener,
 * regex paths, suffix hosts). No allocation. NULL when nothing matches. */
struct router_request;
const struct l7_route *l7_snapshot_match_request(const struct l7_snapshot *s,
                                                 const struct router_request *req);
/* The passthrough host for a TLS server name (NULL: terminate TLS as
 * usual). l7_snapshot_n_passthrough() == 0 means the HTTPS listener need
 * not peek at all. */
const struct l7_passthrough *l7_snapshot_passthrough(const struct l7_snapshot *s, const char *sni,
                                                     size_t len);
size_t l7_snapshot_n_passthrough(const struct l7_snapshot *s);
/* The DefaultBackend's cluster; NULL → answer 404 locally. */
const struct l7_cluster *l7_snapshot_default_cluster(const struct l7_snapshot *s);
/* The cluster route r (from this snapshot's lookups) sends to, or NULL
 * when it names none. */
/* The cluster of a weighted backend or a mirror in this snapshot (NULL:
 * none of that name, or a backend that did not resolve). */
const struct l7_cluster *l7_snapshot_weighted_cluster(const struct l7_snapshot *s,
                                                      const struct l7_weighted_cluster *w);
const struct l7_cluster *l7_snapshot_mirror_cluster(const struct l7_snapshot *s,
                                                    const struct l7_mirror *m);
const struct l7_cluster *l7_snapshot_route_cluster(const struct l7_snapshot *s,
                                                   const struct l7_route *r);
/* The external-auth cluster of route r in s (NULL: none). */
const struct l7_cluster *l7_snapshot_ext_auth_cluster(const struct l7_snapshot *s,
                                                      const struct l7_route *r);
/* The TLS store of this generation (borrowed: valid while s is; take a
 * reference with tls_store_ref to keep it longer), NULL without HTTPS. */
struct tls_store *l7_snapshot_tls(const struct l7_snapshot *s);

size_t l7_snapshot_n_clusters(const struct l7_snapshot *s);
/* The clusters sorted by name, i < n_clusters. */
const struct l7_cluster *l7_snapshot_cluster(const struct l7_snapshot *s, size_t i);
/* By resource name; NULL if absent. */
const struct l7_cluster *l7_snapshot_find_cluster(const struct l7_snapshot *s, const char *name);

/* Every route, virtual hosts in name order (O(n) per call: dumps and tests). */
size_t l7_snapshot_n_routes(const struct l7_snapshot *s);
const struct l7_route *l7_snapshot_route(const struct l7_snapshot *s, size_t i);

size_t l7_snapshot_n_certificates(const struct l7_snapshot *s);
const struct l7_certificate *l7_snapshot_certificate(const struct l7_snapshot *s, size_t i);
/* The certificate marked is_default, or NULL. */
const struct l7_certificate *l7_snapshot_default_certificate(const struct l7_snapshot *s);

/* The client-certificate policy a TLS handshake for server name sni (""
 * or NULL: none sent) is made under: the policy of the virtual host the
 * host tables give sni (exact host, then its one-label wildcard, then the
 * host-less one — an exact host without a policy shadows a wildcard with
 * one). NULL: none; at once when no virtual host has a policy. Borrowed:
 * valid while s is (cauth_policy_ref to keep it). */
const struct cauth_policy *l7_snapshot_client_auth_for(const struct l7_snapshot *s,
                                                       const char *sni);
/* When some virtual host of s has a policy: fills *src with a lookup over
 * s (l7_snapshot_client_auth_for) holding its own reference to s, and
 * returns 1 (the TLS connection given src releases it). Else 0. */
struct tls_client_auth_source;
int l7_snapshot_client_auth_source(struct l7_snapshot *s, struct tls_client_auth_source *src);

/* The resources the snapshot holds, sorted by (type, name): how many, and
 * a malloc'd array of them (borrowed: valid while s is; caller frees the
 * array; NULL only on allocation failure with *n > 0). s may be NULL. */
size_t l7_snapshot_n_resources(const struct l7_snapshot *s);
Edge__V1__Resource **l7_snapshot_resources(const struct l7_snapshot *s, size_t *n);

/* A cluster outlives the snapshots it came from while held: a cluster
 * unchanged by a push is the same object in the next snapshot, so a
 * worker may key per-cluster state by its address (held, the address is
 * never reused). Atomic; c may be NULL. */
const struct l7_cluster *l7_cluster_hold(const struct l7_cluster *c);
void l7_cluster_release(const struct l7_cluster *c);

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
