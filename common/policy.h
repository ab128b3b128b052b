/*
 * policy — the one definition of a well-formed per-route policy (issue 20:
 * basic auth, external auth, rate limit, CORS) and per-cluster balancing
 * policy (cookie affinity, consistent hashing) in edge.v1.
 *
 * Every value here is written by a tenant (Ingress annotations, a Secret)
 * and ends up in a header, a Set-Cookie, a Redis key or a subrequest. syncd
 * checks a policy where it enters (the Ingress is rejected with the reason,
 * shown by `syncctl status`) and l7proxy checks it again when it builds a
 * snapshot (a resource that fails is Nacked), so a value that could split a
 * header, smuggle a cookie attribute or grow a table without bound never
 * reaches the data path, even from a hand-written --config file.
 *
 * The rules (bounds POLICY_MAX_*):
 *   - header names (forwarded / copied auth headers, the rate-limit and
 *     hash header, CORS headers): RFC 9110 tokens, lower case, no
 *     pseudo-headers, never a hop-by-hop or framing header;
 *   - basic auth: realm visible ASCII without '"' and '\'; htpasswd lines
 *     "user:hash" with user visible ASCII without ':' and hash bcrypt
 *     ("$2a$"/"$2b$"/"$2y$", cost 04..31, 60 bytes) or "{SHA}" + 28 bytes
 *     of base64; at most POLICY_MAX_HTPASSWD_LINES;
 *   - external auth: a cluster name, a path (query allowed, no control
 *     character), an optional host, timeout <= 60 s;
 *   - rate limit: 1..1,000,000 requests per 1..3600 s, burst <= 1,000,000;
 *   - CORS: origins "*" or scheme://host[:port] (host may start with "*.")
 *     in lower case; methods upper-case tokens; max-age <= 86400 * 7;
 *   - cookie affinity: the name an RFC 6265 token, the path a cookie-safe
 *     path (no ';', no control character), the key 16..64 bytes;
 *   - at most one of cookie affinity and consistent hashing per cluster.
 *
 * Pure functions over protobuf-c messages: no allocation, no global state,
 * any thread. Reasons never echo a value raw (common control bytes are
 * escaped). Callers: syncd/policy_annotations.c, l7proxy/snapshot.c, tests.
 */
#ifndef EDGE_COMMON_POLICY_H
#define EDGE_COMMON_POLICY_H

#include <stddef.h>

#include "edge/v1/resources.pb-c.h"

#define POLICY_MAX_HTPASSWD_LINES 10000
#define POLICY_MAX_USER 255
#define POLICY_MAX_REALM 128
#define POLICY_MAX_HEADERS 32
#define POLICY_MAX_HEADER_NAME 64
#define POLICY_MAX_ORIGINS 64
#define POLICY_MAX_ORIGIN 256
#define POLICY_MAX_RATE 1000000u
#define POLICY_MAX_PERIOD_S 3600u
#define POLICY_MAX_AUTH_TIMEOUT_MS 60000u
#define POLICY_MAX_CORS_MAX_AGE (86400u * 7)
#define POLICY_DEFAULT_AUTH_TIMEOUT_MS 5000u
#define POLICY_DEFAULT_COOKIE "EDGEAFFINITY"

/* Each returns 0 when well formed, else -1 with the reason in why (the
 * message names the field, e.g. "rate_limit: burst 2000000 is above
 * 1000000"). */
int policy_check_route(const Edge__V1__RouteOptions *o, char *why, size_t whylen);
int policy_check_cluster(const Edge__V1__Cluster *c, char *why, size_t whylen);

/* Building blocks, also used where the values enter (annotations). */
/* A lower-case header name that may be set or copied by a policy. */
int policy_check_header_name(const char *s, char *why, size_t whylen);
/* One htpasswd line "user:hash" (no newline). */
int policy_check_htpasswd_line(const char *s, char *why, size_t whylen);
/* One CORS origin pattern. */
int policy_check_origin(const char *s, char *why, size_t whylen);
/* An RFC 9110 token (methods, cookie names). */
int policy_is_token(const char *s, size_t n);

#endif
