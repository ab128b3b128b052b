/*
 * store — versioned resources, deltas by version, and the state file.
 *
 * The entries live in one array sorted by (type, name). store_apply merges
 * that array with the (equally sorted) desired state in one linear pass,
 * building the next array aside; only when the pass succeeds does it swap
 * arrays, so a failed apply leaves the store as it was. Packed resources
 * are compared byte for byte: the translator is deterministic, so equal
 * bytes mean an unchanged resource.
 *
 * Pushes and snapshots are written directly in protobuf wire format around
 * the stored packed resources, so a full push of 10,000 certificates costs
 * copies, not an unpack and repack of each.
 *
 * State file layout (little endian):
 *   "EDGESYN1" | u32 crc32(payload) | u64 payload length | payload
 *   payload = u64 version_time | u32 meta length | meta | Snapshot bytes
 */
#include "syncd/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "edge/v1/resources.pb-c.h"

#define STORE_FILE "state.pb"
#define STORE_MAGIC "EDGESYN1"
#define STORE_HEADER_LEN 20
/* Tombstones kept beyond this many (and beyond half the live count) are
 * dropped oldest first; older nodes then get a full push. */
#define STORE_MIN_TOMBSTONES 1024

struct store {
  struct store_entry *e;
  size_t n;
  size_t n_live;
  uint64_t version;
  uint64_t horizon; /* deltas are exact for since >= horizon */
  uint64_t first;   /* version of the first state (0: 1) */
  int64_t version_time;
  uint8_t *meta;
  size_t meta_len;
};

const char *store_strerror(int err) {
  switch (err) {
    case 0:
      return "ok";
    case STORE_ERR_INVALID:
      return "invalid argument";
    case STORE_ERR_NOMEM:
      return "out of memory";
    case STORE_ERR_IO:
      return "i/o error";
    case STORE_ERR_CORRUPT:
      return "corrupt state file";
    case STORE_NO_STATE:
      return "no state file";
    default:
      return "unknown error";
  }
}

int store_new(struct store **out) {
  struct store *s = calloc(1, sizeof(*s));
  if (!s) return STORE_ERR_NOMEM;
  *out = s;
  return 0;
}

static void entries_free(struct store_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(e[i].name);
    free(e[i].bytes);
  }
  free(e);
}

void store_free(struct store *s) {
  if (!s) return;
  entries_free(s->e, s->n);
  free(s->meta);
  free(s);
}

void store_set_first_version(struct store *s, uint64_t first) {
  if (s->version == 0) s->first = first;
}

uint64_t store_version(const struct store *s) {
  return s->version;
}
int64_t store_version_time(const struct store *s) {
  return s->version_time;
}
size_t store_count(const struct store *s) {
  return s->n_live;
}

const struct store_entry *store_entries(const struct store *s, size_t *n) {
  *n = s->n;
  return s->e;
}

static int key_cmp(int ta, const char *na, int tb, const char *nb) {
  if (ta != tb) return ta < tb ? -1 : 1;
  return strcmp(na, nb);
}

const struct store_entry *store_find(const struct store *s, int type, const char *name) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = key_cmp(s->e[mid].type, s->e[mid].name, type, name);
    if (c == 0) return s->e[mid].removed ? NULL : &s->e[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static uint8_t *dup_bytes(const uint8_t *b, size_t len) {
  uint8_t *p = malloc(len ? len : 1);
  if (p && len) memcpy(p, b, len);
  return p;
}

static int same_bytes(const struct store_entry *e, const struct syncd_resource *r) {
  return !e->removed && e->len == r->len &&
         (r->len == 0 || memcmp(e->bytes, r->bytes, r->len) == 0);
}

/* Drops the oldest tombstones when they outnumber the limit, moving the
 * horizon past the newest one dropped. */
static void compact_tombstones(struct store *s) {
  size_t dead = s->n - s->n_live;
  size_t limit = s->n_live / 2 > STORE_MIN_TOMBSTONES ? s->n_live / 2 : STORE_MIN_TOMBSTONES;
  if (dead <= limit) return;
  /* Find the version cut: drop tombstones with version <= cut until under
   * half the limit, so compaction is rare. Versions are few; scan. */
  uint64_t cut = s->horizon;
  size_t remaining = dead;
  while (remaining > limit / 2 && cut < s->version) {
    cut++;
    remaining = 0;
    for (size_t i = 0; i < s->n; i++)
      if (s->e[i].removed && s->e[i].version > cut) remaining++;
  }
  size_t w = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->e[i].removed && s->e[i].version <= cut) {
      free(s->e[i].name);
      free(s->e[i].bytes);
      continue;
    }
    s->e[w++] = s->e[i];
  }
  s->n = w;
  s->horizon = cut;
}

