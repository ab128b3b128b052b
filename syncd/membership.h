/*
 * membership — the Membership.Watch server: streams the L7 replica set to
 * every l4lb, and keeps that set.
 *
 * The set is the KNOWN l7proxies (syncd/replicas.h has the rules): a proxy
 * joins once it has applied a state, stays while disconnected, leaves when
 * its stream ends after it said it drains, and is removed after it has
 * been disconnected longer than the removal timeout. It is fed by
 * config_sync's node events (membership_node_event), persisted under the
 * state directory (DIR/replicas.pb, written atomically on every change of
 * the set, every minute, and at shutdown) and restored at start, so a
 * restarted syncd tells the l4lbs the same set at once; whether a replica
 * gets traffic is for the l4lbs' health checks to decide.
 *
 * Each entry is a Replica (address = Hello.address, check_address =
 * Hello.admin_address, https_address, zone, draining, weight), sorted by
 * node_id. The set's version increases on every change. Each watcher first
 * gets the current set, then the newest set after each change; like
 * ConfigSync it is never queued (one message in the send queue at most,
 * the newest sent when it drains). Watchers are recorded as nodes of kind
 * L4LB for Status and stay listed after they disconnect; a newer Watch
 * with the same node_id replaces the older one, which ends CANCELLED
 * (common/registry, the rule config_sync's streams follow too).
 *
 * Runs on syncd's loop thread. Called by syncd/main.c; read by status.c.
 */
#ifndef EDGE_SYNCD_MEMBERSHIP_H
#define EDGE_SYNCD_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "syncd/config_sync.h"

struct rpc_server;
struct metrics_registry;
struct replicas;
struct membership;

#define MEMBERSHIP_METHOD "/edge.v1.Membership/Watch"
#define MEMBERSHIP_FILE "replicas.pb"
/* Default removal timeout: a proxy disconnected this long leaves the set. */
#define MEMBERSHIP_REMOVAL_TIMEOUT_MS (10u * 60u * 1000u)

/* One l4lb watcher as Status shows it. Owned by membership. */
struct membership_watcher {
  char *node_id, *address, *build;
  int connected;
  int64_t connected_since, disconnected_at;
  uint64_t sent_version; /* replica-set version last sent */
};

struct membership_opts {
  const char *state_dir;       /* where replicas.pb lives (copied); NULL: not persisted */
  uint32_t removal_timeout_ms; /* 0: MEMBERSHIP_REMOVAL_TIMEOUT_MS */
  const char *replica_id;      /* this syncd, named in every ReplicaSet (copied) */
};

/* metrics may be NULL. */
int membership_new(const struct membership_opts *opts, struct metrics_registry *metrics,
                   struct membership **out);
void membership_free(struct membership *mb);
int membership_register(struct membership *mb, struct rpc_server *srv);
/* Watches are checked against the client certificate's identity
 * (syncd/authz.h: spiffe://edge/l4lb/NODE_ID); a may be NULL. */
struct authz;
void membership_set_authz(struct membership *mb, struct authz *a);

/*
 * Loads DIR/replicas.pb (before any proxy connects). Returns the number of
 * replicas restored, 0 when there is no file or no state directory, or -1
 * with a reason when the file is unreadable or damaged (the set then
 * starts empty; the l4lbs hold their tables until their checks agree).
 */
int membership_restore(struct membership *mb, char *err, size_t errlen);

/* Starts the timer that expires long-disconnected replicas and re-saves
 * the set every minute. Call membership_close before the loop stops. */
int membership_start(struct membership *mb, uv_loop_t *loop);
/* Stops the timer and saves the set (shutdown). Safe to call twice. */
void membership_close(struct membership *mb);

/* config_sync's node events (config_sync_on_node_event with ud = mb). */
void membership_node_event(void *mb, const struct config_sync_node *n, enum config_sync_event ev);

/* Forgets watchers disconnected at or before now - max_age_s, then the
 * oldest disconnected ones beyond max_disconnected. Returns how many. */
size_t membership_prune(struct membership *mb, int64_t now, int64_t max_age_s,
                        size_t max_disconnected);

uint64_t membership_version(const struct membership *mb);
/* The known proxies (for Status). */
const struct replicas *membership_replicas(const struct membership *mb);
size_t membership_watcher_count(const struct membership *mb);
const struct membership_watcher *membership_watcher_at(const struct membership *mb, size_t i);
size_t membership_connected(const struct membership *mb);

#endif
