/*
 * h1_client — the upstream HTTP/1.1 codec: per-endpoint keep-alive pools
 * of connections (struct uconn), the request head written from the
 * exchange's message (headers_h1_request), responses parsed by http1 and
 * handed to the exchange as messages (ex_up_head / _data / _end).
 *
 * A uconn is owned by one exchange while active (ex->uc, uc->ex), sits in
 * its endpoint's idle list, is a tunnel spliced to a downstream connection
 * after a 101, or is closing. Timers: connect timeout, then the phase
 * timeout the exchange arms (response head, then idle while the response
 * streams), then the pool's idle timeout. Single-threaded: the worker's
 * loop. Callers: exchange.c, h1_server.c (tunnels), worker.c (drain).
 */
#ifndef EDGE_L7PROXY_H1_CLIENT_H
#define EDGE_L7PROXY_H1_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "l7proxy/worker_internal.h"

struct exchange;
struct tls_conn;
struct utls_ctx;
struct breaker;

enum ustate { U_CONNECTING = 0, U_ACTIVE, U_IDLE, U_TUNNEL, U_CLOSING };

struct uconn {
  uv_tcp_t tcp;
  struct lazy_timer timer;
  uv_connect_t creq;
  struct up_link link;  /* endpoint idle list */
  struct up_link wlink; /* worker's upstream list */
  struct worker *w;
  struct up_endpoint *ep;
  struct exchange *ex; /* owner while active */
  int handles;
  enum ustate state;
  struct h1_parser parser;
  struct buf out;
  int reused;
  int got_bytes; /* response bytes seen for the current request */
  int bp_stopped;
  int chunked; /* the request body is sent chunked */
  uint32_t idle_timeout_ms;
  uint32_t max_idle;
  /* tunnel: bytes from the upstream go to tunnel_read (nread < 0: EOF) */
  void (*tunnel_read)(void *ctx, ssize_t nread, const char *p);
  void (*tunnel_drain)(void *ctx); /* the upstream queue fell below the low mark */
  void *tunnel_ctx;
  int keep_alive_hint;              /* the response allows another request */
  const struct h1_header *trailers; /* of the current response (parser's buffer) */
  size_t n_trailers;
  /* issue 20: TLS to the endpoint and the cluster's circuit breakers */
  struct tls_conn *tls;     /* https clusters: every byte goes through it */
  struct utls_ctx *tls_cfg; /* its context (a reference); NULL: plain */
  uint64_t tls_id;          /* utls_ctx_id of tls_cfg (0 plain): reuse only on a match */
  struct breaker *brk;      /* counts this connection; NULL without limits */
  int pending;              /* also counted as a request waiting for a connection */
};

/* Attaches ex to an idle pooled connection of ep or a new one and sends
 * ex->up (and ex->pending) once connected (and, for a TLS cluster, once
 * the handshake verified the endpoint). 0; BREAKER_E_OVERFLOW(limit) when
 * the cluster's max_connections or max_pending_requests forbids a new
 * connection (answer 503, do not try another endpoint); other negative
 * values when no connection could be made (try another endpoint). */
int h1c_start(struct exchange *ex, struct up_endpoint *ep);
/* Request body bytes. 1 when the connection's queue is above the high
 * mark (stop reading the client until ex_up_drained), else 0. */
int h1c_body(struct uconn *uc, const char *p, size_t n);
/* The request is complete (writes the chunked terminator). */
void h1c_end(struct uconn *uc);
/* The exchange lets go of uc: back to the pool, or closed. */
void h1c_release(struct uconn *uc, int reusable);
/* (Re)arms the phase timer: ms from now, or the route deadline if sooner. */
void h1c_arm(struct uconn *uc, uint32_t ms);
/* The downstream drained: read the response on. */
void h1c_resume(struct uconn *uc);
/* Bytes queued towards the upstream. */
size_t h1c_queued(struct uconn *uc);
void h1c_close(struct uconn *uc);
/* Tunnel: writes client bytes; 1 when the upstream queue is above the high mark. */
int h1c_tunnel_write(struct uconn *uc, const char *p, size_t n);
/* Tunnel: the downstream drained; read the upstream again. */
void h1c_tunnel_resume(struct uconn *uc);
/* For up_pools_foreach: closes ep's idle connections. */
void h1c_close_idle(struct up_endpoint *ep, void *arg);

#endif
