/*
 * membership — Membership.Watch and the known-replica set (see
 * membership.h).
 *
 * Node events go into the registry (syncd/replicas.c, pure); whenever it
 * reports a change, or the timer expires a replica, the set is packed
 * once and compared with the previous packing, so events that change
 * nothing the l4lbs see do not bump the version. A changed set is saved
 * (DIR/replicas.pb through common/fileio: atomic replace, 0600) before
 * it is sent.
 *
 * Watchers are nodes of a registry (common/registry, shared with
 * config_sync): a node per l4lb id, listed after it disconnects; a newer
 * watch of the same l4lb replaces the older one, which is ended. Each
 * watcher remembers the version it was last sent; send_newest sends the
 * current packed set only when nothing is pending on the call (never
 * queue, newest wins: on_drained asks again).
 */
#include "syncd/membership.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/registry.h"
#include "common/rpc.h"
#include "edge/v1/membership.pb-c.h"
#include "syncd/authz.h"
#include "syncd/replicas.h"

#include <uv.h>

/* The set is re-saved this often, so last_seen in the file stays fresh. */
#define MB_RESAVE_MS 60000
/* The expiry timer's period: a tenth of the removal timeout, 0.1–5 s. */
#define MB_TICK_MIN_MS 100
#define MB_TICK_MAX_MS 5000
/* A state file larger than this is not ours. */
#define MB_FILE_MAX (64u << 20)

struct mb_watch;

struct mb_node {
  struct registry_node reg; /* reg.session: the current struct mb_watch, NULL when disconnected */
  struct membership_watcher pub;
};

struct mb_watch {
  struct membership *mb;
  struct rpc_call *call;
  struct mb_node *node; /* NULL until the WatchRequest arrives */
  int finished;
};

struct membership {
  struct replicas *known;
  char *state_dir; /* NULL: not persisted */
  char *replica_id;
  struct registry nodes; /* of struct mb_node: the l4lb watchers */
  uint64_t version;
  uint8_t *replicas; /* packed replicas of the current set, without version */
  size_t replicas_len;
  uint8_t *msg; /* packed ReplicaSet with version */
  size_t msg_len;
  uv_timer_t *timer;
  uint64_t last_save_ms; /* uv_now of the last save */
  struct metrics_gauge *m_members;
  struct metrics_counter *m_left, *m_expired, *m_save_failed;
  struct authz *authz;
};

void membership_set_authz(struct membership *mb, struct authz *a) {
  mb->authz = a;
}

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void refresh(struct membership *mb, int save_if_changed);

/* ---- persistence ------------------------------------------------------------ */

static void save(struct membership *mb) {
  if (!mb->state_dir) return;
  uint8_t *buf;
  size_t len;
  char err[512], path[4096];
  snprintf(path, sizeof(path), "%s/%s", mb->state_dir, MEMBERSHIP_FILE);
  if (replicas_encode(mb->known, now_ms(), &buf, &len) != 0) {
    snprintf(err, sizeof(err), "out of memory");
  } else {
    int rc = fileio_write_atomic_buf(path, buf, len, 0600, err, sizeof(err));
    free(buf);
    if (mb->timer) mb->last_save_ms = uv_now(mb->timer->loop);
    if (rc == 0) return;
  }
  /* The set in memory is still right; only a restart would lose news. */
  LOG_ERROR("replicas_save_failed", "err=%s", log_q(err));
  if (mb->m_save_failed) metrics_counter_inc(mb->m_save_failed);
}

int membership_restore(struct membership *mb, char *err, size_t errlen) {
  if (!mb->state_dir) return 0;
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", mb->state_dir, MEMBERSHIP_FILE);
  char *buf;
  size_t len;
  int rc = fileio_read(path, MB_FILE_MAX, &buf, &len, err, errlen);
  if (rc == -ENOENT) return 0;
  if (rc != 0) return -1;
  size_t skipped = 0;
  char why[256];
  int n =
      replicas_restore(mb->known, (const uint8_t *)buf, len, now_ms(), &skipped, why, sizeof(why));
  free(buf);
  if (n < 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
  }
  if (skipped)
    LOG_WARN("replicas_restore_skipped", "count=%zu reason=%s", skipped,
             log_q("unusable node_id or address, or a duplicate"));
  refresh(mb, 0); /* what was saved needs no saving */
  return n;
}

/* ---- the set ------------------------------------------------------------------ */

static void send_newest(struct mb_watch *w) {
  if (w->finished || !w->node || !w->mb->msg) return;
  /* While a send is pending, on_drained comes back here. */
  if (!registry_send_due(&w->node->reg, w->node->pub.sent_version, w->mb->version,
                         rpc_call_pending(w->call) > 0))
    return;
  if (rpc_call_send(w->call, w->mb->msg, w->mb->msg_len) == 0)
    w->node->pub.sent_version = w->mb->version;
}

