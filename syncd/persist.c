/*
 * persist — the store as journal records (see persist.h).
 *
 * What was last written is remembered as the store's change number and a
 * CRC-32C of the report bytes; a commit writes whatever is newer. A
 * compaction in flight owns a struct journal_compaction and the uv_work_t
 * that runs its write; only one runs at a time.
 */
#include "syncd/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "syncd/journal.h"
#include "syncd/store.h"

struct persist {
  uv_loop_t *loop;
  struct store *store;
  struct journal *j;
  char *dir;
  uint64_t written_seq; /* store change number on disk */
  uint32_t report_crc;  /* of the report bytes on disk */
  size_t report_len;
  int report_written;
  struct persist_stats stats;
  /* compaction */
  uv_work_t work;
  struct journal_compaction *compaction;
  size_t compaction_len;
  int closing;
  void (*done)(void *);
  void *done_arg;
};

struct replay_ctx {
  struct persist *p;
  struct persist_info *info;
};

static uint32_t report_crc(const struct store *s, size_t *len) {
  const uint8_t *b = store_report_bytes(s, len);
  return *len ? journal_crc32c(0, b, *len) : 0;
}

static int on_record(void *ud, const struct journal_record *r) {
  struct replay_ctx *c = ud;
  struct store *s = c->p->store;
  char why[200] = "";
  int rc;
  switch (r->type) {
    case PERSIST_RECORD_STATE:
    case PERSIST_RECORD_DELTA:
      rc = store_replay(s, r->type == PERSIST_RECORD_STATE, r->data, r->len, why, sizeof(why));
      break;
    case PERSIST_RECORD_REPORT:
      rc = store_set_report(s, r->data, r->len) < 0 ? STORE_ERR_CORRUPT : 0;
      if (rc) snprintf(why, sizeof(why), "the report does not parse");
      break;
    default:
      rc = STORE_ERR_CORRUPT;
      snprintf(why, sizeof(why), "unknown record type %u", r->type);
      break;
  }
  if (rc != 0) {
    snprintf(c->info->problem, sizeof(c->info->problem), "record at byte %llu: %s",
             (unsigned long long)r->offset, why);
    return -1;
  }
  return 0;
}

/* Appends a STATE of the whole store (synchronously). */
static int write_state(struct persist *p, char *err, size_t errlen) {
  uint8_t *buf;
  size_t len;
  if (store_encode_state(p->store, &buf, &len) != 0) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  struct iovec v = {buf, len};
  int rc = journal_append(p->j, PERSIST_RECORD_STATE, &v, 1, err, errlen);
  free(buf);
  if (rc != 0) return rc;
  p->stats.bytes_written += len;
  p->stats.appends++;
  p->written_seq = store_seq(p->store);
  p->report_crc = report_crc(p->store, &p->report_len);
  p->report_written = 1;
  return 0;
}

int persist_open(uv_loop_t *loop, const char *dir, struct store *store, struct persist **out,
                 struct persist_info *info, char *err, size_t errlen) {
  struct persist_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof(*info));
  *out = NULL;
  struct persist *p = calloc(1, sizeof(*p));
  if (!p || !(p->dir = strdup(dir))) {
    free(p);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  p->loop = loop;
  p->store = store;
  char path[4096], legacy[4096];
  snprintf(path, sizeof(path), "%s/journal", dir);
  snprintf(legacy, sizeof(legacy), "%s/state.pb", dir);
  if (mkdir(dir, 0700) == 0) LOG_INFO("state_dir_created", "dir=%s mode=0700", log_q(dir));
  int fresh = access(path, F_OK) != 0;
  struct replay_ctx rc_ctx = {p, info};
  struct journal_open_info ji;
  int rc = journal_open(path, on_record, &rc_ctx, &p->j, &ji, err, errlen);
  if (rc == -EINVAL) { /* not a journal: keep it for a post-mortem, start empty */
    char aside[4200];
    snprintf(aside, sizeof(aside), "%s.corrupt", path);
    snprintf(info->problem, sizeof(info->problem), "%.120s (moved to %.120s)", err, aside);
    if (rename(path, aside) == 0) {
      info->quarantined = 1;
      rc = journal_open(path, on_record, &rc_ctx, &p->j, &ji, err, errlen);
    }
  }
  if (rc != 0) {
    free(p->dir);
    free(p);
    return rc;
  }
  info->records = ji.records;
  info->dropped = ji.dropped;
  if (ji.dropped && !info->problem[0])
    snprintf(info->problem, sizeof(info->problem), "torn or corrupt tail of %llu bytes",
             (unsigned long long)ji.dropped);
  if (fresh && access(legacy, F_OK) == 0) {
    char why[512];
    rc = store_load_legacy(store, dir, why, sizeof(why));
    if (rc == 0 && write_state(p, why, sizeof(why)) == 0) {
      info->migrated = 1;
      unlink(legacy);
    } else if (rc < 0) {
      info->quarantined = 1;
      snprintf(info->problem, sizeof(info->problem), "%.250s", why);
      unlink(legacy); /* the source rebuilds it; it would fail the same way next time */
    }
  }
  p->written_seq = store_seq(store);
  p->report_crc = report_crc(store, &p->report_len);
  p->report_written = p->report_len > 0;
  p->stats.journal_bytes = journal_size(p->j);
  info->restored = store_version(store) != 0;
  *out = p;
  return 0;
}

