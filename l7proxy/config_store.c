/*
 * config_store — pushes and files applied through the snapshot builder
 * (see config_store.h for the contract).
 *
 * The builder (l7proxy/snapshot.h) holds the current resources, compiled
 * once and shared by every snapshot; a delta compiles what it carries and
 * makes the next snapshot from the previous one. This file adds what a
 * push means on the wire (the base version rule), the on-disk cache and
 * --config files.
 *
 * The cache is written by a thread of its own from the committed snapshot
 * (immutable, so no lock around the builder): the 11 MB a state of 10k
 * certificates serializes to never delays an Ack, and a burst of pushes
 * costs one write per L7_CACHE_MIN_INTERVAL_MS.
 */
#include "l7proxy/config_store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/pb_json.h"
#include "l7proxy/tls.h"

struct l7_config_store {
  char *cache_dir;
  struct l7_builder *b;
  /* the cache writer thread (started by the first write) */
  pthread_mutex_t mu;
  pthread_cond_t cv, done;
  pthread_t thread;
  int started; /* 1 running, -1 could not start (write inline), 0 not yet */
  struct l7_snapshot *pending;
  int busy, flushing, stop;
  uint64_t writes;
};

static void cs_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cs_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void cache_submit(struct l7_config_store *st, struct l7_snapshot *snap);

/* Applies a change and, on success, writes the cache. */
static int cs_commit(struct l7_config_store *st, uint64_t version, int full,
                     Edge__V1__Resource *const *up, size_t nup, Edge__V1__ResourceName *const *rm,
                     size_t nrm, int write_cache, int adopt, struct l7_snapshot **snap, char *err,
                     size_t errlen) {
  int rc = adopt ? l7_builder_apply_adopt(st->b, version, full, (Edge__V1__Resource **)up, nup, rm,
                                          nrm, snap, err, errlen)
                 : l7_builder_apply(st->b, version, full, up, nup, rm, nrm, snap, err, errlen);
  if (rc < 0) return rc;
  if (write_cache && st->cache_dir) cache_submit(st, l7_snapshot_ref(*snap));
  return 0;
}

static int cs_apply(struct l7_config_store *st, const Edge__V1__Push *push, int adopt,
                    struct l7_snapshot **snap, char *err, size_t errlen) {
  *snap = NULL;
  uint64_t have = l7_builder_version(st->b);
  if (!push->full && push->base_version != 0 && push->base_version != have) {
    cs_err(err, errlen, "delta based on version %" PRIu64 ", but version %" PRIu64 " is applied",
           push->base_version, have);
    return -EINVAL;
  }
  return cs_commit(st, push->version, push->full, push->upserted, push->n_upserted, push->removed,
                   push->n_removed, 1, adopt, snap, err, errlen);
}

int l7_config_store_apply(struct l7_config_store *st, const Edge__V1__Push *push,
                          struct l7_snapshot **snap, char *err, size_t errlen) {
  return cs_apply(st, push, 0, snap, err, errlen);
}

int l7_config_store_apply_unpacked(struct l7_config_store *st, Edge__V1__Push *push,
                                   struct l7_snapshot **snap, char *err, size_t errlen) {
  int rc = cs_apply(st, push, 1, snap, err, errlen);
  for (size_t i = 0; i < push->n_upserted; i++) { /* refused before the builder: still ours */
    edge__v1__resource__free_unpacked(push->upserted[i], NULL);
    push->upserted[i] = NULL;
  }
  return rc;
}

int l7_config_store_apply_snapshot(struct l7_config_store *st, const Edge__V1__Snapshot *msg,
                                   int write_cache, struct l7_snapshot **snap, char *err,
                                   size_t errlen) {
  *snap = NULL;
  return cs_commit(st, msg->version, 1, msg->resources, msg->n_resources, NULL, 0, write_cache, 0,
                   snap, err, errlen);
}

