/*
 * upstream_h2 — HTTP/2 client connections to upstream endpoints (cleartext,
 * prior knowledge) for clusters whose protocol is H2C or GRPC.
 *
 * Over TLS when the target says so (grpcs / https with HTTP/2): the
 * connection is ready once the handshake verified the endpoint and agreed
 * on ALPN h2; nghttp2's bytes then go through a client tls_conn.
 *
 * One uh2_pool per worker (single-threaded, on the worker's libuv loop).
 * The pool keeps, per endpoint key, a set of nghttp2 client connections and
 * multiplexes requests (streams) over them: a new stream goes to the first
 * connection that is not shutting down and has fewer active streams than
 * min(the server's SETTINGS_MAX_CONCURRENT_STREAMS, cfg.max_streams); when
 * every connection is full, another connection is opened. Connections with
 * no streams close after cfg.idle_timeout_ms.
 *
 * A stream's life: uh2_stream_open (request headers in HTTP/2 form, built by
 * the exchange from its message), uh2_stream_write / uh2_stream_end for the body
 * (copied and sent as flow control allows), then callbacks: on_headers once
 * (final response, 1xx are skipped), on_data any number of times,
 * on_trailers at most once, and on_close exactly once — unless the caller
 * calls uh2_stream_cancel first, after which no callback runs. The stream
 * pointer is invalid after on_close returns or after uh2_stream_cancel.
 *
 * Errors are reported per stream through on_close(err):
 *   0                complete response received
 *   UH2_E_CONNECT    connect failed or timed out (nothing sent: retryable)
 *   UH2_E_REFUSED    the server refused the stream (REFUSED_STREAM, or a
 *                    GOAWAY whose last-stream-id is below it: not processed,
 *                    retryable)
 *   UH2_E_RESET      the server reset the stream (RST_STREAM other codes)
 *   UH2_E_CONN_LOST  connection closed/GOAWAY/protocol error mid-stream
 *   UH2_E_PROTOCOL   malformed response (e.g. oversized header list)
 *   UH2_E_TIMEOUT    the stream's timeout (uh2_stream_set_timeout) expired;
 *                    the stream was reset
 * Callbacks may call any uh2_* function (open, cancel, write) re-entrantly;
 * a connection is torn down only after nghttp2 returns to the pool.
 *
 * Callers: l7proxy/exchange.c (exchanges for H2C/GRPC clusters), tests.
 */
#ifndef EDGE_L7PROXY_UPSTREAM_H2_H
#define EDGE_L7PROXY_UPSTREAM_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "l7proxy/headers.h"

enum {
  UH2_E_CONNECT = -1001,
  UH2_E_REFUSED = -1002,
  UH2_E_RESET = -1003,
  UH2_E_CONN_LOST = -1004,
  UH2_E_PROTOCOL = -1005,
  UH2_E_TIMEOUT = -1006,
};

/* A short name for an error code ("connect", "refused", ...). */
const char *uh2_strerror(int err);

struct uh2_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};
/* Same layout as struct h1_header (and so msg_header), so arrays of one
 * may be passed as the other (exchange.c does). */
_Static_assert(sizeof(struct uh2_header) == sizeof(struct h1_header) &&
                   offsetof(struct uh2_header, name_len) == offsetof(struct h1_header, name_len) &&
                   offsetof(struct uh2_header, value) == offsetof(struct h1_header, value) &&
                   offsetof(struct uh2_header, value_len) == offsetof(struct h1_header, value_len),
               "uh2_header must match h1_header");

struct uh2_pool_config {
  uint32_t connect_timeout_ms; /* 0: 5000 */
  uint32_t idle_timeout_ms;    /* connection without streams; 0: 60000 */
  uint32_t max_streams;        /* per connection cap; 0: 100 */
  uint32_t max_header_list;    /* response header bytes; 0: 65536 */
};

struct uh2_pool;
struct uh2_stream;

