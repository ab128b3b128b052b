/*
 * replicas — syncd's registry of KNOWN l7proxies, from which the L7
 * replica set (Membership.Watch) is made.
 *
 * The replica set is the set of proxies syncd knows, not the proxies that
 * hold a ConfigSync stream at the moment: control-plane connectivity says
 * nothing about whether a proxy can serve (it serves its last state while
 * syncd is away), and serving health is what the l4lbs' own checks
 * measure. The rules:
 *  - a proxy JOINS once it has applied a state (ACK, or Hello at the
 *    current version);
 *  - it stays while disconnected, and its Hello fields (addresses, zone,
 *    weight, draining) are refreshed whenever it reconnects;
 *  - it LEAVES when its stream ends after it said it drains
 *    (Hello.draining, sent on SIGTERM), or EXPIRES once it has been
 *    disconnected longer than the removal timeout. The removal clock starts
 *    at the disconnect or, for a proxy restored from the state directory,
 *    at the restore: a proxy is never expired for the time syncd itself was
 *    down;
 *  - the set survives syncd restarts: replicas_encode / replicas_restore
 *    are the persisted form (edge.v1.KnownReplicas).
 * Entries out of the set (not yet applied, left, expired) stay listed for
 * Status until they have been away for the removal timeout too, so memory
 * is bounded by the proxies seen within that window (and REPLICAS_MAX).
 *
 * Pure: no I/O, no clock; every call takes `now` in milliseconds since
 * the epoch. Not thread-safe: used on syncd's loop thread by
 * syncd/membership.c; read by syncd/status.c through membership.
 * Entries are kept sorted by node_id, so the packed set is canonical.
 */
#ifndef EDGE_SYNCD_REPLICAS_H
#define EDGE_SYNCD_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

/* Most proxies tracked at once; a Hello beyond it is refused membership. */
#define REPLICAS_MAX 10000
/* Longest node_id / address / zone accepted into the set. */
#define REPLICAS_FIELD_MAX 253

enum {
  REPLICAS_ERR_NOMEM = -1,
  REPLICAS_ERR_FULL = -2,    /* REPLICAS_MAX proxies already tracked */
  REPLICAS_ERR_INVALID = -3, /* bad argument or an unusable node_id */
  REPLICAS_ERR_CORRUPT = -4, /* replicas_restore: not a KnownReplicas */
};

/* Why a proxy is in or out of the set. */
enum replica_why {
  REPLICA_PENDING = 0, /* out: has not applied a state yet */
  REPLICA_APPLIED,     /* in: applied a state */
  REPLICA_RESTORED,    /* in: restored from the state directory, not back yet */
  REPLICA_DRAINING,    /* in, flagged draining: the l4lbs send it nothing new */
  REPLICA_LEFT,        /* out: its stream ended while it was draining */
  REPLICA_EXPIRED,     /* out: disconnected longer than the removal timeout */
  REPLICA_UNUSABLE,    /* out: its Hello has no usable address */
};

/* What a Hello says about a proxy. Strings are copied; NULL = "". */
struct replica_fields {
  const char *node_id, *address, *admin_address, *https_address, *zone;
  uint32_t weight; /* 0 = 1 */
  int draining;
};

/* One tracked proxy. Owned by the registry; valid until the next call that
 * changes it. */
struct replica {
  char *node_id, *address, *admin_address, *https_address, *zone;
  uint32_t weight;
  int draining;
  int in_set;
  enum replica_why why;
  int connected;
  int64_t last_seen_ms;    /* last connect/disconnect/update (restored: as saved) */
  int64_t joined_ms;       /* when it (last) joined; 0 if never */
  int64_t absent_since_ms; /* removal clock: disconnect or restore time */
  int64_t changed_ms;      /* last connect, disconnect, update or join (not ACKs) */
};

struct replicas;

/* removal_timeout_ms: how long a disconnected member stays (> 0). */
int replicas_new(uint32_t removal_timeout_ms, struct replicas **out);
void replicas_free(struct replicas *r);

/*
 * Events. Each returns 1 when the replica set (what the l4lbs receive)
 * changed, 0 when it did not, or a negative REPLICAS_ERR_*.
 */
/* A Hello opened a stream. A known member stays in; its fields are
 * refreshed. An unknown proxy is tracked as PENDING. */
int replicas_connected(struct replicas *r, const struct replica_fields *f, int64_t now);
/* The proxy serves syncd's state (first ACK, or Hello at the current
 * version): it joins if it was out. */
int replicas_applied(struct replicas *r, const char *node_id, int64_t now);
/* A Hello update on a live stream (drain flag, weight, addresses). */
int replicas_updated(struct replicas *r, const struct replica_fields *f, int64_t now);
/* The proxy's stream ended: a draining member leaves, any other member
 * stays and its removal clock starts. */
int replicas_disconnected(struct replicas *r, const char *node_id, int64_t now);
/* Expires members disconnected for the removal timeout and forgets
 * non-members away that long. Call periodically. */
int replicas_expire(struct replicas *r, int64_t now);

size_t replicas_count(const struct replicas *r);
/* Sorted by node_id. NULL past the end. */
const struct replica *replicas_at(const struct replicas *r, size_t i);
const struct replica *replicas_find(const struct replicas *r, const char *node_id);
/* Number of entries in the set. */
size_t replicas_members(const struct replicas *r);
uint32_t replicas_removal_timeout(const struct replicas *r);

/* The members as a packed edge.v1.ReplicaSet with version (0: none, for
 * comparing contents), each with whether it is connected here and when
 * its record last changed, and syncd_replica naming this syncd (NULL:
 * none). *out malloc'd, caller frees. 0 or NOMEM. */
int replicas_pack_set(const struct replicas *r, uint64_t version, const char *syncd_replica,
                      uint8_t **out, size_t *len);

/* The members as a packed edge.v1.KnownReplicas (connected ones get
 * last_seen = now). *out malloc'd. 0 or NOMEM. */
int replicas_encode(const struct replicas *r, int64_t now, uint8_t **out, size_t *len);
/*
 * Adds the members of a packed KnownReplicas as RESTORED, disconnected,
 * their removal clock starting at now. Entries with an unusable node_id or
 * address, or duplicates, are skipped (counted in *skipped, may be NULL).
 * Returns the number restored, or REPLICAS_ERR_CORRUPT with a reason.
 * Call on an empty registry (at start).
 */
int replicas_restore(struct replicas *r, const uint8_t *data, size_t len, int64_t now,
                     size_t *skipped, char *err, size_t errlen);

/* A one-line human reason for p's membership ("applied a state", "known,
 * disconnected for 42s; removed after 10m0s", ...). Returns buf. */
const char *replica_reason(const struct replica *p, uint32_t removal_timeout_ms, int64_t now,
                           char *buf, size_t len);
/* Formats a duration in ms as "10m0s", "42s", "1h2m3s", "250ms", "0s". */
const char *replicas_format_duration(uint64_t ms, char *buf, size_t len);

#endif