/* The newest set to every connected watcher that is not busy. */
static void send_all(struct membership *mb) {
  for (size_t i = 0; i < registry_count(&mb->nodes); i++) {
    struct mb_node *n = (struct mb_node *)registry_at(&mb->nodes, i);
    if (n->reg.session) send_newest(n->reg.session);
  }
}

/* Re-packs the set; when it changed: new version, saved, sent. */
static void refresh(struct membership *mb, int save_if_changed) {
  uint8_t *reps;
  size_t len;
  if (replicas_pack_set(mb->known, 0, mb->replica_id, &reps, &len) != 0) return;
  if (mb->msg && len == mb->replicas_len && memcmp(reps, mb->replicas, len) == 0) {
    free(reps);
    return;
  }
  uint8_t *msg;
  size_t msg_len;
  if (replicas_pack_set(mb->known, mb->version + 1, mb->replica_id, &msg, &msg_len) != 0) {
    free(reps);
    return;
  }
  free(mb->replicas);
  free(mb->msg);
  mb->replicas = reps;
  mb->replicas_len = len;
  mb->msg = msg;
  mb->msg_len = msg_len;
  mb->version++;
  if (mb->m_members) metrics_gauge_set(mb->m_members, (double)replicas_members(mb->known));
  LOG_INFO("replica_set_changed", "version=%" PRIu64 " replicas=%zu bytes=%zu", mb->version,
           replicas_members(mb->known), msg_len);
  /* Persist before telling anyone, like the store. */
  if (save_if_changed) save(mb);
  send_all(mb);
}

static void log_member(const struct membership *mb, const char *id, const char *event) {
  const struct replica *p = replicas_find(mb->known, id);
  if (!p) return;
  char why[256];
  LOG_INFO(
      event, "node=%s in_set=%d reason=%s", log_q(p->node_id), p->in_set,
      log_q(replica_reason(p, replicas_removal_timeout(mb->known), now_ms(), why, sizeof(why))));
}

void membership_node_event(void *ud, const struct config_sync_node *n, enum config_sync_event ev) {
  struct membership *mb = ud;
  struct replica_fields f = {.node_id = n->node_id,
                             .address = n->address,
                             .admin_address = n->admin_address,
                             .https_address = n->https_address,
                             .zone = n->zone,
                             .weight = n->weight,
                             .draining = n->draining};
  int64_t now = now_ms();
  int rc = 0;
  switch (ev) {
    case CONFIG_SYNC_CONNECTED:
      rc = replicas_connected(mb->known, &f, now);
      break;
    case CONFIG_SYNC_APPLIED:
      rc = replicas_applied(mb->known, n->node_id, now);
      if (rc == 1) log_member(mb, n->node_id, "replica_joined");
      break;
    case CONFIG_SYNC_UPDATED:
      rc = replicas_updated(mb->known, &f, now);
      break;
    case CONFIG_SYNC_DISCONNECTED:
      rc = replicas_disconnected(mb->known, n->node_id, now);
      if (rc == 1) {
        log_member(mb, n->node_id, "replica_left");
        if (mb->m_left) metrics_counter_inc(mb->m_left);
      }
      break;
  }
  /* Refused once, at its Hello; its later events just find no entry. */
  if (ev == CONFIG_SYNC_CONNECTED && (rc == REPLICAS_ERR_FULL || rc == REPLICAS_ERR_INVALID))
    LOG_WARN("replica_refused", "node=%s reason=%s", log_q(n->node_id),
             log_q(rc == REPLICAS_ERR_FULL ? "too many proxies tracked" : "unusable node_id"));
  if (rc == 1) refresh(mb, 1);
}

static void on_tick(uv_timer_t *t) {
  struct membership *mb = t->data;
  int64_t now = now_ms();
  size_t before = replicas_members(mb->known);
  if (replicas_expire(mb->known, now) == 1) {
    size_t gone = before - replicas_members(mb->known);
    char d[32];
    LOG_WARN("replicas_expired", "count=%zu reason=%s", gone,
             log_q(replicas_format_duration(replicas_removal_timeout(mb->known), d, sizeof(d))));
    if (mb->m_expired) metrics_counter_add(mb->m_expired, gone);
    refresh(mb, 1);
  } else if (uv_now(t->loop) - mb->last_save_ms >= MB_RESAVE_MS) {
    save(mb);
  }
}

static void timer_closed(uv_handle_t *h) {
  free(h);
}

