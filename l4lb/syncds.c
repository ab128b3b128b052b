/*
 * syncds — one Membership.Watch per syncd replica, merged (contract in
 * syncds.h). The merge rules live in union.c; this file only moves sets
 * and stream states into it and the merged set out.
 */
#include "l4lb/syncds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/targets.h"

#define SYNCDS_TICK_MS 1000

struct link {
  struct l4_syncds *s;
  char addr[TARGETS_HOST_MAX + 8];
  char name[TARGETS_HOST_MAX]; /* DNS name it came from, "" for a literal */
  struct l4_watch *w;
};

struct l4_syncds {
  uv_loop_t *loop;
  struct rpc_runtime *rt;
  struct l4_syncds_opts o;
  char *spec, *cert, *key, *ca, *node_id, *address, *build;
  struct target_list list;
  struct link *links[L4_UNION_MAX_VIEWS];
  size_t n_links;
  struct l4_union *u;
  uv_timer_t tick;
  uint64_t last_resolve_ms;
  struct targets_resolve *resolving;
  l4_syncds_fn fn;
  void *ud;
  uint64_t version;
  int delivered;
  int closing, pending;
  void (*done)(void *);
  void *done_arg;
};

static void deliver(struct l4_syncds *s, const char *why) {
  if (s->closing || !l4_union_ready(s->u, uv_now(s->loop))) return;
  struct l4_member *m;
  size_t n;
  if (l4_union_merged(s->u, &m, &n) != 0) {
    LOG_ERROR("membership_merge_failed", "reason=%s", log_q("out of memory; keeping the last set"));
    return;
  }
  s->version++;
  s->delivered = 1;
  LOG_INFO("membership_merged", "why=%s replicas=%zu views=%zu tombstones=%zu version=%llu",
           log_q(why), n, l4_union_views(s->u), l4_union_tombstones(s->u),
           (unsigned long long)s->version);
  s->fn(s->ud, m, n, s->version);
  free(m);
}

static void on_set(void *ud, const struct l4_member *m, size_t n, uint64_t version,
                   const char *replica) {
  struct link *l = ud;
  struct l4_syncds *s = l->s;
  int rc = l4_union_set(s->u, l->addr, replica, m, n, version, uv_now(s->loop));
  if (rc < 0) {
    LOG_ERROR("membership_merge_failed", "syncd=%s reason=%s", log_q(l->addr),
              log_q("out of memory; keeping the last view"));
    return;
  }
  if (rc == 1 || !s->delivered) deliver(s, "set from a syncd replica");
}

static void on_state(void *ud, int up) {
  struct link *l = ud;
  l4_union_stream(l->s->u, l->addr, up, uv_now(l->s->loop));
}

static int add_link(struct l4_syncds *s, const struct target_addr *a) {
  if (s->n_links == L4_UNION_MAX_VIEWS) return -1;
  struct link *l = calloc(1, sizeof(*l));
  if (!l) return -1;
  l->s = s;
  snprintf(l->addr, sizeof(l->addr), "%s", a->addr);
  snprintf(l->name, sizeof(l->name), "%s", a->name);
  struct l4_watch_opts wo = {
      .target = l->addr,
      .creds = {.cert_file = s->cert,
                .key_file = s->key,
                .ca_file = s->ca,
                .insecure = s->o.creds.insecure,
                .server_name_override = l->name[0] ? l->name : NULL},
      .node_id = s->node_id,
      .address = s->address,
      .build = s->build,
      .reconnect_max_ms = s->o.reconnect_max_ms,
      .on_state = on_state,
  };
  if (l4_union_add(s->u, l->addr, uv_now(s->loop)) != 0 ||
      l4_watch_start(s->rt, &wo, on_set, l, &l->w) != 0) {
    free(l);
    return -1;
  }
  s->links[s->n_links++] = l;
  LOG_INFO("membership_syncd_added", "syncd=%s name=%s", log_q(l->addr), log_q(l->name));
  return 0;
}

static void on_link_stopped(void *arg) {
  struct link *l = arg;
  struct l4_syncds *s = l->s;
  free(l);
  if (--s->pending == 0 && s->closing) {
    l4_union_free(s->u);
    targets_free(&s->list);
    free(s->spec), free(s->cert), free(s->key), free(s->ca);
    free(s->node_id), free(s->address), free(s->build);
    void (*done)(void *) = s->done;
    void *arg2 = s->done_arg;
    free(s);
    if (done) done(arg2);
  }
}

static void drop_link(struct l4_syncds *s, size_t i) {
  struct link *l = s->links[i];
  memmove(&s->links[i], &s->links[i + 1], (s->n_links - i - 1) * sizeof(s->links[0]));
  s->n_links--;
  LOG_INFO("membership_syncd_removed", "syncd=%s reason=%s", log_q(l->addr),
           log_q("no longer an address of --syncd; its view is kept until it expires"));
  l4_union_unwatch(s->u, l->addr, uv_now(s->loop));
  s->pending++;
  l4_watch_stop(l->w, on_link_stopped, l);
}

