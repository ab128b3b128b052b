/*
 * store — versioned resources named by their content, deltas by version,
 * and the records they are persisted as (see store.h).
 *
 * Three views of one set of entries:
 *   - `idx`, pointers sorted by (type, name): lookups, iteration, merges;
 *   - a doubly-linked list ordered by seq (newest at the tail): a delta
 *     since seq S walks back from the tail until it meets S, so it costs
 *     what changed, not what is held;
 *   - digest buckets, each a list of live entries ordered by digest: a
 *     change marks its buckets dirty and only those are rehashed.
 * An apply first allocates everything it needs (copies, new entries, room
 * in idx), then commits without any failure point, so an error leaves the
 * store as it was.
 *
 * Pushes and snapshots are written directly in protobuf wire format around
 * the stored packed resources, so a full push of 10,000 certificates costs
 * copies, not an unpack and repack of each. Records (store_encode_*) use
 * the same wire format with their own field numbers (below).
 */
#include "syncd/store.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "edge/v1/resources.pb-c.h"

/* Tombstones kept beyond this many (and beyond half the live count) are
 * dropped oldest first; older nodes then get a full push. */
#define STORE_MIN_TOMBSTONES 1024

struct history_entry {
  uint64_t version, seq, generation;
  int64_t time;
};

struct store {
  struct store_entry **idx; /* sorted by (type, name) */
  size_t n, cap;
  size_t n_live;
  struct store_entry *head, *tail; /* seq order */
  struct store_entry *bucket[STORE_DIGEST_BUCKETS];
  uint8_t bucket_digest[STORE_DIGEST_BUCKETS][32];
  uint8_t dirty[STORE_DIGEST_BUCKETS];
  uint8_t group_digest[STORE_DIGEST_GROUPS][32];
  uint8_t group_live[STORE_DIGEST_GROUPS]; /* the group has a non-empty bucket */
  uint8_t group_dirty[STORE_DIGEST_GROUPS];
  uint64_t version, seq, generation, horizon;
  int64_t version_time;
  struct history_entry hist[STORE_HISTORY]; /* ring, hist_n newest at hist_head - 1 */
  size_t hist_head, hist_n;
  EVP_MD_CTX *md;
  uint8_t *report_bytes;
  size_t report_len;
  Edge__V1__StatusResponse *report;
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
      return "corrupt state";
    case STORE_NO_STATE:
      return "no state";
    default:
      return "unknown error";
  }
}

int store_new(struct store **out) {
  struct store *s = calloc(1, sizeof(*s));
  if (!s) return STORE_ERR_NOMEM;
  s->md = EVP_MD_CTX_new();
  if (!s->md) {
    free(s);
    return STORE_ERR_NOMEM;
  }
  *out = s;
  return 0;
}

static void entry_free(struct store_entry *e) {
  if (!e) return;
  free(e->name);
  free(e->bytes);
  free(e);
}

static void store_clear(struct store *s) {
  for (size_t i = 0; i < s->n; i++) entry_free(s->idx[i]);
  free(s->idx);
  free(s->report_bytes);
  if (s->report) edge__v1__status_response__free_unpacked(s->report, NULL);
  EVP_MD_CTX *md = s->md;
  memset(s, 0, sizeof(*s));
  s->md = md;
}

void store_free(struct store *s) {
  if (!s) return;
  store_clear(s);
  EVP_MD_CTX_free(s->md);
  free(s);
}

uint64_t store_version(const struct store *s) {
  return s->version;
}
uint64_t store_seq(const struct store *s) {
  return s->seq;
}
int64_t store_version_time(const struct store *s) {
  return s->version_time;
}
uint64_t store_generation(const struct store *s) {
  return s->generation;
}
uint64_t store_horizon(const struct store *s) {
  return s->horizon;
}
size_t store_count(const struct store *s) {
  return s->n_live;
}

struct store_entry *const *store_entries(const struct store *s, size_t *n) {
  *n = s->n;
  return s->idx;
}

static int key_cmp(int ta, const char *na, int tb, const char *nb) {
  if (ta != tb) return ta < tb ? -1 : 1;
  return strcmp(na, nb);
}

/* Index of (type, name) in idx, or where it would go (*found = 0). */
static size_t idx_find(const struct store *s, int type, const char *name, int *found) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = key_cmp(s->idx[mid]->type, s->idx[mid]->name, type, name);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

const struct store_entry *store_find(const struct store *s, int type, const char *name) {
  int found;
  size_t i = idx_find(s, type, name, &found);
  return found && !s->idx[i]->removed ? s->idx[i] : NULL;
}

void store_changed_since(const struct store *s, uint64_t seq,
                         void (*fn)(void *ud, const struct store_entry *e), void *ud) {
  for (const struct store_entry *e = s->tail; e && e->seq > seq; e = e->prev) fn(ud, e);
}

/* ---- the version digest ------------------------------------------------------ */

static int sha256_parts(EVP_MD_CTX *md, const void *const *parts, const size_t *lens, int n,
                        uint8_t out[32]) {
  unsigned dl = 0;
  if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) return -1;
  for (int i = 0; i < n; i++)
    if (lens[i] && EVP_DigestUpdate(md, parts[i], lens[i]) != 1) return -1;
  return EVP_DigestFinal_ex(md, out, &dl) == 1 && dl == 32 ? 0 : -1;
}