int l7_config_store_new(const char *cache_dir, struct l7_config_store **out) {
  struct l7_config_store *st = calloc(1, sizeof(*st));
  if (!st) return -ENOMEM;
  if ((cache_dir && cache_dir[0] && !(st->cache_dir = strdup(cache_dir))) ||
      l7_builder_new(NULL, &st->b) != 0) {
    free(st->cache_dir);
    free(st);
    return -ENOMEM;
  }
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->done, NULL);
  *out = st;
  return 0;
}

int l7_config_store_set_tls(struct l7_config_store *st, const struct tls_options *tls) {
  if (l7_builder_version(st->b) != 0) return -EINVAL; /* before the first state only */
  struct l7_builder *b;
  if (l7_builder_new(tls, &b) != 0) return -ENOMEM;
  l7_builder_free(st->b);
  st->b = b;
  return 0;
}

void l7_config_store_free(struct l7_config_store *st) {
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->stop = 1; /* the writer writes what is pending, then exits */
  pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
  if (st->started > 0) pthread_join(st->thread, NULL);
  if (st->started) pthread_cond_destroy(&st->cv);
  pthread_cond_destroy(&st->done);
  pthread_mutex_destroy(&st->mu);
  l7_builder_free(st->b);
  free(st->cache_dir);
  free(st);
}

uint64_t l7_config_store_version(const struct l7_config_store *st) {
  return l7_builder_version(st->b);
}

size_t l7_config_store_size(const struct l7_config_store *st) {
  return l7_snapshot_n_resources(l7_builder_snapshot(st->b));
}

const Edge__V1__Resource *l7_config_store_get(const struct l7_config_store *st, int type,
                                              const char *name) {
  return l7_builder_get(st->b, type, name);
}

static int serialize(const struct l7_snapshot *s, uint8_t **buf, size_t *len) {
  Edge__V1__Snapshot msg = EDGE__V1__SNAPSHOT__INIT;
  *buf = NULL;
  msg.version = s ? l7_snapshot_version(s) : 0;
  msg.resources = l7_snapshot_resources(s, &msg.n_resources);
  if (!msg.resources && msg.n_resources) return -ENOMEM;
  *len = edge__v1__snapshot__get_packed_size(&msg);
  *buf = malloc(*len ? *len : 1);
  if (*buf) edge__v1__snapshot__pack(&msg, *buf);
  free(msg.resources);
  return *buf ? 0 : -ENOMEM;
}

int l7_config_store_serialize(const struct l7_config_store *st, uint8_t **buf, size_t *len) {
  return serialize(l7_builder_snapshot(st->b), buf, len);
}

/* ---- the cache writer ------------------------------------------------- */

static void cache_write(struct l7_config_store *st, const struct l7_snapshot *snap) {
  uint8_t *buf;
  size_t len;
  int rc = serialize(snap, &buf, &len);
  if (rc == 0) {
    char dst[PATH_MAX];
    snprintf(dst, sizeof(dst), "%s/state.pb", st->cache_dir);
    rc = fileio_write_atomic_buf(dst, buf, len, 0600, NULL, 0);
    free(buf);
  }
  if (rc < 0)
    LOG_WARN("config_cache_write_failed", "dir=%s version=%llu error=%s", log_q(st->cache_dir),
             (unsigned long long)l7_snapshot_version(snap), log_q(strerror(-rc)));
}

/* Writes the newest pending snapshot, then waits L7_CACHE_MIN_INTERVAL_MS
 * (unless flushed or stopped) so a burst of pushes costs one write. */
