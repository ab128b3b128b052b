/*
 * union — merging several syncd replicas' replica sets (contract in
 * union.h). Every change recomputes the merge from the views: O(E log E)
 * for E records in all views, a few thousand at most, on events that come
 * at human or reconnect pace.
 */
#include "l4lb/union.h"

#include <stdlib.h>
#include <string.h>

struct tomb {
  char name[L4_MEMBER_STR];
  int64_t ts;          /* change time of the dropped record (syncd's clock) */
  uint64_t created_ms; /* when it was made (our clock), for forgetting it */
};

struct l4_union {
  struct l4_union_view v[L4_UNION_MAX_VIEWS];
  size_t n;
  struct tomb *tombs;
  size_t n_tombs, cap_tombs;
  uint32_t view_timeout_ms, startup_wait_ms;
  uint64_t started_ms;
  struct l4_member *cur; /* the last merged set, to report changes */
  size_t n_cur;
};

int l4_union_new(uint32_t view_timeout_ms, uint32_t startup_wait_ms, uint64_t now_ms,
                 struct l4_union **out) {
  struct l4_union *u = calloc(1, sizeof(*u));
  if (!u) return -1;
  u->view_timeout_ms = view_timeout_ms;
  u->startup_wait_ms = startup_wait_ms;
  u->started_ms = now_ms;
  *out = u;
  return 0;
}

void l4_union_free(struct l4_union *u) {
  if (!u) return;
  for (size_t i = 0; i < u->n; i++) free(u->v[i].m);
  free(u->tombs);
  free(u->cur);
  free(u);
}

static struct l4_union_view *find_view(struct l4_union *u, const char *src) {
  for (size_t i = 0; i < u->n; i++)
    if (strcmp(u->v[i].src, src) == 0) return &u->v[i];
  return NULL;
}

static void drop_view(struct l4_union *u, size_t i) {
  free(u->v[i].m);
  memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof(u->v[0]));
  u->n--;
}

int l4_union_add(struct l4_union *u, const char *src, uint64_t now_ms) {
  if (find_view(u, src)) return 0;
  if (u->n == L4_UNION_MAX_VIEWS || strlen(src) >= L4_UNION_SRC_MAX) return -1;
  size_t i = 0;
  while (i < u->n && strcmp(u->v[i].src, src) < 0) i++; /* sorted: ties go to the first */
  memmove(&u->v[i + 1], &u->v[i], (u->n - i) * sizeof(u->v[0]));
  memset(&u->v[i], 0, sizeof(u->v[i]));
  memcpy(u->v[i].src, src, strlen(src) + 1);
  u->v[i].down_since_ms = now_ms;
  u->n++;
  return 0;
}

void l4_union_unwatch(struct l4_union *u, const char *src, uint64_t now_ms) {
  l4_union_stream(u, src, 0, now_ms);
}

/* ---- tombstones --------------------------------------------------------------- */

static struct tomb *find_tomb(const struct l4_union *u, const char *name) {
  for (size_t i = 0; i < u->n_tombs; i++)
    if (strcmp(u->tombs[i].name, name) == 0) return &u->tombs[i];
  return NULL;
}

static int bury(struct l4_union *u, const struct l4_member *m, uint64_t now_ms) {
  if (m->changed_ms <= 0) return 0; /* no change time: no ordering to keep */
  struct tomb *t = find_tomb(u, m->name);
  if (!t) {
    if (u->n_tombs == u->cap_tombs) {
      size_t cap = u->cap_tombs ? u->cap_tombs * 2 : 16;
      struct tomb *nt = realloc(u->tombs, cap * sizeof(*nt));
      if (!nt) return -1;
      u->tombs = nt;
      u->cap_tombs = cap;
    }
    t = &u->tombs[u->n_tombs++];
    memset(t, 0, sizeof(*t));
    memcpy(t->name, m->name, sizeof(t->name));
    t->ts = m->changed_ms;
  } else if (m->changed_ms > t->ts) {
    t->ts = m->changed_ms;
  }
  t->created_ms = now_ms;
  return 0;
}

static int listed_anywhere(const struct l4_union *u, const char *name) {
  for (size_t i = 0; i < u->n; i++)
    for (size_t j = 0; j < u->v[i].n; j++)
      if (strcmp(u->v[i].m[j].name, name) == 0) return 1;
  return 0;
}

/* A tombstone that no view needs and that is older than the view timeout
 * is forgotten: memory stays bounded by the proxies dropped recently. */
static void forget_tombs(struct l4_union *u, uint64_t now_ms) {
  size_t k = 0;
  for (size_t i = 0; i < u->n_tombs; i++) {
    const struct tomb *t = &u->tombs[i];
    if (now_ms - t->created_ms >= u->view_timeout_ms && !listed_anywhere(u, t->name)) continue;
    u->tombs[k++] = *t;
  }
  u->n_tombs = k;
}

/* ---- the merge ----------------------------------------------------------------- */

struct entry {
  const struct l4_member *m;
  size_t view;
};

static int cmp_entries(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  int c = strcmp(x->m->name, y->m->name);
  if (c) return c;
  return x->view < y->view ? -1 : x->view > y->view;
}

/* 1 when b is a better record than a (a may be NULL). */
static int better(const struct entry *a, const struct entry *b) {
  if (!a) return 1;
  if (a->m->connected != b->m->connected) return b->m->connected;
  if (a->m->changed_ms != b->m->changed_ms) return b->m->changed_ms > a->m->changed_ms;
  return b->view < a->view;
}

