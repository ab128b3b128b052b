/*
 * config_store — the resource map behind the l7proxy snapshot (see
 * config_store.h for the contract).
 *
 * The map is an array of entry pointers sorted by (type, name). An entry
 * owns one deep copy of a resource and is reference counted (plain counter:
 * the store has one owner thread), so the next map after a delta shares
 * every untouched entry with the current one and a failed apply only drops
 * the references it took. Lookups are binary searches; inserts memmove,
 * which is fine for deltas of a few resources even in maps of 10,000.
 */
#include "l7proxy/config_store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/pb_json.h"

struct cs_entry {
  unsigned refs;
  int type;         /* EDGE__V1__RESOURCE_TYPE__* */
  const char *name; /* inside msg */
  Edge__V1__Resource *msg;
};

struct cs_map {
  struct cs_entry **v;
  size_t n, cap;
};

struct l7_config_store {
  char *cache_dir;
  struct cs_map map;
  uint64_t version;
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

/* Resource kind and ResourceType share their numbers (1..4). */
static int cs_type_of(const Edge__V1__Resource *r, const char **name) {
  *name = NULL;
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      if (r->virtual_host) *name = r->virtual_host->name;
      return EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      if (r->cluster) *name = r->cluster->name;
      return EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      if (r->certificate) *name = r->certificate->name;
      return EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      if (r->default_backend) *name = r->default_backend->name;
      return EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND;
    default:
      return 0;
  }
}

static const char *cs_type_str(int type) {
  static const char *names[] = {"resource", "virtual host", "cluster", "certificate",
                                "default backend"};
  return (type >= 0 && type <= 4) ? names[type] : "resource";
}

static void cs_entry_unref(struct cs_entry *e) {
  if (e && --e->refs == 0) {
    edge__v1__resource__free_unpacked(e->msg, NULL);
    free(e);
  }
}

/* A new entry holding a deep copy of r (pack + unpack). */
static struct cs_entry *cs_entry_new(const Edge__V1__Resource *r) {
  size_t len = edge__v1__resource__get_packed_size(r);
  uint8_t *buf = malloc(len ? len : 1);
  struct cs_entry *e = calloc(1, sizeof(*e));
  if (!buf || !e) goto fail;
  edge__v1__resource__pack(r, buf);
  e->msg = edge__v1__resource__unpack(NULL, len, buf);
  if (!e->msg) goto fail;
  free(buf);
  e->refs = 1;
  e->type = cs_type_of(e->msg, &e->name);
  return e;
fail:
  free(buf);
  free(e);
  return NULL;
}

static int cs_cmp(int type, const char *name, const struct cs_entry *e) {
  if (type != e->type) return type < e->type ? -1 : 1;
  return strcmp(name, e->name);
}

/* Index of (type, name) or, with *found = 0, where it would be inserted. */
static size_t cs_find(const struct cs_map *m, int type, const char *name, int *found) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cs_cmp(type, name, m->v[mid]);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  *found = 0;
  return lo;
}

static int cs_reserve(struct cs_map *m, size_t need) {
  if (need <= m->cap) return 0;
  size_t cap = m->cap ? m->cap : 16;
  while (cap < need) cap *= 2;
  struct cs_entry **v = realloc(m->v, cap * sizeof(*v));
  if (!v) return -ENOMEM;
  m->v = v;
  m->cap = cap;
  return 0;
}

static void cs_map_clear(struct cs_map *m) {
  for (size_t i = 0; i < m->n; i++) cs_entry_unref(m->v[i]);
  free(m->v);
  memset(m, 0, sizeof(*m));
}

/* Inserts or replaces; takes ownership of e's reference. */
static int cs_map_put(struct cs_map *m, struct cs_entry *e) {
  int found;
  size_t i = cs_find(m, e->type, e->name, &found);
  if (found) {
    cs_entry_unref(m->v[i]);
    m->v[i] = e;
    return 0;
  }
  if (cs_reserve(m, m->n + 1) < 0) {
    cs_entry_unref(e);
    return -ENOMEM;
  }
  memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
  m->v[i] = e;
  m->n++;
  return 0;
}

