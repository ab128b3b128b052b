/*
 * http_status — the reason phrase of an HTTP status code (RFC 9110 §15),
 * for status lines written by the admin endpoint and by l7proxy's local
 * answers and HTTP/1.1 responses from HTTP/2 upstreams.
 *
 * Pure; any thread. An unlisted code gets "Unknown" (a reason phrase is
 * informative only: clients must not depend on it).
 */
#ifndef EDGE_COMMON_HTTP_STATUS_H
#define EDGE_COMMON_HTTP_STATUS_H

/* A static string, never NULL. */
const char *http_status_reason(int status);

#endif