int l4_union_merged(const struct l4_union *u, struct l4_member **out, size_t *n) {
  *out = NULL;
  *n = 0;
  size_t total = 0;
  for (size_t i = 0; i < u->n; i++) total += u->v[i].n;
  if (total == 0) return 0;
  struct entry *e = calloc(total, sizeof(*e));
  struct l4_member *m = calloc(total, sizeof(*m));
  if (!e || !m) {
    free(e);
    free(m);
    return -1;
  }
  size_t k = 0;
  for (size_t i = 0; i < u->n; i++)
    for (size_t j = 0; j < u->v[i].n; j++) e[k++] = (struct entry){&u->v[i].m[j], i};
  qsort(e, total, sizeof(*e), cmp_entries);
  size_t out_n = 0;
  for (size_t i = 0; i < total;) {
    size_t j = i;
    while (j < total && strcmp(e[j].m->name, e[i].m->name) == 0) j++;
    const struct tomb *t = find_tomb(u, e[i].m->name);
    const struct entry *best = NULL;
    for (size_t x = i; x < j; x++) {
      if (t && e[x].m->changed_ms <= t->ts) continue; /* not newer than its removal */
      if (better(best, &e[x])) best = &e[x];
    }
    if (best) m[out_n++] = *best->m;
    i = j;
  }
  free(e);
  if (out_n == 0) {
    free(m);
    m = NULL;
  }
  *out = m;
  *n = out_n;
  return 0;
}

/* What the Maglev table and the health checks depend on. */
static int same_member(const struct l4_member *a, const struct l4_member *b) {
  return strcmp(a->name, b->name) == 0 && strcmp(a->address, b->address) == 0 &&
         strcmp(a->check, b->check) == 0 && strcmp(a->https, b->https) == 0 &&
         a->weight == b->weight && a->draining == b->draining;
}

/* Recomputes the merge; 1 when it differs from the last one. */
static int remerge(struct l4_union *u) {
  struct l4_member *m;
  size_t n;
  if (l4_union_merged(u, &m, &n) != 0) return -1;
  int changed = n != u->n_cur;
  for (size_t i = 0; !changed && i < n; i++) changed = !same_member(&m[i], &u->cur[i]);
  free(u->cur);
  u->cur = m;
  u->n_cur = n;
  return changed;
}

static int cmp_members(const void *a, const void *b) {
  return strcmp(((const struct l4_member *)a)->name, ((const struct l4_member *)b)->name);
}

int l4_union_set(struct l4_union *u, const char *src, const char *replica,
                 const struct l4_member *m, size_t n, uint64_t version, uint64_t now_ms) {
  struct l4_union_view *v = find_view(u, src);
  if (!v) return -1;
  struct l4_member *copy = NULL;
  if (n) {
    if (!(copy = calloc(n, sizeof(*copy)))) return -1;
    memcpy(copy, m, n * sizeof(*copy));
    qsort(copy, n, sizeof(*copy), cmp_members);
  }
  /* records this view no longer has: their proxies left through it */
  for (size_t i = 0; i < v->n; i++) {
    const struct l4_member *key = &v->m[i];
    if (!(n && bsearch(key, copy, n, sizeof(*copy), cmp_members))) bury(u, key, now_ms);
  }
  free(v->m);
  v->m = copy;
  v->n = n;
  v->version = version;
  v->synced = 1;
  if (!v->up) v->up = 1;
  snprintf(v->replica, sizeof(v->replica), "%s", replica ? replica : "");
  /* the same syncd replica seen before under another address: it moved */
  for (size_t i = 0; v->replica[0] && i < u->n; i++) {
    if (&u->v[i] == v || u->v[i].up || strcmp(u->v[i].replica, v->replica) != 0) continue;
    char keep[L4_UNION_SRC_MAX];
    memcpy(keep, src, strlen(src) + 1);
    drop_view(u, i);
    v = find_view(u, keep);
    i = (size_t)-1; /* rescan: the array moved */
  }
  forget_tombs(u, now_ms);
  return remerge(u);
}

void l4_union_stream(struct l4_union *u, const char *src, int up, uint64_t now_ms) {
  struct l4_union_view *v = find_view(u, src);
  if (!v) return;
  if (v->up && !up) v->down_since_ms = now_ms;
  v->up = up;
}

int l4_union_expire(struct l4_union *u, uint64_t now_ms) {
  int any_up = 0, dropped = 0;
  for (size_t i = 0; i < u->n; i++) any_up |= u->v[i].up;
  if (!any_up) return 0; /* syncd away altogether: keep everything */
  for (size_t i = 0; i < u->n;) {
    const struct l4_union_view *v = &u->v[i];
    if (!v->up && now_ms - v->down_since_ms >= u->view_timeout_ms) {
      drop_view(u, i);
      dropped = 1;
      continue;
    }
    i++;
  }
  forget_tombs(u, now_ms);
  return dropped ? remerge(u) : 0;
}

int l4_union_ready(const struct l4_union *u, uint64_t now_ms) {
  if (now_ms - u->started_ms >= u->startup_wait_ms) return 1;
  for (size_t i = 0; i < u->n; i++)
    if (!u->v[i].synced) return 0;
  return u->n > 0;
}

size_t l4_union_views(const struct l4_union *u) {
  return u->n;
}

const struct l4_union_view *l4_union_view_at(const struct l4_union *u, size_t i) {
  return i < u->n ? &u->v[i] : NULL;
}

size_t l4_union_tombstones(const struct l4_union *u) {
  return u->n_tombs;
}
