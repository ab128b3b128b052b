/*
 * rpc — the bridge between libuv event loops and the gRPC C core.
 *
 * One rpc_runtime per process owns one grpc_completion_queue and one thread
 * that drains it (grpc_completion_queue_next). Each completed batch is
 * handed to the libuv loop given at creation with uv_async_send, and every
 * callback below runs on that loop's thread: daemon code never touches the
 * completion queue and never blocks its loop on gRPC.
 *
 * Messages are opaque bytes (the caller packs/unpacks protobuf-c), up to
 * 64 MiB each way (a full state with many certificates exceeds gRPC's
 * 4 MiB default). At most one SEND_MESSAGE is in flight per call; further
 * sends are queued in order.
 *
 * Client streams reconnect by themselves with jittered exponential backoff
 * (initial 200 ms, doubling, ±20 % jitter, capped: by default at 1 s, so a
 * proxy or l4lb resyncs within about a second of syncd coming back; at
 * the cap the delay is uniform in [0.8, 1] × cap, so N clients of a down
 * server make at most N / (0.8 × cap) attempts per second) until closed. Each
 * attempt uses a fresh gRPC channel, so gRPC's own reconnect backoff never
 * adds to ours. A server sends its response headers as soon as it accepts
 * a call, which is how a client knows it really reached the server; an
 * attempt that gets no headers within the connect timeout is cancelled.
 *
 * A stream's target may name several servers (replicas of one service):
 * "A:P,B:P" or a DNS name with several addresses (common/targets.h).
 * Attempts go round the addresses, starting at a random one, so a client
 * whose server dies reaches another one after one backoff (about 200 ms
 * after a stream that was up); names are resolved again after each round.
 * TLS checks the name an address was resolved from (or the override).
 *
 * gRPC's own log lines are routed through common/log (msg=grpc, level
 * warn for gRPC errors such as a rejected TLS handshake).
 *
 * Transport security: struct rpc_creds with cert/key/ca files gives mutual
 * TLS; insecure = 1 gives plaintext (the caller logs the warning).
 *
 * Ownership: every object is created and freed through this API on the
 * loop thread. Bytes passed to send functions are copied. Bytes passed to
 * callbacks are valid only during the callback. rpc_stream_close and
 * rpc_server_shutdown may be called from inside any callback of the
 * object; their done callbacks always run later, never inside the call.
 */
#ifndef EDGE_COMMON_RPC_H
#define EDGE_COMMON_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rpc_runtime;
struct rpc_stream;
struct rpc_server;
struct rpc_call;

/* Credentials: paths to PEM files (mTLS), or insecure plaintext. For a
 * client, ca verifies the server and cert/key are the client certificate;
 * for a server, ca verifies client certificates (required when given). */
struct rpc_creds {
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  int insecure;
  /* Client only: overrides the name checked in the server certificate
   * (default: the host part of the target). */
  const char *server_name_override;
};

/* grpc status codes used by this project (same numbers as grpc_status_code). */
enum {
  RPC_STATUS_OK = 0,
  RPC_STATUS_CANCELLED = 1,
  RPC_STATUS_INVALID_ARGUMENT = 3,
  RPC_STATUS_DEADLINE_EXCEEDED = 4,
  RPC_STATUS_NOT_FOUND = 5,
  RPC_STATUS_PERMISSION_DENIED = 7,
  RPC_STATUS_FAILED_PRECONDITION = 9,
  RPC_STATUS_UNIMPLEMENTED = 12,
  RPC_STATUS_INTERNAL = 13,
  RPC_STATUS_UNAVAILABLE = 14,
};

/* Error codes returned by functions below (negative). */
enum {
  RPC_ERR_INVALID = -1, /* bad argument */
  RPC_ERR_CREDS = -2,   /* certificate/key/CA could not be loaded */
  RPC_ERR_BIND = -3,    /* server could not listen on the address */
  RPC_ERR_CLOSED = -4,  /* the call/stream is finished or closing */
  RPC_ERR_NOMEM = -5,
};
const char *rpc_strerror(int err);

