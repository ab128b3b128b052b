/*
 * router — Kubernetes Ingress v1 request matching (DESIGN §7), compiled
 * once from a flat list of rules and then looked up without allocation.
 *
 * Hosts (case-insensitive; a request's port, brackets of an IPv6 literal
 * and one trailing dot are stripped before comparing):
 *   EXACT     "shop.example.com" matches only that host.
 *   WILDCARD  "*.example.com" matches exactly one extra DNS label:
 *             a.example.com yes; b.a.example.com no; example.com no.
 *   ANY       a rule without host matches every host.
 * Paths (the request path up to '?' or '#', never percent-decoded):
 *   EXACT     case-sensitive full match: "/foo" ≠ "/foo/".
 *   PREFIX    whole path elements split by '/', trailing slash ignored on
 *             both sides: "/foo" matches "/foo", "/foo/", "/foo/bar" but
 *             not "/foobar"; "/aaa/bbb/" matches "/aaa/bbb"; "/" matches
 *             every path.
 *   IMPLEMENTATION_SPECIFIC behaves as PREFIX.
 * Precedence: the host tiers are tried in order EXACT, WILDCARD, ANY. In a
 * tier whose host matches, the longest matching path wins (a PREFIX path's
 * length is counted without its trailing slash); for equal lengths EXACT
 * beats PREFIX; remaining ties go to the rule given first.
 *
 * Fall-through: if the host matches an exact or wildcard host but none of
 * its paths match, the next tier is tried (wildcard, then the rules with no
 * host). The Ingress spec says a rule without host "applies to all inbound
 * HTTP traffic", and the default backend takes only requests that match no
 * rule, so a catch-all rule still applies to a host whose own paths miss.
 * This is also what ingress-nginx does for paths of its catch-all server.
 *
 * Gateway API additions (router_match_request):
 *   SUFFIX    "*.example.com" matches one OR MORE labels (a.example.com,
 *             a.b.example.com; not example.com); tried after EXACT and the
 *             one-label WILDCARD, longest suffix first.
 *   REGEX     a path that must match the whole request path
 *             (common/regex.h).
 *   conditions: a method, header matches (name case-insensitive, any
 *             occurrence of the header may match), query-parameter matches
 *             (the first occurrence of the name, raw bytes); all must hold.
 *   listeners: a rule may be served only on the HTTP or the HTTPS
 *             listener; a request names its listener (0: either).
 * Full precedence inside one host: EXACT paths, then REGEX (longer
 * pattern first), then PREFIX (longest first); then a rule with a method
 * condition; then more header conditions; then more query conditions; then
 * the rule given first. For Ingress rules (no conditions, no regex) this is
 * the order above: an exact path that matches is never shorter than a
 * prefix that matches.
 *
 * Invariants: a built router is immutable; lookups are thread-safe and do
 * not allocate. Strings in rule specs are copied; `data` pointers are
 * stored as given and returned by lookups.
 *
 * Callers: l7proxy/snapshot (routing), syncd (explain, later).
 */
#ifndef EDGE_COMMON_ROUTER_H
#define EDGE_COMMON_ROUTER_H

#include <stddef.h>

/* Same numbers as edge.v1 HostMatch and PathType. */
enum router_host_match {
  ROUTER_HOST_EXACT = 1,
  ROUTER_HOST_WILDCARD = 2,
  ROUTER_HOST_ANY = 3,
  ROUTER_HOST_SUFFIX = 4,
};
enum router_path_type {
  ROUTER_PATH_EXACT = 1,
  ROUTER_PATH_PREFIX = 2,
  ROUTER_PATH_IMPLEMENTATION_SPECIFIC = 3,
  ROUTER_PATH_REGEX = 4,
};
/* Listener bits (edge.v1 Listener: HTTP = 1, HTTPS = 2; 0 = both). */
enum {
  ROUTER_LISTENER_HTTP = 1u << 0,
  ROUTER_LISTENER_HTTPS = 1u << 1,
};

/* A header or query-parameter condition. */
struct router_kv_match {
  const char *name;  /* header: any case (compared case-insensitively); query: exact */
  const char *value; /* exact value, or the expression when regex */
  int regex;
};

/* A request header as the data plane holds it (name lower case). */
struct router_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* Longest host accepted (DNS limit 253 plus slack for IPv6 literals). */
#define ROUTER_MAX_HOST 255

/* Error codes (negative). */
enum {
  ROUTER_ERR_INVALID = -1, /* a rule is malformed (reason in err) */
  ROUTER_ERR_NOMEM = -2,
};

struct router_rule {
  const char *host; /* "a.com", "*.a.com"; ignored (may be NULL) for ANY */
  int host_match;   /* enum router_host_match; 0 = derive from host */
  const char *path; /* must start with '/'; NULL or "" means "/" */
  int path_type;    /* enum router_path_type; 0 = PREFIX */
  const void *data; /* returned by router_match */
  /* Gateway API conditions (all optional; strings copied at build). */
  const char *method; /* NULL or "" = any; compared exactly ("GET") */
  const struct router_kv_match *headers;
  size_t n_headers;
  const struct router_kv_match *query;
  size_t n_query;
  unsigned listeners; /* ROUTER_LISTENER_* bits; 0 = both */
};