int store_apply(struct store *s, const struct syncd_resource *res, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!res[i].name || (res[i].len && !res[i].bytes)) return STORE_ERR_INVALID;
    if (i > 0 && key_cmp(res[i - 1].type, res[i - 1].name, res[i].type, res[i].name) >= 0)
      return STORE_ERR_INVALID;
  }
  uint64_t next = s->version ? s->version + 1 : (s->first ? s->first : 1);
  struct store_entry *ne = calloc(s->n + n + 1, sizeof(*ne));
  /* fresh[k]: ne[k] holds newly allocated bytes/name (freed on rollback). */
  unsigned char *fresh = calloc(s->n + n + 1, 1);
  if (!ne || !fresh) goto nomem;
  size_t i = 0, j = 0, k = 0, changed = 0, live = 0;
  while (i < s->n || j < n) {
    int c;
    if (i >= s->n)
      c = 1;
    else if (j >= n)
      c = -1;
    else
      c = key_cmp(s->e[i].type, s->e[i].name, res[j].type, res[j].name);
    if (c < 0) { /* held but not desired: removed now, or an old tombstone */
      ne[k] = s->e[i];
      if (!ne[k].removed) {
        ne[k].removed = 1;
        ne[k].version = next;
        ne[k].bytes = NULL;
        ne[k].len = 0;
        changed++;
      }
      i++;
    } else if (c == 0 && same_bytes(&s->e[i], &res[j])) {
      ne[k] = s->e[i];
      live++;
      i++, j++;
    } else { /* new, changed, or revived */
      ne[k].type = res[j].type;
      ne[k].name = c == 0 ? s->e[i].name : strdup(res[j].name);
      ne[k].bytes = dup_bytes(res[j].bytes, res[j].len);
      ne[k].len = res[j].len;
      ne[k].version = next;
      fresh[k] = c == 0 ? 1 : 3; /* 1: bytes fresh; 3: bytes and name fresh */
      if (!ne[k].name || !ne[k].bytes) {
        k++;
        goto rollback;
      }
      changed++;
      live++;
      if (c == 0) i++;
      j++;
    }
    k++;
  }
  if (changed == 0) {
    free(ne);
    free(fresh);
    return 0;
  }
  /* Commit: free the old bytes that were replaced or removed. The names
   * moved into ne (by struct copy or reuse) stay. */
  for (size_t a = 0, b = 0; a < s->n; a++) {
    while (b < k && key_cmp(ne[b].type, ne[b].name, s->e[a].type, s->e[a].name) < 0) b++;
    if (b < k && ne[b].bytes != s->e[a].bytes) free(s->e[a].bytes);
  }
  free(s->e);
  free(fresh);
  s->e = ne;
  s->n = k;
  s->n_live = live;
  s->version = next;
  s->version_time = (int64_t)time(NULL);
  compact_tombstones(s);
  return 1;

rollback:
  for (size_t a = 0; a < k; a++) {
    if (fresh[a] & 1) free(ne[a].bytes);
    if (fresh[a] & 2) free(ne[a].name);
  }
nomem:
  free(ne);
  free(fresh);
  return STORE_ERR_NOMEM;
}

