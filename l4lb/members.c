/*
 * members — the replica list, hold-back and table rebuilds (contract in
 * members.h).
 *
 * Each backend sits in a struct slot with the list's own bookkeeping:
 * whether the latest set lists it, whether it is held, whether a check has
 * vouched for it. Every change ends in evaluate() (which settles holds)
 * and rebuild() (which publishes a snapshot when needed), so the rules
 * live in one place whatever triggered them.
 */
#include "l4lb/members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"

struct slot {
  struct l4_backend *b;
  int listed;  /* named by the latest set */
  int held;    /* unlisted, but kept: dropping it was too much at once */
  int vouched; /* passed a check, or came from static flags / the cache */
};

struct l4_members {
  struct l4_members_config cfg;
  struct slot *v;
  size_t n;
  struct metrics_counter *m_rebuilds, *m_held_back;
  struct metrics_gauge *m_held, *m_table_backends, *m_members;
};

int l4_members_new(const struct l4_members_config *cfg, struct l4_members **out) {
  struct l4_members *m = calloc(1, sizeof(*m));
  if (!m) return -1;
  m->cfg = *cfg;
  if (m->cfg.panic_threshold > 100) m->cfg.panic_threshold = 100;
  if (cfg->metrics) {
    m->m_rebuilds = metrics_counter(cfg->metrics, "edge_l4_table_rebuilds_total",
                                    "Maglev tables built and published", "");
    m->m_held_back = metrics_counter(
        cfg->metrics, "edge_l4_membership_held_back_total",
        "Healthy backends kept although syncd's set dropped them (panic threshold)", "");
    m->m_held = metrics_gauge(cfg->metrics, "edge_l4_membership_held_backends",
                              "Backends kept now only because of the panic threshold", "");
    /* for the "no healthy replica" alert: 0 until a table with a backend exists */
    m->m_table_backends =
        metrics_gauge(cfg->metrics, "edge_l4_table_backends",
                      "Backends in the current Maglev table (healthy, not draining)", "");
    m->m_members = metrics_gauge(cfg->metrics, "edge_l4_member_backends",
                                 "Backends known (static or from syncd's replica set)", "");
  }
  *out = m;
  return 0;
}

static void set_up_gauge(struct l4_backend *b) {
  if (b->m_up) metrics_gauge_set(b->m_up, b->health.up ? 1 : 0);
}

static void drop(struct l4_members *m, struct l4_backend *b) {
  if (m->cfg.checker_stop) m->cfg.checker_stop(m->cfg.ud, b);
  l4_backend_forget_metrics(b);
  l4_backend_unref(b);
}

void l4_members_free(struct l4_members *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) drop(m, m->v[i].b);
  free(m->v);
  free(m);
}

/* ---- the table ------------------------------------------------------------ */

static int eligible(const struct l4_backend *b) {
  return b->health.up && !b->draining;
}

static void rebuild(struct l4_members *m, const char *why) {
  struct l4_backend **set = calloc(m->n ? m->n : 1, sizeof(*set));
  if (!set) {
    LOG_ERROR("rebuild_failed", "reason=%s", log_q("out of memory; keeping the last table"));
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < m->n; i++)
    if (eligible(m->v[i].b)) set[n++] = m->v[i].b;
  struct l4_snapshot *s;
  char err[256];
  uint64_t t0 = uv_hrtime();
  int rc = l4_snapshot_new(set, n, m->cfg.table_size, &s, err, sizeof(err));
  free(set);
  if (rc != 0) {
    LOG_ERROR("rebuild_failed", "reason=%s", log_q(err));
    return;
  }
  if (m->cfg.on_snapshot) m->cfg.on_snapshot(m->cfg.ud, s);
  l4_snapshot_publish(s);
  if (m->m_rebuilds) metrics_counter_inc(m->m_rebuilds);
  if (m->m_table_backends) metrics_gauge_set(m->m_table_backends, (double)n);
  if (m->m_members) metrics_gauge_set(m->m_members, (double)m->n);
  if (m->cfg.on_published) m->cfg.on_published(m->cfg.ud, n);
  LOG_INFO("table_rebuilt", "why=%s backends=%zu of=%zu held=%zu size=%u build_us=%llu", log_q(why),
           n, m->n, l4_members_held(m), m->cfg.table_size,
           (unsigned long long)((uv_hrtime() - t0) / 1000));
}

/* ---- hold-back --------------------------------------------------------------- */