/* Streams follow the addresses the names resolve to now. */
static void on_resolved(void *ud, int status, struct target_addrs *addrs, const char *reason) {
  struct l4_syncds *s = ud;
  s->resolving = NULL;
  if (s->closing) return;
  if (status != 0) {
    LOG_WARN("membership_resolve_failed", "syncd=%s reason=%s action=%s", log_q(s->spec),
             log_q(reason), log_q("keeping the current streams"));
    return;
  }
  for (size_t i = 0; i < s->n_links;) {
    if (targets_addrs_find(addrs, s->links[i]->addr) < 0)
      drop_link(s, i);
    else
      i++;
  }
  for (size_t i = 0; i < addrs->n; i++) {
    int known = 0;
    for (size_t j = 0; j < s->n_links && !known; j++)
      known = strcmp(s->links[j]->addr, addrs->v[i].addr) == 0;
    if (!known && add_link(s, &addrs->v[i]) != 0)
      LOG_ERROR("membership_syncd_failed", "syncd=%s", log_q(addrs->v[i].addr));
  }
}

static void on_tick(uv_timer_t *t) {
  struct l4_syncds *s = t->data;
  uint64_t now = uv_now(s->loop);
  if (l4_union_expire(s->u, now) == 1)
    deliver(s, "a syncd replica away longer than the view timeout");
  else if (!s->delivered)
    deliver(s, "startup wait over");
  if (s->list.has_names && !s->resolving && now - s->last_resolve_ms >= s->o.resolve_interval_ms) {
    s->last_resolve_ms = now;
    if (targets_resolve(s->loop, &s->list, on_resolved, s, &s->resolving) != 0) s->resolving = NULL;
  }
}

static char *dup_or_null(const char *v) {
  return v ? strdup(v) : NULL;
}

int l4_syncds_start(uv_loop_t *loop, struct rpc_runtime *rt, const struct l4_syncds_opts *o,
                    l4_syncds_fn fn, void *ud, struct l4_syncds **out, char *err, size_t errlen) {
  struct l4_syncds *s = calloc(1, sizeof(*s));
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->loop = loop;
  s->rt = rt;
  s->o = *o;
  if (!s->o.view_timeout_ms) s->o.view_timeout_ms = 10 * 60 * 1000;
  if (!s->o.startup_wait_ms) s->o.startup_wait_ms = 3000;
  if (!s->o.resolve_interval_ms) s->o.resolve_interval_ms = 30000;
  s->fn = fn;
  s->ud = ud;
  s->spec = dup_or_null(o->spec);
  s->cert = dup_or_null(o->creds.cert_file);
  s->key = dup_or_null(o->creds.key_file);
  s->ca = dup_or_null(o->creds.ca_file);
  s->node_id = dup_or_null(o->node_id);
  s->address = dup_or_null(o->address);
  s->build = dup_or_null(o->build);
  struct target_addrs addrs = {0};
  if (targets_parse(o->spec, &s->list, err, errlen) != 0 ||
      targets_resolve_blocking(&s->list, &addrs, err, errlen) != 0 ||
      l4_union_new(s->o.view_timeout_ms, s->o.startup_wait_ms, uv_now(loop), &s->u) != 0)
    goto fail;
  s->last_resolve_ms = uv_now(loop);
  for (size_t i = 0; i < addrs.n; i++)
    if (add_link(s, &addrs.v[i]) != 0)
      LOG_ERROR("membership_syncd_failed", "syncd=%s", log_q(addrs.v[i].addr));
  if (s->n_links == 0) {
    snprintf(err, errlen, "cannot watch any address of %s", o->spec);
    goto fail;
  }
  targets_addrs_free(&addrs);
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  uv_timer_start(&s->tick, on_tick, SYNCDS_TICK_MS, SYNCDS_TICK_MS);
  *out = s;
  return 0;
fail:
  targets_addrs_free(&addrs);
  l4_union_free(s->u);
  targets_free(&s->list);
  free(s->spec), free(s->cert), free(s->key), free(s->ca);
  free(s->node_id), free(s->address), free(s->build);
  free(s);
  return -1;
}

static void on_tick_closed(uv_handle_t *h) {
  struct l4_syncds *s = h->data;
  /* reuse the link path for the last release */
  struct link *l = calloc(1, sizeof(*l));
  if (l) {
    l->s = s;
    on_link_stopped(l);
  }
}

void l4_syncds_stop(struct l4_syncds *s, void (*done)(void *arg), void *arg) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->done = done;
  s->done_arg = arg;
  if (s->resolving) targets_resolve_cancel(s->resolving);
  s->resolving = NULL;
  for (size_t i = 0; i < s->n_links; i++) {
    s->pending++;
    l4_watch_stop(s->links[i]->w, on_link_stopped, s->links[i]);
  }
  s->n_links = 0;
  s->pending++;
  uv_timer_stop(&s->tick);
  uv_close((uv_handle_t *)&s->tick, on_tick_closed);
}

const struct l4_union *l4_syncds_union(const struct l4_syncds *s) {
  return s ? s->u : NULL;
}