/* SHA-256 over (u8 type, u32 name length, name, bytes). */
static int entry_digest(EVP_MD_CTX *md, int type, const char *name, const uint8_t *bytes,
                        size_t len, uint8_t out[32]) {
  size_t nl = strlen(name);
  uint8_t head[5] = {(uint8_t)type, (uint8_t)nl, (uint8_t)(nl >> 8), (uint8_t)(nl >> 16),
                     (uint8_t)(nl >> 24)};
  const void *parts[3] = {head, name, bytes};
  size_t lens[3] = {sizeof(head), nl, len};
  return sha256_parts(md, parts, lens, 3, out);
}

static size_t bucket_of(const uint8_t d[32]) {
  return ((size_t)d[0] << 8 | d[1]) % STORE_DIGEST_BUCKETS;
}

static void bucket_add(struct store *s, struct store_entry *e) {
  size_t b = bucket_of(e->digest);
  struct store_entry **p = &s->bucket[b];
  while (*p && memcmp((*p)->digest, e->digest, 32) < 0) p = &(*p)->bnext;
  e->bnext = *p;
  *p = e;
  s->dirty[b] = 1;
}

static void bucket_remove(struct store *s, struct store_entry *e) {
  size_t b = bucket_of(e->digest);
  for (struct store_entry **p = &s->bucket[b]; *p; p = &(*p)->bnext)
    if (*p == e) {
      *p = e->bnext;
      e->bnext = NULL;
      s->dirty[b] = 1;
      return;
    }
}

/* Rehashes the dirty buckets, their groups and the root; the version is
 * the root's first STORE_VERSION_BITS bits, never 0. 0 when no entry is live.
 * A bucket hashes its entries' digests in digest order; a group its
 * non-empty buckets (index, digest); the root its non-empty groups. */
static uint64_t compute_version(struct store *s) {
  EVP_MD_CTX *md = s->md;
  unsigned dl;
  for (size_t b = 0; b < STORE_DIGEST_BUCKETS; b++) {
    if (!s->dirty[b]) continue;
    s->dirty[b] = 0;
    s->group_dirty[b / STORE_DIGEST_GROUP_SIZE] = 1;
    if (!s->bucket[b]) continue;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (const struct store_entry *e = s->bucket[b]; e; e = e->bnext)
      EVP_DigestUpdate(md, e->digest, 32);
    EVP_DigestFinal_ex(md, s->bucket_digest[b], &dl);
  }
  for (size_t g = 0; g < STORE_DIGEST_GROUPS; g++) {
    if (!s->group_dirty[g]) continue;
    s->group_dirty[g] = 0;
    s->group_live[g] = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t b = g * STORE_DIGEST_GROUP_SIZE; b < (g + 1) * STORE_DIGEST_GROUP_SIZE; b++) {
      if (!s->bucket[b]) continue;
      uint8_t bi[2] = {(uint8_t)(b >> 8), (uint8_t)b};
      EVP_DigestUpdate(md, bi, 2);
      EVP_DigestUpdate(md, s->bucket_digest[b], 32);
      s->group_live[g] = 1;
    }
    EVP_DigestFinal_ex(md, s->group_digest[g], &dl);
  }
  if (s->n_live == 0) return 0;
  uint8_t root[32];
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  for (size_t g = 0; g < STORE_DIGEST_GROUPS; g++) {
    if (!s->group_live[g]) continue;
    uint8_t gi = (uint8_t)g;
    EVP_DigestUpdate(md, &gi, 1);
    EVP_DigestUpdate(md, s->group_digest[g], 32);
  }
  EVP_DigestFinal_ex(md, root, &dl);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | root[i];
  v >>= 64 - STORE_VERSION_BITS; /* exact as a double: JSON tools, metrics gauges */
  return v ? v : 1;
}

/* ---- the seq list and history -------------------------------------------------- */

static void list_unlink(struct store *s, struct store_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else if (s->head == e)
    s->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else if (s->tail == e)
    s->tail = e->prev;
  e->prev = e->next = NULL;
}

static void list_append(struct store *s, struct store_entry *e) {
  e->prev = s->tail;
  e->next = NULL;
  if (s->tail)
    s->tail->next = e;
  else
    s->head = e;
  s->tail = e;
}

static void history_push(struct store *s) {
  s->hist[s->hist_head] =
      (struct history_entry){s->version, s->seq, s->generation, s->version_time};
  s->hist_head = (s->hist_head + 1) % STORE_HISTORY;
  if (s->hist_n < STORE_HISTORY) s->hist_n++;
}

/* The newest history entry for version, or NULL. */
static const struct history_entry *history_find(const struct store *s, uint64_t version) {
  for (size_t k = 0; k < s->hist_n; k++) {
    const struct history_entry *h =
        &s->hist[(s->hist_head + STORE_HISTORY - 1 - k) % STORE_HISTORY];
    if (h->version == version) return h;
  }
  return NULL;
}

int store_knows(const struct store *s, uint64_t version) {
  if (version == 0 || s->version == 0) return 0;
  if (version == s->version) return 1;
  const struct history_entry *h = history_find(s, version);
  return h && h->seq >= s->horizon;
}

/* Drops the oldest tombstones when they outnumber the limit; the horizon
 * becomes the seq of the newest one dropped. */
static void compact_tombstones(struct store *s) {
  size_t dead = s->n - s->n_live;
  size_t limit = s->n_live / 2 > STORE_MIN_TOMBSTONES ? s->n_live / 2 : STORE_MIN_TOMBSTONES;
  if (dead <= limit) return;
  size_t drop = dead - limit / 2;
  for (struct store_entry *e = s->head, *next; e && drop > 0; e = next) {
    next = e->next;
    if (!e->removed) continue;
    if (e->seq > s->horizon) s->horizon = e->seq;
    list_unlink(s, e);
    e->len = (size_t)-1; /* marks it for the sweep below */
    drop--;
  }
  size_t w = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->idx[i]->removed && s->idx[i]->len == (size_t)-1) {
      entry_free(s->idx[i]);
      continue;
    }
    s->idx[w++] = s->idx[i];
  }
  s->n = w;
}

