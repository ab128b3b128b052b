/*
 * replicas — the known-proxy registry (contract in replicas.h).
 *
 * A sorted array of struct replica pointers; lookups are binary searches,
 * inserts and removals move pointers. Every event recomputes the entry's
 * in_set from (why, address usable) and reports whether anything the
 * l4lbs receive changed: membership, or a field of a member (address,
 * check/https address, zone, weight, draining).
 */
#include "syncd/replicas.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "edge/v1/membership.pb-c.h"

struct replicas {
  struct replica **v;
  size_t n, cap;
  uint32_t timeout_ms;
};

int replicas_new(uint32_t removal_timeout_ms, struct replicas **out) {
  if (!out || removal_timeout_ms == 0) return REPLICAS_ERR_INVALID;
  struct replicas *r = calloc(1, sizeof(*r));
  if (!r) return REPLICAS_ERR_NOMEM;
  r->timeout_ms = removal_timeout_ms;
  *out = r;
  return 0;
}

static void replica_free(struct replica *p) {
  if (!p) return;
  free(p->node_id);
  free(p->address);
  free(p->admin_address);
  free(p->https_address);
  free(p->zone);
  free(p);
}

void replicas_free(struct replicas *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) replica_free(r->v[i]);
  free(r->v);
  free(r);
}

/* ---- validation ------------------------------------------------------------ */

/* A name the l4lbs and Status can carry: 1..REPLICAS_FIELD_MAX printable
 * ASCII characters, no spaces. */
static int valid_name(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > REPLICAS_FIELD_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
  return 1;
}

/* Numeric "IP:PORT" or "[IPv6]:PORT" with a port, what an l4lb can
 * connect to. */
static int valid_address(const char *s) {
  struct sockaddr_storage ss;
  socklen_t len;
  return valid_name(s) && addr_parse(s, &ss, &len) == 0 && addr_port(&ss) > 0;
}

/* An optional address: empty, or usable. */
static int valid_optional(const char *s) {
  return !s || !*s || valid_address(s);
}

/* ---- lookup ---------------------------------------------------------------- */

/* Index of node_id, or -(insertion point) - 1. */
static long locate(const struct replicas *r, const char *id) {
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(r->v[mid]->node_id, id);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -(long)lo - 1;
}

const struct replica *replicas_find(const struct replicas *r, const char *node_id) {
  if (!node_id) return NULL;
  long i = locate(r, node_id);
  return i >= 0 ? r->v[i] : NULL;
}

static struct replica *find_mut(struct replicas *r, const char *node_id) {
  return (struct replica *)replicas_find(r, node_id);
}

static char *dup0(const char *s) {
  return strdup(s ? s : "");
}

static struct replica *insert(struct replicas *r, const char *id) {
  long at = locate(r, id);
  if (at >= 0) return r->v[at];
  if (r->n >= REPLICAS_MAX) return NULL;
  size_t pos = (size_t)(-at - 1);
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    struct replica **nv = realloc(r->v, cap * sizeof(*nv));
    if (!nv) return NULL;
    r->v = nv;
    r->cap = cap;
  }
  struct replica *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->node_id = dup0(id);
  p->address = dup0("");
  p->admin_address = dup0("");
  p->https_address = dup0("");
  p->zone = dup0("");
  p->weight = 1;
  if (!p->node_id || !p->address || !p->admin_address || !p->https_address || !p->zone) {
    replica_free(p);
    return NULL;
  }
  memmove(&r->v[pos + 1], &r->v[pos], (r->n - pos) * sizeof(*r->v));
  r->v[pos] = p;
  r->n++;
  return p;
}

static void remove_at(struct replicas *r, size_t i) {
  replica_free(r->v[i]);
  memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(*r->v));
  r->n--;
}

/* ---- state ----------------------------------------------------------------- */

/* Whether the l4lbs' view of p differs from what it was (snapshot taken
 * before an event). */
struct view {
  int in_set, draining;
  uint32_t weight;
  char *address, *admin_address, *https_address, *zone;
};

static void view_take(struct view *v, const struct replica *p) {
  v->in_set = p->in_set;
  v->draining = p->draining;
  v->weight = p->weight;
  v->address = p->address;
  v->admin_address = p->admin_address;
  v->https_address = p->https_address;
  v->zone = p->zone;
}

static int view_changed(const struct view *v, const struct replica *p) {
  if (v->in_set != p->in_set) return 1;
  if (!p->in_set) return 0;
  return v->draining != p->draining || v->weight != p->weight ||
         strcmp(v->address, p->address) != 0 || strcmp(v->admin_address, p->admin_address) != 0 ||
         strcmp(v->https_address, p->https_address) != 0 || strcmp(v->zone, p->zone) != 0;
}

