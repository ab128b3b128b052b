/*
 * config_sync — the ConfigSync.Stream server: one session per l7proxy.
 *
 * A proxy opens the bidi stream with Hello; syncd registers the node and
 * sends nothing when Hello.last_applied_version is the current version,
 * the delta since that version when the store still knows it (versions
 * name content, see store.h), or else the full state; then a delta Push
 * for every new version relative to what it last pushed to that node. Pushes are never queued: at
 * most one push per node is unanswered (not yet written, or not yet acked/nacked); when it is
 * answered, a node that fell behind receives one Push bringing it to the newest version. Ack
 * records the acked version; Nack records the error and makes the next push a full one so the proxy
 * can resynchronise. A second stream with the same node_id replaces the first. A bad message
 * (unparseable, no Hello first, Ack or Nack with an unknown nonce) finishes the call with
 * INVALID_ARGUMENT and a reason; nothing else changes.
 *
 * Nodes stay listed after they disconnect (with the disconnect time) until
 * config_sync_prune forgets them (disconnected longer than a retention, or
 * beyond a cap on disconnected nodes: node churn never grows the table
 * forever). Node events (connected, applied, updated, disconnected) go to
 * one observer, syncd/membership, which keeps the replica set of known
 * proxies (its own removal timeout; pruning here does not change it).
 * Runs on syncd's loop thread. Called by syncd/main.c (create, register,
 * notify of new versions, prune), read by syncd/status.c.
 */
#ifndef EDGE_SYNCD_CONFIG_SYNC_H
#define EDGE_SYNCD_CONFIG_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct rpc_server;
struct metrics_registry;
struct config_sync;

#define CONFIG_SYNC_METHOD "/edge.v1.ConfigSync/Stream"

/* One l7proxy as Status shows it. Owned by config_sync; valid until the
 * config_sync is freed (nodes are never removed). */
struct config_sync_node {
  char *node_id, *address, *admin_address, *https_address, *zone, *build;
  uint32_t weight;
  int draining;
  int connected;
  int64_t connected_since; /* epoch seconds of the current/last stream */
  int64_t disconnected_at; /* 0 while connected */
  uint64_t pushed_version; /* last version sent on the current stream */
  uint64_t acked_version;  /* last version the node acked (or reported) */
  int applied;             /* acked (or reported) a current state on this stream */
  int nacked;              /* the last answer was a Nack */
  char *last_error;        /* "" when none */
  /* What the node's last Ack reported as applied but not served
   * (certificates its TLS library refused); bounded (CONFIG_SYNC_MAX_PROBLEMS). */
  char **problems;
  size_t n_problems;
};

#define CONFIG_SYNC_MAX_PROBLEMS 64

/* store must outlive cs. metrics may be NULL. */
int config_sync_new(struct store *store, struct metrics_registry *metrics,
                    struct config_sync **out);
/* Frees everything; the server must have been shut down first. */
void config_sync_free(struct config_sync *cs);

/* Hellos are checked against the client certificate's identity
 * (syncd/authz.h: spiffe://edge/l7proxy/NODE_ID) before anything else
 * happens: a refused Hello never touches the node it names. a may be NULL
 * (no checks); it must outlive cs. */
struct authz;
void config_sync_set_authz(struct config_sync *cs, struct authz *a);

/* Registers CONFIG_SYNC_METHOD on srv (before rpc_server_start). */
int config_sync_register(struct config_sync *cs, struct rpc_server *srv);

/* What happened to a node, for the replica registry (syncd/membership). */
enum config_sync_event {
  CONFIG_SYNC_CONNECTED,    /* a Hello opened a stream (fields in the node) */
  CONFIG_SYNC_APPLIED,      /* it serves the current state: first Ack on this
                             * stream, or Hello at the current version */
  CONFIG_SYNC_UPDATED,      /* a Hello update (drain flag, weight, addresses) */
  CONFIG_SYNC_DISCONNECTED, /* its stream ended */
};
typedef void (*config_sync_event_fn)(void *ud, const struct config_sync_node *n,
                                     enum config_sync_event ev);
/* Registers the one observer of node events (runs on the loop thread,
 * inside the event; it must not call back into cs). */
void config_sync_on_node_event(struct config_sync *cs, config_sync_event_fn fn, void *ud);

/* The store has a new version: push to every idle connected node. */
void config_sync_notify(struct config_sync *cs);

/* Forgets nodes disconnected at or before now - max_age_s, then the
 * oldest disconnected ones beyond max_disconnected. Connected nodes stay.
 * Returns how many were forgotten (pointers to them become invalid). */
size_t config_sync_prune(struct config_sync *cs, int64_t now, int64_t max_age_s,
                         size_t max_disconnected);

size_t config_sync_node_count(const struct config_sync *cs);
const struct config_sync_node *config_sync_node_at(const struct config_sync *cs, size_t i);
/* EDGE__V1__NODE_STATE__NODE_STATE_{SYNCED,STALE,NACKED,DISCONNECTED}. */
int config_sync_node_state(const struct config_sync *cs, const struct config_sync_node *n);
size_t config_sync_connected(const struct config_sync *cs);

#endif
