/*
 * message — the protocol-neutral HTTP message the exchange works on
 * (HAProxy's HTX and Envoy's header map are the models): a request or
 * response head with an ordered header list whose names are lower case,
 * then body bytes and trailers passed as calls, never as wire text.
 *
 * Codecs translate wire ⇄ message at their edge and nowhere else:
 * downstream HTTP/1.1 (h1_server.c, llhttp) and HTTP/2 (h2_server.c,
 * nghttp2), upstream HTTP/1.1 (h1_client.c) and HTTP/2 (upstream_h2.c). No
 * connection-specific field survives into a message (Connection and what
 * it names, Keep-Alive, Proxy-*, TE other than trailers, Transfer-Encoding,
 * Upgrade unless forwarded, HTTP2-Settings, Host — the authority is a
 * field of the head); framing is content_length / end_stream, which each
 * codec writes in its own protocol's way.
 *
 * A head does not own its strings: they point into the codec's buffers or
 * into a msg_arena, valid for as long as the exchange says (see
 * exchange.h). Pure code; single-threaded per message.
 */
#ifndef EDGE_L7PROXY_MESSAGE_H
#define EDGE_L7PROXY_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/headers.h"

/* Same layout as struct h1_header (and uh2_header): header arrays pass
 * between the codecs without copying. */
#define msg_header h1_header

enum msg_method {
  MSG_OTHER = 0,
  MSG_GET,
  MSG_HEAD,
  MSG_POST,
  MSG_PUT,
  MSG_DELETE,
  MSG_OPTIONS,
  MSG_TRACE,
  MSG_PATCH,
  MSG_CONNECT,
};

enum {
  MSG_F_EXPECT_CONTINUE = 1u << 0, /* request: the client waits for 100 */
  MSG_F_HTTP10 = 1u << 1,          /* request: an HTTP/1.0 client */
  MSG_F_UPGRADE = 1u << 2,         /* request: asks to switch protocols */
  MSG_F_GRPC = 1u << 3,            /* request: content-type application/grpc */
  MSG_F_TE_TRAILERS = 1u << 4,     /* request: te: trailers */
};

struct msg_head {
  /* requests */
  int method; /* enum msg_method */
  const char *method_str;
  size_t method_len;
  const char *scheme;    /* "http" or "https" */
  const char *authority; /* Host / :authority, may carry a port */
  size_t authority_len;
  const char *target; /* origin-form path and query */
  size_t target_len;
  size_t path_len; /* of target, up to '?' */
  /* responses */
  int status;
  const char *te_codings; /* transfer codings other than chunked, kept (h1) */
  size_t te_codings_len;
  /* both */
  const struct msg_header *headers; /* lower-case names, no pseudo-headers */
  size_t n_headers;
  int64_t content_length; /* -1: not known (chunked, until close, h2 without it) */
  int end_stream;         /* no body follows the head */
  unsigned flags;         /* MSG_F_* */
};

/* enum msg_method of a method token; MSG_OTHER for the rest. */
int msg_method_of(const char *m, size_t len);

/*
 * A bump allocator for the strings and header arrays the exchange adds
 * (rewritten target, X-Forwarded-For, request id, upstream header list).
 * Blocks are never moved, so pointers stay valid until msg_arena_reset.
 * The first block is kept across resets; msg_arena_release hands blocks to
 * a per-thread spare list, so an idle connection holds none and requests
 * allocate nothing once warm.
 */
struct msg_arena_block;
struct msg_arena {
  struct msg_arena_block *head;
  size_t used;
};
void *msg_arena_alloc(struct msg_arena *a, size_t n);
/* Copies s[0..n) and a NUL; NULL on allocation failure. */
char *msg_arena_strdup(struct msg_arena *a, const char *s, size_t n);
void msg_arena_reset(struct msg_arena *a); /* keeps the first block */
/* Gives every block back (to the thread's spares): nothing is held. */
void msg_arena_release(struct msg_arena *a);
/* Frees the calling thread's spare blocks (at the thread's end). */
void msg_arena_thread_cleanup(void);
void msg_arena_free(struct msg_arena *a);

/* The value of the first header named name (lower case), or NULL. */
const struct msg_header *msg_find(const struct msg_head *h, const char *name);

#endif
