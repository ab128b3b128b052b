/*
 * persist — syncd's state on disk: the store (syncd/store.h) as records in
 * a journal (syncd/journal.h) under --state-dir, DIR/journal.
 *
 * Records: STATE (the whole store: entries with their change numbers,
 * tombstones, the version history, the report), DELTA (the entries one
 * change touched) and REPORT (the packed report, when it changed). Opening
 * replays them into the store, so a restarted syncd serves the version it
 * had and still computes deltas for proxies at older versions it knew. A
 * change costs one DELTA of what it touched (a one-route change is a few
 * hundred bytes), fdatasync'd before persist_commit returns: the caller
 * pushes only what is on disk, so a crash right after a push cannot bring
 * back an older state. A torn last record (a crash mid-append) is dropped
 * and logged; the state of the previous record is what was last accepted.
 *
 * Compaction runs when the records after the base outgrow it (and 1 MiB):
 * the STATE is encoded on the loop, written and fsync'd on a libuv worker
 * thread, and swapped in on the loop (journal_compact_*), so a change that
 * arrives meanwhile is appended at once and carried into the new file.
 *
 * A state directory from before the journal (DIR/state.pb) is read once,
 * written as the journal's first STATE, and removed. A file that is not a
 * journal at all (a wrong magic) is moved to DIR/journal.corrupt and a new
 * journal begins empty: the source rebuilds the state, as it would for a
 * new syncd.
 *
 * Threads: the loop thread, except the compaction write. Errors: 0 or a
 * negative errno with a reason; an append that fails is logged by the
 * caller and retried as part of the next commit. Callers: syncd/main.c,
 * tests.
 */
#ifndef EDGE_SYNCD_PERSIST_H
#define EDGE_SYNCD_PERSIST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct store;
struct persist;

enum {
  PERSIST_RECORD_STATE = 1,
  PERSIST_RECORD_DELTA = 2,
  PERSIST_RECORD_REPORT = 3,
};

/* Compaction threshold: records after the base beyond max(base, this). */
#define PERSIST_COMPACT_MIN_BYTES (1u << 20)

struct persist_info {
  uint64_t records;  /* replayed */
  uint64_t dropped;  /* bytes of a torn or corrupt tail cut away */
  int migrated;      /* a state.pb was read and turned into the journal */
  int quarantined;   /* DIR/journal was not a journal: moved to journal.corrupt */
  int restored;      /* the store holds a state now */
  char problem[256]; /* why the tail was dropped ("" when nothing was) */
};

/* Counters for /metrics and benchmarks. */
struct persist_stats {
  uint64_t bytes_written; /* appended records and compactions */
  uint64_t appends, compactions;
  uint64_t journal_bytes; /* current file size */
  int compacting;         /* a compaction is running */
};

/*
 * Opens DIR/journal (creating it), replays it into store (which must be
 * empty) and leaves it ready for commits. loop runs the compactions.
 */
int persist_open(uv_loop_t *loop, const char *dir, struct store *store, struct persist **out,
                 struct persist_info *info, char *err, size_t errlen);

/* Writes what changed in the store since the last commit (a DELTA, or a
 * STATE when that is smaller or the change history no longer reaches back)
 * and the report when it changed; fdatasyncs; starts a compaction when
 * due. 0 when there was nothing to write or it was written. */
int persist_commit(struct persist *p, char *err, size_t errlen);

void persist_stats(const struct persist *p, struct persist_stats *out);

/* Closes the journal; done(arg) runs on the loop once a compaction in
 * flight has finished (at once when none). */
void persist_close(struct persist *p, void (*done)(void *arg), void *arg);

#endif
