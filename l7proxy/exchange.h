/*
 * exchange — one request and its response between a downstream codec
 * (HTTP/1.1: h1_server.c, HTTP/2: h2_server.c) and an upstream codec
 * (HTTP/1.1: h1_client.c, h2c/gRPC: upstream_h2.c), over protocol-neutral
 * messages (message.h). It never sees wire bytes.
 *
 * What it does, in order, as steps over the message (a policy added later
 * — auth, rate limits, header rules, mirroring — is one more step here,
 * never an `if` in a codec):
 *   route (common/router via the snapshot) → redirect (common/redirect)
 *   → limits (body size) → rewrite (common/rewrite) → request header policy
 *   (headers.c) → pick an endpoint (upstream_lb) → upstream codec by the
 *   cluster's protocol → response header policy → downstream.
 * Retries (idempotent requests, nothing sent yet), timeouts (response
 * head, idle, the route's whole-request deadline; the upstream is timed
 * from the end of the request), outlier reports (never for a client's
 * slowness), local answers (404/408/413/502/503/504, gRPC as 200 +
 * grpc-status), metrics and the access log.
 *
 * Ownership: the downstream codec embeds the exchange (one per h1
 * connection, reused; one per h2 stream) and drives it; the exchange calls
 * back through ex_downstream_ops and owns its upstream attempt (a uconn or
 * an upstream_h2 stream) until it detaches it. Single-threaded: the
 * worker's loop.
 */
#ifndef EDGE_L7PROXY_EXCHANGE_H
#define EDGE_L7PROXY_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/exchange_obs.h"
#include "l7proxy/message.h"
#include "l7proxy/snapshot.h"

#define EX_MAX_MIRRORS 4

struct exchange;
struct tls_conn;
struct cauth_peer;
struct rp_auth;
struct mirror;
struct uconn;
struct uh2_stream;
struct up_endpoint;
struct worker;

/* What the exchange needs from the downstream codec. */
struct ex_downstream_ops {
  /* The response head (policy applied). 0, or negative: the exchange is
   * abandoned (the codec has already cut its stream). */
  int (*head)(struct exchange *ex, const struct msg_head *h);
  /* Response body bytes (copied by the codec). */
  int (*data)(struct exchange *ex, const char *p, size_t n);
  /* The response is complete; trailers may be NULL. */
  void (*end)(struct exchange *ex, const struct msg_header *trailers, size_t n);
  /* 1 while the client side holds too much: the upstream is not read. */
  int (*over_high)(struct exchange *ex);
  /* Request and response are both done (or the response failed after its
   * head went out, with abort first); the exchange is inactive again. */
  void (*finished)(struct exchange *ex);
  /* The response failed after its head went out: cut the client's stream. */
  void (*abort)(struct exchange *ex);
  /* The upstream accepted an Upgrade (101): the codec takes uc as a raw
   * tunnel; extra[0..n) are bytes the upstream sent after the head. NULL
   * where tunnels do not exist (HTTP/2). */
  void (*tunnel)(struct exchange *ex, struct uconn *uc, const char *extra, size_t n);
  /* The upstream can take request body again (after ex_body returned 1). */
  void (*resume_body)(struct exchange *ex);
  /* The end of an upstream event: write what head/data/end queued (one
   * write for a head and its body). */
  void (*flush)(struct exchange *ex);
};

struct exchange {
  const struct ex_downstream_ops *ds;
  void *ds_ctx; /* the codec's connection or stream */
  struct worker *w;
  const char *client; /* the client's address (owner: the downstream) */
  uint16_t client_port;
  struct tls_conn *tls; /* the client's TLS connection (owner: the downstream), or NULL */
  const struct cauth_peer *client_peer; /* the client certificate that passed (owner: tls) */
  int https;                            /* the client came over TLS */
  int h2_down;                          /* the client speaks HTTP/2 */
  struct l7_snapshot *snap;             /* one reference while active */
  int active;
  int local; /* answered locally: the request body is discarded */
  const struct l7_route *route;
  const struct l7_cluster *cluster;
  struct up_endpoint *ep;
  struct uconn *uc;      /* HTTP/1.1 upstream (owner: h1_client while attached) */
  struct uh2_stream *h2; /* H2C/GRPC upstream stream (owner: upstream_h2) */
  uint64_t avoid;        /* endpoints already tried (bit per index) */
  int retries_left;
  int tries;
  int outstanding;   /* ep->lb.outstanding holds a count for this exchange */
  int retry_counted; /* the attempt is a retry counted by the cluster's breaker */
  char ep_name[64];  /* for the access log: ep may be pruned once released (upstream.h) */
  int idempotent;
  int req_complete, body_sent; /* request body bytes reached a socket: no retry */
  int head_request, upgrade, grpc, expect_continue;
  int resp_started, resp_complete, resp_keep_alive;
  int h2_paused; /* the client is slow: the upstream stream's window is held */
  int status;
  uint64_t body_limit; /* 0: none */
  uint64_t t_start;    /* uv_hrtime */
  uint64_t deadline;   /* loop ms: the route's whole-request timeout; 0 none */
  uint32_t phase_ms;   /* the current upstream phase timeout (header or idle) */
  uint64_t bytes_down;
  struct msg_head up;                /* the upstream request head (kept for a retry) */
  struct msg_arena arena;            /* its strings and headers; reset per request */
  struct buf pending;                /* request body waiting for an upstream connection */
  const struct msg_header *trailers; /* response trailers (h2 upstream; in the arena) */
  size_t n_trailers;
  /* per-route policies (route_policy.c) */
  struct msg_head req;     /* the client's request head (shallow: its strings are the codec's) */
  int rp_stage;            /* the next request policy step */
  void *rp_wait;           /* the pending asynchronous step; NULL: none */
  int rp_wait_kind;        /* which (route_policy.c) */
  struct rp_auth *rp_auth; /* the external-auth subrequest, kept between requests */
  int affinity;            /* index of the endpoint the affinity cookie names; -1 none */
  int hashed;              /* lb_key holds a consistent-hashing key */
  uint64_t lb_key;
  int sub; /* an external-auth subrequest: neither logged nor counted */
  char method[16];
  char host[128];
  char path[256];
  char request_id[65];
  struct ex_obs obs; /* tracing + access log (exchange_obs.h); used only when enabled */
  struct mirror *mirrors[EX_MAX_MIRRORS]; /* copies being fed the request body (mirror.h) */
  int n_mirrors;
};