static void *cache_main(void *arg) {
  struct l7_config_store *st = arg;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (!st->pending && !st->stop) pthread_cond_wait(&st->cv, &st->mu);
    if (!st->pending) break;
    struct l7_snapshot *snap = st->pending;
    st->pending = NULL;
    st->busy = 1;
    pthread_mutex_unlock(&st->mu);
    cache_write(st, snap);
    l7_snapshot_unref(snap);
    pthread_mutex_lock(&st->mu);
    st->busy = 0;
    st->writes++;
    pthread_cond_broadcast(&st->done);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += L7_CACHE_MIN_INTERVAL_MS / 1000;
    until.tv_nsec += (long)(L7_CACHE_MIN_INTERVAL_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (!st->stop && !st->flushing &&
           pthread_cond_timedwait(&st->cv, &st->mu, &until) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

/* Hands snap (a new reference) to the writer, replacing an unwritten one. */
static void cache_submit(struct l7_config_store *st, struct l7_snapshot *snap) {
  pthread_mutex_lock(&st->mu);
  if (!st->started) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    st->started = pthread_create(&st->thread, NULL, cache_main, st) == 0 ? 1 : -1;
  }
  if (st->started < 0) { /* no thread: write here */
    st->writes++;
    pthread_mutex_unlock(&st->mu);
    cache_write(st, snap);
    l7_snapshot_unref(snap);
    return;
  }
  l7_snapshot_unref(st->pending);
  st->pending = snap;
  pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

uint64_t l7_config_store_cache_writes(struct l7_config_store *st) {
  pthread_mutex_lock(&st->mu);
  uint64_t n = st->writes;
  pthread_mutex_unlock(&st->mu);
  return n;
}

void l7_config_store_flush(struct l7_config_store *st) {
  pthread_mutex_lock(&st->mu);
  st->flushing++;
  pthread_cond_signal(&st->cv);
  while (st->started > 0 && (st->pending || st->busy)) pthread_cond_wait(&st->done, &st->mu);
  st->flushing--;
  pthread_mutex_unlock(&st->mu);
}

/* ---- files ------------------------------------------------------------ */

int l7_config_read_file(const char *path, Edge__V1__Snapshot **out, char *err, size_t errlen) {
  *out = NULL;
  char *text;
  size_t len;
  int rc = fileio_read(path, L7_CONFIG_MAX_FILE, &text, &len, err, errlen);
  if (rc < 0) return rc;
  uint8_t *buf = (uint8_t *)text;
  size_t i = 0;
  while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
  if (i < len && buf[i] == '{') {
    ProtobufCMessage *m = NULL;
    char why[384] = "";
    rc = pb_json_decode(&edge__v1__snapshot__descriptor, (const char *)buf, len, &m, why,
                        sizeof(why));
    free(buf);
    if (rc < 0) {
      cs_err(err, errlen, "%s: %s", path, why);
      return rc;
    }
    *out = (Edge__V1__Snapshot *)m;
    return 0;
  }
  *out = edge__v1__snapshot__unpack(NULL, len, buf);
  free(buf);
  if (!*out) {
    cs_err(err, errlen, "%s: neither JSON nor a binary edge.v1.Snapshot", path);
    return -EINVAL;
  }
  return 0;
}

static int cs_load(struct l7_config_store *st, const char *path, int verify_keys,
                   struct l7_snapshot **snap, char *err, size_t errlen) {
  *snap = NULL;
  Edge__V1__Snapshot *msg;
  int rc = l7_config_read_file(path, &msg, err, errlen);
  if (rc < 0) return rc;
  char why[512] = "";
  l7_builder_set_verify_keys(st->b, verify_keys); /* a file: nothing checked its keys yet */
  rc = cs_commit(st, msg->version, 1, msg->resources, msg->n_resources, NULL, 0, 0, 1, snap, why,
                 sizeof(why)); /* the resources are taken from msg, not copied */
  l7_builder_set_verify_keys(st->b, 0);
  if (rc < 0) cs_err(err, errlen, "%s: %s", path, why);
  edge__v1__snapshot__free_unpacked(msg, NULL);
  return rc;
}

int l7_config_store_load_cache(struct l7_config_store *st, struct l7_snapshot **snap, char *err,
                               size_t errlen) {
  *snap = NULL;
  if (!st->cache_dir) return -ENOENT;
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/state.pb", st->cache_dir);
  if (access(path, F_OK) < 0 && errno == ENOENT) return -ENOENT;
  return cs_load(st, path, 0, snap, err, errlen);
}

int l7_config_store_load_file(struct l7_config_store *st, const char *path,
                              struct l7_snapshot **snap, char *err, size_t errlen) {
  return cs_load(st, path, 1, snap, err, errlen);
}
