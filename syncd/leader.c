/*
 * leader — the Lease elector's thread and its loop side (contract in
 * leader.h). The rules are lease.c; this file moves requests and keeps
 * the state under one mutex: the thread holds it only to read or update
 * the state, never across a request.
 */
#include "syncd/leader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "syncd/k8s_client.h"

#define LEADER_MAX_BODY (1u << 20)
#define LEADER_RELEASE_TIMEOUT_MS 2000
#define LEADER_WATCHERS 4

struct leader_watcher {
  void (*cb)(void *ud, int leader);
  void *ud;
};

struct leader {
  uv_loop_t *loop;
  struct k8s_conn conn;
  char ns[254], name[254];
  char collection[600], path[1024];
  struct lease_config cfg;
  pthread_t thread;
  int started;
  atomic_int stop;
  pthread_mutex_t mu; /* guards st, holder, error */
  pthread_cond_t cv;  /* stop */
  struct lease_state st;
  char error[256];
  uv_async_t async;
  int announced; /* loop: the leadership the watchers last heard */
  struct leader_watcher watchers[LEADER_WATCHERS];
  void (*done)(void *);
  void *done_arg;
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_error(struct leader *l, const char *msg) {
  pthread_mutex_lock(&l->mu);
  int changed = strcmp(l->error, msg) != 0;
  snprintf(l->error, sizeof(l->error), "%s", msg);
  pthread_mutex_unlock(&l->mu);
  if (changed && msg[0])
    LOG_WARN("lease_error", "lease=%s/%s reason=%s", log_q(l->ns), log_q(l->name), log_q(msg));
}

/* Reads the Lease: 1 found (*r filled), 0 absent, -1 error (err). */
static int read_lease(struct leader *l, struct lease_record *r, char *err, size_t errlen) {
  struct buf body = {0};
  long status = k8s_request(&l->conn, "GET", l->path, NULL, NULL, l->cfg.renew_deadline_ms,
                            &l->stop, &body, LEADER_MAX_BODY, err, errlen);
  int rc = -1;
  if (status == 404) {
    rc = 0;
  } else if (status == 200) {
    json_error_t je;
    json_t *obj = json_loadb(body.data ? body.data : "", body.len, 0, &je);
    rc = lease_record_from_json(obj, r, err, errlen) == 0 ? 1 : -1;
    json_decref(obj);
  } else if (status > 0) {
    snprintf(err, errlen, "GET lease: HTTP %ld", status);
  }
  buf_free(&body);
  return rc;
}

/* Writes want (POST or PUT). 0 with *written, 1 on 409 Conflict (or
 * AlreadyExists), -1 on another failure. */
static int write_lease(struct leader *l, enum lease_action a, const struct lease_record *want,
                       long timeout_ms, const atomic_int *stop, struct lease_record *written,
                       char *err, size_t errlen) {
  json_t *obj = lease_record_to_json(want, l->ns, l->name);
  char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!text) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  struct buf body = {0};
  const char *method = a == LEASE_CREATE ? "POST" : "PUT";
  long status =
      k8s_request(&l->conn, method, a == LEASE_CREATE ? l->collection : l->path, "application/json",
                  text, timeout_ms, stop, &body, LEADER_MAX_BODY, err, errlen);
  free(text);
  int rc = -1;
  if (status == 200 || status == 201) {
    json_error_t je;
    json_t *got = json_loadb(body.data ? body.data : "", body.len, 0, &je);
    rc = lease_record_from_json(got, written, err, errlen) == 0 ? 0 : -1;
    json_decref(got);
  } else if (status == 409) {
    rc = 1;
  } else if (status > 0) {
    snprintf(err, errlen, "%s lease: HTTP %ld", method, status);
  }
  buf_free(&body);
  return rc;
}