/* ---- runtime ---------------------------------------------------------- */

/* Starts the completion-queue thread delivering to loop. 0 or negative.
 * The runtime keeps the loop alive only while a stream or server exists
 * (including one still being released after close/shutdown). */
int rpc_runtime_new(uv_loop_t *loop, struct rpc_runtime **out);
/* Shuts the queue down and joins the thread. Every stream and server must
 * have been closed before (rpc_stream_close / rpc_server_shutdown); if their
 * done callbacks have not run yet, this runs the loop until they have.
 * Calls grpc_shutdown (grpc_init/grpc_shutdown are refcounted). */
void rpc_runtime_free(struct rpc_runtime *rt);

/* ---- client streams --------------------------------------------------- */

struct rpc_stream_callbacks {
  /* The call was started (a new connection attempt is under way): queued
   * sends now flow. Send the opening message (Hello) here; sends made while
   * disconnected are dropped, not queued across reconnects. Runs for every
   * attempt, including ones that then fail to connect: each on_open is
   * followed by exactly one on_close (unless rpc_stream_close comes first).
   * Never runs inside rpc_stream_open. */
  void (*on_open)(void *ud);
  /* One message from the server. */
  void (*on_message)(void *ud, const uint8_t *data, size_t len);
  /* The stream ended (status, details from the server or transport). A
   * reconnect is scheduled after backoff unless rpc_stream_close was called.
   * backoff_ms is the delay before the next attempt. */
  void (*on_close)(void *ud, int status, const char *details, uint32_t backoff_ms);
};

/* Reconnect backoff cap: the default, and the lowest a daemon flag may set
 * (lower would hammer a down server). */
#define RPC_RECONNECT_MAX_DEFAULT_MS 1000
#define RPC_RECONNECT_MAX_MIN_MS 100

struct rpc_stream_opts {
  const char *target; /* "127.0.0.1:7000", "10.0.0.1:7000,10.0.0.2:7000", "syncd.svc:7000" */
  const char *method; /* "/edge.v1.ConfigSync/Stream" */
  struct rpc_creds creds;
  uint32_t backoff_initial_ms; /* 0: 200 (lowered to the cap if above it) */
  uint32_t backoff_max_ms;     /* 0: RPC_RECONNECT_MAX_DEFAULT_MS */
  /* The backoff resets to initial once a stream stays up this long after
   * the server's response headers arrived, or receives a message (0: 5000). */
  uint32_t backoff_reset_ms;
  /* Longest wait for the server's response headers (0: 3000). */
  uint32_t connect_timeout_ms;
};

/* Opens a reconnecting client stream. Strings in opts are copied. */
int rpc_stream_open(struct rpc_runtime *rt, const struct rpc_stream_opts *opts,
                    const struct rpc_stream_callbacks *cb, void *ud, struct rpc_stream **out);
/* Queues one message on the current call. Returns RPC_ERR_CLOSED when no
 * call is open (between reconnects). */
int rpc_stream_send(struct rpc_stream *s, const uint8_t *data, size_t len);
/* Half-closes the current call after queued sends (server-streaming RPCs:
 * send the request, then call this). */
int rpc_stream_close_send(struct rpc_stream *s);
/* 1 when a call is currently open. */
int rpc_stream_is_open(const struct rpc_stream *s);
/* The address of the current (or last) attempt ("10.0.0.2:7000"), "" before
 * the first; valid until the next attempt starts. */
const char *rpc_stream_target(const struct rpc_stream *s);
/* Cancels the current call, stops reconnecting and frees the stream once
 * gRPC has released it; done(arg) then runs on the loop (may be NULL). No
 * other callback runs after this returns. */
void rpc_stream_close(struct rpc_stream *s, void (*done)(void *arg), void *arg);

/* ---- server ----------------------------------------------------------- */

enum rpc_method_kind { RPC_UNARY, RPC_SERVER_STREAM, RPC_BIDI_STREAM };

