/*
 * rewrite — the path a route sends upstream (edge.dev/rewrite-target), as
 * a pure function.
 *
 * A Prefix (or ImplementationSpecific) route with a rewrite prefix replaces
 * the matched part of the request path with it: route /v1, rewrite
 * /internal: /v1/items?x=1 → /internal/items?x=1; /v1 → /internal. A
 * slash is not doubled (rewrite "/" on /v1/items → /items), the result
 * always starts with '/', and the query is kept. Exact routes and routes
 * without a rewrite send the path unchanged. A rewrite prefix with a byte
 * that cannot appear in a request target (controls, space, DEL, non-ASCII)
 * is refused, whatever validated it before.
 *
 * Callers: l7proxy's exchange (the request sent upstream) and
 * common/explain.c (what it reports); tests/unit/common/rewrite_test.c
 * holds the case table.
 */
#ifndef EDGE_COMMON_REWRITE_H
#define EDGE_COMMON_REWRITE_H

#include <stddef.h>

enum {
  REWRITE_NONE = 0,         /* nothing to rewrite: send the target as it is */
  REWRITE_ERR_INVALID = -1, /* the rewrite prefix has a forbidden byte */
  REWRITE_ERR_SPACE = -2,   /* out is too small */
};

/*
 * route_path/path_type: the route that matched (path_type as edge.v1
 * PathType: 1 Exact, 2 Prefix, 3 ImplementationSpecific); target[0..len):
 * the request path and query. Writes the new target into out (not
 * NUL-terminated) and returns its length (> 0), or REWRITE_NONE, or an
 * error.
 */
int rewrite_target(const char *route_path, int path_type, const char *rewrite_prefix,
                   const char *target, size_t target_len, char *out, size_t cap);

#endif