/* Replaces *dst with a copy of src when they differ; the old string is
 * kept in *old (caller frees) so view_changed can compare. */
static int set_field(char **dst, const char *src, char **old) {
  *old = NULL;
  src = src ? src : "";
  if (strcmp(*dst, src) == 0) return 0;
  char *c = strdup(src);
  if (!c) return -1;
  *old = *dst;
  *dst = c;
  return 0;
}

static int is_member_why(enum replica_why w) {
  return w == REPLICA_APPLIED || w == REPLICA_RESTORED || w == REPLICA_DRAINING;
}

/* Applies Hello fields. Text that is not a printable name is dropped (it
 * would reach Status and the l4lbs); a usable address is required to be
 * in the set (settle). */
static int apply_fields(struct replica *p, const struct replica_fields *f, char *old[4]) {
  const char *zone = f->zone && *f->zone && valid_name(f->zone) ? f->zone : "";
  if (set_field(&p->address, valid_name(f->address) ? f->address : "", &old[0]) != 0 ||
      set_field(&p->admin_address, valid_optional(f->admin_address) ? f->admin_address : "",
                &old[1]) != 0 ||
      set_field(&p->https_address, valid_optional(f->https_address) ? f->https_address : "",
                &old[2]) != 0 ||
      set_field(&p->zone, zone, &old[3]) != 0)
    return REPLICAS_ERR_NOMEM;
  p->weight = f->weight ? f->weight : 1;
  p->draining = f->draining ? 1 : 0;
  return 0;
}

/* Recomputes why/in_set after fields changed on a live stream. */
static void settle(struct replica *p) {
  int usable = valid_address(p->address);
  if (!usable) {
    if (p->why != REPLICA_PENDING) p->why = REPLICA_UNUSABLE;
  } else if (p->why == REPLICA_UNUSABLE) {
    p->why = p->joined_ms ? REPLICA_APPLIED : REPLICA_PENDING;
  }
  if (is_member_why(p->why)) p->why = p->draining ? REPLICA_DRAINING : REPLICA_APPLIED;
  p->in_set = is_member_why(p->why);
}

/* Runs one field update on p, reporting a change the l4lbs can see. */
static int update(struct replica *p, const struct replica_fields *f) {
  struct view v;
  view_take(&v, p);
  char *old[4] = {NULL, NULL, NULL, NULL};
  int rc = apply_fields(p, f, old);
  if (rc == 0) {
    /* view_take borrowed the strings apply_fields may have replaced. */
    if (old[0]) v.address = old[0];
    if (old[1]) v.admin_address = old[1];
    if (old[2]) v.https_address = old[2];
    if (old[3]) v.zone = old[3];
    settle(p);
    rc = view_changed(&v, p);
  }
  for (int i = 0; i < 4; i++) free(old[i]);
  return rc;
}

int replicas_connected(struct replicas *r, const struct replica_fields *f, int64_t now) {
  if (!r || !f || !valid_name(f->node_id)) return REPLICAS_ERR_INVALID;
  struct replica *p = find_mut(r, f->node_id);
  if (!p) {
    if (r->n >= REPLICAS_MAX) return REPLICAS_ERR_FULL;
    if (!(p = insert(r, f->node_id))) return REPLICAS_ERR_NOMEM;
  }
  p->connected = 1;
  p->last_seen_ms = now;
  p->changed_ms = now;
  p->absent_since_ms = 0;
  /* Left or expired: out until it applies a state again. */
  if (p->why == REPLICA_LEFT || p->why == REPLICA_EXPIRED) p->why = REPLICA_PENDING;
  return update(p, f);
}

int replicas_applied(struct replicas *r, const char *node_id, int64_t now) {
  struct replica *p = r ? find_mut(r, node_id) : NULL;
  if (!p) return REPLICAS_ERR_INVALID;
  p->last_seen_ms = now;
  if (p->in_set || !p->connected) return 0;
  if (!valid_address(p->address)) {
    p->why = REPLICA_UNUSABLE;
    return 0;
  }
  p->why = p->draining ? REPLICA_DRAINING : REPLICA_APPLIED;
  p->in_set = 1;
  p->joined_ms = now;
  p->changed_ms = now;
  return 1;
}