static void round_once(struct leader *l) {
  char err[256] = "";
  struct lease_record cur, want, written;
  int found = read_lease(l, &cur, err, sizeof(err));
  if (atomic_load(&l->stop)) return;
  uint64_t now = mono_ms();
  pthread_mutex_lock(&l->mu);
  enum lease_action a = LEASE_WAIT;
  if (found < 0)
    lease_failed(&l->st, &l->cfg, 0, now);
  else
    a = lease_decide(&l->st, &l->cfg, found ? &cur : NULL, now, wall_us(), &want);
  int was = l->st.leader;
  pthread_mutex_unlock(&l->mu);
  if (found < 0) {
    set_error(l, err);
  } else if (a != LEASE_WAIT) {
    int rc =
        write_lease(l, a, &want, l->cfg.renew_deadline_ms, &l->stop, &written, err, sizeof(err));
    if (atomic_load(&l->stop)) return;
    pthread_mutex_lock(&l->mu);
    if (rc == 0)
      lease_written(&l->st, &written, mono_ms());
    else
      lease_failed(&l->st, &l->cfg, rc == 1, mono_ms());
    pthread_mutex_unlock(&l->mu);
    if (rc < 0) set_error(l, err);
    if (rc == 1) LOG_DEBUG("lease_conflict", "lease=%s/%s", log_q(l->ns), log_q(l->name));
    if (rc >= 0) set_error(l, "");
  } else {
    set_error(l, "");
  }
  pthread_mutex_lock(&l->mu);
  int now_leader = l->st.leader;
  pthread_mutex_unlock(&l->mu);
  if (was != now_leader || a == LEASE_CREATE) uv_async_send(&l->async);
}

/* Waits ms unless stopping; -1 when stopping. */
static int nap(struct leader *l, uint32_t ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&l->mu);
  while (!atomic_load(&l->stop))
    if (pthread_cond_timedwait(&l->cv, &l->mu, &until) == ETIMEDOUT) break;
  pthread_mutex_unlock(&l->mu);
  return atomic_load(&l->stop) ? -1 : 0;
}

static void release(struct leader *l) {
  struct lease_record want, written;
  pthread_mutex_lock(&l->mu);
  int held =
      lease_is_leader(&l->st, &l->cfg, mono_ms()) && lease_release(&l->st, wall_us(), &want) == 0;
  pthread_mutex_unlock(&l->mu);
  if (!held) return;
  char err[256] = "";
  int rc = write_lease(l, LEASE_UPDATE, &want, LEADER_RELEASE_TIMEOUT_MS, NULL, &written, err,
                       sizeof(err));
  pthread_mutex_lock(&l->mu);
  l->st.leader = 0;
  pthread_mutex_unlock(&l->mu);
  if (rc == 0)
    LOG_INFO("leader_released", "lease=%s/%s identity=%s", log_q(l->ns), log_q(l->name),
             log_q(l->cfg.identity));
  else
    LOG_WARN("leader_release_failed", "lease=%s/%s reason=%s", log_q(l->ns), log_q(l->name),
             log_q(rc == 1 ? "conflict: no longer ours" : err));
}

static void *leader_main(void *arg) {
  struct leader *l = arg;
  while (!atomic_load(&l->stop)) {
    round_once(l);
    pthread_mutex_lock(&l->mu);
    uint32_t wait = lease_next_round_ms(&l->st, &l->cfg, mono_ms());
    pthread_mutex_unlock(&l->mu);
    if (nap(l, wait) < 0) break;
  }
  release(l);
  return NULL;
}

int leader_is_leader(const struct leader *l) {
  if (!l) return 1;
  struct leader *m = (struct leader *)l;
  pthread_mutex_lock(&m->mu);
  int yes = lease_is_leader(&m->st, &m->cfg, mono_ms());
  pthread_mutex_unlock(&m->mu);
  return yes;
}

void leader_status(const struct leader *l, struct leader_status *out) {
  memset(out, 0, sizeof(*out));
  if (!l) return;
  struct leader *m = (struct leader *)l;
  pthread_mutex_lock(&m->mu);
  snprintf(out->identity, sizeof(out->identity), "%s", m->cfg.identity);
  snprintf(out->lease, sizeof(out->lease), "%s/%s", m->ns, m->name);
  if (m->st.have_observed) {
    snprintf(out->holder, sizeof(out->holder), "%s", m->st.observed.holder);
    out->transitions = m->st.observed.transitions;
    snprintf(out->renew_time, sizeof(out->renew_time), "%s", m->st.observed.renew_time);
  }
  out->leader = lease_is_leader(&m->st, &m->cfg, mono_ms());
  snprintf(out->error, sizeof(out->error), "%s", m->error);
  pthread_mutex_unlock(&m->mu);
}

static void on_async(uv_async_t *a) {
  struct leader *l = a->data;
  int now = leader_is_leader(l);
  if (now == l->announced) return;
  l->announced = now;
  struct leader_status st;
  leader_status(l, &st);
  if (now)
    LOG_INFO("leader_acquired", "lease=%s identity=%s transitions=%lld", log_q(st.lease),
             log_q(st.identity), (long long)st.transitions);
  else
    LOG_INFO("leader_lost", "lease=%s identity=%s holder=%s", log_q(st.lease), log_q(st.identity),
             log_q(st.holder));
  for (int i = 0; i < LEADER_WATCHERS; i++)
    if (l->watchers[i].cb) l->watchers[i].cb(l->watchers[i].ud, now);
}