static void cs_map_remove(struct cs_map *m, int type, const char *name) {
  int found;
  size_t i = cs_find(m, type, name, &found);
  if (!found) return;
  cs_entry_unref(m->v[i]);
  memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
  m->n--;
}

/* Validates and copies upserts into m. dup_is_error: a full state must not
 * name one resource twice; in a delta the last upsert wins. */
static int cs_map_upsert_all(struct cs_map *m, Edge__V1__Resource *const *res, size_t n,
                             int dup_is_error, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const char *name;
    int type = res[i] ? cs_type_of(res[i], &name) : 0;
    if (type == 0 || !name) {
      cs_err(err, errlen, "upserted resource %zu: no kind set", i);
      return -EINVAL;
    }
    if (!name[0]) {
      cs_err(err, errlen, "upserted %s %zu: empty name", cs_type_str(type), i);
      return -EINVAL;
    }
    int found;
    if (dup_is_error) {
      cs_find(m, type, name, &found);
      if (found) {
        cs_err(err, errlen, "%s %s: sent twice", cs_type_str(type), name);
        return -EINVAL;
      }
    }
    struct cs_entry *e = cs_entry_new(res[i]);
    if (!e) return -ENOMEM;
    /* Checked once here, so snapshot builds skip thousands of key checks. */
    if (e->type == EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE) {
      int crc = l7_snapshot_check_certificate(e->msg->certificate, err, errlen);
      if (crc < 0) {
        cs_entry_unref(e);
        return crc;
      }
    }
    int rc = cs_map_put(m, e);
    if (rc < 0) return rc;
  }
  return 0;
}

static int cs_build_snapshot(const struct cs_map *m, uint64_t version, struct l7_snapshot **snap,
                             char *err, size_t errlen) {
  Edge__V1__Resource **res = malloc((m->n ? m->n : 1) * sizeof(*res));
  if (!res) return -ENOMEM;
  for (size_t i = 0; i < m->n; i++) res[i] = m->v[i]->msg;
  int rc = l7_snapshot_build_ex(version, res, m->n, L7_SNAPSHOT_CERTS_CHECKED, snap, err, errlen);
  free(res);
  return rc;
}

static int cs_write_cache(struct l7_config_store *st);

/* Builds the snapshot from next; commits next (taking it over) or clears it. */
static int cs_commit(struct l7_config_store *st, struct cs_map *next, uint64_t version,
                     int write_cache, struct l7_snapshot **snap, char *err, size_t errlen) {
  int rc = cs_build_snapshot(next, version, snap, err, errlen);
  if (rc < 0) {
    cs_map_clear(next);
    return rc;
  }
  cs_map_clear(&st->map);
  st->map = *next;
  memset(next, 0, sizeof(*next));
  st->version = version;
  if (write_cache && st->cache_dir) {
    int wrc = cs_write_cache(st);
    if (wrc < 0)
      LOG_WARN("config_cache_write_failed", "dir=%s error=%s", log_q(st->cache_dir),
               log_q(strerror(-wrc)));
  }
  return 0;
}

int l7_config_store_apply(struct l7_config_store *st, const Edge__V1__Push *push,
                          struct l7_snapshot **snap, char *err, size_t errlen) {
  *snap = NULL;
  struct cs_map next = {0};
  int rc;
  if (!push->full && push->base_version != 0 && push->base_version != st->version) {
    cs_err(err, errlen, "delta based on version %" PRIu64 ", but version %" PRIu64 " is applied",
           push->base_version, st->version);
    return -EINVAL;
  }
  if (!push->full) {
    rc = cs_reserve(&next, st->map.n + push->n_upserted);
    if (rc < 0) return rc;
    for (size_t i = 0; i < st->map.n; i++) {
      st->map.v[i]->refs++;
      next.v[i] = st->map.v[i];
    }
    next.n = st->map.n;
    for (size_t i = 0; i < push->n_removed; i++) {
      const Edge__V1__ResourceName *rn = push->removed[i];
      if (!rn || rn->type <= 0 ||
          rn->type > EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND) {
        cs_err(err, errlen, "removed resource %zu: unknown type %d", i, rn ? (int)rn->type : -1);
        cs_map_clear(&next);
        return -EINVAL;
      }
      cs_map_remove(&next, rn->type, rn->name);
    }
  }
  rc = cs_map_upsert_all(&next, push->upserted, push->n_upserted, push->full, err, errlen);
  if (rc < 0) {
    if (rc == -ENOMEM) cs_err(err, errlen, "out of memory applying push");
    cs_map_clear(&next);
    return rc;
  }
  return cs_commit(st, &next, push->version, 1, snap, err, errlen);
}