int replicas_updated(struct replicas *r, const struct replica_fields *f, int64_t now) {
  struct replica *p = r && f ? find_mut(r, f->node_id) : NULL;
  if (!p) return REPLICAS_ERR_INVALID;
  p->last_seen_ms = now;
  p->changed_ms = now;
  return update(p, f);
}

int replicas_disconnected(struct replicas *r, const char *node_id, int64_t now) {
  struct replica *p = r ? find_mut(r, node_id) : NULL;
  if (!p) return REPLICAS_ERR_INVALID;
  p->connected = 0;
  p->last_seen_ms = now;
  p->changed_ms = now;
  p->absent_since_ms = now;
  if (p->in_set && p->draining) {
    p->why = REPLICA_LEFT;
    p->in_set = 0;
    return 1;
  }
  return 0;
}

int replicas_expire(struct replicas *r, int64_t now) {
  int changed = 0;
  for (size_t i = 0; i < r->n;) {
    struct replica *p = r->v[i];
    int away = !p->connected && now - p->absent_since_ms >= (int64_t)r->timeout_ms;
    if (away && p->in_set) {
      p->why = REPLICA_EXPIRED;
      p->in_set = 0;
      p->absent_since_ms = now; /* listed as expired for one more timeout */
      changed = 1;
    } else if (away) {
      remove_at(r, i);
      continue;
    }
    i++;
  }
  return changed;
}

size_t replicas_count(const struct replicas *r) {
  return r->n;
}

const struct replica *replicas_at(const struct replicas *r, size_t i) {
  return i < r->n ? r->v[i] : NULL;
}

size_t replicas_members(const struct replicas *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) n += r->v[i]->in_set != 0;
  return n;
}

uint32_t replicas_removal_timeout(const struct replicas *r) {
  return r->timeout_ms;
}

/* ---- encoding ---------------------------------------------------------------- */

static void fill_replica(Edge__V1__Replica *out, const struct replica *p) {
  edge__v1__replica__init(out);
  out->node_id = p->node_id;
  out->address = p->address;
  out->zone = p->zone;
  out->draining = p->draining;
  out->weight = p->weight;
  out->check_address = p->admin_address;
  out->https_address = p->https_address;
  out->connected = p->connected;
  out->changed_ms = p->changed_ms;
}

int replicas_pack_set(const struct replicas *r, uint64_t version, const char *syncd_replica,
                      uint8_t **out, size_t *len) {
  size_t m = replicas_members(r), k = 0;
  Edge__V1__Replica *reps = calloc(m + 1, sizeof(*reps));
  Edge__V1__Replica **rp = calloc(m + 1, sizeof(*rp));
  int rc = REPLICAS_ERR_NOMEM;
  if (!reps || !rp) goto out;
  for (size_t i = 0; i < r->n; i++) {
    if (!r->v[i]->in_set) continue;
    fill_replica(&reps[k], r->v[i]);
    rp[k] = &reps[k];
    k++;
  }
  Edge__V1__ReplicaSet set = EDGE__V1__REPLICA_SET__INIT;
  set.version = version;
  set.syncd_replica = (char *)(syncd_replica ? syncd_replica : "");
  set.n_replicas = k;
  set.replicas = rp;
  *len = edge__v1__replica_set__get_packed_size(&set);
  if (!(*out = malloc(*len ? *len : 1))) goto out;
  edge__v1__replica_set__pack(&set, *out);
  rc = 0;
out:
  free(reps);
  free(rp);
  return rc;
}

int replicas_encode(const struct replicas *r, int64_t now, uint8_t **out, size_t *len) {
  size_t m = replicas_members(r), k = 0;
  Edge__V1__Replica *reps = calloc(m + 1, sizeof(*reps));
  Edge__V1__KnownReplica *kr = calloc(m + 1, sizeof(*kr));
  Edge__V1__KnownReplica **kp = calloc(m + 1, sizeof(*kp));
  int rc = REPLICAS_ERR_NOMEM;
  if (!reps || !kr || !kp) goto out;
  for (size_t i = 0; i < r->n; i++) {
    const struct replica *p = r->v[i];
    if (!p->in_set) continue;
    fill_replica(&reps[k], p);
    edge__v1__known_replica__init(&kr[k]);
    kr[k].replica = &reps[k];
    kr[k].last_seen_ms = p->connected ? now : p->last_seen_ms;
    kr[k].joined_ms = p->joined_ms;
    kp[k] = &kr[k];
    k++;
  }
  Edge__V1__KnownReplicas all = EDGE__V1__KNOWN_REPLICAS__INIT;
  all.n_replicas = k;
  all.replicas = kp;
  *len = edge__v1__known_replicas__get_packed_size(&all);
  if (!(*out = malloc(*len ? *len : 1))) goto out;
  edge__v1__known_replicas__pack(&all, *out);
  rc = 0;
out:
  free(reps);
  free(kr);
  free(kp);
  return rc;
}