/* ---- applying changes ------------------------------------------------------------ */

/* What one upsert or removal will do, prepared before anything changes. */
struct change {
  struct store_entry *e; /* existing entry, or a new one (fresh) */
  int fresh;             /* e is new and must be inserted into idx */
  uint8_t *bytes;        /* new bytes (NULL for a removal) */
  size_t len;
  uint8_t digest[32];
};

static int sorted_unique(const void *arr, size_t n, size_t elem) {
  for (size_t i = 1; i < n; i++) {
    const struct syncd_resource_key *a = (const void *)((const char *)arr + (i - 1) * elem);
    const struct syncd_resource_key *b = (const void *)((const char *)arr + i * elem);
    if (!a->name || !b->name || key_cmp(a->type, a->name, b->type, b->name) >= 0) return 0;
  }
  return n == 0 || ((const struct syncd_resource_key *)arr)->name != NULL;
}

static int new_entry(int type, const char *name, struct store_entry **out) {
  struct store_entry *e = calloc(1, sizeof(*e));
  if (!e || !(e->name = strdup(name))) {
    free(e);
    return STORE_ERR_NOMEM;
  }
  e->type = type;
  e->removed = 1; /* not live until committed */
  *out = e;
  return 0;
}

static void changes_abort(struct change *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(c[i].bytes);
    if (c[i].fresh) entry_free(c[i].e);
  }
  free(c);
}

/* Commits prepared changes under seq next (no failure point from here). */
static void changes_commit(struct store *s, struct change *c, size_t n, uint64_t next) {
  /* new entries into idx: merge, since both are sorted */
  size_t fresh = 0;
  for (size_t i = 0; i < n; i++) fresh += c[i].fresh;
  if (fresh) {
    struct store_entry **add = malloc(fresh * sizeof(*add)); /* reserved below never fails: */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (c[i].fresh) add[k++] = c[i].e;
    /* sort the fresh entries (upserts and removals were sorted separately) */
    for (size_t i = 1; i < k; i++)
      for (size_t j = i;
           j > 0 && key_cmp(add[j - 1]->type, add[j - 1]->name, add[j]->type, add[j]->name) > 0;
           j--) {
        struct store_entry *t = add[j];
        add[j] = add[j - 1];
        add[j - 1] = t;
      }
    size_t i = s->n, j = k, w = s->n + k;
    while (j > 0) {
      if (i > 0 &&
          key_cmp(s->idx[i - 1]->type, s->idx[i - 1]->name, add[j - 1]->type, add[j - 1]->name) > 0)
        s->idx[--w] = s->idx[--i];
      else
        s->idx[--w] = add[--j];
    }
    s->n += k;
    free(add);
  }
  for (size_t i = 0; i < n; i++) {
    struct store_entry *e = c[i].e;
    if (!e->removed) {
      bucket_remove(s, e);
      s->n_live--;
    }
    free(e->bytes);
    e->bytes = c[i].bytes;
    e->len = c[i].bytes ? c[i].len : 0;
    e->removed = c[i].bytes == NULL;
    e->seq = next;
    if (!e->removed) {
      memcpy(e->digest, c[i].digest, 32);
      bucket_add(s, e);
      s->n_live++;
    }
    list_unlink(s, e);
    list_append(s, e);
  }
  free(c);
}

/* Prepares and commits; shared by store_apply_delta and store_replay. The
 * seq and version to use come from the caller (replay) or are derived. */
static int apply_changes(struct store *s, const struct syncd_resource *up, size_t nup,
                         const struct syncd_resource_key *rm, size_t nrm, uint64_t next,
                         int *changed) {
  *changed = 0;
  struct change *c = calloc(nup + nrm + 1, sizeof(*c));
  if (!c) return STORE_ERR_NOMEM;
  size_t nc = 0, fresh = 0;
  for (size_t i = 0; i < nup; i++) {
    int found;
    size_t at = idx_find(s, up[i].type, up[i].name, &found);
    struct store_entry *e = found ? s->idx[at] : NULL;
    if (e && !e->removed && e->len == up[i].len &&
        (up[i].len == 0 || memcmp(e->bytes, up[i].bytes, up[i].len) == 0))
      continue; /* unchanged */
    struct change *ch = &c[nc];
    if (!e) {
      if (new_entry(up[i].type, up[i].name, &ch->e) != 0) goto nomem;
      ch->fresh = 1;
      fresh++;
    } else {
      ch->e = e;
    }
    nc++;
    ch->len = up[i].len;
    ch->bytes = malloc(up[i].len ? up[i].len : 1);
    if (!ch->bytes) goto nomem;
    if (up[i].len) memcpy(ch->bytes, up[i].bytes, up[i].len);
    if (entry_digest(s->md, up[i].type, up[i].name, ch->bytes, ch->len, ch->digest) != 0)
      goto nomem;
  }
  for (size_t i = 0; i < nrm; i++) {
    const struct store_entry *e = store_find(s, rm[i].type, rm[i].name);
    if (!e) continue;
    c[nc++].e = (struct store_entry *)e;
  }
  if (nc == 0) {
    free(c);
    return 0;
  }
  if (s->n + fresh > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + fresh) cap *= 2;
    struct store_entry **idx = realloc(s->idx, cap * sizeof(*idx));
    if (!idx) goto nomem;
    s->idx = idx;
    s->cap = cap;
  }
  changes_commit(s, c, nc, next);
  *changed = 1;
  return 0;
