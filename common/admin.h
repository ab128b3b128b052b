/*
 * admin — the admin HTTP endpoint every daemon serves on its own port.
 *
 * Built-in paths: /healthz (200 "ok" while the process runs), /readyz (200
 * when admin_set_ready(1) and not draining, else 503), /metrics (the
 * registry as Prometheus text). Daemons add more paths (/config, /lookup,
 * /explain) with admin_handle. A tiny HTTP/1.1 server on a libuv loop:
 * GET/HEAD only, one request per connection is enough (Connection: close),
 * request head limited to 8 KiB, 5 s read timeout.
 */
#ifndef EDGE_COMMON_ADMIN_H
#define EDGE_COMMON_ADMIN_H

#include <stddef.h>
#include <uv.h>

struct metrics_registry;
struct admin_server;

/* What a handler answers. body is malloc'd by the handler (admin frees it). */
struct admin_response {
  int status;               /* 200 */
  const char *content_type; /* static string; NULL: text/plain */
  char *body;
  size_t body_len;
};

/* path is without the query; query is the part after '?' ("" if none),
 * still percent-encoded (see admin_query_get). Runs on the admin loop. */
typedef void (*admin_handler_fn)(void *ud, const char *path, const char *query,
                                 struct admin_response *resp);

/* Listens on "ADDR:PORT" on loop. metrics may be NULL. */
int admin_start(uv_loop_t *loop, const char *listen, struct metrics_registry *metrics,
                struct admin_server **out, char *err, size_t errlen);
int admin_port(const struct admin_server *a);
/* Exact-path handler. */
int admin_handle(struct admin_server *a, const char *path, admin_handler_fn fn, void *ud);
/* admin_set_ready and admin_set_draining are atomic: callable from any
 * thread. Everything else runs on the admin loop's thread. */
void admin_set_ready(struct admin_server *a, int ready);
/* Draining: /readyz answers 503 "draining" from now on. */
void admin_set_draining(struct admin_server *a, int draining);
void admin_close(struct admin_server *a, void (*done)(void *arg), void *arg);

/* A parsed request head: pointers into the caller's buffer. */
struct admin_request {
  const char *method; /* "GET", "HEAD", ... (a token) */
  const char *path;   /* starts with '/', without the query */
  const char *query;  /* after '?', "" when none; still percent-encoded */
  size_t head_len;    /* bytes of the buffer the head took */
};

enum { ADMIN_PARSE_INCOMPLETE = 0, ADMIN_PARSE_OK = 1, ADMIN_PARSE_BAD = -1 };

/*
 * Parses the request head at the start of buf[0..len) (pure; the fuzz
 * target and the server use it): "METHOD SP /TARGET SP HTTP/1.x" CRLF,
 * then "name: value" lines (token names, no control characters in values)
 * and a blank line; bare LF line ends are accepted. buf is modified: NULs
 * end method, path and query. Returns ADMIN_PARSE_OK with *out filled,
 * ADMIN_PARSE_INCOMPLETE when no blank line yet (the server answers 431
 * once its 8 KiB are full), or ADMIN_PARSE_BAD (400).
 */
int admin_parse_request(char *buf, size_t len, struct admin_request *out);

/* Finds key in a query string and percent-decodes its value into out.
 * Returns 0 when found, -1 otherwise. */
int admin_query_get(const char *query, const char *key, char *out, size_t outlen);

/* Helper: sets resp to status with a copy of text. */
void admin_reply(struct admin_response *resp, int status, const char *content_type,
                 const char *text);

#endif