int membership_start(struct membership *mb, uv_loop_t *loop) {
  if (mb->timer) return 0;
  uv_timer_t *t = calloc(1, sizeof(*t));
  if (!t) return -1;
  uv_timer_init(loop, t);
  t->data = mb;
  uv_unref((uv_handle_t *)t);
  uint64_t tick = replicas_removal_timeout(mb->known) / 10;
  tick = tick < MB_TICK_MIN_MS ? MB_TICK_MIN_MS : tick > MB_TICK_MAX_MS ? MB_TICK_MAX_MS : tick;
  uv_timer_start(t, on_tick, tick, tick);
  mb->timer = t;
  mb->last_save_ms = uv_now(loop);
  return 0;
}

void membership_close(struct membership *mb) {
  if (!mb || !mb->timer) return;
  uv_timer_stop(mb->timer);
  uv_close((uv_handle_t *)mb->timer, timer_closed);
  mb->timer = NULL;
  save(mb);
}

int membership_new(const struct membership_opts *o, struct metrics_registry *m,
                   struct membership **out) {
  struct membership *mb = calloc(1, sizeof(*mb));
  if (!mb) return -1;
  registry_init(&mb->nodes, sizeof(struct mb_node), 0);
  uint32_t timeout =
      o && o->removal_timeout_ms ? o->removal_timeout_ms : MEMBERSHIP_REMOVAL_TIMEOUT_MS;
  if (replicas_new(timeout, &mb->known) != 0 ||
      (o && o->state_dir && !(mb->state_dir = strdup(o->state_dir))) ||
      (o && o->replica_id && !(mb->replica_id = strdup(o->replica_id)))) {
    membership_free(mb);
    return -1;
  }
  if (m) {
    mb->m_members =
        metrics_gauge(m, "edge_syncd_replicas", "l7proxies in the replica set sent to l4lbs.", "");
    static const char removed[] = "Replicas taken out of the set, by reason.";
    mb->m_left =
        metrics_counter(m, "edge_syncd_replicas_removed_total", removed, "reason=\"left\"");
    mb->m_expired =
        metrics_counter(m, "edge_syncd_replicas_removed_total", removed, "reason=\"expired\"");
    mb->m_save_failed = metrics_counter(m, "edge_syncd_replicas_save_failures_total",
                                        "Failed writes of the replica set to --state-dir.", "");
  }
  /* Versions continue across restarts (like the store's): an l4lb never
   * mistakes a restarted syncd's set for an older one. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  mb->version = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  *out = mb;
  refresh(mb, 0); /* the empty set, until restored or joined */
  return 0;
}

static void node_free(struct registry_node *r) {
  struct mb_node *n = (struct mb_node *)r;
  struct mb_watch *w = n->reg.session;
  if (w) w->node = NULL;
  free(n->pub.address);
  free(n->pub.build);
}

void membership_free(struct membership *mb) {
  if (!mb) return;
  registry_free(&mb->nodes, node_free);
  free(mb->replicas);
  free(mb->msg);
  replicas_free(mb->known);
  free(mb->state_dir);
  free(mb->replica_id);
  free(mb);
}

size_t membership_prune(struct membership *mb, int64_t now, int64_t max_age_s,
                        size_t max_disconnected) {
  size_t gone = 0, disconnected = 0;
  for (size_t i = 0; i < registry_count(&mb->nodes); i++)
    disconnected += registry_at(&mb->nodes, i)->session == NULL;
  for (;;) {
    /* the oldest disconnected watcher: too old, or one too many */
    struct mb_node *oldest = NULL;
    for (size_t i = 0; i < registry_count(&mb->nodes); i++) {
      struct mb_node *n = (struct mb_node *)registry_at(&mb->nodes, i);
      if (n->reg.session) continue;
      if (!oldest || n->pub.disconnected_at < oldest->pub.disconnected_at) oldest = n;
    }
    if (!oldest) break;
    if (oldest->pub.disconnected_at > now - max_age_s && disconnected <= max_disconnected) break;
    LOG_INFO("watcher_forgotten", "node=%s disconnected_at=%" PRId64, log_q(oldest->pub.node_id),
             oldest->pub.disconnected_at);
    registry_remove(&mb->nodes, &oldest->reg, node_free);
    disconnected--;
    gone++;
  }
  return gone;
}

const struct replicas *membership_replicas(const struct membership *mb) {
  return mb->known;
}

uint64_t membership_version(const struct membership *mb) {
  return mb->version;
}
size_t membership_watcher_count(const struct membership *mb) {
  return registry_count(&mb->nodes);
}

