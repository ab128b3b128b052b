/*
 * worker — one data-path thread: its own libuv loop, its own SO_REUSEPORT
 * listeners (plain and HTTPS), its downstream HTTP/1.1 connections and its
 * upstream pools. HTTPS connections run the same HTTP/1.1 path over a
 * tls_conn (l7proxy/tls.h) fed from the socket's bytes.
 *
 * Workers share nothing mutable except the current configuration snapshot
 * (taken per request with l7_snapshot_current) and the metrics registry
 * (atomic series). The main thread creates the listening sockets (so a bad
 * address fails at start), starts the workers, asks them to drain on
 * SIGTERM and to stop at the drain deadline, then joins them.
 *
 * Callers: main.c.
 */
#ifndef EDGE_L7PROXY_WORKER_H
#define EDGE_L7PROXY_WORKER_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "l7proxy/exchange_obs.h"
#include "l7proxy/limits.h"

struct metrics_registry;
struct worker;

/* A trusted source range for PROXY protocol (address/prefix). */
struct worker_cidr {
  int family;
  unsigned char addr[16];
  int prefix;
};

struct worker_config {
  const struct l7_limits *limits;
  int proxy_protocol; /* expect a PROXY v1/v2 header from trusted peers */
  const struct worker_cidr *trusted;
  size_t n_trusted; /* 0 with proxy_protocol: every peer is trusted */
  /* Access log and tracing (l7proxy/exchange_obs.h); all NULL: off, and the
   * data path skips every observability hook. */
  struct obs_config obs;
  const char *proto; /* "http" (the plain listener) */
  struct metrics_registry *metrics;
  /* HTTPS: the port of --https (0: none). Plain requests for hosts with
   * TLS get a 308 whose Location carries this port unless it is 443. */
  uint16_t https_port;
  uint32_t tls_handshake_timeout_ms; /* 0: the header timeout */
  /* HTTP/2 downstream (h2 by ALPN when the TLS store offers it; h2c by
   * prior knowledge and Upgrade on the plain listener). */
  int h2c;                    /* accept h2c on the plain listener */
  uint32_t h2_max_streams;    /* SETTINGS_MAX_CONCURRENT_STREAMS (0: 100) */
  uint32_t h2_max_resets_sec; /* client resets/cancels per second before
                                 GOAWAY ENHANCE_YOUR_CALM (0: 100) */
  /* Cluster-wide rate limits: Redis "HOST:PORT" (NULL: none, cluster-scope
   * limits are counted per proxy) and how long a decision may take before
   * the request passes (fail open). */
  const char *ratelimit_redis;
  uint32_t ratelimit_redis_timeout_ms;
};

/* Parses "10.0.0.0/8", "::1/128" or a bare address. 0 or -1. */
int worker_parse_cidr(const char *s, struct worker_cidr *out);

/* Starts a worker thread serving listen_fd (plain HTTP) and, when
 * tls_listen_fd >= 0, HTTPS on tls_listen_fd with the certificates of
 * the current snapshot's TLS store at each accept (ownership of both fds passes; pass
 * -1 for either to leave it out). cfg must outlive the worker. Returns 0
 * or negative. */
int worker_start(int id, const struct worker_config *cfg, int listen_fd, int tls_listen_fd,
                 struct worker **out);
/* Stops accepting and lets in-flight requests finish; idle keep-alive
 * connections are closed, active ones after their response. Thread-safe. */
void worker_drain(struct worker *w);
/* 1 once a draining worker has no connection left. Thread-safe. */
int worker_drained(struct worker *w);
/* Closes everything now. Thread-safe. */
void worker_stop(struct worker *w);
/* Waits for the thread to end and frees the worker. */
void worker_join(struct worker *w);
/* Open downstream connections (approximate; any thread). */
size_t worker_connections(struct worker *w);

#endif
