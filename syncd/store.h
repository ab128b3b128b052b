/*
 * store — syncd's versioned resource store.
 *
 * Holds the current resources keyed by (type, name) as packed
 * Edge__V1__Resource bytes. store_apply takes a complete desired state,
 * compares it with what is held (by key, then by bytes) and, when anything
 * differs, bumps the version (a monotonic uint64) and stamps every changed
 * resource with it. Removed resources stay as tombstones stamped with the
 * version that removed them, so store_delta can tell a node at version V
 * exactly what changed since V. When too many tombstones pile up the
 * oldest are dropped and the "horizon" moves forward: a node older than
 * the horizon gets a full state instead of a delta.
 *
 * The last good state is persisted as one file under a state directory
 * (store_save: temp file, fsync, rename, mode 0600 because Certificate
 * resources hold private keys) and reloaded at start (store_load), so a
 * restarted syncd serves the same version at once. The file carries an
 * Edge__V1__Snapshot plus an opaque "meta" blob the caller uses for what
 * Status needs (rejected objects, object counts), and a CRC32 so a torn or
 * corrupt file is rejected with a reason instead of being half-loaded.
 *
 * Invariants: entries are sorted by (type, name) and unique; every live
 * entry's version is <= store_version; an update that changes nothing does
 * not bump the version. Not thread-safe: used on syncd's loop thread.
 * Called by syncd/main.c (apply, save, load), syncd/config_sync.c (deltas,
 * pushes), syncd/status.c and the /config dump (entries).
 */
#ifndef EDGE_SYNCD_STORE_H
#define EDGE_SYNCD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "syncd/model.h"

enum {
  STORE_ERR_INVALID = -1, /* bad argument: unsorted or duplicate resources */
  STORE_ERR_NOMEM = -2,
  STORE_ERR_IO = -3,      /* the state file could not be read or written */
  STORE_ERR_CORRUPT = -4, /* the state file is damaged or not ours */
  STORE_NO_STATE = 1,     /* store_load: no state file yet (not an error) */
};
const char *store_strerror(int err);

/* One resource. Owned by the store; valid until the next store_apply or
 * store_load. A tombstone (removed = 1) has no bytes. */
struct store_entry {
  int type; /* EDGE__V1__RESOURCE_TYPE__* */
  char *name;
  uint8_t *bytes; /* packed Edge__V1__Resource */
  size_t len;
  uint64_t version; /* version in which it last changed (or was removed) */
  int removed;
};

struct store;

int store_new(struct store **out);
void store_free(struct store *s);

/*
 * Sets the first version a fresh store will produce (default 1); ignored
 * once the store holds a version. syncd seeds it with the wall clock in
 * milliseconds when it starts without a saved state, so versions stay
 * unique across restarts that lose the state: a proxy reporting a version
 * from an earlier history then never matches the current one by accident.
 */
void store_set_first_version(struct store *s, uint64_t first);

/* Current version (0 before any state). */
uint64_t store_version(const struct store *s);
/* Seconds since the epoch when the current version was produced. */
int64_t store_version_time(const struct store *s);
/* Number of live (not removed) resources. */
size_t store_count(const struct store *s);
/* All entries, tombstones included (check ->removed), sorted by (type, name). */
const struct store_entry *store_entries(const struct store *s, size_t *n);
/* Looks a live entry up; NULL when absent or removed. */
const struct store_entry *store_find(const struct store *s, int type, const char *name);

/*
 * Makes res[0..n) (sorted by (type, name), unique) the current state. The
 * bytes and names are copied. Returns 1 when a new version was produced, 0
 * when nothing changed (the version stays), or a negative error with the
 * store unchanged.
 */
int store_apply(struct store *s, const struct syncd_resource *res, size_t n);

/* Opaque bytes persisted with the state (main keeps the rejected objects
 * and object counts here). Copied. */
int store_set_meta(struct store *s, const uint8_t *meta, size_t len);
const uint8_t *store_meta(const struct store *s, size_t *len);

/*
 * What a node at version `since` needs to reach the current version.
 * full = 1 (every live entry in upserted, base_version 0) when force_full,
 * since == 0, since is older than the tombstone horizon, or since is newer
 * than the store (a node from another history). Otherwise the entries
 * changed after since and the tombstones removed after since. The arrays
 * point into the store (valid until the next store_apply); release them
 * with store_delta_clear.
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

/* Writes DIR/state.pb atomically (DIR/state.pb.tmp, fsync, rename, fsync
 * of DIR), mode 0600. 0 or negative with a reason in err. */
int store_save(const struct store *s, const char *dir, char *err, size_t errlen);

/*
 * Replaces the store's contents with DIR/state.pb. Returns 0 when loaded,
 * STORE_NO_STATE when there is no file, or a negative error with a reason
 * in err and the store left empty (version 0). After a load every entry
 * carries the loaded version and the horizon is that version: a node that
 * reports it gets nothing, any other node a full state.
 */
int store_load(struct store *s, const char *dir, char *err, size_t errlen);

#endif