/* Sets ex up for a downstream (ex zeroed, or recycled: its arena and
 * buffer memory are kept). */
void ex_init(struct exchange *ex, struct worker *w, const struct ex_downstream_ops *ds, void *ctx,
             const char *client, int https, int h2_down);
void ex_free(struct exchange *ex);

/* A new request (the head's strings must stay valid until the response
 * head went out or the exchange finished). Routes it and answers locally
 * or starts the upstream; everything else comes through the ops. */
void ex_begin(struct exchange *ex, const struct msg_head *req);
/* Request body bytes: 0 taken, 1 taken but the upstream is full (stop
 * reading until resume_body), negative: the exchange failed. */
int ex_body(struct exchange *ex, const char *p, size_t n);
/* The request ended (trailers may be NULL). */
void ex_body_end(struct exchange *ex, const struct msg_header *trailers, size_t n);
/* The client stopped sending its body (the codec's body timeout): 408
 * when nothing was answered yet; never charged to the upstream. */
void ex_body_timeout(struct exchange *ex);
/* A local answer was given and the rest of the request body is not wanted
 * (the codec closes or resets instead of reading it). */
void ex_abandon_body(struct exchange *ex);
/* A bad request (the codec's parser or limits): status answered when
 * nothing went out yet (an exchange is started for it if none is active),
 * else the client's stream is aborted. */
void ex_error(struct exchange *ex, int status);
/* The upstream switched protocols and the codec took the connection as a
 * tunnel: the exchange is recorded and over. */
void ex_tunnelled(struct exchange *ex);
/* The client is gone: the upstream attempt is dropped (not charged), no
 * op is called any more; the exchange becomes inactive. */
void ex_cancel(struct exchange *ex);
/* The client side drained below its low mark: read the upstream again. */
void ex_resume(struct exchange *ex);
/* Answers locally (body NULL: "<status> <reason>\n"; gRPC requests get
 * 200 + grpc-status). */
void ex_local(struct exchange *ex, int status, const char *location, const char *body);
/* ex_local with one extra response header (hname NULL: none); gRPC
 * requests get it beside grpc-status. */
void ex_local_header(struct exchange *ex, int status, const char *hname, const char *hvalue,
                     const char *body);
/* ex_local with extra answer headers (lower-case names; at most 8). */
void ex_local_with(struct exchange *ex, int status, const struct msg_header *extra, size_t n,
                   const char *body);
/* A parked exchange's policy steps let the request on: to the upstream. */
void ex_policy_done(struct exchange *ex);
/* A subrequest (external auth): no routing and no policy; up (its strings
 * in ex->arena or static) goes to cluster c of snap, within timeout_ms.
 * The answer comes through ex's downstream ops like any other. */
void ex_begin_sub(struct exchange *ex, struct l7_snapshot *snap, const struct l7_cluster *c,
                  const struct msg_head *up, uint32_t timeout_ms);

/* ---- upstream codec → exchange (h1_client.c, the h2 stream callbacks) ---- */
struct msg_head;
int ex_up_head(struct exchange *ex, const struct msg_head *resp);
int ex_up_data(struct exchange *ex, const char *p, size_t n);
void ex_up_end(struct exchange *ex, const struct msg_header *trailers, size_t n, int keep_alive);
/* The attempt failed: retryable (nothing processed) and charge (an
 * outlier failure of the endpoint). */
void ex_up_failed(struct exchange *ex, int status, const char *why, int retryable, int charge);
/* The upstream's request buffer drained: the client may send again. */
void ex_up_drained(struct exchange *ex);
/* The upstream codec finished handling one read: the downstream writes. */
void ex_up_flush(struct exchange *ex);
/* The response-header timeout of the exchange's route. */
uint32_t ex_response_timeout(const struct exchange *ex);
/* Idle timeout while the response streams. */
uint32_t ex_idle_timeout(const struct exchange *ex);

#endif
