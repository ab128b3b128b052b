/*
 * config_store — the l7proxy's resource map, keyed by (type, name), that
 * full and delta Pushes from syncd apply to, plus its on-disk cache and the
 * --config=FILE loader.
 *
 * Applying is all or nothing and incremental: the snapshot builder
 * (snapshot.h) compiles only what a push carries and makes the next
 * snapshot from the previous one; only when that succeeds is it committed. On any failure the
 * store keeps its previous map and version and returns the Nack reason.
 *
 * Delta rule: a Push with full=false and base_version != 0 must be based on
 * the version this store holds; otherwise it is rejected ("delta based on
 * version X, but version Y is applied"), since applying it to another base
 * would silently produce a state syncd never computed. Removing a name that
 * is not present is not an error (removals are idempotent).
 *
 * Cache: with a cache directory, the state after a successful apply is
 * written as one serialized edge.v1.Snapshot to DIR/state.pb (temp file,
 * fsync, rename, fsync of the directory; mode 0600 since it holds private
 * keys) by a background thread: the newest state, at most once per
 * L7_CACHE_MIN_INTERVAL_MS, so an apply never waits for the disk.
 * l7_config_store_flush waits for it; freeing the store writes what is
 * pending. A failed cache write is logged and does not fail the apply.
 *
 * Config files: binary edge.v1.Snapshot, or the same message as JSON (see
 * pb_json.h for the text form); the first non-blank byte '{' selects JSON.
 *
 * Threads: one owner (the config client's loop thread). Snapshots handed
 * out are independent of the store and may be used anywhere.
 */
#ifndef EDGE_L7PROXY_CONFIG_STORE_H
#define EDGE_L7PROXY_CONFIG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/resources.pb-c.h"
#include "l7proxy/snapshot.h"

/* Largest config/cache file read (bytes). */
#define L7_CONFIG_MAX_FILE (256u << 20)
/* Least time between two cache writes (a burst of pushes: one write). */
#define L7_CACHE_MIN_INTERVAL_MS 5000u

struct l7_config_store;

/* cache_dir may be NULL (no cache). The string is copied. 0 or -ENOMEM. */
int l7_config_store_new(const char *cache_dir, struct l7_config_store **out);
void l7_config_store_free(struct l7_config_store *st);

/*
 * Applies a Push atomically. On success returns 0, commits the new state
 * and version, writes the cache, and sets *snap to a new reference the
 * caller owns (usually passed to l7_snapshot_publish). On failure returns
 * negative (-EINVAL bad push, -ENOMEM) with the reason in err, *snap NULL,
 * and the store unchanged.
 */
int l7_config_store_apply(struct l7_config_store *st, const Edge__V1__Push *push,
                          struct l7_snapshot **snap, char *err, size_t errlen);

/* l7_config_store_apply for a Push protobuf-c unpacked (the default
 * allocator): its upserted resources are taken instead of copied, and
 * every push->upserted[i] is NULL on return. */
int l7_config_store_apply_unpacked(struct l7_config_store *st, Edge__V1__Push *push,
                                   struct l7_snapshot **snap, char *err, size_t errlen);

/* Replaces the whole state with a Snapshot message (config file, cache).
 * Same contract as l7_config_store_apply. write_cache: 1 to persist. */
int l7_config_store_apply_snapshot(struct l7_config_store *st, const Edge__V1__Snapshot *msg,
                                   int write_cache, struct l7_snapshot **snap, char *err,
                                   size_t errlen);

/* Loads DIR/state.pb if present. Returns 0 with *snap, -ENOENT when there
 * is no cache (or no cache dir), or another negative with a reason when the
 * file is unreadable or its state is rejected (the store stays empty). */
int l7_config_store_load_cache(struct l7_config_store *st, struct l7_snapshot **snap, char *err,
                               size_t errlen);

/* Loads --config=FILE into the store (not cached). Same contract. */
int l7_config_store_load_file(struct l7_config_store *st, const char *path,
                              struct l7_snapshot **snap, char *err, size_t errlen);

/* Waits until the cache holds the committed state (or its write failed). */
void l7_config_store_flush(struct l7_config_store *st);
/* Cache files written by the background thread so far. */
uint64_t l7_config_store_cache_writes(struct l7_config_store *st);

/* With HTTPS: every snapshot from now on carries a TLS store of its
 * certificates made with tls (copied). Before the first apply only:
 * 0, -EINVAL afterwards, -ENOMEM. */
struct tls_options;
int l7_config_store_set_tls(struct l7_config_store *st, const struct tls_options *tls);

/* Version of the committed state (0 before any). */
uint64_t l7_config_store_version(const struct l7_config_store *st);
/* Number of resources in the committed state. */
size_t l7_config_store_size(const struct l7_config_store *st);
/* The committed resource of that type and name, or NULL. Borrowed: valid
 * until the next apply. type is EDGE__V1__RESOURCE_TYPE__*. */
const Edge__V1__Resource *l7_config_store_get(const struct l7_config_store *st, int type,
                                              const char *name);

/* Serializes the committed state as an edge.v1.Snapshot. On success 0 and
 * *buf (malloc'd, caller frees) / *len. */
int l7_config_store_serialize(const struct l7_config_store *st, uint8_t **buf, size_t *len);

/* Reads a config file (binary or JSON Snapshot). On success 0 and *out,
 * freed with edge__v1__snapshot__free_unpacked(*out, NULL). */
int l7_config_read_file(const char *path, Edge__V1__Snapshot **out, char *err, size_t errlen);

#endif