struct rpc_call_handler {
  /* A new call arrived. rpc_call_peer tells who. */
  void (*on_call)(void *ud, struct rpc_call *call);
  /* One message from the client (unary: the request). */
  void (*on_message)(void *ud, struct rpc_call *call, const uint8_t *data, size_t len);
  /* The client half-closed (may be NULL). */
  void (*on_half_close)(void *ud, struct rpc_call *call);
  /* Every queued send has been written (may be NULL): a producer that sends
   * only the newest state uses this to send again without building a queue. */
  void (*on_drained)(void *ud, struct rpc_call *call);
  /* The call is over (finished by us, cancelled by the peer, or server
   * shutdown). The call is freed after this returns. Runs exactly once for
   * every call that got on_call, and no other callback follows it; sends
   * and finish return RPC_ERR_CLOSED from here on. */
  void (*on_done)(void *ud, struct rpc_call *call);
};

struct rpc_server_opts {
  const char *listen; /* "127.0.0.1:7000", "0.0.0.0:7000" */
  struct rpc_creds creds;
};

/* Creates a server. On failure returns negative and writes a reason. */
int rpc_server_new(struct rpc_runtime *rt, const struct rpc_server_opts *opts,
                   struct rpc_server **out, char *err, size_t errlen);
/* Registers a method before rpc_server_start (method and h are copied).
 * Unregistered methods answer UNIMPLEMENTED without reaching any handler.
 * The kind documents intent; every kind is served the same way (messages
 * in, messages out, finish), so a handler must enforce unary shape itself. */
int rpc_server_add_method(struct rpc_server *srv, const char *method, enum rpc_method_kind kind,
                          const struct rpc_call_handler *h, void *ud);
/* Binds and starts; negative with a reason on failure (RPC_ERR_BIND). */
int rpc_server_start(struct rpc_server *srv, char *err, size_t errlen);
/* Port actually bound (useful with port 0). */
int rpc_server_port(const struct rpc_server *srv);
/* Cancels every call (on_done runs for each), shuts down, frees; then
 * done(arg) runs on the loop. */
void rpc_server_shutdown(struct rpc_server *srv, void (*done)(void *arg), void *arg);

/* Queues one message to the client. */
int rpc_call_send(struct rpc_call *call, const uint8_t *data, size_t len);
/* Number of messages queued or in flight. */
size_t rpc_call_pending(const struct rpc_call *call);
/* Ends the call with a status after queued sends. details may be NULL
 * (copied). Further sends return RPC_ERR_CLOSED, and no on_message or
 * on_half_close follows (on_done still does). */
int rpc_call_finish(struct rpc_call *call, int status, const char *details);
/* Peer address as gRPC reports it ("ipv4:127.0.0.1:5555"). */
const char *rpc_call_peer(const struct rpc_call *call);
/* Subject CN of the verified client certificate, or "" without mTLS. */
const char *rpc_call_peer_identity(const struct rpc_call *call);
/* 1 when the call arrived over TLS (then the client certificate was
 * verified against the server's CA). */
int rpc_call_peer_is_tls(const struct rpc_call *call);
/* The URI subjectAltNames of the verified client certificate (node
 * identities such as spiffe://edge/l7proxy/NAME); *uris is valid as long
 * as the call. Returns how many (0 without mTLS, at most 16). */
size_t rpc_call_peer_uris(const struct rpc_call *call, const char *const **uris);
void rpc_call_set_data(struct rpc_call *call, void *data);
void *rpc_call_get_data(const struct rpc_call *call);

/* ---- blocking unary client (command-line tools) ----------------------- */

/* Performs one unary call without a loop. On success returns 0 and sets
 * *resp (malloc'd, caller frees) and *resp_len. On failure returns the
 * grpc status (>0) or a negative error, with a reason in err. */
int rpc_unary_call(const char *target, const char *method, const struct rpc_creds *creds,
                   const uint8_t *req, size_t req_len, uint32_t deadline_ms, uint8_t **resp,
                   size_t *resp_len, char *err, size_t errlen);

#endif