const struct membership_watcher *membership_watcher_at(const struct membership *mb, size_t i) {
  struct mb_node *n = (struct mb_node *)registry_at(&mb->nodes, i);
  return n ? &n->pub : NULL;
}

size_t membership_connected(const struct membership *mb) {
  return registry_connected(&mb->nodes);
}

/* The node of l4lb `id`, added when new. Out of memory: NULL, or a node
 * whose address/build are NULL until the next set_str (Status packs NULL as
 * empty), as in config_sync. */
static struct mb_node *node_find_or_add(struct membership *mb, const char *id) {
  struct mb_node *n = (struct mb_node *)registry_add(&mb->nodes, id);
  if (!n || n->pub.node_id) return n;
  n->pub.node_id = n->reg.id; /* a new node: the registry owns the id */
  n->pub.address = strdup("");
  n->pub.build = strdup("");
  return n;
}

static void watch_detach(struct mb_watch *w) {
  struct mb_node *n = w->node;
  w->node = NULL;
  if (!n || !registry_detach(&n->reg, w)) return; /* a replaced watch speaks for nobody */
  n->pub.connected = 0;
  n->pub.disconnected_at = now_s();
  LOG_INFO("watcher_disconnected", "node=%s", log_q(n->pub.node_id));
}

static void set_str(char **dst, const char *src) {
  char *c = strdup(src ? src : "");
  if (!c) return;
  free(*dst);
  *dst = c;
}

static void mb_on_call(void *ud, struct rpc_call *call) {
  struct mb_watch *w = calloc(1, sizeof(*w));
  if (!w) {
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  w->mb = ud;
  w->call = call;
  rpc_call_set_data(call, w);
}

static void mb_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct mb_watch *w = rpc_call_get_data(call);
  struct membership *mb = ud;
  if (!w || w->finished) return;
  const char *reason = NULL;
  Edge__V1__WatchRequest *req = edge__v1__watch_request__unpack(NULL, len, data);
  if (!req)
    reason = "unparseable WatchRequest";
  else if (w->node)
    reason = "Watch takes one request";
  if (reason) {
    LOG_WARN("watch_rejected", "peer=%s reason=%s", log_q(rpc_call_peer(call)), log_q(reason));
    w->finished = 1;
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT, reason);
    watch_detach(w);
    if (req) edge__v1__watch_request__free_unpacked(req, NULL);
    return;
  }
  char why[256];
  if (authz_check(mb->authz, call, "Membership", AUTHZ_L4LB, req->node_id ? req->node_id : "", why,
                  sizeof(why)) != 0) {
    /* before the watcher is looked up: a refused watch evicts nobody */
    edge__v1__watch_request__free_unpacked(req, NULL);
    w->finished = 1;
    rpc_call_finish(call, RPC_STATUS_PERMISSION_DENIED, why);
    return;
  }
  /* An l4lb without a name is listed under its peer address. */
  const char *id = req->node_id && req->node_id[0] ? req->node_id : rpc_call_peer(call);
  struct mb_node *n = node_find_or_add(mb, id);
  if (!n) {
    edge__v1__watch_request__free_unpacked(req, NULL);
    w->finished = 1;
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  struct mb_watch *old = registry_attach(&n->reg, w);
  if (old) {
    old->node = NULL;
    old->finished = 1;
    rpc_call_finish(old->call, RPC_STATUS_CANCELLED, "replaced by a newer watch of this node");
  }
  set_str(&n->pub.address, req->address);
  set_str(&n->pub.build, req->build);
  w->node = n;
  n->pub.connected = 1;
  n->pub.connected_since = now_s();
  n->pub.disconnected_at = 0;
  n->pub.sent_version = 0;
  LOG_INFO("watcher_connected", "node=%s peer=%s address=%s", log_q(n->pub.node_id),
           log_q(rpc_call_peer(call)), log_q(n->pub.address));
  edge__v1__watch_request__free_unpacked(req, NULL);
  send_newest(w);
}

static void mb_on_drained(void *ud, struct rpc_call *call) {
  struct mb_watch *w = rpc_call_get_data(call);
  if (w) send_newest(w);
}

static void mb_on_done(void *ud, struct rpc_call *call) {
  struct mb_watch *w = rpc_call_get_data(call);
  if (!w) return;
  watch_detach(w);
  rpc_call_set_data(call, NULL);
  free(w);
}

int membership_register(struct membership *mb, struct rpc_server *srv) {
  static const struct rpc_call_handler h = {
      .on_call = mb_on_call,
      .on_message = mb_on_message,
      .on_drained = mb_on_drained,
      .on_done = mb_on_done,
  };
  return rpc_server_add_method(srv, MEMBERSHIP_METHOD, RPC_SERVER_STREAM, &h, mb);
}
