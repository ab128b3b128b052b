/*
 * h1_server — a downstream connection (struct dconn) and its HTTP/1.1
 * codec: the socket, TLS (l7proxy/tls.h, fed from the socket's bytes), the
 * PROXY header, protocol detection (an h2 client preface, ALPN h2 or an
 * h2c Upgrade hands the connection to h2_server.c), then HTTP/1.1 via
 * llhttp (http1.c): each request head becomes a message (message.h) for
 * the connection's exchange (exchange.h), its body and end follow as
 * calls, and the exchange's response comes back through the ops below,
 * written as HTTP/1.1 (framing chosen here: Content-Length, chunked, or
 * close for HTTP/1.0 clients; 1xx/204/304/HEAD never get a body).
 *
 * Pipelining: the parser pauses after each request; pipelined bytes wait
 * in d->in until the exchange finished, so responses go out in order.
 * Timers (one lazy timer per connection): TLS handshake, request head
 * (slowloris), body (a stalled upload: 408), keep-alive idle, tunnel idle,
 * lingering close after a response that ends the connection.
 *
 * Idle list: a connection that could be closed without losing anything
 * (HTTP/1.1: no exchange, no byte of a next request, no TLS handshake
 * begun; HTTP/2: no open stream) is on the worker's idle list, moved to
 * its front whenever it becomes idle, off it as soon as a byte of a
 * request (or a stream) arrives; dconn_evict_idle closes the oldest one
 * when the worker needs room (worker.c). O(1) either way.
 *
 * Owner: the worker's connection list; freed when its handles close.
 * Single-threaded: the worker's loop. Callers: worker.c (accept, drain,
 * stop), h2_server.c (the socket and TLS of an h2 connection).
 */
#ifndef EDGE_L7PROXY_H1_SERVER_H
#define EDGE_L7PROXY_H1_SERVER_H

#include <netinet/in.h>

#include "l7proxy/exchange.h"
#include "l7proxy/worker_internal.h"

struct tls_conn;
struct h2sess;
struct uconn;

enum dstate { D_OPEN = 0, D_TUNNEL, D_CLOSING };

struct dconn {
  uv_tcp_t tcp;
  struct lazy_timer timer;
  struct worker *w;
  struct up_link link;      /* worker's connection list */
  struct up_link idle_link; /* worker's idle list (self-linked: not on it) */
  int evicted;              /* closed by dconn_evict_idle (w->n_evicting) */
  int tls_rx;               /* TLS bytes arrived (the handshake began) */
  int handles;              /* open handles; freed at 0 */
  enum dstate state;
  struct h1_parser parser;
  struct buf in;  /* unparsed input (pipelined requests, PROXY header) */
  struct buf out; /* bytes for the client, flushed after each event */
  int pp_pending; /* waiting for a PROXY protocol header (2: part of it read) */
  int reading;
  int paused;     /* parser stopped after a complete request */
  int bp_stopped; /* reading stopped: the upstream cannot take more */
  int head_timer; /* the header-read timer is armed */
  int close_after;
  int in_process; /* inside d_process: finishing must not recurse */
  int peer_eof;   /* the client half-closed: finish what was asked, then close */
  int linger_done;
  int must_linger; /* the client may still be sending (an error, an unread body) */
  int nodelay;     /* TCP_NODELAY is set (lazily: see d_nodelay) */
  size_t linger_bytes;
  char client[INET6_ADDRSTRLEN];
  struct tls_conn *tls; /* HTTPS: plaintext in and out goes through it */
  int https;
  int hs_done;       /* the TLS handshake finished (counted once) */
  int n_requests;    /* HTTP/1.1 request heads seen */
  struct h2sess *h2; /* an HTTP/2 connection: the session owns the streams */
  /* the current response on HTTP/1.1 */
  enum h1_framing down_framing;
  int req_keep_alive, http10;
  struct uconn *tunnel; /* after a 101: the upstream end of the tunnel */
  int peek;             /* HTTPS with passthrough hosts: the ClientHello is read first */
  struct exchange ex;
};

/* Serves fd, just accepted from peer (https: on the TLS listener); fd is
 * owned from now on (closed on any failure). Closes it at once when the
 * worker is draining, or at --max-connections with nothing idle to evict. */
void dconn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer, int https);
/* Puts d on (or takes it off) its worker's idle list to match its state;
 * the data path calls it after each change (h2_server.c for streams). */
void dconn_idle_update(struct dconn *d);
/* Closes the oldest idle connection of w now (h2: GOAWAY NO_ERROR first;
 * TLS: close_notify), its descriptor included. 1 if one was, 0 if none is
 * idle. */
int dconn_evict_idle(struct worker *w);
/* Closes d; graceful: after pending writes, a FIN and lingering. */
void dconn_close(struct dconn *d, int graceful);
/* Writes d->out (through TLS on HTTPS). 0 or negative (d is closing). */
int dconn_write_out(struct dconn *d);
/* Bytes queued on the socket. */
size_t dconn_queued(struct dconn *d);
/* The worker drains: idle connections close now, busy ones after their
 * response (h2: GOAWAY). */
void dconn_drain(struct dconn *d);

#endif