static int healthy(const struct slot *s) {
  return eligible(s->b) && s->vouched;
}

/* Whether dropping `dropping` of `h` healthy backends at once is allowed. */
static int drop_allowed(const struct l4_members *m, size_t h, size_t dropping) {
  if (dropping == 0) return 1;
  size_t stay = h - dropping;
  return stay > 0 && stay * 100 >= (size_t)m->cfg.panic_threshold * h;
}

static void remove_at(struct l4_members *m, size_t i, const char *reason) {
  LOG_INFO("backend_removed", "backend=%s reason=%s", log_q(m->v[i].b->name), log_q(reason));
  drop(m, m->v[i].b);
  memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
  m->n--;
}

/*
 * Settles the unlisted backends: all leave when the drop is allowed; else
 * the healthy ones are held and the rest leave. Returns 1 when the list
 * changed.
 */
static int evaluate(struct l4_members *m) {
  size_t h = 0, dropping = 0, unlisted = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (m->v[i].listed) m->v[i].held = 0;
    unlisted += !m->v[i].listed;
    if (!healthy(&m->v[i])) continue;
    h++;
    dropping += !m->v[i].listed;
  }
  if (unlisted == 0) {
    if (m->m_held) metrics_gauge_set(m->m_held, 0);
    return 0;
  }
  int allowed = drop_allowed(m, h, dropping);
  int changed = 0;
  size_t newly = 0;
  char names[512] = "";
  for (size_t i = 0; i < m->n;) {
    struct slot *s = &m->v[i];
    if (s->listed) {
      i++;
      continue;
    }
    if (!allowed && healthy(s)) {
      if (!s->held) {
        s->held = 1;
        newly++;
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s", used ? "," : "", s->b->name);
      }
      i++;
      continue;
    }
    const char *why = s->held          ? (healthy(s) ? "drop now within the panic threshold"
                                                     : "its health checks confirm it down")
                      : healthy(s)     ? "no longer in the set"
                      : s->b->draining ? "no longer in the set (was draining)"
                                       : "no longer in the set (not healthy)";
    remove_at(m, i, why);
    changed = 1;
  }
  if (newly) {
    LOG_WARN("membership_held", "backends=%s healthy=%zu dropping=%zu panic_threshold=%u reason=%s",
             log_q(names), h, dropping, m->cfg.panic_threshold,
             log_q(dropping == h ? "the set drops every healthy backend"
                                 : "the set drops more healthy backends than the panic "
                                   "threshold allows; kept until their checks fail"));
    if (m->m_held_back) metrics_counter_add(m->m_held_back, newly);
  }
  if (m->m_held) metrics_gauge_set(m->m_held, (double)l4_members_held(m));
  return changed;
}

/* ---- applying sets ---------------------------------------------------------------- */

static int same_addresses(const struct l4_backend *b, const struct l4_member *x) {
  const char *check = b->check_address ? b->check_address : "";
  const char *https = b->https_address ? b->https_address : "";
  return strcmp(b->address, x->address) == 0 && strcmp(check, x->check) == 0 &&
         strcmp(https, x->https) == 0;
}

static struct slot *find(struct l4_members *m, const char *name) {
  for (size_t i = 0; i < m->n; i++) /* b is NULL once moved to the new list */
    if (m->v[i].b && strcmp(m->v[i].b->name, name) == 0) return &m->v[i];
  return NULL;
}

static struct l4_backend *create(struct l4_members *m, const struct l4_member *x) {
  struct l4_backend *b;
  char err[256];
  if (l4_backend_new(x->name, x->address, x->check[0] ? x->check : NULL, x->weight, m->cfg.rise,
                     m->cfg.fall, m->cfg.metrics, &b, err, sizeof(err)) != 0) {
    LOG_WARN("backend_rejected", "reason=%s", log_q(err));
    return NULL;
  }
  if (l4_backend_set_https(b, x->https, err, sizeof(err)) != 0)
    LOG_WARN("backend_https_ignored", "reason=%s", log_q(err));
  b->failures_seen = 0;
  set_up_gauge(b);
  if (m->cfg.checker_start) m->cfg.checker_start(m->cfg.ud, b);
  LOG_INFO("backend_added", "backend=%s address=%s https=%s check=%s weight=%u draining=%d",
           log_q(b->name), log_q(b->address), log_q(b->https_address ? b->https_address : ""),
           log_q(b->check_address ? b->check_address : "tcp"), x->weight, x->draining);
  return b;
}

