/*
 * http1 — an HTTP/1.1 message parser session on llhttp, independent of I/O.
 *
 * One h1_parser parses a stream of requests (downstream) or responses
 * (upstream). It collects the request line/status line and header fields
 * into its own head buffer (fields may arrive split across reads), enforces
 * the limits of l7proxy/limits.h, rejects what llhttp's strict mode lets
 * through but a proxy must not (obs-fold, whitespace before the colon,
 * missing or repeated Host, CONNECT, request transfer codings other than
 * one final chunked: 501 for an unknown coding, 400 otherwise; a version
 * other than HTTP/1.x: 505), and reports each message to its
 * callbacks: on_head once the head is complete, on_body for every piece of
 * decoded body (chunk framing removed), on_complete at the end.
 *
 * Pipelining: the parser pauses after every complete message
 * (H1_MESSAGE_END); the caller keeps the unconsumed bytes and calls
 * h1_parser_resume when it is ready for the next message, so responses go
 * out in request order without buffering more than one read.
 *
 * llhttp lenient flags stay off: they exist to accept what smuggling
 * attacks send. Callers: worker.c, the http1 fuzz target, unit tests.
 */
#ifndef EDGE_L7PROXY_HTTP1_H
#define EDGE_L7PROXY_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/headers.h"
#include "common/buf.h"
#include "l7proxy/limits.h"
#include "llhttp.h"

enum h1_kind { H1_REQUEST = 0, H1_RESPONSE };

/* A parsed message head, valid only during the on_head callback. */
struct h1_message {
  /* requests */
  int method; /* llhttp_method_t */
  const char *method_str;
  size_t method_len;
  const char *host; /* from an absolute-form target, else Host (with port) */
  size_t host_len;
  const char *target; /* origin-form path + query ("/" for an empty absolute path) */
  size_t target_len;
  size_t path_len; /* the path part of target (before '?') */
  int expect_continue;
  /* responses */
  int status;
  const char *reason;
  size_t reason_len;
  /* both */
  int http_major, http_minor;
  const struct h1_header *headers;
  size_t n_headers;
  int keep_alive; /* the sender allows another message on this connection */
  int upgrade;    /* request: asks for Upgrade; response: 101 with Upgrade */
  enum h1_framing framing;
  uint64_t content_length;
  /* responses: transfer codings other than the final chunked ("gzip" of
   * "gzip, chunked", or all of them when the body runs to the close);
   * they are kept on the way to the client (RFC 9112 §6.1). */
  const char *te_codings;
  size_t te_codings_len;
};

/* on_head returns 0 to go on, H1_SKIP_BODY (response to HEAD: no body
 * follows whatever the framing says) or an HTTP status >= 400 to reject
 * the message (the feed then returns H1_ERROR with that status). */
#define H1_SKIP_BODY 1
struct h1_callbacks {
  int (*on_head)(void *ud, const struct h1_message *m);
  int (*on_body)(void *ud, const char *p, size_t n); /* 0, or negative to stop */
  void (*on_complete)(void *ud);
  /* optional: the trailer fields of a chunked message, lower-case names,
   * valid until the next message begins; called just before on_complete */
  void (*on_trailers)(void *ud, const struct h1_header *h, size_t n);
};

enum h1_result {
  H1_MORE = 0,    /* everything consumed, waiting for more input */
  H1_MESSAGE_END, /* stopped right after a complete message */
  H1_UPGRADE,     /* the message switched protocols; the rest is tunnel bytes */
  H1_ERROR,       /* see h1_parser_error_status/_reason; the connection is done */
};

struct h1_hdr_ent {
  uint32_t name_off, name_len, value_off, value_len;
};

struct h1_parser {
  llhttp_t ll; /* first: callbacks recover the parser from it */
  enum h1_kind kind;
  const struct l7_limits *limits;
  struct h1_callbacks cb;
  void *ud;
  struct buf head;
  uint32_t url_len, reason_off, reason_len;
  struct h1_hdr_ent *ents;
  struct h1_header *hdrs;
  size_t n_ents, max_ents, cap_ents; /* arrays grow to max_ents (--max-headers) */
  size_t n_head_ents;                /* fields of the head; those after it are trailers */
  int last_cb;                       /* what the last head callback was (obs-fold detection) */
  const char *value_end;             /* where the last header value span stopped */
  const char *feed_start, *feed_end, *prev_feed_end; /* the current and previous input */
  int started;                                       /* a byte of the current message was seen */
  int in_body;
  uint64_t body_seen, body_limit;
  int error_status;
  const char *error_reason;
};

struct msg_head;
/* The message (l7proxy/message.h) of a parsed head: pointers into m (valid
 * while the parser's head buffer is, i.e. until the next message begins);
 * scheme for requests ("http"/"https", NULL for responses). Header names
 * are already lower case (the parser lowers them in place). */
void h1_message_head(const struct h1_message *m, const char *scheme, struct msg_head *out);

/* Initialises p; limits must outlive it. Returns 0 or -ENOMEM. */
int h1_parser_init(struct h1_parser *p, enum h1_kind kind, const struct l7_limits *limits,
                   const struct h1_callbacks *cb, void *ud);
void h1_parser_free(struct h1_parser *p);

/* Parses data[0..len); *consumed tells how much was used (all of it for
 * H1_MORE). Callbacks run inside. */
enum h1_result h1_parser_feed(struct h1_parser *p, const char *data, size_t len, size_t *consumed);
/* The peer closed: completes an EOF-delimited response. H1_MESSAGE_END if
 * a message completed, H1_MORE if nothing was pending, else H1_ERROR. */
enum h1_result h1_parser_finish(struct h1_parser *p);
/* Continues after H1_MESSAGE_END. */
void h1_parser_resume(struct h1_parser *p);
/* Body byte limit for the current message (0 = none); exceeding → 413. */
void h1_parser_set_body_limit(struct h1_parser *p, uint64_t limit);
/* 1 when part of a message has been read and it is not complete. */
int h1_parser_in_message(const struct h1_parser *p);
/* 1 when the head of the current message is complete (body phase). */
int h1_parser_in_body(const struct h1_parser *p);
/* After H1_ERROR: the status to answer (400, 413, 414, 431) and why. */
int h1_parser_error_status(const struct h1_parser *p);
const char *h1_parser_error_reason(const struct h1_parser *p);

#endif
