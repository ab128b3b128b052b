/*
 * store — syncd's versioned resource store.
 *
 * Holds the current resources keyed by (type, name) as packed
 * Edge__V1__Resource bytes, and names each state by its content: the
 * version is a digest over every live resource (type, name and bytes), so
 * the same resources give the same version in any process — two syncd
 * replicas fed the same source, or one syncd before and after a restart —
 * and a proxy that reports a version is known to hold exactly that state.
 * Versions are not ordered; what orders them is the store's local change
 * number (seq, +1 per change) and the source generation the caller passes
 * with each change (the highest resourceVersion or the directory scan
 * time), which Status, logs and metrics report beside the version.
 *
 * Changes come as deltas (store_apply_delta: upserts and removals, what
 * the incremental translator emits) or as a whole state (store_apply, which
 * diffs it into a delta). Each changed entry is stamped with the new seq;
 * removed entries stay as tombstones stamped likewise, and a history of
 * recent versions maps each version to the seq it was current at, so
 * store_delta tells a node at version V exactly what changed since V — even
 * when V is older than the previous version, or came from before a
 * restart (the history is persisted). When tombstones pile up the oldest
 * are dropped and the horizon moves: a node older than the horizon, or at
 * a version the store never saw, gets the full state.
 *
 * The version digest: each live entry has a SHA-256 over (type, name,
 * bytes); entries fall into 4096 buckets by that digest, a bucket's digest
 * is a SHA-256 over its entries' digests in order, a group's (64 buckets)
 * over its non-empty buckets, and the root over the non-empty groups; the
 * version is the root's first 53 bits (never 0, which means "no state"):
 * exact in a double, so JSON tools (jq) and metrics gauges show it as is. A change rehashes only
 * the buckets and groups it touched (a few KB), so a version costs O(changes), not O(state).
 *
 * Persistence is record-shaped (syncd/persist.c writes them to the
 * journal): store_encode_state (everything, tombstones and history
 * included), store_encode_delta (the entries changed since a seq) and
 * store_replay, which applies either kind and checks that the recomputed
 * version equals the recorded one (a mismatch is corruption).
 *
 * The report (rejected and ignored objects, object counts: what Status
 * and explain show) is kept typed, as an unpacked StatusResponse, beside
 * its packed bytes, which are what gets persisted.
 *
 * Invariants: entries are sorted by (type, name) and unique; the seq list
 * is ordered by seq; every live entry's seq <= store_seq; an update that
 * changes nothing changes neither seq nor version. Not thread-safe: used
 * on syncd's loop thread. Called by syncd/main.c, syncd/persist.c,
 * syncd/config_sync.c (deltas, pushes), syncd/status.c, syncd/explain.c.
 */
#ifndef EDGE_SYNCD_STORE_H
#define EDGE_SYNCD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "edge/v1/status.pb-c.h"
#include "syncd/model.h"

enum {
  STORE_ERR_INVALID = -1, /* bad argument: unsorted or duplicate resources */
  STORE_ERR_NOMEM = -2,
  STORE_ERR_IO = -3,      /* a state file could not be read or written */
  STORE_ERR_CORRUPT = -4, /* a record or state file is damaged or not ours */
  STORE_NO_STATE = 1,     /* no state persisted yet (not an error) */
};
const char *store_strerror(int err);

/* Bits of a version (see above). */
#define STORE_VERSION_BITS 53

/* Buckets of the version digest (see the top of this file), in groups. */
#define STORE_DIGEST_BUCKETS 4096
#define STORE_DIGEST_GROUP_SIZE 64
#define STORE_DIGEST_GROUPS (STORE_DIGEST_BUCKETS / STORE_DIGEST_GROUP_SIZE)
/* Versions remembered for deltas (older ones get a full state). */
#define STORE_HISTORY 4096

/* One resource. Owned by the store; valid until the entry changes or is
 * dropped (the next apply may do either). A tombstone (removed = 1) has no
 * bytes. The fields after `removed` are the store's. */
struct store_entry {
  int type; /* EDGE__V1__RESOURCE_TYPE__* */
  char *name;
  uint8_t *bytes; /* packed Edge__V1__Resource */
  size_t len;
  uint64_t seq; /* change number at which it last changed (or was removed) */
  int removed;
  /* private */
  uint8_t digest[32];
  struct store_entry *prev, *next; /* the seq-ordered list */
  struct store_entry *bnext;       /* next in its digest bucket (live only) */
};

struct store;

int store_new(struct store **out);
void store_free(struct store *s);