void l4_members_apply(struct l4_members *m, const struct l4_member *set, size_t n, int guarded,
                      const char *why) {
  struct slot *next = calloc(m->n + n + 1, sizeof(*next));
  if (!next) {
    LOG_ERROR("membership_failed", "reason=%s", log_q("out of memory; keeping the last set"));
    return;
  }
  /* 1. A listed member whose addresses changed is replaced: drop the old
   * one first (the new one registers the same metric series). */
  for (size_t i = 0; i < m->n;) {
    struct slot *s = &m->v[i];
    s->listed = 0;
    for (size_t j = 0; j < n; j++) {
      if (strcmp(set[j].name, s->b->name) != 0) continue;
      if (!same_addresses(s->b, &set[j])) {
        remove_at(m, i, "addresses changed");
        s = NULL;
      }
      break;
    }
    if (s) i++;
  }
  /* 2. The new list in the set's order, then the unlisted ones. */
  size_t k = 0;
  for (size_t j = 0; j < n; j++) {
    struct slot *old = find(m, set[j].name);
    int dup = 0;
    for (size_t q = 0; q < k; q++) dup |= strcmp(next[q].b->name, set[j].name) == 0;
    if (dup) continue;
    struct slot s = {0};
    if (old) {
      s = *old;
      old->b = NULL; /* moved */
    } else if (!(s.b = create(m, &set[j]))) {
      continue;
    } else {
      s.vouched = !guarded;
    }
    if (s.b->draining != set[j].draining)
      LOG_INFO(set[j].draining ? "backend_draining" : "backend_undrained", "backend=%s",
               log_q(s.b->name));
    s.b->weight = set[j].weight ? set[j].weight : 1;
    s.b->draining = set[j].draining;
    s.listed = 1;
    s.held = 0;
    next[k++] = s;
  }
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].b) next[k++] = m->v[i];
  free(m->v);
  m->v = next;
  m->n = k;
  /* Static flags and the cache are the operator's word: no hold. */
  for (size_t i = 0; !guarded && i < m->n;) {
    if (m->v[i].listed)
      i++;
    else
      remove_at(m, i, "not in the set");
  }
  evaluate(m);
  rebuild(m, why);
}

/* ---- health ------------------------------------------------------------------------ */

static struct slot *slot_of(struct l4_members *m, const struct l4_backend *b) {
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].b == b) return &m->v[i];
  return NULL;
}

void l4_members_check_result(struct l4_members *m, struct l4_backend *b, int ok, const char *why) {
  struct slot *s = slot_of(m, b);
  if (!s) return;
  int vouch = ok && !s->vouched;
  if (vouch) s->vouched = 1;
  int flipped = health_observe(&b->health, ok);
  if (!flipped) {
    LOG_DEBUG(ok ? "check_passed" : "check_failed", "backend=%s reason=%s", log_q(b->name),
              log_q(why));
  } else {
    set_up_gauge(b);
    LOG_INFO(b->health.up ? "backend_up" : "backend_down", "backend=%s reason=%s", log_q(b->name),
             log_q(why));
  }
  /* A new healthy backend or a health change can settle a hold (and may
   * remove b: only its checker's reference keeps it alive from here). */
  const char *reason = flipped ? (b->health.up ? "backend up" : "backend down") : "hold released";
  int changed = (vouch || flipped) && evaluate(m);
  if (flipped || changed) rebuild(m, reason);
}

void l4_members_poll_failures(struct l4_members *m) {
  for (size_t i = 0; i < m->n; i++) {
    struct l4_backend *b = m->v[i].b;
    uint64_t now = atomic_load(&b->connect_failures);
    while (b->failures_seen < now) {
      b->failures_seen++;
      if (b->health.up) {
        l4_members_check_result(m, b, 0, "connect failed (passive)");
        if (i >= m->n || m->v[i].b != b) return; /* the list changed; next wake-up */
      }
    }
  }
}

size_t l4_members_count(const struct l4_members *m) {
  return m->n;
}

struct l4_backend *l4_members_at(const struct l4_members *m, size_t i) {
  return i < m->n ? m->v[i].b : NULL;
}

int l4_members_is_held(const struct l4_members *m, const struct l4_backend *b) {
  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].b == b) return m->v[i].held;
  return 0;
}

size_t l4_members_held(const struct l4_members *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->n; i++) n += m->v[i].held != 0;
  return n;
}