int leader_watch(struct leader *l, void (*cb)(void *ud, int leader), void *ud) {
  if (!l) return 0;
  for (int i = 0; i < LEADER_WATCHERS; i++) {
    if (l->watchers[i].cb) continue;
    l->watchers[i].cb = cb;
    l->watchers[i].ud = ud;
    return 0;
  }
  return -ENOSPC;
}

void leader_unwatch(struct leader *l, void (*cb)(void *ud, int leader), void *ud) {
  if (!l) return;
  for (int i = 0; i < LEADER_WATCHERS; i++)
    if (l->watchers[i].cb == cb && l->watchers[i].ud == ud)
      memset(&l->watchers[i], 0, sizeof(l->watchers[i]));
}

static void leader_free(struct leader *l) {
  k8s_conn_free(&l->conn);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l);
}

static void on_closed(uv_handle_t *h) {
  struct leader *l = h->data;
  void (*done)(void *) = l->done;
  void *arg = l->done_arg;
  leader_free(l);
  if (done) done(arg);
}

static int valid_name(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 253) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
          s[i] == '.'))
      return 0;
  return 1;
}

int leader_start(uv_loop_t *loop, const struct leader_opts *o, struct leader **out, char *err,
                 size_t errlen) {
  *out = NULL;
  if (!valid_name(o->lease_namespace) || !valid_name(o->lease_name)) {
    snprintf(err, errlen, "lease namespace and name must be DNS names (lower case, digits, -, .)");
    return -EINVAL;
  }
  struct leader *l = calloc(1, sizeof(*l));
  if (!l) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->loop = loop;
  l->cfg.duration_ms = o->duration_ms ? o->duration_ms : 15000;
  l->cfg.renew_deadline_ms = o->renew_deadline_ms ? o->renew_deadline_ms : 10000;
  l->cfg.retry_ms = o->retry_ms ? o->retry_ms : 2000;
  if (l->cfg.renew_deadline_ms >= l->cfg.duration_ms ||
      l->cfg.retry_ms >= l->cfg.renew_deadline_ms) {
    snprintf(err, errlen, "want retry period < renew deadline < lease duration");
    leader_free(l);
    return -EINVAL;
  }
  uint32_t suffix = 0;
  if (getrandom(&suffix, sizeof(suffix), 0) != (ssize_t)sizeof(suffix))
    suffix = (uint32_t)(mono_ms() ^ (uint64_t)(uintptr_t)l);
  const char *rid = o->replica_id && *o->replica_id ? o->replica_id : "syncd";
  snprintf(l->cfg.identity, sizeof(l->cfg.identity), "%.200s_%08x", rid, suffix);
  snprintf(l->ns, sizeof(l->ns), "%s", o->lease_namespace);
  snprintf(l->name, sizeof(l->name), "%s", o->lease_name);
  snprintf(l->collection, sizeof(l->collection),
           "/apis/coordination.k8s.io/v1/namespaces/%s/leases", l->ns);
  snprintf(l->path, sizeof(l->path), "%s/%s", l->collection, l->name);
  int rc = k8s_conn_load(o->kubeconfig, &l->conn, err, errlen);
  if (rc < 0) {
    leader_free(l);
    return rc;
  }
  uv_async_init(loop, &l->async, on_async);
  l->async.data = l;
  rc = -pthread_create(&l->thread, NULL, leader_main, l);
  if (rc < 0) {
    snprintf(err, errlen, "cannot start the elector thread: %s", strerror(-rc));
    uv_close((uv_handle_t *)&l->async, on_closed); /* frees l */
    return rc;
  }
  l->started = 1;
  LOG_INFO("leader_election_started",
           "lease=%s/%s identity=%s duration_ms=%u renew_deadline_ms=%u retry_ms=%u", log_q(l->ns),
           log_q(l->name), log_q(l->cfg.identity), l->cfg.duration_ms, l->cfg.renew_deadline_ms,
           l->cfg.retry_ms);
  *out = l;
  return 0;
}

void leader_stop(struct leader *l, void (*done)(void *arg), void *arg) {
  if (!l) {
    if (done) done(arg);
    return;
  }
  pthread_mutex_lock(&l->mu);
  atomic_store(&l->stop, 1);
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  if (l->started) pthread_join(l->thread, NULL);
  memset(l->watchers, 0, sizeof(l->watchers));
  l->done = done;
  l->done_arg = arg;
  uv_close((uv_handle_t *)&l->async, on_closed);
}
