/*
 * h2_server — the downstream HTTP/2 codec (h2 by ALPN, h2c by prior
 * knowledge or Upgrade) on nghttp2: each stream's HEADERS become a message
 * (message.h) for the stream's own exchange (exchange.h), DATA its body,
 * and the exchange's response is submitted as HTTP/2 HEADERS, DATA and
 * trailers. No HTTP/1.1 text is written or parsed on this path.
 *
 * Flow control: request DATA is acknowledged (automatic window updates are
 * off) only while the upstream takes it; the response is buffered per
 * stream up to H2_STREAM_HIGH and per connection up to H2_CONN_BUFFER, then
 * the upstream stops being read until the client opens its window.
 * Limits: SETTINGS_MAX_CONCURRENT_STREAMS, a header list bound (the
 * HTTP/1.1 header byte limit), client resets and streams cancelled before
 * their response above h2_max_resets_sec in a second or beyond twice the
 * completed streams (at least 200) → GOAWAY ENHANCE_YOUR_CALM
 * (CVE-2023-44487); SETTINGS/PING floods via nghttp2's limits; a stream
 * whose request body stalls for --body-timeout gets 408 (then RST_STREAM
 * NO_ERROR); a response that ends before its request is followed by
 * RST_STREAM NO_ERROR (RFC 9113 §8.1).
 *
 * Owner: the dconn it runs on (d->h2). Single-threaded: the worker's loop.
 * Callers: h1_server.c (hands a connection over), worker.c (drain).
 */
#ifndef EDGE_L7PROXY_H2_SERVER_H
#define EDGE_L7PROXY_H2_SERVER_H

#include <sys/types.h>

#include "l7proxy/h1_server.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_STREAM_HIGH (64 * 1024)
#define H2_STREAM_LOW (16 * 1024)
#define H2_CONN_BUFFER (1024 * 1024)

/* Turns d into an HTTP/2 connection. 0 or -1. */
int h2s_start(struct dconn *d);
/* Plaintext bytes from the client (nread < 0: end of input). */
void h2s_input(struct dconn *d, ssize_t nread, const char *data);
/* Session output is due: written at the end of this loop turn. */
void h2s_send(struct dconn *d);
/* Writes the output of every session with output due (the worker's check
 * handle, once per loop turn). */
void h2s_flush_dirty(struct worker *w);
/* The connection's timer: idle without streams, stalled request bodies. */
void h2s_timer(struct dconn *d);
/* No open stream: the connection may be evicted (h1_server.h). */
int h2s_idle(const struct dconn *d);
/* Evicted: GOAWAY NO_ERROR, written to the socket now; the caller closes. */
void h2s_evict(struct dconn *d);
/* Graceful GOAWAY (draining). */
void h2s_drain(struct dconn *d);
/* Frees the calling worker thread's cache of recycled streams (at its end). */
void h2s_thread_cleanup(void);
/* Frees the session and every stream (their exchanges are cancelled). */
void h2s_free(struct dconn *d);
/* "Upgrade: h2c" with HTTP2-Settings on a plain connection, for a request
 * without a body: answers 101, turns d into an h2 connection and serves
 * the request as stream 1. 1 when upgraded, 0 to serve it as HTTP/1.1. */
int h2s_try_upgrade(struct dconn *d, const struct h1_message *m);

#endif
