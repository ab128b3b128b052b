/*
 * cors — CORS decisions (Fetch standard, "CORS protocol") for one route,
 * as pure functions over a policy compiled once per snapshot.
 *
 *   - A preflight is OPTIONS with Origin and Access-Control-Request-Method.
 *     The proxy answers it (204) and never forwards it: with the allow
 *     headers when the origin, the method and every requested header are
 *     allowed, else without them (the browser then refuses the request).
 *   - An actual request with an allowed Origin gets
 *     Access-Control-Allow-Origin (the origin itself; "*" only for a
 *     policy allowing any origin without credentials), -Allow-Credentials
 *     and -Expose-Headers; any Access-Control-* header of the upstream's
 *     answer is replaced, so an upstream cannot widen the policy.
 *   - "Vary: Origin" whenever the answer depends on the origin.
 *
 * Origins are compared case-insensitively: exactly, or "scheme:// *.suffix"
 * covering one or more labels before the suffix (same scheme and port).
 *
 * The compiled policy owns its strings; immutable, any thread. Callers:
 * l7proxy/snapshot.c (compile), l7proxy/route_policy.c, unit tests.
 */
#ifndef EDGE_L7PROXY_CORS_H
#define EDGE_L7PROXY_CORS_H

#include <stddef.h>

#include "edge/v1/resources.pb-c.h"
#include "l7proxy/message.h"

struct cors_policy;

/* Compiles c (checked by common/policy). NULL on allocation failure. */
struct cors_policy *cors_compile(const Edge__V1__Cors *c);
void cors_free(struct cors_policy *p);

/* 1 when origin[0..n) is allowed. */
int cors_origin_allowed(const struct cors_policy *p, const char *origin, size_t n);

/* 1 when req is a preflight (OPTIONS + Origin + Access-Control-Request-Method). */
int cors_is_preflight(const struct msg_head *req);

/* The headers of a preflight's answer into out[0..cap) (values point into
 * the policy or the request); returns how many. */
size_t cors_preflight_headers(const struct cors_policy *p, const struct msg_head *req,
                              struct msg_header *out, size_t cap);

/* The headers an actual response gets for origin (NULL: no Origin): into
 * out[0..cap), returns how many (0 when the origin is not allowed, except
 * Vary). */
size_t cors_response_headers(const struct cors_policy *p, const char *origin, size_t n,
                             struct msg_header *out, size_t cap);

/* 1 for an Access-Control-* response header name (lower case). */
int cors_is_cors_header(const char *name, size_t n);

#endif
