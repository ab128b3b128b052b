/*
 * membership — the Membership.Watch server: streams the L7 replica set to
 * every l4lb.
 *
 * The replica set is the l7proxies connected to ConfigSync that have
 * applied a state (address = Hello.address, check_address =
 * Hello.admin_address, zone, draining, weight), sorted by node_id. Its
 * version increases on every change of the set. Each watcher first gets the
 * current set, then the newest set after each change; like ConfigSync it is
 * never queued (one message in the send queue at most, the newest sent when
 * it drains). Watchers are recorded as nodes of kind L4LB for Status and
 * stay listed after they disconnect.
 *
 * Runs on syncd's loop thread. Called by syncd/main.c; read by status.c.
 */
#ifndef EDGE_SYNCD_MEMBERSHIP_H
#define EDGE_SYNCD_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config_sync;
struct rpc_server;
struct metrics_registry;
struct membership;

#define MEMBERSHIP_METHOD "/edge.v1.Membership/Watch"

/* One l4lb watcher as Status shows it. Owned by membership. */
struct membership_watcher {
  char *node_id, *address, *build;
  int connected;
  int64_t connected_since, disconnected_at;
  uint64_t sent_version; /* replica-set version last sent */
};

/* cs must outlive mb. metrics may be NULL. */
int membership_new(struct config_sync *cs, struct metrics_registry *metrics,
                   struct membership **out);
void membership_free(struct membership *mb);
int membership_register(struct membership *mb, struct rpc_server *srv);
/* Watches are checked against the client certificate's identity
 * (syncd/authz.h: spiffe://edge/l4lb/NODE_ID); a may be NULL. */
struct authz;
void membership_set_authz(struct membership *mb, struct authz *a);

/*
 * Startup grace: sends watchers nothing for ms after start, so the proxies
 * of a restarted syncd can reconnect before the l4lbs are told the set; until
 * then an l4lb keeps the set it had (an empty set would empty its table).
 * Runs a timer on loop; call membership_close before the loop stops.
 */
int membership_hold(struct membership *mb, uv_loop_t *loop, uint32_t ms);
/* Closes the grace timer if it is still running (shutdown). */
void membership_close(struct membership *mb);

/* Recomputes the replica set and sends it to watchers when it changed
 * (hook this to config_sync_on_replicas_changed). */
void membership_refresh(struct membership *mb);

/* Forgets watchers disconnected at or before now - max_age_s, then the
 * oldest disconnected ones beyond max_disconnected. Returns how many. */
size_t membership_prune(struct membership *mb, int64_t now, int64_t max_age_s,
                        size_t max_disconnected);

uint64_t membership_version(const struct membership *mb);
size_t membership_watcher_count(const struct membership *mb);
const struct membership_watcher *membership_watcher_at(const struct membership *mb, size_t i);
size_t membership_connected(const struct membership *mb);

#endif