nomem:
  changes_abort(c, nc);
  return STORE_ERR_NOMEM;
}

static void finish_version(struct store *s, uint64_t next, uint64_t generation) {
  s->seq = next;
  s->version = compute_version(s);
  s->generation = generation;
  s->version_time = (int64_t)time(NULL);
  history_push(s);
  compact_tombstones(s);
}

int store_apply_delta(struct store *s, const struct syncd_resource *up, size_t nup,
                      const struct syncd_resource_key *rm, size_t nrm, uint64_t generation) {
  if (!sorted_unique(up, nup, sizeof(*up)) || !sorted_unique(rm, nrm, sizeof(*rm)))
    return STORE_ERR_INVALID;
  for (size_t i = 0; i < nup; i++)
    if (up[i].len && !up[i].bytes) return STORE_ERR_INVALID;
  for (size_t i = 0, j = 0; i < nup && j < nrm;) { /* no key both upserted and removed */
    int c = key_cmp(up[i].type, up[i].name, rm[j].type, rm[j].name);
    if (c == 0) return STORE_ERR_INVALID;
    if (c < 0)
      i++;
    else
      j++;
  }
  int changed;
  int rc = apply_changes(s, up, nup, rm, nrm, s->seq + 1, &changed);
  if (rc < 0 || !changed) return rc;
  finish_version(s, s->seq + 1, generation);
  return 1;
}

int store_apply(struct store *s, const struct syncd_resource *res, size_t n, uint64_t generation) {
  if (!sorted_unique(res, n, sizeof(*res))) return STORE_ERR_INVALID;
  struct syncd_resource_key *rm = calloc(s->n_live + 1, sizeof(*rm));
  if (!rm) return STORE_ERR_NOMEM;
  size_t nrm = 0, j = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct store_entry *e = s->idx[i];
    if (e->removed) continue;
    while (j < n && key_cmp(res[j].type, res[j].name, e->type, e->name) < 0) j++;
    if (j < n && key_cmp(res[j].type, res[j].name, e->type, e->name) == 0) continue;
    rm[nrm++] = (struct syncd_resource_key){e->type, e->name};
  }
  int rc = store_apply_delta(s, res, n, rm, nrm, generation);
  free(rm);
  return rc;
}

/* ---- deltas ------------------------------------------------------------------------ */