int store_set_meta(struct store *s, const uint8_t *meta, size_t len) {
  uint8_t *m = dup_bytes(meta, len);
  if (!m) return STORE_ERR_NOMEM;
  free(s->meta);
  s->meta = m;
  s->meta_len = len;
  return 0;
}

const uint8_t *store_meta(const struct store *s, size_t *len) {
  *len = s->meta_len;
  return s->meta;
}

int store_delta(const struct store *s, uint64_t since, int force_full, struct store_delta *out) {
  memset(out, 0, sizeof(*out));
  out->version = s->version;
  out->full = force_full || since == 0 || since < s->horizon || since > s->version;
  out->base_version = out->full ? 0 : since;
  out->upserted = calloc(s->n + 1, sizeof(*out->upserted));
  out->removed = calloc(s->n + 1, sizeof(*out->removed));
  if (!out->upserted || !out->removed) {
    store_delta_clear(out);
    return STORE_ERR_NOMEM;
  }
  for (size_t i = 0; i < s->n; i++) {
    const struct store_entry *e = &s->e[i];
    if (out->full) {
      if (!e->removed) out->upserted[out->n_upserted++] = e;
    } else if (e->version > since) {
      if (e->removed)
        out->removed[out->n_removed++] = e;
      else
        out->upserted[out->n_upserted++] = e;
    }
  }
  return 0;
}

void store_delta_clear(struct store_delta *d) {
  free(d->upserted);
  free(d->removed);
  d->upserted = NULL;
  d->removed = NULL;
  d->n_upserted = d->n_removed = 0;
}

/* ---- protobuf wire writing ------------------------------------------- */

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Size of a length-delimited field (one-byte tag) with a body of len. */
static size_t ld_len(size_t len) {
  return 1 + varint_len(len) + len;
}

static uint8_t *put_ld(uint8_t *p, uint8_t tag, const void *body, size_t len) {
  *p++ = tag;
  p = put_varint(p, len);
  if (len) memcpy(p, body, len);
  return p + len;
}

/* Push field tags: 1 version, 2 nonce, 3 full, 4 upserted, 5 removed,
 * 6 base_version. ResourceName: 1 type, 2 name. */
static size_t resource_name_len(const struct store_entry *e) {
  size_t nl = strlen(e->name);
  return (e->type ? 1 + varint_len((uint64_t)e->type) : 0) + (nl ? ld_len(nl) : 0);
}

