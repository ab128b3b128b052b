/*
 * redirect — the status and Location of a redirect answer, as a pure
 * function of the route's redirect rule and the request.
 *
 * Two kinds: a route's redirect (edge.v1 Redirect: any of scheme, host,
 * port, path, status replaced) and the http → https redirect of a host
 * with TLS (rule NULL, to_https set). Rules:
 *   scheme  the rule's, else "https" for to_https, else the request's;
 *   host    the rule's, else the request's authority (Host / :authority);
 *           its port is kept only when the scheme stays "http" and the
 *           port is not 80; the rule's port replaces any port;
 *   to_https adds the proxy's HTTPS port when it is not 443 (our choice:
 *           nginx would send the client to :443, where nothing may listen);
 *   path    the rule's, else the request target (path and query) as sent;
 *   status  301, 302, 303, 307 or 308 from the rule, else 308.
 * Every value is checked before it is written: a byte that cannot appear
 * in a Location (controls, space, DEL, non-ASCII) makes the call fail, so
 * nothing a tenant or a client sent can split a header.
 *
 * Callers: l7proxy's exchange (the answer) and common/explain.c (what it
 * reports); tests/unit/common/redirect_test.c holds the case table that
 * tests/integration/semantics_test.py also runs through both.
 */
#ifndef EDGE_COMMON_REDIRECT_H
#define EDGE_COMMON_REDIRECT_H

#include <stddef.h>

enum {
  REDIRECT_ERR_INVALID = -1, /* a value that may not be written */
  REDIRECT_ERR_SPACE = -2,   /* out is too small */
};

struct redirect_rule {
  const char *scheme; /* NULL or "": keep */
  const char *host;   /* NULL or "": keep */
  unsigned port;      /* 0: keep (see above) */
  const char *path;   /* NULL or "": the request target */
  unsigned status;    /* 0: 308 */
};

struct redirect_request {
  const char *scheme;    /* "http" or "https" */
  const char *authority; /* "a.com", "a.com:8080", "[::1]:8080" */
  size_t authority_len;
  const char *target; /* "/p?q" */
  size_t target_len;
  unsigned https_port; /* the proxy's --https port; 0 = 443 */
};

/*
 * Writes the Location into out (NUL-terminated) and returns the status;
 * rule NULL with to_https set is the https upgrade. Negative on error.
 */
int redirect_location(const struct redirect_rule *rule, int to_https,
                      const struct redirect_request *req, char *out, size_t cap);

#endif
