/*
 * leader — one syncd replica at a time may write to the Kubernetes API
 * (Ingress status): the one holding a coordination.k8s.io/v1 Lease.
 *
 * A thread runs the rounds of syncd/lease.h against the API server (GET
 * the Lease; POST it when missing; PUT it at the resourceVersion read,
 * 409 Conflict meaning another replica won), one round every retry
 * period. Leadership changes are announced on the loop to the watchers.
 * leader_stop releases the Lease when this replica holds it (an empty
 * holder: the next replica takes over at its next round instead of
 * waiting out the lease duration), which is the SIGTERM handover.
 *
 * Every replica serves streams and Status whether it leads or not; only
 * status write-back asks leader_is_leader, which also turns false by
 * itself once the last successful renew is older than the renew
 * deadline, so a replica cut off from the API server stops writing before
 * another may take over.
 *
 * The identity written into the Lease is the replica id given plus a
 * random suffix ("syncd-0_3f9a1c2e"), unique per process even when two
 * replicas share a name.
 *
 * Callers: syncd main (start, stop, Status), syncd/source_k8s (write-back
 * gate and watcher). Threads: leader_is_leader and leader_status from any
 * thread; everything else on the loop given to leader_start.
 * Ownership: the leader owns its thread, connection and strings; opts
 * are copied. Errors: 0 or negative with a one-line reason in err.
 */
#ifndef EDGE_SYNCD_LEADER_H
#define EDGE_SYNCD_LEADER_H

#include <stdint.h>
#include <uv.h>

#include "syncd/lease.h"

struct leader_opts {
  const char *kubeconfig; /* NULL: in-cluster service account */
  const char *lease_namespace, *lease_name;
  const char *replica_id;                            /* the identity's prefix */
  uint32_t duration_ms, renew_deadline_ms, retry_ms; /* 0: 15 s, 10 s, 2 s */
};

struct leader_status {
  char identity[LEASE_ID_MAX];
  char lease[512];           /* "namespace/name" */
  char holder[LEASE_ID_MAX]; /* as last read, "" released or unknown */
  int leader;
  int64_t transitions;
  char renew_time[LEASE_TIME_MAX]; /* holder's last renewTime */
  char error[256];                 /* the last failed request, "" when fine */
};

struct leader;

int leader_start(uv_loop_t *loop, const struct leader_opts *o, struct leader **out, char *err,
                 size_t errlen);
/* Any thread. A NULL leader (no election) always leads. */
int leader_is_leader(const struct leader *l);
void leader_status(const struct leader *l, struct leader_status *out);
/* cb(ud, leader) runs on the loop after each change (at most 4 watchers). */
int leader_watch(struct leader *l, void (*cb)(void *ud, int leader), void *ud);
void leader_unwatch(struct leader *l, void (*cb)(void *ud, int leader), void *ud);
/* Releases the Lease if held (bounded by 2 s), joins the thread, then
 * frees l from the loop and runs done(arg). No watcher runs afterwards. */
void leader_stop(struct leader *l, void (*done)(void *arg), void *arg);

#endif