int l7_config_store_apply_snapshot(struct l7_config_store *st, const Edge__V1__Snapshot *msg,
                                   int write_cache, struct l7_snapshot **snap, char *err,
                                   size_t errlen) {
  *snap = NULL;
  struct cs_map next = {0};
  int rc = cs_map_upsert_all(&next, msg->resources, msg->n_resources, 1, err, errlen);
  if (rc < 0) {
    if (rc == -ENOMEM) cs_err(err, errlen, "out of memory loading state");
    cs_map_clear(&next);
    return rc;
  }
  return cs_commit(st, &next, msg->version, write_cache, snap, err, errlen);
}

int l7_config_store_new(const char *cache_dir, struct l7_config_store **out) {
  struct l7_config_store *st = calloc(1, sizeof(*st));
  if (!st) return -ENOMEM;
  if (cache_dir && cache_dir[0]) {
    st->cache_dir = strdup(cache_dir);
    if (!st->cache_dir) {
      free(st);
      return -ENOMEM;
    }
  }
  *out = st;
  return 0;
}

void l7_config_store_free(struct l7_config_store *st) {
  if (!st) return;
  cs_map_clear(&st->map);
  free(st->cache_dir);
  free(st);
}

uint64_t l7_config_store_version(const struct l7_config_store *st) {
  return st->version;
}

size_t l7_config_store_size(const struct l7_config_store *st) {
  return st->map.n;
}

const Edge__V1__Resource *l7_config_store_get(const struct l7_config_store *st, int type,
                                              const char *name) {
  int found;
  size_t i = cs_find(&st->map, type, name, &found);
  return found ? st->map.v[i]->msg : NULL;
}

int l7_config_store_serialize(const struct l7_config_store *st, uint8_t **buf, size_t *len) {
  Edge__V1__Snapshot msg = EDGE__V1__SNAPSHOT__INIT;
  msg.version = st->version;
  msg.n_resources = st->map.n;
  msg.resources = malloc((st->map.n ? st->map.n : 1) * sizeof(*msg.resources));
  if (!msg.resources) return -ENOMEM;
  for (size_t i = 0; i < st->map.n; i++) msg.resources[i] = st->map.v[i]->msg;
  *len = edge__v1__snapshot__get_packed_size(&msg);
  *buf = malloc(*len ? *len : 1);
  if (*buf) edge__v1__snapshot__pack(&msg, *buf);
  free(msg.resources);
  return *buf ? 0 : -ENOMEM;
}

/* ---- files ------------------------------------------------------------ */

static int cs_write_cache(struct l7_config_store *st) {
  uint8_t *buf;
  size_t len;
  int rc = l7_config_store_serialize(st, &buf, &len);
  if (rc < 0) return rc;
  char dst[PATH_MAX];
  snprintf(dst, sizeof(dst), "%s/state.pb", st->cache_dir);
  rc = fileio_write_atomic_buf(dst, buf, len, 0600, NULL, 0);
  free(buf);
  return rc;
}

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

static int cs_load(struct l7_config_store *st, const char *path, int write_cache,
                   struct l7_snapshot **snap, char *err, size_t errlen) {
  *snap = NULL;
  Edge__V1__Snapshot *msg;
  int rc = l7_config_read_file(path, &msg, err, errlen);
  if (rc < 0) return rc;
  char why[512] = "";
  rc = l7_config_store_apply_snapshot(st, msg, write_cache, snap, why, sizeof(why));
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
  return cs_load(st, path, 0, snap, err, errlen);
}