/* ---- compaction -------------------------------------------------------------- */

static void compact_work(uv_work_t *w) {
  struct persist *p = w->data;
  journal_compact_write(p->compaction);
}

static void finish_close(struct persist *p) {
  journal_close(p->j);
  void (*done)(void *) = p->done;
  void *arg = p->done_arg;
  free(p->dir);
  free(p);
  if (done) done(arg);
}

static void compact_done(uv_work_t *w, int status) {
  struct persist *p = w->data;
  struct journal_compaction *c = p->compaction;
  p->compaction = NULL;
  char err[512] = "";
  uint64_t before = journal_size(p->j);
  int rc = journal_compact_finish(p->j, c, err, sizeof(err));
  if (rc == 0) {
    p->stats.compactions++;
    p->stats.bytes_written += p->compaction_len;
    LOG_INFO("state_compacted", "bytes_before=%llu bytes_after=%llu", (unsigned long long)before,
             (unsigned long long)journal_size(p->j));
  } else {
    LOG_WARN("state_compaction_failed", "err=%s", log_q(err));
  }
  p->stats.journal_bytes = journal_size(p->j);
  if (p->closing) finish_close(p);
}

static void maybe_compact(struct persist *p) {
  if (p->compaction || p->closing) return;
  uint64_t base = journal_base_size(p->j), size = journal_size(p->j);
  uint64_t limit = base > PERSIST_COMPACT_MIN_BYTES ? base : PERSIST_COMPACT_MIN_BYTES;
  if (size - base <= limit) return;
  uint8_t *buf;
  size_t len;
  if (store_encode_state(p->store, &buf, &len) != 0) return;
  if (journal_compact_begin(p->j, PERSIST_RECORD_STATE, buf, len, &p->compaction) != 0) return;
  p->compaction_len = len;
  p->work.data = p;
  if (uv_queue_work(p->loop, &p->work, compact_work, compact_done) != 0) {
    char err[64];
    journal_compact_finish(p->j, p->compaction, err, sizeof(err)); /* abandons it */
    p->compaction = NULL;
  }
}

/* ---- commits ------------------------------------------------------------------- */

int persist_commit(struct persist *p, char *err, size_t errlen) {
  struct store *s = p->store;
  int rc = 0;
  uint64_t seq = store_seq(s);
  if (seq != p->written_seq) {
    /* A delta must name every removal since what is on disk; when the
     * tombstones are gone, or it would hold most of the state (the first
     * version), a STATE says it all. */
    if (p->written_seq == 0 || p->written_seq < store_horizon(s)) {
      rc = write_state(p, err, errlen);
    } else {
      uint8_t *buf;
      size_t len;
      if (store_encode_delta(s, p->written_seq, &buf, &len) != 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
      }
      if (len > (size_t)journal_base_size(p->j) && len > PERSIST_COMPACT_MIN_BYTES) {
        free(buf);
        rc = write_state(p, err, errlen);
      } else {
        struct iovec v = {buf, len};
        rc = journal_append(p->j, PERSIST_RECORD_DELTA, &v, 1, err, errlen);
        free(buf);
        if (rc == 0) {
          p->stats.bytes_written += len;
          p->stats.appends++;
          p->written_seq = seq;
        }
      }
    }
    if (rc != 0) return rc;
  }
  size_t rlen;
  uint32_t crc = report_crc(s, &rlen);
  if (rlen && (!p->report_written || crc != p->report_crc || rlen != p->report_len)) {
    const uint8_t *b = store_report_bytes(s, &rlen);
    struct iovec v = {(void *)b, rlen};
    rc = journal_append(p->j, PERSIST_RECORD_REPORT, &v, 1, err, errlen);
    if (rc != 0) return rc;
    p->stats.bytes_written += rlen;
    p->stats.appends++;
    p->report_crc = crc;
    p->report_len = rlen;
    p->report_written = 1;
  }
  p->stats.journal_bytes = journal_size(p->j);
  maybe_compact(p);
  return 0;
}

void persist_stats(const struct persist *p, struct persist_stats *out) {
  *out = p->stats;
  out->compacting = p->compaction != NULL;
}

void persist_close(struct persist *p, void (*done)(void *arg), void *arg) {
  if (!p) {
    if (done) done(arg);
    return;
  }
  p->closing = 1;
  p->done = done;
  p->done_arg = arg;
  if (!p->compaction) finish_close(p);
}
