/*
 * membership — Membership.Watch (see membership.h).
 *
 * The set is recomputed from config_sync's nodes on every hint and packed
 * once; the packed replicas (without the version) are compared with the
 * previous ones, so hints that change nothing do not bump the version.
 * Each watcher remembers the version it was last sent; send_newest sends
 * the current packed set only when the watcher's queue is empty.
 */
#include "syncd/membership.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/rpc.h"
#include "edge/v1/membership.pb-c.h"
#include "syncd/authz.h"
#include "syncd/config_sync.h"

#include <uv.h>

struct mb_watch;

struct mb_node {
  struct membership_watcher pub;
  struct mb_watch *watch; /* current call, NULL when disconnected */
};

struct mb_watch {
  struct membership *mb;
  struct rpc_call *call;
  struct mb_node *node; /* NULL until the WatchRequest arrives */
  int finished;
};

struct membership {
  struct config_sync *cs;
  struct mb_node **nodes;
  size_t n_nodes, cap_nodes;
  uint64_t version;
  uint8_t *replicas; /* packed replicas of the current set, without version */
  size_t replicas_len;
  uint8_t *msg; /* packed ReplicaSet with version */
  size_t msg_len;
  /* Startup grace (membership_hold): while held, watchers are sent nothing
   * and keep the set they had from a previous syncd. */
  int held;
  uv_timer_t *hold_timer;
  struct authz *authz;
};

void membership_set_authz(struct membership *mb, struct authz *a) {
  mb->authz = a;
}

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

static int cmp_node_id(const void *a, const void *b) {
  const struct config_sync_node *x = *(const struct config_sync_node *const *)a;
  const struct config_sync_node *y = *(const struct config_sync_node *const *)b;
  return strcmp(x->node_id, y->node_id);
}

/* Packs the current replica set with version (or without when version is
 * 0) into *out. */
static int pack_set(struct membership *mb, uint64_t version, uint8_t **out, size_t *len) {
  size_t total = config_sync_node_count(mb->cs), n = 0;
  const struct config_sync_node **sel = calloc(total + 1, sizeof(*sel));
  Edge__V1__Replica *reps = calloc(total + 1, sizeof(*reps));
  Edge__V1__Replica **rp = calloc(total + 1, sizeof(*rp));
  int rc = -1;
  if (!sel || !reps || !rp) goto out;
  for (size_t i = 0; i < total; i++) {
    const struct config_sync_node *nd = config_sync_node_at(mb->cs, i);
    if (nd->connected && nd->applied) sel[n++] = nd;
  }
  qsort(sel, n, sizeof(*sel), cmp_node_id);
  for (size_t i = 0; i < n; i++) {
    edge__v1__replica__init(&reps[i]);
    reps[i].node_id = sel[i]->node_id;
    reps[i].address = sel[i]->address;
    reps[i].zone = sel[i]->zone;
    reps[i].draining = sel[i]->draining;
    reps[i].weight = sel[i]->weight;
    reps[i].check_address = sel[i]->admin_address;
    reps[i].https_address = sel[i]->https_address;
    rp[i] = &reps[i];
  }
  Edge__V1__ReplicaSet set = EDGE__V1__REPLICA_SET__INIT;
  set.version = version;
  set.n_replicas = n;
  set.replicas = rp;
  *len = edge__v1__replica_set__get_packed_size(&set);
  *out = malloc(*len ? *len : 1);
  if (!*out) goto out;
  edge__v1__replica_set__pack(&set, *out);
  rc = 0;
out:
  free(sel);
  free(reps);
  free(rp);
  return rc;
}

static void send_newest(struct mb_watch *w) {
  if (w->finished || !w->node || !w->mb->msg || w->mb->held) return;
  if (w->node->pub.sent_version == w->mb->version) return;
  if (rpc_call_pending(w->call) > 0) return; /* on_drained comes back */
  if (rpc_call_send(w->call, w->mb->msg, w->mb->msg_len) == 0)
    w->node->pub.sent_version = w->mb->version;
}

