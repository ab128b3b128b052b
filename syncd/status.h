/*
 * status — the Status.Get server and the /config dump: what operators see.
 *
 * A StatusResponse holds the build, the current version and when it was
 * produced, the sources and their health, object counts and rejected
 * objects (kept by main as the store's meta, a packed StatusResponse with
 * only `objects` and `rejected` set), every node (l7proxies from
 * config_sync plus known replicas not reconnected since the start, each
 * with whether it is in the replica set and why; l4lbs from membership)
 * and the certificates: name, SNI
 * names, notAfter, issuer, source Secret, the hosts using it and whether it
 * expires within the warning window (STATUS_EXPIRY_WARN_DAYS unless
 * status_set_expiry_warning). status_start_expiry exports seconds to expiry
 * per certificate as a gauge and logs expiring ones once a day. Certificate facts follow the store
 * change by change (syncd/certfacts.h). Never any key material: private keys are neither copied
 * into the response nor into the /config JSON.
 *
 * Runs on syncd's loop thread. Called by syncd/main.c.
 */
#ifndef EDGE_SYNCD_STATUS_H
#define EDGE_SYNCD_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct metrics_registry;
struct store;
struct config_sync;
struct membership;
struct rpc_server;
struct status;

#define STATUS_METHOD "/edge.v1.Status/Get"
#define STATUS_EXPIRY_WARN_DAYS 14

/* Fills the facts of the one source (any output may be NULL). */
typedef void (*status_source_fn)(void *ud, char *name, size_t namelen, int *healthy, char *msg,
                                 size_t msglen, int64_t *last_sync);

/* All pointers must outlive st; mb and source may be NULL. build is copied. */
int status_new(struct store *store, struct config_sync *cs, struct membership *mb,
               const char *build, int64_t started_at, status_source_fn source, void *source_ud,
               struct status **out);
void status_free(struct status *st);
int status_register(struct status *st, struct rpc_server *srv);
/* Status.Get callers need a spiffe://edge/syncctl/ identity; the
 * response lists a's refusals. a may be NULL (no checks, none listed). */
struct authz;
void status_set_authz(struct status *st, struct authz *a);

/* Certificates expiring within seconds are flagged (default 14 days). */
void status_set_expiry_warning(struct status *st, int64_t seconds);
/* Starts the expiry timer on loop: every minute the gauge
 * edge_syncd_certificate_expiry_seconds{certificate="ns/name"} is refreshed
 * in metrics (borrowed, must outlive st) and, once a day, each expiring
 * certificate is logged as a warn line (event certificate_expiring). */
int status_start_expiry(struct status *st, uv_loop_t *loop, struct metrics_registry *metrics);
/* Brings the certificate facts and their gauges up to date with the store
 * (main calls it after each new version; it costs what changed). */
void status_refresh_expiry(struct status *st);
/* Refreshes edge_syncd_node_state and edge_syncd_source_healthy (the
 * expiry timer does it every second). */
void status_refresh_health(struct status *st);
/* Closes the timer; done(arg) runs when it is closed (at once if never
 * started). Call before status_free. */
void status_stop(struct status *st, void (*done)(void *arg), void *arg);

/* The replica's name and its leader election, as Status shows them. */
struct status_leader {
  int enabled, leader;
  char identity[256], holder[256], lease[512], renew_time[40], error[256];
  int64_t transitions;
};
typedef void (*status_leader_fn)(void *ud, struct status_leader *out);
/* replica is copied; leader (may be NULL: no election) is asked per Get. */
void status_set_replica(struct status *st, const char *replica, status_leader_fn leader, void *ud);

/* Builds a packed Edge__V1__StatusResponse; *out malloc'd (caller frees). */
int status_build(struct status *st, uint8_t **out, size_t *len);

/* The live resources as JSON ({"version":N,"resources":[...]}), every
 * field of the wire messages except key_pem. *out malloc'd. */
int status_config_json(const struct store *store, char **out, size_t *len);

#endif