int replicas_restore(struct replicas *r, const uint8_t *data, size_t len, int64_t now,
                     size_t *skipped, char *err, size_t errlen) {
  size_t skip = 0;
  int restored = 0;
  Edge__V1__KnownReplicas *all = edge__v1__known_replicas__unpack(NULL, len, data);
  if (!all) {
    snprintf(err, errlen, "not an edge.v1.KnownReplicas (%zu bytes)", len);
    return REPLICAS_ERR_CORRUPT;
  }
  for (size_t i = 0; i < all->n_replicas; i++) {
    const Edge__V1__KnownReplica *k = all->replicas[i];
    const Edge__V1__Replica *x = k->replica;
    if (!x || !valid_name(x->node_id) || !valid_address(x->address) ||
        replicas_find(r, x->node_id) || r->n >= REPLICAS_MAX) {
      skip++;
      continue;
    }
    struct replica *p = insert(r, x->node_id);
    struct replica_fields f = {.node_id = x->node_id,
                               .address = x->address,
                               .admin_address = x->check_address,
                               .https_address = x->https_address,
                               .zone = x->zone,
                               .weight = x->weight,
                               .draining = x->draining};
    char *old[4] = {NULL, NULL, NULL, NULL};
    if (!p || apply_fields(p, &f, old) != 0) {
      for (int j = 0; j < 4; j++) free(old[j]);
      edge__v1__known_replicas__free_unpacked(all, NULL);
      snprintf(err, errlen, "out of memory");
      return REPLICAS_ERR_NOMEM;
    }
    for (int j = 0; j < 4; j++) free(old[j]);
    p->why = p->draining ? REPLICA_DRAINING : REPLICA_RESTORED;
    p->in_set = 1;
    p->connected = 0;
    p->last_seen_ms = k->last_seen_ms;
    p->changed_ms = k->last_seen_ms;
    p->joined_ms = k->joined_ms ? k->joined_ms : now;
    p->absent_since_ms = now; /* never expired for syncd's own downtime */
    restored++;
  }
  edge__v1__known_replicas__free_unpacked(all, NULL);
  if (skipped) *skipped = skip;
  return restored;
}

/* ---- reasons --------------------------------------------------------------------- */

const char *replicas_format_duration(uint64_t ms, char *buf, size_t len) {
  uint64_t s = ms / 1000, h = s / 3600, m = (s % 3600) / 60;
  if (ms == 0)
    snprintf(buf, len, "0s");
  else if (ms < 1000)
    snprintf(buf, len, "%" PRIu64 "ms", ms);
  else if (h)
    snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "s", h, m, s % 60);
  else if (m)
    snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", m, s % 60);
  else
    snprintf(buf, len, "%" PRIu64 "s", s);
  return buf;
}

const char *replica_reason(const struct replica *p, uint32_t timeout_ms, int64_t now, char *buf,
                           size_t len) {
  char t[32], away[32];
  replicas_format_duration(timeout_ms, t, sizeof(t));
  uint64_t gone = now > p->absent_since_ms ? (uint64_t)(now - p->absent_since_ms) : 0;
  replicas_format_duration(gone - gone % 1000, away, sizeof(away));
  switch (p->why) {
    case REPLICA_PENDING:
      snprintf(buf, len, "out: has not applied a state yet");
      break;
    case REPLICA_UNUSABLE:
      snprintf(buf, len, "out: address \"%s\" is not a numeric IP:PORT", p->address);
      break;
    case REPLICA_LEFT:
      snprintf(buf, len, "out: left (disconnected while draining)");
      break;
    case REPLICA_EXPIRED:
      snprintf(buf, len, "out: removed after being disconnected longer than %s", t);
      break;
    case REPLICA_RESTORED:
      snprintf(buf, len,
               "in: restored from the state directory, not reconnected for %s "
               "(removed after %s)",
               away, t);
      break;
    case REPLICA_DRAINING:
    case REPLICA_APPLIED:
      if (p->connected)
        snprintf(buf, len, "in: %s", p->why == REPLICA_DRAINING ? "draining" : "applied a state");
      else
        snprintf(buf, len, "in: %sknown, disconnected for %s (removed after %s)",
                 p->why == REPLICA_DRAINING ? "draining, " : "", away, t);
      break;
  }
  return buf;
}
