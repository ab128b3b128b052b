/*
 * config_client — the l7proxy side of ConfigSync.Stream.
 *
 * Opens "/edge.v1.ConfigSync/Stream" to syncd through common/rpc (which
 * reconnects with jittered exponential backoff), sends Hello on every new
 * call, applies each Push through config_store (all or nothing), publishes
 * the resulting snapshot with l7_snapshot_publish, and answers Ack{nonce,
 * version} or Nack{nonce, version, error}. While syncd is away nothing
 * changes: workers keep the last published snapshot.
 *
 * A message that cannot be parsed, or a SyncMessage without a Push, is a
 * protocol error, not a configuration error: it is logged (no Nack, there
 * is no nonce to answer) and the stream is reset — closed and reopened
 * after reset_delay_ms — so a confused syncd session starts over with a
 * fresh Hello. Nothing is applied and the process never crashes.
 *
 * The decision logic (l7_config_handle_message) is a pure function over
 * bytes and a store, unit tested without sockets; the rest is glue.
 *
 * Threads: everything runs on the loop given to the rpc runtime.
 * Callers: l7proxy main (create at start, set_draining on SIGTERM, close
 * at exit).
 */
#ifndef EDGE_L7PROXY_CONFIG_CLIENT_H
#define EDGE_L7PROXY_CONFIG_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/metrics.h"
#include "common/rpc.h"
#include "l7proxy/config_store.h"

#define L7_CONFIG_SYNC_METHOD "/edge.v1.ConfigSync/Stream"

/* What l7_config_handle_message decided. */
enum l7_config_verdict {
  L7_CONFIG_ACK = 0,       /* applied: *reply is an Ack, *snap the new snapshot */
  L7_CONFIG_NACK = 1,      /* rejected: *reply is a Nack, state unchanged */
  L7_CONFIG_MALFORMED = -1 /* not a usable SyncMessage: no reply, reset the stream */
};

/*
 * Decides what to do with one SyncMessage from syncd. On ACK, *snap holds a
 * new snapshot reference (caller publishes or unrefs). On ACK and NACK,
 * *reply / *reply_len hold a serialized ProxyMessage (malloc'd, caller
 * frees). reason receives the Nack error or what was malformed; version and
 * nonce (optional) receive the Push's. Never crashes on any input.
 */
int l7_config_handle_message(struct l7_config_store *st, const uint8_t *data, size_t len,
                             uint8_t **reply, size_t *reply_len, struct l7_snapshot **snap,
                             char *reason, size_t reasonlen, uint64_t *version);

struct l7_config_client_opts {
  const char *syncd; /* "127.0.0.1:7000" */
  struct rpc_creds creds;
  /* Hello fields (copied). */
  const char *node_id, *address, *admin_address, *zone, *build;
  /* Where HTTPS is served ("ADDR:PORT"; NULL or "": none). */
  const char *https_address;
  uint32_t weight;
  /* rpc backoff (0: rpc defaults). */
  uint32_t backoff_initial_ms, backoff_max_ms;
  /* Delay before reopening after a malformed message (0: 1000). */
  uint32_t reset_delay_ms;
  /* Optional (NULL: none). Registers edge_l7_config_pushes_total{result=
   * "ack|nack|malformed"}, edge_l7_config_connects_total,
   * edge_l7_config_connected and edge_l7_config_applied_version. */
  struct metrics_registry *metrics;
};

struct l7_config_client_hooks {
  /* A push was applied and published (version), before its Ack is sent
   * (so the TLS store can be rebuilt and its problems reported in the
   * Ack). May be NULL. */
  void (*on_applied)(void *ud, uint64_t version);
  /* What the proxy applied but cannot serve right now, one line each (the
   * whole list; *n = 0 when none): goes into the Ack's problems. The array
   * stays valid until the next call. May be NULL. */
  const char *const *(*problems)(void *ud, size_t *n);
  /* A push was rejected with reason (already Nacked). May be NULL. */
  void (*on_rejected)(void *ud, uint64_t version, const char *reason);
  /* The stream opened (1) or closed (0). May be NULL. */
  void (*on_connection)(void *ud, int connected);
};

struct l7_config_client;

/*
 * Starts the client. store (borrowed, must outlive the client) already
 * holds the cached or file state, whose version goes into Hello as
 * last_applied_version. hooks may be NULL. Returns 0 or an RPC_ERR_*.
 */
int l7_config_client_start(uv_loop_t *loop, struct rpc_runtime *rt, struct l7_config_store *store,
                           const struct l7_config_client_opts *opts,
                           const struct l7_config_client_hooks *hooks, void *ud,
                           struct l7_config_client **out);

/* Sets the drain flag and, when connected, sends ProxyMessage.update with a
 * Hello carrying draining=true/false; later Hellos carry it too. */
int l7_config_client_set_draining(struct l7_config_client *c, int draining);

/* Counters for /metrics and tests. */
struct l7_config_client_stats {
  uint64_t connects, acks, nacks, malformed;
  uint64_t last_acked_version;
  int connected;
};
void l7_config_client_stats(const struct l7_config_client *c, struct l7_config_client_stats *out);

/* ---- admin endpoint handlers (admin_handler_fn; ud unused) ------------ */
struct admin_response;
/* GET /config: the current snapshot as JSON without key material; 503
 * {"error": ...} before any configuration was applied. */
void l7_config_admin_config(void *ud, const char *path, const char *query,
                            struct admin_response *resp);
/* GET /explain?url=URL[&sni=NAME][&header=NAME:VALUE]... (or host=H&path=P):
 * the answer of common/explain over the snapshot this proxy serves (see
 * l7_snapshot_explain; ud, when not NULL, points at the uint16_t --https
 * port used in http → https Locations); 400 without url or host or for a bad URL, 503
 * before any configuration. */
void l7_config_admin_explain(void *ud, const char *path, const char *query,
                             struct admin_response *resp);

/* Closes the stream; done(arg) runs on the loop once everything is freed. */
void l7_config_client_close(struct l7_config_client *c, void (*done)(void *arg), void *arg);

#endif
