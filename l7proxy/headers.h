/*
 * headers — the proxy's header policy over protocol-neutral messages
 * (l7proxy/message.h), and the HTTP/1.1 head writers the h1 codecs use.
 *
 * Pure functions over header lists (lower-case names). Rules:
 *  - hop-by-hop fields are dropped: Connection and every field it names,
 *    Keep-Alive, Proxy-*, HTTP2-Settings, TE (re-added as "TE: trailers" when asked for),
 *    Trailer, Transfer-Encoding and Content-Length (framing is rewritten
 *    by the caller's choice), Upgrade (kept, with Connection: upgrade, on
 *    an upgrade);
 *  - a client's x-client-cert-* and x-forwarded-client-cert fields are
 *    dropped (only the proxy sets them, after verifying a certificate);
 *  - requests get X-Forwarded-For (client appended to any earlier list),
 *    X-Forwarded-Proto, X-Forwarded-Host (the client's Host) and
 *    X-Request-Id (kept when the client sent a sane one, else 128 random
 *    bits as 32 hex digits); no Via; when tracing, this hop's traceparent
 *    in place of the client's (see headers_request.traceparent);
 *  - responses get "Server: edge" in place of the upstream's Server.
 * Nothing here allocates except from the caller's arena and the output
 * buffer's growth. Callers: exchange.c, h1_server.c, h1_client.c, the
 * http1 fuzz target, unit tests.
 */
#ifndef EDGE_L7PROXY_HEADERS_H
#define EDGE_L7PROXY_HEADERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* One header field; name/value point into the parser's head buffer. */
struct h1_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* How a message body is delimited on the wire. */
enum h1_framing {
  H1_FRAMING_NONE = 0, /* no body */
  H1_FRAMING_LENGTH,   /* Content-Length */
  H1_FRAMING_CHUNKED,  /* Transfer-Encoding: chunked */
  H1_FRAMING_CLOSE,    /* responses only: until the connection closes */
};

struct msg_head;
struct msg_arena;

/* What the upstream request head is built from. */
struct headers_request {
  const struct msg_head *in; /* the client's request (lower-case names) */
  const char *target;        /* origin-form path + query sent upstream (rewritten) */
  size_t target_len;
  const char *client_addr; /* "203.0.113.7" or "2001:db8::1" */
  const char *proto;       /* "http" or "https" */
  int upgrade;             /* forward the client's Upgrade (the route allows it) */
  /* Tracing (exchange_obs): when set, the client's traceparent fields are
   * dropped and "traceparent: <these 55 chars>" is sent instead; with
   * drop_tracestate the client's tracestate fields are dropped too.
   * NULL/0: both pass through untouched. */
  const char *traceparent;
  int drop_tracestate;
};

/*
 * The message-level request policy: out gets in's head with the rules
 * above applied (header array and new strings allocated in a; the rest
 * points into in). The X-Request-Id used (kept or generated) is written to
 * request_id (NUL-terminated). 0 or -ENOMEM.
 */
int headers_upstream_request(const struct headers_request *r, struct msg_head *out,
                             struct msg_arena *a, char request_id[65]);

/* The response policy: hop-by-hop fields and Server dropped, "server:
 * edge" first; Upgrade kept when upgrade is set (a 101 the client asked
 * for). 0 or -ENOMEM. */
int headers_downstream_response(const struct msg_head *in, int upgrade, struct msg_head *out,
                                struct msg_arena *a);

/* HTTP/1.1 serialization of a message head (the h1 codecs' writers). A
 * request gets its request line, Host from the authority, the fields,
 * "Connection: upgrade" with MSG_F_UPGRADE, and Content-Length (when
 * known) or chunked (a body of unknown length). */
int headers_h1_request(struct buf *out, const struct msg_head *h);

/* How the downstream HTTP/1.1 codec frames a response. */
struct headers_h1_framing {
  enum h1_framing framing;
  uint64_t content_length;
  int close;      /* add "Connection: close" */
  int keep_alive; /* add "Connection: keep-alive" (HTTP/1.0 clients that asked) */
  int upgrade;    /* 101: "Connection: upgrade" */
};
int headers_h1_response(struct buf *out, const struct msg_head *h,
                        const struct headers_h1_framing *f);

/*
 * Appends a complete locally generated response: status line, Server,
 * Content-Type text/plain, Content-Length, optional Location, optional
 * Connection: close, and body (may be NULL for "<status> <reason>\n").
 */
int headers_write_local(struct buf *out, int status, const char *location, int close,
                        const char *body);

/* 1 if name (any case) is hop-by-hop by itself (not counting names listed
 * in Connection). */
int headers_is_hop_by_hop(const char *name, size_t len);

/* 1 if the comma-separated list value contains token (any case). */
int headers_list_has_token(const char *value, size_t len, const char *token);

/* Case-insensitive name comparison against a NUL-terminated literal. */
int headers_name_is(const char *name, size_t len, const char *lit);

/* 64 bits from the calling thread's fast generator (xoshiro256**, seeded
 * from getrandom): unique ids (request ids, trace and span ids), not
 * secrets. */
uint64_t headers_rand64(void);

/* Writes 32 lowercase hex digits of fresh randomness and a NUL. */
void headers_gen_request_id(char out[33]);

#endif
