/*
 * upstream — name-keyed endpoint and cluster records of one worker, and
 * per-cluster views over them (see upstream.h).
 */
#include "l7proxy/upstream.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "l7proxy/health_check.h"

struct up_cstate {
  struct up_cstate *hnext;
  char *name;
  uint32_t rr;
  uint64_t unused_since; /* see up_endpoint */
  uint64_t mark;
};

static size_t hash_str(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

int up_pools_init(struct up_pools *p) {
  memset(p, 0, sizeof(*p));
  p->ep_buckets = 1024;
  p->cl_buckets = 256;
  p->ep_tab = calloc(p->ep_buckets, sizeof(*p->ep_tab));
  p->cl_tab = calloc(p->cl_buckets, sizeof(*p->cl_tab));
  if (!p->ep_tab || !p->cl_tab) {
    up_pools_free(p);
    return -ENOMEM;
  }
  return 0;
}

static void view_clear(struct up_cluster_view *v) {
  free(v->eps);
  free(v->lbs);
  l7_cluster_release(v->cluster);
  memset(v, 0, sizeof(*v));
}

void up_pools_free(struct up_pools *p) {
  for (size_t i = 0; i < p->n_views; i++) {
    view_clear(&p->views[i].way[0]);
    view_clear(&p->views[i].way[1]);
  }
  free(p->views);
  p->views = NULL;
  p->n_views = 0;
  for (size_t b = 0; p->ep_tab && b < p->ep_buckets; b++) {
    struct up_endpoint *e = p->ep_tab[b];
    while (e) {
      struct up_endpoint *n = e->hnext;
      free(e->key);
      free(e);
      e = n;
    }
  }
  for (size_t b = 0; p->cl_tab && b < p->cl_buckets; b++) {
    struct up_cstate *c = p->cl_tab[b];
    while (c) {
      struct up_cstate *n = c->hnext;
      free(c->name);
      free(c);
      c = n;
    }
  }
  free(p->ep_tab);
  free(p->cl_tab);
  p->ep_tab = NULL;
  p->cl_tab = NULL;
}

static struct up_cstate *cluster_state(struct up_pools *p, const char *name) {
  size_t b = hash_str(name) % p->cl_buckets;
  for (struct up_cstate *c = p->cl_tab[b]; c; c = c->hnext)
    if (strcmp(c->name, name) == 0) return c;
  struct up_cstate *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->name = strdup(name);
  if (!c->name) {
    free(c);
    return NULL;
  }
  c->hnext = p->cl_tab[b];
  p->cl_tab[b] = c;
  p->n_clusters++;
  return c;
}

static struct up_endpoint *endpoint(struct up_pools *p, const char *cluster,
                                    const struct l7_endpoint *le) {
  char key[256];
  snprintf(key, sizeof(key), "%s\n%s", cluster, le->name);
  size_t b = hash_str(key) % p->ep_buckets;
  for (struct up_endpoint *e = p->ep_tab[b]; e; e = e->hnext)
    if (strcmp(e->key, key) == 0) return e;
  struct up_endpoint *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  e->key = strdup(key);
  if (!e->key) {
    free(e);
    return NULL;
  }
  snprintf(e->cluster, sizeof(e->cluster), "%s", cluster);
  snprintf(e->name, sizeof(e->name), "%s", le->name);
  memcpy(&e->addr, &le->addr, sizeof(e->addr));
  e->addrlen = le->addrlen;
  up_link_init(&e->idle);
  e->hnext = p->ep_tab[b];
  p->ep_tab[b] = e;
  p->n_endpoints++;
  return e;
}

/* Makes v the view of c (v is empty). */
static int view_build(struct up_pools *p, struct up_cluster_view *v, const struct l7_cluster *c) {
  struct up_cstate *cs = cluster_state(p, c->name);
  if (!cs) return -ENOMEM;
  v->rr_cursor = &cs->rr;
  v->policy = c->lb_policy == EDGE__V1__LB_POLICY__LB_POLICY_LEAST_REQUEST ? LB_LEAST_REQUEST
                                                                           : LB_ROUND_ROBIN;
  v->eps = calloc(c->n_endpoints ? c->n_endpoints : 1, sizeof(*v->eps));
  v->lbs = calloc(c->n_endpoints ? c->n_endpoints : 1, sizeof(*v->lbs));
  if (!v->eps || !v->lbs) return -ENOMEM;
  for (size_t k = 0; k < c->n_endpoints; k++) {
    struct up_endpoint *e = endpoint(p, c->name, &c->endpoints[k]);
    if (!e) return -ENOMEM;
    v->eps[k] = e;
    v->lbs[k] = &e->lb;
    /* the checker's verdict (flags are never freed: the pointer cannot dangle) */
    struct hc_flag *f = c->health_check ? hc_flag_get(c->name, c->endpoints[k].name) : NULL;
    e->lb.hc_down = f ? &f->down : NULL;
  }
  v->n = c->n_endpoints;
  v->cluster = l7_cluster_hold(c);
  p->view_builds++;
  return 0;
}

const struct up_cluster_view *up_pools_view(struct up_pools *p, const struct l7_cluster *c) {
  if (!c) return NULL;
  if (c->slot >= p->n_views) {
    size_t n = p->n_views ? p->n_views : 64;
    while (n <= c->slot) n *= 2;
    struct up_view_slot *nv = realloc(p->views, n * sizeof(*nv));
    if (!nv) return NULL;
    memset(nv + p->n_views, 0, (n - p->n_views) * sizeof(*nv));
    p->views = nv;
    p->n_views = n;
  }
  struct up_view_slot *vs = &p->views[c->slot];
  int w = vs->way[0].cluster == c ? 0 : vs->way[1].cluster == c ? 1 : -1;
  if (w < 0) { /* replace the way used least recently */
    w = vs->used[0] <= vs->used[1] ? 0 : 1;
    view_clear(&vs->way[w]);
    if (view_build(p, &vs->way[w], c) != 0) {
      view_clear(&vs->way[w]);
      return NULL;
    }
    /* a changed cluster is when records can fall out of use: prune then,
     * at most once a second (a push changing thousands of clusters costs
     * one pass over the records, not one per view) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now - p->last_prune_ms >= 1000) {
      p->last_prune_ms = now;
      up_pools_prune(p, now);
    }
  }
  vs->used[w] = ++p->clock;
  return &vs->way[w];
}

/* Records referenced by a cached view get this pass's mark. */
static void mark_views(struct up_pools *p) {
  for (size_t i = 0; i < p->n_views; i++) {
    for (int w = 0; w < 2; w++) {
      const struct up_cluster_view *v = &p->views[i].way[w];
      if (!v->cluster) continue;
      if (v->rr_cursor)
        ((struct up_cstate *)((char *)v->rr_cursor - offsetof(struct up_cstate, rr)))->mark =
            p->prune_pass;
      for (size_t k = 0; k < v->n; k++) v->eps[k]->mark = p->prune_pass;
    }
  }
}

/* 1 when a record idle since *since may go at now; starts the clock. */
static int expired(uint64_t *since, int in_use, uint64_t now_ms) {
  if (in_use) {
    *since = 0;
    return 0;
  }
  if (*since == 0 || now_ms < *since) *since = now_ms ? now_ms : 1;
  return now_ms - *since >= UP_PRUNE_GRACE_MS;
}

size_t up_pools_prune(struct up_pools *p, uint64_t now_ms) {
  size_t freed = 0;
  p->prune_pass++;
  mark_views(p);
  for (size_t b = 0; p->ep_tab && b < p->ep_buckets; b++) {
    for (struct up_endpoint **pp = &p->ep_tab[b]; *pp;) {
      struct up_endpoint *e = *pp;
      int in_use = e->mark == p->prune_pass || e->n_active || e->n_idle || e->lb.outstanding ||
                   !up_link_empty(&e->idle);
      if (!expired(&e->unused_since, in_use, now_ms)) {
        pp = &e->hnext;
        continue;
      }
      *pp = e->hnext;
      free(e->key);
      free(e);
      p->n_endpoints--;
      freed++;
    }
  }
  for (size_t b = 0; p->cl_tab && b < p->cl_buckets; b++) {
    for (struct up_cstate **pp = &p->cl_tab[b]; *pp;) {
      struct up_cstate *c = *pp;
      if (!expired(&c->unused_since, c->mark == p->prune_pass, now_ms)) {
        pp = &c->hnext;
        continue;
      }
      *pp = c->hnext;
      free(c->name);
      free(c);
      p->n_clusters--;
      freed++;
    }
  }
  return freed;
}

void up_pools_foreach(struct up_pools *p, void (*fn)(struct up_endpoint *ep, void *arg),
                      void *arg) {
  for (size_t b = 0; b < p->ep_buckets; b++)
    for (struct up_endpoint *e = p->ep_tab[b]; e; e = e->hnext) fn(e, arg);
}
