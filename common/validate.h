/*
 * validate — the one definition of a well-formed tenant value.
 *
 * Everything a tenant writes (an Ingress, its annotations, a Service, an
 * EndpointSlice, a Secret's name) can end up in a request line, a header,
 * a log line, a metric label or Status. syncd checks each value with these
 * functions where it enters (translation: the object is rejected with the
 * reason, reported in `syncctl status`), checks every resource it is about
 * to publish with validate_resource, and l7proxy runs validate_resource
 * again on every resource when it builds a snapshot, so a value that is
 * not well formed never reaches the wire even from a buggy or hostile
 * control plane or a hand-written --config file.
 *
 * The rules (the bounds are VALIDATE_MAX_*):
 *   - host: a lower-case DNS name (labels of [a-z0-9-], 1..63 bytes, not
 *     starting or ending with '-', at most 253 bytes), optionally "*." +
 *     a DNS name; "" means any host where allowed;
 *   - path (route paths, rewrite targets, redirect paths): starts with '/',
 *     only RFC 3986 path characters (unreserved, sub-delims, ':', '@', '/')
 *     and well-formed %XX escapes; no space, no control character, no '?'
 *     or '#' (a redirect path may carry a query: '?' allowed there);
 *   - name (resource names, cluster and certificate references, sources):
 *     visible ASCII (0x21..0x7e) except '"' and '\', 1..VALIDATE_MAX_NAME;
 *   - Kubernetes object names: DNS-1123 subdomains (names) and labels
 *     (namespaces), as the API server would enforce;
 *   - enums and statuses hold known values;
 *   - the issue-20 policies: TLS server names and health-check hosts are
 *     DNS names or IP literals, health-check paths paths (a query
 *     allowed), client-auth modes and depths known; route policies and
 *     cluster balancing policies through common/policy (header names,
 *     origins, htpasswd lines, bounds).
 *   - Gateway API fields (syncd/gateway.h): a regular-expression path is
 *     visible ASCII (common/regex.h compiles it); methods and header names
 *     are RFC 9110 tokens; header values, header and query match values
 *     are visible ASCII, space or tab (never CR, LF or another control
 *     byte); a rewrite path is a path and a rewrite host a host; weighted,
 *     mirror and passthrough clusters are names; a direct status is an
 *     HTTP status.
 *
 * Pure functions over strings and protobuf-c messages: no allocation, no
 * global state, any thread. A reason never echoes the value raw: use
 * validate_quote to show an untrusted value (control bytes escaped,
 * length bounded). Callers: syncd/translate.c, syncd/main.c,
 * l7proxy/snapshot.c, tests/fuzz/validate_fuzz.c.
 */
#ifndef EDGE_COMMON_VALIDATE_H
#define EDGE_COMMON_VALIDATE_H

#include <stddef.h>

#include "edge/v1/resources.pb-c.h"

#define VALIDATE_MAX_HOST 253
#define VALIDATE_MAX_PATH 1024
#define VALIDATE_MAX_NAME 512

/* Each returns 0 when s is well formed, else -1 with a short reason
 * ("contains a control character") in why (may be NULL). */
int validate_host(const char *s, int allow_wildcard, int allow_empty, char *why, size_t whylen);
int validate_path(const char *s, char *why, size_t whylen);
int validate_name(const char *s, char *why, size_t whylen);
/* subdomain: 1 for object names (DNS-1123 subdomain, 253), 0 for
 * namespaces (DNS-1123 label, 63). */
int validate_k8s_name(const char *s, int subdomain, char *why, size_t whylen);
/* Redirect: scheme "", "http" or "https"; host "" or an exact host; port
 * 0..65535; path "" or a path (a query allowed); status 0 or 301, 302,
 * 303, 307, 308. */
int validate_redirect(const Edge__V1__Redirect *r, char *why, size_t whylen);

/* A header name (an RFC 9110 token) and, when value is not NULL, a header
 * value (visible ASCII, space or tab: never CR, LF or another control
 * byte), each at most 256 / 4096 bytes. Header modifiers and header/query
 * matches (Gateway API) are checked with it where they enter. */
int validate_header(const char *name, const char *value, char *why, size_t whylen);

/* Every tenant-reachable field of one resource. On failure -1 and err
 * names the resource and the field, e.g. "virtual host vh:a.com: route
 * /x: rewrite_prefix \"/x HTTP/1.1\\r\\nX-Injected...\" contains a
 * control character". */
int validate_resource(const Edge__V1__Resource *r, char *err, size_t errlen);

/* Writes a printable, bounded rendering of an untrusted value into buf
 * (C-style escapes for bytes outside 0x20..0x7e, '"' and '\' escaped,
 * "..." when cut) and returns buf. */
const char *validate_quote(const char *s, char *buf, size_t buflen);

#endif