void membership_refresh(struct membership *mb) {
  uint8_t *reps;
  size_t len;
  if (pack_set(mb, 0, &reps, &len) != 0) return;
  if (mb->msg && len == mb->replicas_len && memcmp(reps, mb->replicas, len) == 0) {
    free(reps);
    return;
  }
  uint8_t *msg;
  size_t msg_len;
  if (pack_set(mb, mb->version + 1, &msg, &msg_len) != 0) {
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
  LOG_INFO("replica_set_changed", "version=%" PRIu64 " bytes=%zu", mb->version, msg_len);
  for (size_t i = 0; i < mb->n_nodes; i++)
    if (mb->nodes[i]->watch) send_newest(mb->nodes[i]->watch);
}

int membership_new(struct config_sync *cs, struct metrics_registry *m, struct membership **out) {
  struct membership *mb = calloc(1, sizeof(*mb));
  if (!mb) return -1;
  mb->cs = cs;
  /* Versions continue across restarts (like the store's): an l4lb never
   * mistakes a restarted syncd's set for an older one. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  mb->version = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  *out = mb;
  membership_refresh(mb); /* the empty set */
  return 0;
}

static void hold_timer_closed(uv_handle_t *h) {
  free(h);
}

static void hold_expired(uv_timer_t *t) {
  struct membership *mb = t->data;
  mb->held = 0;
  uv_close((uv_handle_t *)t, hold_timer_closed);
  mb->hold_timer = NULL;
  LOG_INFO("membership_released", "version=%" PRIu64 " watchers=%zu", mb->version, mb->n_nodes);
  for (size_t i = 0; i < mb->n_nodes; i++)
    if (mb->nodes[i]->watch) send_newest(mb->nodes[i]->watch);
}

int membership_hold(struct membership *mb, uv_loop_t *loop, uint32_t ms) {
  if (ms == 0 || mb->hold_timer) return 0;
  uv_timer_t *t = calloc(1, sizeof(*t));
  if (!t) return -1;
  uv_timer_init(loop, t);
  t->data = mb;
  uv_unref((uv_handle_t *)t);
  uv_timer_start(t, hold_expired, ms, 0);
  mb->hold_timer = t;
  mb->held = 1;
  return 0;
}

void membership_close(struct membership *mb) {
  if (!mb || !mb->hold_timer) return;
  uv_timer_stop(mb->hold_timer);
  uv_close((uv_handle_t *)mb->hold_timer, hold_timer_closed);
  mb->hold_timer = NULL;
  mb->held = 0;
}

void membership_free(struct membership *mb) {
  if (!mb) return;
  for (size_t i = 0; i < mb->n_nodes; i++) {
    struct mb_node *n = mb->nodes[i];
    if (n->watch) n->watch->node = NULL;
    free(n->pub.node_id);
    free(n->pub.address);
    free(n->pub.build);
    free(n);
  }
  free(mb->nodes);
  free(mb->replicas);
  free(mb->msg);
  free(mb);
}

size_t membership_prune(struct membership *mb, int64_t now, int64_t max_age_s,
                        size_t max_disconnected) {
  size_t gone = 0, disconnected = 0;
  for (size_t i = 0; i < mb->n_nodes; i++) disconnected += mb->nodes[i]->watch == NULL;
  for (;;) {
    size_t oldest = mb->n_nodes;
    for (size_t i = 0; i < mb->n_nodes; i++) {
      const struct mb_node *n = mb->nodes[i];
      if (n->watch) continue;
      if (oldest == mb->n_nodes || n->pub.disconnected_at < mb->nodes[oldest]->pub.disconnected_at)
        oldest = i;
    }
    if (oldest == mb->n_nodes) break;
    struct mb_node *n = mb->nodes[oldest];
    if (n->pub.disconnected_at > now - max_age_s && disconnected <= max_disconnected) break;
    LOG_INFO("watcher_forgotten", "node=%s", log_q(n->pub.node_id));
    mb->nodes[oldest] = mb->nodes[--mb->n_nodes];
    free(n->pub.node_id);
    free(n->pub.address);
    free(n->pub.build);
    free(n);
    disconnected--;
    gone++;
  }
  return gone;
}

uint64_t membership_version(const struct membership *mb) {
  return mb->version;
}
size_t membership_watcher_count(const struct membership *mb) {
  return mb->n_nodes;
}

const struct membership_watcher *membership_watcher_at(const struct membership *mb, size_t i) {
  return i < mb->n_nodes ? &mb->nodes[i]->pub : NULL;
}

size_t membership_connected(const struct membership *mb) {
  size_t c = 0;
  for (size_t i = 0; i < mb->n_nodes; i++) c += mb->nodes[i]->pub.connected != 0;
  return c;
}

static struct mb_node *node_find_or_add(struct membership *mb, const char *id) {
  for (size_t i = 0; i < mb->n_nodes; i++)
    if (strcmp(mb->nodes[i]->pub.node_id, id) == 0) return mb->nodes[i];
  if (mb->n_nodes == mb->cap_nodes) {
    size_t cap = mb->cap_nodes ? mb->cap_nodes * 2 : 8;
    struct mb_node **nn = realloc(mb->nodes, cap * sizeof(*nn));
    if (!nn) return NULL;
    mb->nodes = nn;
    mb->cap_nodes = cap;
  }
  struct mb_node *n = calloc(1, sizeof(*n));
  if (!n) return NULL;
  n->pub.node_id = strdup(id);
  n->pub.address = strdup("");
  n->pub.build = strdup("");
  if (!n->pub.node_id || !n->pub.address || !n->pub.build) {
    free(n->pub.node_id);
    free(n->pub.address);
    free(n->pub.build);
    free(n);
    return NULL;
  }
  mb->nodes[mb->n_nodes++] = n;
  return n;
}

static void watch_detach(struct mb_watch *w) {
  struct mb_node *n = w->node;
  w->node = NULL;
  if (!n || n->watch != w) return;
  n->watch = NULL;
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
  if (n->watch && n->watch != w) {
    struct mb_watch *old = n->watch;
    old->node = NULL;
    old->finished = 1;
    rpc_call_finish(old->call, RPC_STATUS_CANCELLED, "replaced by a newer watch of this node");
  }
  set_str(&n->pub.address, req->address);
  set_str(&n->pub.build, req->build);
  n->watch = w;
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