int store_delta(const struct store *s, uint64_t since, int force_full, struct store_delta *out) {
  memset(out, 0, sizeof(*out));
  out->version = s->version;
  out->full = force_full || !store_knows(s, since);
  out->base_version = out->full ? 0 : since;
  size_t cap = 16;
  uint64_t since_seq = 0;
  if (out->full) {
    cap = s->n_live + 1;
  } else if (since != s->version) {
    since_seq = history_find(s, since)->seq;
    cap = 0;
    for (const struct store_entry *e = s->tail; e && e->seq > since_seq; e = e->prev) cap++;
    cap++;
  } else {
    cap = 1;
  }
  out->upserted = calloc(cap, sizeof(*out->upserted));
  out->removed = calloc(cap, sizeof(*out->removed));
  if (!out->upserted || !out->removed) {
    store_delta_clear(out);
    return STORE_ERR_NOMEM;
  }
  if (out->full) {
    for (size_t i = 0; i < s->n; i++)
      if (!s->idx[i]->removed) out->upserted[out->n_upserted++] = s->idx[i];
    return 0;
  }
  if (since == s->version) return 0;
  /* walk back, then reverse each list into (type, name) order? Order does
   * not matter to the proxy; keep seq order, oldest change first. */
  for (const struct store_entry *e = s->tail; e && e->seq > since_seq; e = e->prev) {
    if (e->removed)
      out->removed[out->n_removed++] = e;
    else
      out->upserted[out->n_upserted++] = e;
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

/* A varint field (one-byte tag) of value v; nothing when v is 0. */
static size_t vf_len(uint64_t v) {
  return v ? 1 + varint_len(v) : 0;
}

static uint8_t *put_vf(uint8_t *p, uint8_t tag, uint64_t v) {
  if (!v) return p;
  *p++ = tag;
  return put_varint(p, v);
}

/* Push field tags: 1 version, 2 nonce, 3 full, 4 upserted, 5 removed,
 * 6 base_version. ResourceName: 1 type, 2 name. */
static size_t resource_name_len(const struct store_entry *e) {
  size_t nl = strlen(e->name);
  return vf_len((uint64_t)e->type) + (nl ? ld_len(nl) : 0);
}

int store_pack_push(const struct store_delta *d, const char *nonce, uint8_t **out, size_t *len) {
  size_t nonce_len = strlen(nonce);
  size_t body = vf_len(d->version) + (nonce_len ? ld_len(nonce_len) : 0) + (d->full ? 2 : 0) +
                vf_len(d->base_version);
  for (size_t i = 0; i < d->n_upserted; i++) body += ld_len(d->upserted[i]->len);
  for (size_t i = 0; i < d->n_removed; i++) body += ld_len(resource_name_len(d->removed[i]));
  size_t total = ld_len(body);
  uint8_t *buf = malloc(total), *p = buf;
  if (!buf) return STORE_ERR_NOMEM;
  *p++ = 0x0a; /* SyncMessage.push */
  p = put_varint(p, body);
  p = put_vf(p, 0x08, d->version);
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
    p = put_vf(p, 0x08, (uint64_t)e->type);
    if (nl) p = put_ld(p, 0x12, e->name, nl);
  }
  p = put_vf(p, 0x30, d->base_version);
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

int store_pack_snapshot(const struct store *s, uint8_t **out, size_t *len) {
  size_t total = vf_len(s->version);
  for (size_t i = 0; i < s->n; i++)
    if (!s->idx[i]->removed) total += ld_len(s->idx[i]->len);
  uint8_t *buf = malloc(total ? total : 1), *p = buf;
  if (!buf) return STORE_ERR_NOMEM;
  p = put_vf(p, 0x08, s->version);
  for (size_t i = 0; i < s->n; i++)
    if (!s->idx[i]->removed) p = put_ld(p, 0x12, s->idx[i]->bytes, s->idx[i]->len);
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

/* ---- the report ------------------------------------------------------------------- */

int store_set_report(struct store *s, const uint8_t *packed, size_t len) {
  if (len == s->report_len && (len == 0 || memcmp(packed, s->report_bytes, len) == 0) &&
      (s->report || len == 0))
    return 0;
  Edge__V1__StatusResponse *r = edge__v1__status_response__unpack(NULL, len, packed);
  if (!r) return STORE_ERR_INVALID;
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) {
    edge__v1__status_response__free_unpacked(r, NULL);
    return STORE_ERR_NOMEM;
  }
  if (len) memcpy(copy, packed, len);
  free(s->report_bytes);
  if (s->report) edge__v1__status_response__free_unpacked(s->report, NULL);
  s->report_bytes = copy;
  s->report_len = len;
  s->report = r;
  return 1;
}

const Edge__V1__StatusResponse *store_report(const struct store *s) {
  return s->report;
}

const uint8_t *store_report_bytes(const struct store *s, size_t *len) {
  *len = s->report_len;
  return s->report_bytes;
}

/* ---- records ------------------------------------------------------------------------ */

/*
 * STATE: 1 seq, 2 version, 3 version_time, 4 generation, 5 horizon,
 *        6 entry (repeated), 7 history (repeated, oldest first), 8 report bytes.
 * DELTA: 1 seq, 2 version, 3 version_time, 4 generation, 6 entry (repeated).
 * Entry: 1 type, 2 name, 3 seq, 4 bytes (live), 5 removed = 1 (tombstone).
 * History: 1 version, 2 seq, 3 time, 4 generation.
 */
static size_t entry_body_len(const struct store_entry *e) {
  size_t nl = strlen(e->name);
  return vf_len((uint64_t)e->type) + ld_len(nl) + vf_len(e->seq) +
         (e->removed ? 2 : ld_len(e->len));
}

static uint8_t *put_entry(uint8_t *p, const struct store_entry *e) {
  *p++ = 0x32;
  p = put_varint(p, entry_body_len(e));
  p = put_vf(p, 0x08, (uint64_t)e->type);
  p = put_ld(p, 0x12, e->name, strlen(e->name));
  p = put_vf(p, 0x18, e->seq);
  if (e->removed) {
    *p++ = 0x28;
    *p++ = 1;
  } else {
    p = put_ld(p, 0x22, e->bytes, e->len);
  }
  return p;
}

static size_t header_len(const struct store *s) {
  return vf_len(s->seq) + vf_len(s->version) + vf_len((uint64_t)s->version_time) +
         vf_len(s->generation);
}

static uint8_t *put_header(uint8_t *p, const struct store *s) {
  p = put_vf(p, 0x08, s->seq);
  p = put_vf(p, 0x10, s->version);
  p = put_vf(p, 0x18, (uint64_t)s->version_time);
  return put_vf(p, 0x20, s->generation);
}

static size_t history_body_len(const struct history_entry *h) {
  return vf_len(h->version) + vf_len(h->seq) + vf_len((uint64_t)h->time) + vf_len(h->generation);
}

int store_encode_state(const struct store *s, uint8_t **out, size_t *len) {
  size_t total = header_len(s) + vf_len(s->horizon) + (s->report_len ? ld_len(s->report_len) : 0);
  for (size_t i = 0; i < s->n; i++) total += ld_len(entry_body_len(s->idx[i]));
  for (size_t k = 0; k < s->hist_n; k++)
    total += ld_len(
        history_body_len(&s->hist[(s->hist_head + STORE_HISTORY - s->hist_n + k) % STORE_HISTORY]));
  uint8_t *buf = malloc(total ? total : 1), *p = buf;
  if (!buf) return STORE_ERR_NOMEM;
  p = put_header(p, s);
  p = put_vf(p, 0x28, s->horizon);
  for (size_t i = 0; i < s->n; i++) p = put_entry(p, s->idx[i]);
  for (size_t k = 0; k < s->hist_n; k++) {
    const struct history_entry *h =
        &s->hist[(s->hist_head + STORE_HISTORY - s->hist_n + k) % STORE_HISTORY];
    *p++ = 0x3a;
    p = put_varint(p, history_body_len(h));
    p = put_vf(p, 0x08, h->version);
    p = put_vf(p, 0x10, h->seq);
    p = put_vf(p, 0x18, (uint64_t)h->time);
    p = put_vf(p, 0x20, h->generation);
  }
  if (s->report_len) p = put_ld(p, 0x42, s->report_bytes, s->report_len);
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

struct encode_acc {
  const struct store_entry **v;
  size_t n;
  size_t bytes;
};

static void count_changed(void *ud, const struct store_entry *e) {
  struct encode_acc *a = ud;
  if (a->v) a->v[a->n] = e;
  a->n++;
  a->bytes += ld_len(entry_body_len(e));
}

int store_encode_delta(const struct store *s, uint64_t since_seq, uint8_t **out, size_t *len) {
  struct encode_acc a = {0};
  store_changed_since(s, since_seq, count_changed, &a);
  a.v = malloc((a.n + 1) * sizeof(*a.v));
  uint8_t *buf = malloc(header_len(s) + a.bytes + 1), *p = buf;
  if (!a.v || !buf) {
    free(a.v);
    free(buf);
    return STORE_ERR_NOMEM;
  }
  a.n = a.bytes = 0;
  store_changed_since(s, since_seq, count_changed, &a);
  p = put_header(p, s);
  for (size_t i = a.n; i > 0; i--) p = put_entry(p, a.v[i - 1]); /* oldest first */
  free(a.v);
  *out = buf;
  *len = (size_t)(p - buf);
  return 0;
}

/* ---- record reading ----------------------------------------------------------------- */

struct rd {
  const uint8_t *p, *end;
};

static int rd_varint(struct rd *r, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* Next field: tag number and, for length-delimited fields, the body. */
static int rd_field(struct rd *r, uint32_t *field, uint64_t *v, struct rd *body) {
  uint64_t key;
  if (rd_varint(r, &key) != 0) return -1;
  *field = (uint32_t)(key >> 3);
  switch (key & 7) {
    case 0:
      return rd_varint(r, v);
    case 2:
      if (rd_varint(r, v) != 0 || *v > (uint64_t)(r->end - r->p)) return -1;
      body->p = r->p;
      body->end = r->p + *v;
      r->p += *v;
      return 0;
    default:
      return -1;
  }
}

/* A record's entry, its strings pointing into the record. */
struct rec_entry {
  int type;
  const char *name;
  size_t name_len;
  uint64_t seq;
  const uint8_t *bytes;
  size_t len;
  int removed, has_bytes;
};

static int rd_entry(struct rd *b, struct rec_entry *e) {
  memset(e, 0, sizeof(*e));
  while (b->p < b->end) {
    uint32_t f;
    uint64_t v;
    struct rd body;
    if (rd_field(b, &f, &v, &body) != 0) return -1;
    if (f == 1)
      e->type = (int)v;
    else if (f == 2)
      e->name = (const char *)body.p, e->name_len = (size_t)v;
    else if (f == 3)
      e->seq = v;
    else if (f == 4)
      e->bytes = body.p, e->len = (size_t)v, e->has_bytes = 1;
    else if (f == 5)
      e->removed = v != 0;
  }
  if (!e->name || e->name_len == 0 || memchr(e->name, 0, e->name_len) ||
      e->removed == e->has_bytes || e->type <= 0)
    return -1;
  return 0;
}

struct rec {
  uint64_t seq, version, time, generation, horizon;
  struct rec_entry *entries;
  size_t n_entries;
  struct history_entry *hist;
  size_t n_hist;
  const uint8_t *report;
  size_t report_len;
};

static int rd_record(const uint8_t *p, size_t len, struct rec *out) {
  memset(out, 0, sizeof(*out));
  struct rd r = {p, p + len};
  size_t cap_e = 0, cap_h = 0;
  while (r.p < r.end) {
    uint32_t f;
    uint64_t v;
    struct rd body;
    if (rd_field(&r, &f, &v, &body) != 0) return -1;
    switch (f) {
      case 1:
        out->seq = v;
        break;
      case 2:
        out->version = v;
        break;
      case 3:
        out->time = v;
        break;
      case 4:
        out->generation = v;
        break;
      case 5:
        out->horizon = v;
        break;
      case 6:
        if (out->n_entries == cap_e) {
          cap_e = cap_e ? cap_e * 2 : 64;
          struct rec_entry *ne = realloc(out->entries, cap_e * sizeof(*ne));
          if (!ne) return -2;
          out->entries = ne;
        }
        if (rd_entry(&body, &out->entries[out->n_entries++]) != 0) return -1;
        break;
      case 7: {
        if (out->n_hist == cap_h) {
          cap_h = cap_h ? cap_h * 2 : 64;
          struct history_entry *nh = realloc(out->hist, cap_h * sizeof(*nh));
          if (!nh) return -2;
          out->hist = nh;
        }
        struct history_entry *h = &out->hist[out->n_hist++];
        memset(h, 0, sizeof(*h));
        while (body.p < body.end) {
          uint32_t hf;
          uint64_t hv;
          struct rd hb;
          if (rd_field(&body, &hf, &hv, &hb) != 0) return -1;
          if (hf == 1) h->version = hv;
          if (hf == 2) h->seq = hv;
          if (hf == 3) h->time = (int64_t)hv;
          if (hf == 4) h->generation = hv;
        }
        break;
      }
      case 8:
        out->report = body.p;
        out->report_len = (size_t)v;
        break;
      default:
        break; /* a field from a newer syncd: ignored */
    }
  }
  return 0;
}

static int entry_key_cmp(const void *a, const void *b) {
  const struct store_entry *x = *(const struct store_entry *const *)a;
  const struct store_entry *y = *(const struct store_entry *const *)b;
  return key_cmp(x->type, x->name, y->type, y->name);
}

static int seq_cmp(const void *a, const void *b) {
  const struct store_entry *x = *(const struct store_entry *const *)a;
  const struct store_entry *y = *(const struct store_entry *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Replaces the store with a STATE record. */
static int replay_state(struct store *s, const struct rec *r, char *err, size_t errlen) {
  struct store_entry **idx = calloc(r->n_entries + 1, sizeof(*idx));
  struct store_entry **by_seq = calloc(r->n_entries + 1, sizeof(*by_seq));
  size_t n = 0;
  int rc = STORE_ERR_NOMEM;
  if (!idx || !by_seq) goto fail;
  for (size_t i = 0; i < r->n_entries; i++) {
    const struct rec_entry *re = &r->entries[i];
    struct store_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strndup(re->name, re->name_len))) {
      free(e);
      goto fail;
    }
    idx[n++] = e;
    e->type = re->type;
    e->seq = re->seq;
    e->removed = re->removed;
    if (!re->removed) {
      e->len = re->len;
      e->bytes = malloc(re->len ? re->len : 1);
      if (!e->bytes) goto fail;
      if (re->len) memcpy(e->bytes, re->bytes, re->len);
    }
    if (e->seq > r->seq || e->seq == 0) {
      snprintf(err, errlen, "entry %s has change number %llu beyond the state's %llu", e->name,
               (unsigned long long)e->seq, (unsigned long long)r->seq);
      rc = STORE_ERR_CORRUPT;
      goto fail;
    }
  }
  if (n) qsort(idx, n, sizeof(*idx), entry_key_cmp);
  for (size_t i = 1; i < n; i++)
    if (entry_key_cmp(&idx[i - 1], &idx[i]) == 0) {
      snprintf(err, errlen, "resource %s is in the state twice", idx[i]->name);
      rc = STORE_ERR_CORRUPT;
      goto fail;
    }
  store_clear(s);
  s->idx = idx;
  s->n = s->cap = n;
  memcpy(by_seq, idx, n * sizeof(*idx));
  if (n) qsort(by_seq, n, sizeof(*by_seq), seq_cmp);
  for (size_t i = 0; i < n; i++) {
    struct store_entry *e = by_seq[i];
    list_append(s, e);
    if (e->removed) continue;
    entry_digest(s->md, e->type, e->name, e->bytes, e->len, e->digest);
    bucket_add(s, e);
    s->n_live++;
  }
  free(by_seq);
  for (size_t b = 0; b < STORE_DIGEST_BUCKETS; b++) s->dirty[b] = 1;
  s->seq = r->seq;
  s->horizon = r->horizon;
  s->version = compute_version(s);
  s->generation = r->generation;
  s->version_time = (int64_t)r->time;
  size_t first = r->n_hist > STORE_HISTORY ? r->n_hist - STORE_HISTORY : 0;
  for (size_t k = first; k < r->n_hist; k++) {
    s->hist[s->hist_head] = r->hist[k];
    s->hist_head = (s->hist_head + 1) % STORE_HISTORY;
    s->hist_n++;
  }
  if (!history_find(s, s->version) && s->version) history_push(s);
  if (r->report_len && store_set_report(s, r->report, r->report_len) < 0) {
    snprintf(err, errlen, "the report does not parse");
    return STORE_ERR_CORRUPT;
  }
  if (s->version != r->version) {
    snprintf(err, errlen, "state names version %llu but its resources are version %llu",
             (unsigned long long)r->version, (unsigned long long)s->version);
    return STORE_ERR_CORRUPT;
  }
  return 0;
fail:
  for (size_t i = 0; i < n; i++) entry_free(idx[i]);
  free(idx);
  free(by_seq);
  if (rc == STORE_ERR_NOMEM) snprintf(err, errlen, "out of memory");
  return rc;
}

static int rec_key_cmp(const void *a, const void *b) {
  const struct syncd_resource *x = a, *y = b;
  return key_cmp(x->type, x->name, y->type, y->name);
}

/* Applies a DELTA record on top of the store. */
static int replay_delta(struct store *s, const struct rec *r, char *err, size_t errlen) {
  if (r->seq <= s->seq) {
    snprintf(err, errlen, "delta %llu does not follow change %llu", (unsigned long long)r->seq,
             (unsigned long long)s->seq);
    return STORE_ERR_CORRUPT;
  }
  struct syncd_resource *up = calloc(r->n_entries + 1, sizeof(*up));
  struct syncd_resource *rm = calloc(r->n_entries + 1, sizeof(*rm));
  size_t nup = 0, nrm = 0;
  int rc = STORE_ERR_NOMEM;
  if (!up || !rm) goto out;
  for (size_t i = 0; i < r->n_entries; i++) {
    const struct rec_entry *re = &r->entries[i];
    struct syncd_resource *d = re->removed ? &rm[nrm++] : &up[nup++];
    d->type = re->type;
    d->name = strndup(re->name, re->name_len);
    d->bytes = (uint8_t *)re->bytes;
    d->len = re->len;
    if (!d->name) goto out;
  }
  if (nup) qsort(up, nup, sizeof(*up), rec_key_cmp);
  if (nrm) qsort(rm, nrm, sizeof(*rm), rec_key_cmp);
  int changed;
  struct syncd_resource_key *keys = calloc(nrm + 1, sizeof(*keys));
  if (!keys) goto out;
  for (size_t i = 0; i < nrm; i++) keys[i] = (struct syncd_resource_key){rm[i].type, rm[i].name};
  if (!sorted_unique(up, nup, sizeof(*up)) || !sorted_unique(keys, nrm, sizeof(*keys))) {
    free(keys);
    snprintf(err, errlen, "delta %llu names a resource twice", (unsigned long long)r->seq);
    rc = STORE_ERR_CORRUPT;
    goto out;
  }
  rc = apply_changes(s, up, nup, keys, nrm, r->seq, &changed);
  free(keys);
  if (rc < 0) goto out;
  finish_version(s, r->seq, r->generation);
  s->version_time = (int64_t)r->time;
  s->hist[(s->hist_head + STORE_HISTORY - 1) % STORE_HISTORY].time = s->version_time;
  if (s->version != r->version) {
    snprintf(err, errlen, "delta %llu names version %llu but gives version %llu",
             (unsigned long long)r->seq, (unsigned long long)r->version,
             (unsigned long long)s->version);
    rc = STORE_ERR_CORRUPT;
    goto out;
  }
  rc = 0;
out:
  for (size_t i = 0; up && i < nup; i++) free(up[i].name);
  for (size_t i = 0; rm && i < nrm; i++) free(rm[i].name);
  free(up);
  free(rm);
  if (rc == STORE_ERR_NOMEM) snprintf(err, errlen, "out of memory");
  return rc;
}

int store_replay(struct store *s, int state, const uint8_t *p, size_t len, char *err,
                 size_t errlen) {
  struct rec r;
  int prc = rd_record(p, len, &r);
  int rc;
  if (prc != 0) {
    snprintf(err, errlen, prc == -2 ? "out of memory" : "record does not parse");
    rc = prc == -2 ? STORE_ERR_NOMEM : STORE_ERR_CORRUPT;
  } else if (r.seq == 0 || (r.version == 0 && r.n_entries)) {
    snprintf(err, errlen, "record has no change number or version");
    rc = STORE_ERR_CORRUPT;
  } else {
    rc = state ? replay_state(s, &r, err, errlen) : replay_delta(s, &r, err, errlen);
  }
  free(r.entries);
  free(r.hist);
  return rc;
}

/* ---- the state file before the journal ----------------------------------------------- */

#define LEGACY_FILE "state.pb"
#define LEGACY_MAGIC "EDGESYN1"
#define LEGACY_HEADER_LEN 20

static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Type and name of a packed resource; -1 when it does not parse. */
static int resource_key(const uint8_t *b, size_t len, int *type, char **name) {
  Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, len, b);
  if (!r) return -1;
  const char *n = NULL;
  *type = (int)r->kind_case; /* Resource oneof cases and ResourceType share numbers */
  switch (r->kind_case) {
    case EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST:
      n = r->virtual_host->name;
      break;
    case EDGE__V1__RESOURCE__KIND_CLUSTER:
      n = r->cluster->name;
      break;
    case EDGE__V1__RESOURCE__KIND_CERTIFICATE:
      n = r->certificate->name;
      break;
    case EDGE__V1__RESOURCE__KIND_DEFAULT_BACKEND:
      n = r->default_backend->name;
      break;
    case EDGE__V1__RESOURCE__KIND_PASSTHROUGH_HOST:
      *type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_PASSTHROUGH_HOST;
      n = r->passthrough_host->name;
      break;
    default:
      break;
  }
  *name = n && *n ? strdup(n) : NULL;
  edge__v1__resource__free_unpacked(r, NULL);
  return *name ? 0 : -1;
}

static int res_cmp(const void *a, const void *b) {
  return rec_key_cmp(a, b);
}

int store_load_legacy(struct store *s, const char *dir, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, LEGACY_FILE);
  char *text;
  size_t len;
  int rc = fileio_read(path, FILEIO_NO_LIMIT, &text, &len, err, errlen);
  if (rc == -ENOENT) return STORE_NO_STATE;
  if (rc != 0) return rc == -ENOMEM ? STORE_ERR_NOMEM : STORE_ERR_IO;
  const uint8_t *buf = (const uint8_t *)text;
  struct syncd_resource *res = NULL;
  size_t n = 0, cap = 0;
  rc = STORE_ERR_CORRUPT;
  if (len < LEGACY_HEADER_LEN || memcmp(buf, LEGACY_MAGIC, 8) != 0 ||
      get_le(buf + 12, 8) != len - LEGACY_HEADER_LEN || len - LEGACY_HEADER_LEN < 12 ||
      crc32_ieee(0, buf + LEGACY_HEADER_LEN, len - LEGACY_HEADER_LEN) != get_le(buf + 8, 4)) {
    snprintf(err, errlen, "%s: not a whole syncd state file", path);
    goto out;
  }
  const uint8_t *pl = buf + LEGACY_HEADER_LEN;
  uint64_t meta_len = get_le(pl + 8, 4);
  if (meta_len > len - LEGACY_HEADER_LEN - 12) {
    snprintf(err, errlen, "%s: bad meta length", path);
    goto out;
  }
  struct rd r = {pl + 12 + meta_len, buf + len};
  while (r.p < r.end) {
    uint32_t f;
    uint64_t v;
    struct rd body;
    if (rd_field(&r, &f, &v, &body) != 0) break;
    if (f != 2) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      struct syncd_resource *nr = realloc(res, cap * sizeof(*nr));
      if (!nr) {
        rc = STORE_ERR_NOMEM;
        goto out;
      }
      res = nr;
    }
    struct syncd_resource *d = &res[n];
    if (resource_key(body.p, (size_t)v, &d->type, &d->name) != 0) {
      snprintf(err, errlen, "%s: a resource does not parse", path);
      goto out;
    }
    d->bytes = (uint8_t *)body.p;
    d->len = (size_t)v;
    n++;
  }
  if (n) qsort(res, n, sizeof(*res), res_cmp);
  store_clear(s);
  rc = store_apply(s, res, n, 0);
  if (rc == STORE_ERR_INVALID) snprintf(err, errlen, "%s: a resource is in it twice", path);
  if (rc >= 0) {
    rc = 0;
    if (meta_len) store_set_report(s, pl + 12, (size_t)meta_len);
  }
out:
  for (size_t i = 0; i < n; i++) free(res[i].name);
  free(res);
  free(text);
  return rc;
}