int store_pack_push(const struct store_delta *d, const char *nonce, uint8_t **out, size_t *len) {
  size_t nonce_len = strlen(nonce);
  size_t body = 0;
  if (d->version) body += 1 + varint_len(d->version);
  if (nonce_len) body += ld_len(nonce_len);
  if (d->full) body += 2;
  for (size_t i = 0; i < d->n_upserted; i++) body += ld_len(d->upserted[i]->len);
  for (size_t i = 0; i < d->n_removed; i++) body += ld_len(resource_name_len(d->removed[i]));
  if (d->base_version) body += 1 + varint_len(d->base_version);
  size_t total = ld_len(body);
  uint8_t *buf = malloc(total), *p = buf;
  if (!buf) return STORE_ERR_NOMEM;
  *p++ = 0x0a; /* SyncMessage.push */
  p = put_varint(p, body);
  if (d->version) {
    *p++ = 0x08;
    p = put_varint(p, d->version);
  }
  if (nonce_len) p = put_ld(p, 0x12, nonce, nonce_len);
  if (d->full) {
    *p++ = 0x18;
    *p++ = 1;
  }
  for (size_t i = 0; i < d->n_upserted; i++)
    p = put_ld(p, 0x22, d->upserted[i]->bytes, d->upserted[i]->len);
  for (size_t i = 0; i < d->n_removed; i++) {
    const struct store_entry *e = d->removed[i];
    size_t nl = strlen(e->name);
    *p++ = 0x2a;
    p = put_varint(p, resource_name_len(e));
    if (e->type) {
      *p++ = 0x08;
      p = put_varint(p, (uint64_t)e->type);
    }
    if (nl) p = put_ld(p, 0x12, e->name, nl);
  }
  if (d->base_version) {
    *p++ = 0x30;
    p = put_varint(p, d->base_version);
  }
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

int store_pack_snapshot(const struct store *s, uint8_t **out, size_t *len) {
  size_t total = s->version ? 1 + varint_len(s->version) : 0;
  for (size_t i = 0; i < s->n; i++)
    if (!s->e[i].removed) total += ld_len(s->e[i].len);
  uint8_t *buf = malloc(total ? total : 1), *p = buf;
  if (!buf) return STORE_ERR_NOMEM;
  if (s->version) {
    *p++ = 0x08;
    p = put_varint(p, s->version);
  }
  for (size_t i = 0; i < s->n; i++)
    if (!s->e[i].removed) p = put_ld(p, 0x12, s->e[i].bytes, s->e[i].len);
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

/* ---- state file ------------------------------------------------------ */

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  static uint32_t table[256];
  static int ready;
  if (!ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int b = 0; b < 8; b++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

int store_save(const struct store *s, const char *dir, char *err, size_t errlen) {
  uint8_t *snap;
  size_t snap_len;
  if (store_pack_snapshot(s, &snap, &snap_len) != 0) {
    snprintf(err, errlen, "out of memory");
    return STORE_ERR_NOMEM;
  }
  /* The file is header + (version time, meta length, meta) + snapshot; the snapshot
   * (megabytes at 10,000 hosts) is written and checksummed in place, never copied. */
  size_t head_pl = 8 + 4 + s->meta_len, payload = head_pl + snap_len;
  uint8_t *buf = malloc(STORE_HEADER_LEN + head_pl);
  if (!buf) {
    free(snap);
    snprintf(err, errlen, "out of memory");
    return STORE_ERR_NOMEM;
  }
  uint8_t *pl = buf + STORE_HEADER_LEN;
  put_le(pl, (uint64_t)s->version_time, 8);
  put_le(pl + 8, s->meta_len, 4);
  if (s->meta_len) memcpy(pl + 12, s->meta, s->meta_len);
  memcpy(buf, STORE_MAGIC, 8);
  put_le(buf + 8, crc32_update(crc32_update(0, pl, head_pl), snap, snap_len), 4);
  put_le(buf + 12, payload, 8);

  char dst[4096];
  snprintf(dst, sizeof(dst), "%s/%s", dir, STORE_FILE);
  struct iovec iov[2] = {{buf, STORE_HEADER_LEN + head_pl}, {snap, snap_len}};
  int rc = fileio_write_atomic(dst, iov, 2, 0600, err, errlen) == 0 ? 0 : STORE_ERR_IO;
  free(buf);
  free(snap);
  return rc;
}

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

static int entry_cmp(const void *a, const void *b) {
  const struct store_entry *x = a, *y = b;
  return key_cmp(x->type, x->name, y->type, y->name);
}

/* Type and name of a packed resource; -1 when it does not parse. */
static int resource_key(const uint8_t *b, size_t len, int *type, char **name) {
  Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, len, b);
  if (!r) return -1;
  const char *n = NULL;
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST;
      n = r->virtual_host->name;
      break;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CLUSTER;
      n = r->cluster->name;
      break;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_CERTIFICATE;
      n = r->certificate->name;
      break;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_DEFAULT_BACKEND;
      n = r->default_backend->name;
      break;
    default:
      break;
  }
  *name = n ? strdup(n) : NULL;
  edge__v1__resource__free_unpacked(r, NULL);
  return *name ? 0 : -1;
}

static void store_reset(struct store *s) {
  entries_free(s->e, s->n);
  free(s->meta);
  memset(s, 0, sizeof(*s));
}

/* Parses the Snapshot bytes into a sorted entry array. */
static int load_snapshot(struct store *s, const uint8_t *p, size_t len, char *err, size_t errlen) {
  const uint8_t *end = p + len;
  uint64_t version = 0;
  size_t cap = 64, n = 0;
  struct store_entry *e = calloc(cap, sizeof(*e));
  if (!e) goto nomem;
  while (p < end) {
    uint64_t tag, v;
    if (read_varint(&p, end, &tag) != 0) goto corrupt;
    if (tag == 0x08) {
      if (read_varint(&p, end, &version) != 0) goto corrupt;
    } else if (tag == 0x12) {
      if (read_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p)) goto corrupt;
      if (n == cap) {
        struct store_entry *ne = realloc(e, 2 * cap * sizeof(*e));
        if (!ne) goto nomem;
        e = ne;
        cap *= 2;
      }
      memset(&e[n], 0, sizeof(e[n]));
      if (resource_key(p, v, &e[n].type, &e[n].name) != 0) goto corrupt;
      e[n].bytes = dup_bytes(p, v);
      e[n].len = v;
      n++;
      if (!e[n - 1].bytes) goto nomem;
      p += v;
    } else {
      goto corrupt;
    }
  }
  qsort(e, n, sizeof(*e), entry_cmp);
  for (size_t i = 1; i < n; i++)
    if (entry_cmp(&e[i - 1], &e[i]) == 0) {
      snprintf(err, errlen, "duplicate resource %s in state file", e[i].name);
      entries_free(e, n);
      return STORE_ERR_CORRUPT;
    }
  if (version == 0 && n > 0) goto corrupt;
  for (size_t i = 0; i < n; i++) e[i].version = version;
  s->e = e;
  s->n = s->n_live = n;
  s->version = s->horizon = version;
  return 0;
corrupt:
  snprintf(err, errlen, "snapshot does not parse");
  entries_free(e, n);
  return STORE_ERR_CORRUPT;
nomem:
  snprintf(err, errlen, "out of memory");
  entries_free(e, n);
  return STORE_ERR_NOMEM;
}