/* Current version (0 before any state). */
uint64_t store_version(const struct store *s);
/* Local change number of the current version (0 before any state). */
uint64_t store_seq(const struct store *s);
/* Seconds since the epoch when the current version was produced. */
int64_t store_version_time(const struct store *s);
/* Source generation the current version was produced from (0 unknown). */
uint64_t store_generation(const struct store *s);
/* Change number up to which tombstones were dropped: a delta since an
 * older change number can no longer name every removal. */
uint64_t store_horizon(const struct store *s);
/* Number of live (not removed) resources. */
size_t store_count(const struct store *s);
/* All entries, tombstones included (check ->removed), sorted by (type, name). */
struct store_entry *const *store_entries(const struct store *s, size_t *n);
/* Looks a live entry up; NULL when absent or removed. */
const struct store_entry *store_find(const struct store *s, int type, const char *name);
/* Calls fn for every entry (tombstones included) changed after seq, newest
 * first. O(entries changed since seq). */
void store_changed_since(const struct store *s, uint64_t seq,
                         void (*fn)(void *ud, const struct store_entry *e), void *ud);

/*
 * Applies a delta: up[0..nup) are upserted (bytes and names copied), rm
 * removed; each list sorted by (type, name) and unique, and no key in
 * both. Upserts whose bytes equal the held ones and removals of absent
 * names change nothing. Returns 1 when a new version was produced, 0 when
 * nothing changed, or a negative error with the store unchanged.
 */
int store_apply_delta(struct store *s, const struct syncd_resource *up, size_t nup,
                      const struct syncd_resource_key *rm, size_t nrm, uint64_t generation);
/* Makes res[0..n) (sorted, unique) the whole state: store_apply_delta of
 * res plus the removal of every live entry not in it. */
int store_apply(struct store *s, const struct syncd_resource *res, size_t n, uint64_t generation);

/* 1 when a delta from version can be computed exactly (the store saw it,
 * and not before the horizon); the current version is known. */
int store_knows(const struct store *s, uint64_t version);

/*
 * What a node at version `since` needs to reach the current version.
 * full = 1 (every live entry in upserted, base_version 0) when force_full,
 * since == 0, or !store_knows(since). Otherwise the entries changed after
 * since's seq and the tombstones removed after it (nothing at all when
 * since is the current version). The arrays point into the store (valid
 * until the next apply); release them with store_delta_clear.
 */
struct store_delta {
  int full;
  uint64_t base_version;
  uint64_t version;
  const struct store_entry **upserted;
  size_t n_upserted;
  const struct store_entry **removed;
  size_t n_removed;
};
int store_delta(const struct store *s, uint64_t since, int force_full, struct store_delta *out);
void store_delta_clear(struct store_delta *d);

/* Encodes d as an Edge__V1__SyncMessage holding a Push with nonce, reusing
 * the stored packed resources (no re-encoding of certificates). On success
 * *out is malloc'd (caller frees). */
int store_pack_push(const struct store_delta *d, const char *nonce, uint8_t **out, size_t *len);

/* Encodes the live state as an Edge__V1__Snapshot. *out malloc'd. */
int store_pack_snapshot(const struct store *s, uint8_t **out, size_t *len);

/* ---- the report ---------------------------------------------------------- */

/* Replaces the report with packed (a StatusResponse holding objects,
 * rejected and ignored; copied and unpacked once). Returns 1 when it
 * differs from the held one, 0 when equal, negative on a bad message. */
int store_set_report(struct store *s, const uint8_t *packed, size_t len);
/* The typed report (NULL before any), valid until the next set. */
const Edge__V1__StatusResponse *store_report(const struct store *s);
/* Its packed form (what is persisted); *len 0 before any. */
const uint8_t *store_report_bytes(const struct store *s, size_t *len);

/* ---- records (syncd/persist.c) ------------------------------------------- */

/* The whole store (entries with their seqs, tombstones, history, horizon,
 * report). *out malloc'd. */
int store_encode_state(const struct store *s, uint8_t **out, size_t *len);
/* The entries changed after since_seq, stamped with the current seq and
 * version. *out malloc'd. */
int store_encode_delta(const struct store *s, uint64_t since_seq, uint8_t **out, size_t *len);
/* Applies a record made by store_encode_state (state = 1: replaces the
 * store) or store_encode_delta. 0, or STORE_ERR_CORRUPT with a reason when
 * it does not parse, does not follow the store's seq, or the version it
 * names is not the version its contents give. */
int store_replay(struct store *s, int state, const uint8_t *p, size_t len, char *err,
                 size_t errlen);

/* Reads a state file of the format before the journal (DIR/state.pb,
 * "EDGESYN1"): its resources become the store's state. 0, STORE_NO_STATE,
 * or a negative error with a reason. */
int store_load_legacy(struct store *s, const char *dir, char *err, size_t errlen);

#endif