/* What router_match_request looks at. */
struct router_request {
  const char *host; /* Host / :authority, any case, may carry a port */
  size_t host_len;
  const char *target; /* path, optionally "?query" and "#fragment" */
  size_t target_len;
  const char *method; /* NULL: conditions on the method never hold */
  size_t method_len;
  const struct router_header *headers; /* lower-case names */
  size_t n_headers;
  unsigned listener; /* ROUTER_LISTENER_HTTP or _HTTPS; 0 = unknown (either) */
};

struct router;

/*
 * Compiles rules[0..n). On success 0 and *out (free with router_free). On a
 * malformed rule (empty host for EXACT, "*.x" pattern not a single leading
 * label wildcard, path not starting with '/', host too long) returns
 * ROUTER_ERR_INVALID with a reason naming the rule index.
 */
int router_build(const struct router_rule *rules, size_t n, struct router **out, char *err,
                 size_t errlen);
void router_free(struct router *r);

/* Returns the data of the winning rule, or NULL. Never allocates. */
const void *router_match(const struct router *r, const char *host, size_t hostlen, const char *path,
                         size_t pathlen);
/* For a router built from the rules of one host (one virtual host, as
 * l7proxy's snapshot keeps them): the data of the rule that wins path,
 * whatever the request host (the caller picked the host). NULL if none. */
const void *router_match_path(const struct router *r, const char *path, size_t pathlen);
/* As router_match_path with the full request (conditions, listener, regex
 * paths; the host is ignored): the winning rule's index or -1. */
long router_match_one_host(const struct router *r, const struct router_request *req);
/* As router_match, but returns the winning rule's index (or -1). */
long router_match_index(const struct router *r, const char *host, size_t hostlen, const char *path,
                        size_t pathlen);
/* The full lookup (conditions, listener, regex, suffix hosts): the winning
 * rule's index or -1. Never allocates. */
long router_match_request(const struct router *r, const struct router_request *req);
/* The data of rule i (i from a lookup). */
const void *router_rule_data(const struct router *r, size_t i);

/*
 * Normalizes a request host into buf: lower case, port removed, IPv6
 * brackets removed, one trailing dot removed. Returns the length, or -1 if
 * it does not fit (bufsize must exceed ROUTER_MAX_HOST for any valid host).
 */
int router_normalize_host(const char *host, size_t hostlen, char *buf, size_t bufsize);

/* ---- explain ---------------------------------------------------------- */

enum router_verdict {
  ROUTER_MATCHED = 0,          /* this rule wins */
  ROUTER_SHADOWED,             /* matches, but a better rule wins */
  ROUTER_HOST_DIFFERS,         /* exact host is another name */
  ROUTER_WILDCARD_DEPTH,       /* wildcard suffix fits but not exactly one label */
  ROUTER_WILDCARD_SUFFIX,      /* wildcard suffix differs */
  ROUTER_PATH_DIFFERS,         /* path does not start with the rule path */
  ROUTER_PATH_ELEMENT,         /* prefix ends inside a path element (/aaa vs /aaaccc) */
  ROUTER_EXACT_TRAILING_SLASH, /* exact path differs only by a trailing slash */
  ROUTER_EXACT_DIFFERS,        /* exact path differs otherwise */
  ROUTER_REGEX_DIFFERS,        /* the path does not match the expression */
  ROUTER_SUFFIX_DIFFERS,       /* the host does not end in the wildcard's suffix */
  ROUTER_METHOD_DIFFERS,       /* the method condition does not hold */
  ROUTER_HEADER_DIFFERS,       /* a header condition does not hold */
  ROUTER_QUERY_DIFFERS,        /* a query-parameter condition does not hold */
  ROUTER_LISTENER_DIFFERS,     /* the rule is served on the other listener */
};

/* A short English phrase for a verdict ("host differs"). */
const char *router_verdict_str(enum router_verdict v);

struct router_explanation {
  size_t index;     /* rule index as given to router_build */
  const char *host; /* normalized pattern ("" for ANY) */
  int host_match;
  const char *path;
  int path_type;
  const void *data;
  enum router_verdict verdict;
};

/*
 * Calls fn once per rule, in rule order, with why it does or does not
 * serve host+path. Returns the winning rule's index or -1.
 */
long router_explain(const struct router *r, const char *host, size_t hostlen, const char *path,
                    size_t pathlen, void (*fn)(void *ud, const struct router_explanation *e),
                    void *ud);
/* router_explain for a full request (conditions included). */
long router_explain_request(const struct router *r, const struct router_request *req,
                            void (*fn)(void *ud, const struct router_explanation *e), void *ud);

#endif