int store_load(struct store *s, const char *dir, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, STORE_FILE);
  store_reset(s);
  char *text;
  size_t len;
  int rc = fileio_read(path, FILEIO_NO_LIMIT, &text, &len, err, errlen);
  if (rc == -ENOENT) return STORE_NO_STATE;
  if (rc != 0) return rc == -ENOMEM ? STORE_ERR_NOMEM : STORE_ERR_IO;
  uint8_t *buf = (uint8_t *)text;
  rc = STORE_ERR_CORRUPT;
  if (len < STORE_HEADER_LEN || memcmp(buf, STORE_MAGIC, 8) != 0) {
    snprintf(err, errlen, "%s: not a syncd state file", path);
    goto out;
  }
  uint64_t payload = get_le(buf + 12, 8);
  if (payload != len - STORE_HEADER_LEN || payload < 12) {
    snprintf(err, errlen, "%s: truncated (%zu bytes)", path, len);
    goto out;
  }
  const uint8_t *pl = buf + STORE_HEADER_LEN;
  if (crc32_update(0, pl, payload) != (uint32_t)get_le(buf + 8, 4)) {
    snprintf(err, errlen, "%s: checksum mismatch", path);
    goto out;
  }
  uint64_t meta_len = get_le(pl + 8, 4);
  if (meta_len > payload - 12) {
    snprintf(err, errlen, "%s: bad meta length", path);
    goto out;
  }
  char why[256] = "";
  rc = load_snapshot(s, pl + 12 + meta_len, payload - 12 - meta_len, why, sizeof(why));
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    goto out;
  }
  if (store_set_meta(s, pl + 12, meta_len) != 0) {
    store_reset(s);
    snprintf(err, errlen, "out of memory");
    rc = STORE_ERR_NOMEM;
    goto out;
  }
  s->version_time = (int64_t)get_le(pl, 8);
  rc = 0;
out:
  free(buf);
  return rc;
}