/* Creates a pool on loop. 0 or -ENOMEM. */
int uh2_pool_new(uv_loop_t *loop, const struct uh2_pool_config *cfg, struct uh2_pool **out);
/* Closes every connection; open streams get on_close(UH2_E_CONN_LOST).
 * The pool is freed once its handles have closed (run the loop). */
void uh2_pool_close(struct uh2_pool *p);
/* Connections currently open (any state) and active streams, for tests and
 * metrics. */
size_t uh2_pool_connections(const struct uh2_pool *p);
size_t uh2_pool_streams(const struct uh2_pool *p);

struct uh2_stream_cb {
  /* status >= 200; headers exclude pseudo-headers */
  void (*on_headers)(void *ud, int status, const struct uh2_header *h, size_t n);
  void (*on_data)(void *ud, const uint8_t *p, size_t n);
  void (*on_trailers)(void *ud, const struct uh2_header *h, size_t n);
  /* the request body buffer fell below the low-water mark (optional) */
  void (*on_drain)(void *ud);
  void (*on_close)(void *ud, int err);
};

/* Where a stream goes: key identifies the endpoint ("cluster\nendpoint");
 * connections are shared by streams with the same key (a key must name one
 * TLS configuration: the caller puts utls_ctx_id in it). */
struct uh2_target {
  const char *key;
  const struct sockaddr *addr;
  socklen_t addrlen;
  uint32_t connect_timeout_ms; /* for a new connection; 0: the pool's */
  uint32_t idle_timeout_ms;    /* for a new connection; 0: the pool's */
  /* issue 20: h2 over TLS (grpcs; ALPN h2 is required) and circuit
   * breakers. tls NULL: h2c. brk NULL: no limits; else a new connection
   * counts against max_connections (refused: BREAKER_E_OVERFLOW), and a
   * stream that must wait for a connection against max_pending. */
  struct utls_ctx *tls;
  struct breaker *brk;
  uint32_t max_connections, max_pending;
};

/*
 * Opens a stream with request headers h[0..n) (":method", ":scheme",
 * ":authority", ":path" first, then lowercase regular headers; copied).
 * end_stream: the request has no body. On success 0 and *out; callbacks
 * come later from the loop (never from inside this call). Negative on
 * allocation failure or bad arguments, BREAKER_E_OVERFLOW(limit) when a
 * circuit breaker of the target refuses (no callback then).
 */
int uh2_stream_open(struct uh2_pool *p, const struct uh2_target *t, const struct uh2_header *h,
                    size_t n, int end_stream, const struct uh2_stream_cb *cb, void *ud,
                    struct uh2_stream **out);
/* Queues request body bytes (copied). 0, -ENOMEM, or -EPIPE after end. */
int uh2_stream_write(struct uh2_stream *s, const void *p, size_t n);
/* Ends the request body. */
int uh2_stream_end(struct uh2_stream *s);
/* Request body bytes queued and not yet handed to the connection. */
size_t uh2_stream_buffered(const struct uh2_stream *s);
/* Low-water mark for uh2_stream_buffered: on_drain fires when the buffer
 * falls below it after having been at or above it. */
#define UH2_LOW_WATER (64 * 1024)
#define UH2_HIGH_WATER (256 * 1024)
/* Response back-pressure: while paused, DATA still arrives (up to the
 * stream window, 1 MiB) but no WINDOW_UPDATE is sent for it, so the server
 * stops; unpausing acknowledges what was delivered. */
void uh2_stream_pause(struct uh2_stream *s, int paused);
#define UH2_STREAM_WINDOW (1 << 20)
/* Arms the stream's timer: ms from now (0 disarms). On expiry the stream
 * is reset and on_close(UH2_E_TIMEOUT) runs. Checked every 100 ms. */
void uh2_stream_set_timeout(struct uh2_stream *s, uint32_t ms);
/* Resets the stream (RST_STREAM CANCEL); no callback runs afterwards. */
void uh2_stream_cancel(struct uh2_stream *s);
/* 1 when the stream was sent on a reused (already connected) connection. */
int uh2_stream_reused(const struct uh2_stream *s);

#endif
