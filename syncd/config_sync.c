/*
 * config_sync — ConfigSync.Stream sessions (see config_sync.h).
 *
 * Each call gets a struct cs_stream; once its Hello arrives the stream is
 * bound to a struct cs_node found (or created) by node_id in the node
 * registry (common/registry). The node holds the bookkeeping that survives
 * reconnects; the stream only links a call to a node. The node's session
 * is always its newest stream, so events from a replaced stream are
 * recognised and ignored.
 *
 * Push rule (newest-only, as in xDS): push_node sends only when the last
 * push has been answered (Ack or Nack) and the call's send queue is empty;
 * otherwise the answer or on_drained calls push_node again, which then
 * sends one delta from the last pushed version to whatever is newest by
 * then. Waiting for the answer, not just the write, matters: gRPC buffers
 * megabytes for a peer that does not read, so "written" alone would still
 * queue every version for a stalled proxy.
 * The nonces of recent pushes are remembered per stream to match Acks.
 */
#include "syncd/config_sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/registry.h"
#include "common/rpc.h"
#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/authz.h"
#include "syncd/store.h"

/* Pushes remembered per stream for matching Acks. A proxy acks in order,
 * and only one push is queued at a time, so a handful is plenty. */
#define CS_NONCES 32
/* A push unanswered this long no longer holds newer versions back: the
 * next version goes out in full (the proxy may have lost the push). */
#define CS_ANSWER_TIMEOUT_MS 30000

struct cs_sent {
  char nonce[48];
  uint64_t version;
  uint64_t sent_ms; /* uv_hrtime in ms, for the push→ack histogram */
};

struct cs_stream;

struct cs_node {
  struct registry_node reg; /* reg.session: the current struct cs_stream, NULL when disconnected */
  struct config_sync_node pub;
  int need_full; /* next push is full (after a Nack) */
  int awaiting;  /* the last push is not answered yet */
  struct cs_sent sent[CS_NONCES];
  unsigned sent_next;
};

struct cs_stream {
  struct config_sync *cs;
  struct rpc_call *call;
  struct cs_node *node; /* NULL before Hello or after being replaced */
  int finished;
};

struct config_sync {
  struct store *store;
  struct registry nodes; /* of struct cs_node */
  uint64_t push_seq;
  char boot_id[17];
  config_sync_event_fn event_fn;
  void *event_ud;
  struct authz *authz;
  struct metrics_counter *pushes, *acks, *nacks, *bytes;
  struct metrics_histogram *push_ack;
};

static int64_t now_s(void) {
  return (int64_t)time(NULL);
}

static char *xstrdup(const char *s) {
  return strdup(s ? s : "");
}

static void set_str(char **dst, const char *src) {
  char *c = xstrdup(src);
  if (!c) return; /* keep the old value rather than lose it */
  free(*dst);
  *dst = c;
}

int config_sync_new(struct store *store, struct metrics_registry *m, struct config_sync **out) {
  struct config_sync *cs = calloc(1, sizeof(*cs));
  if (!cs) return -1;
  cs->store = store;
  registry_init(&cs->nodes, sizeof(struct cs_node), 0);
  /* Nonces stay unique across restarts: a random boot id prefixes them. */
  uint64_t seed = uv_hrtime() ^ ((uint64_t)now_s() << 20) ^ (uint64_t)(uintptr_t)cs;
  snprintf(cs->boot_id, sizeof(cs->boot_id), "%08" PRIx32, (uint32_t)(seed ^ (seed >> 32)));
  if (m) {
    cs->pushes = metrics_counter(m, "edge_syncd_pushes_total", "Pushes sent to proxies.", "");
    cs->acks = metrics_counter(m, "edge_syncd_acks_total", "Pushes acknowledged by proxies.", "");
    cs->nacks = metrics_counter(m, "edge_syncd_nacks_total", "Pushes rejected by proxies.", "");
    cs->bytes = metrics_counter(m, "edge_syncd_push_bytes_total", "Bytes of pushes sent.", "");
    size_t nb;
    const double *b = metrics_default_latency_buckets(&nb);
    cs->push_ack = metrics_histogram(m, "edge_syncd_push_ack_seconds",
                                     "Time from sending a push to its Ack or Nack.", "", b, nb);
  }
  *out = cs;
  return 0;
}

static void node_clear_problems(struct cs_node *n) {
  for (size_t i = 0; i < n->pub.n_problems; i++) free(n->pub.problems[i]);
  free(n->pub.problems);
  n->pub.problems = NULL;
  n->pub.n_problems = 0;
}

/* Replaces the node's problems with the Ack's (logged when they change). */
static void node_set_problems(struct cs_node *n, const Edge__V1__Ack *a) {
  size_t want = a->n_problems < CONFIG_SYNC_MAX_PROBLEMS ? a->n_problems : CONFIG_SYNC_MAX_PROBLEMS;
  int same = want == n->pub.n_problems;
  for (size_t i = 0; same && i < want; i++)
    same = strcmp(n->pub.problems[i], a->problems[i] ? a->problems[i] : "") == 0;
  if (same) return;
  node_clear_problems(n);
  if (want && (n->pub.problems = calloc(want, sizeof(char *))) != NULL) {
    for (size_t i = 0; i < want; i++) {
      if (!(n->pub.problems[i] = xstrdup(a->problems[i]))) break;
      n->pub.n_problems++;
      LOG_WARN("node_problem", "node=%s problem=%s", log_q(n->pub.node_id),
               log_q(n->pub.problems[i]));
    }
  }
  if (!want) LOG_INFO("node_problems_cleared", "node=%s", log_q(n->pub.node_id));
}

static void node_free(struct registry_node *r) {
  struct cs_node *n = (struct cs_node *)r;
  struct cs_stream *st = n->reg.session;
  if (st) st->node = NULL;
  free(n->pub.address);
  free(n->pub.admin_address);
  free(n->pub.https_address);
  free(n->pub.zone);
  free(n->pub.build);
  free(n->pub.last_error);
  node_clear_problems(n);
}

void config_sync_free(struct config_sync *cs) {
  if (!cs) return;
  registry_free(&cs->nodes, node_free);
  free(cs);
}

void config_sync_set_authz(struct config_sync *cs, struct authz *a) {
  cs->authz = a;
}

void config_sync_on_node_event(struct config_sync *cs, config_sync_event_fn fn, void *ud) {
  cs->event_fn = fn;
  cs->event_ud = ud;
}

static void node_event(struct config_sync *cs, const struct cs_node *n, enum config_sync_event ev) {
  if (cs->event_fn) cs->event_fn(cs->event_ud, &n->pub, ev);
}

size_t config_sync_node_count(const struct config_sync *cs) {
  return registry_count(&cs->nodes);
}

static struct cs_node *node_at(const struct config_sync *cs, size_t i) {
  return (struct cs_node *)registry_at(&cs->nodes, i);
}

size_t config_sync_prune(struct config_sync *cs, int64_t now, int64_t max_age_s,
                         size_t max_disconnected) {
  size_t gone = 0, disconnected = 0;
  for (size_t i = 0; i < registry_count(&cs->nodes); i++)
    disconnected += node_at(cs, i)->reg.session == NULL;
  for (;;) {
    /* the oldest disconnected node: too old, or one too many */
    struct cs_node *oldest = NULL;
    for (size_t i = 0; i < registry_count(&cs->nodes); i++) {
      struct cs_node *n = node_at(cs, i);
      if (n->reg.session) continue;
      if (!oldest || n->pub.disconnected_at < oldest->pub.disconnected_at) oldest = n;
    }
    if (!oldest) break;
    if (oldest->pub.disconnected_at > now - max_age_s && disconnected <= max_disconnected) break;
    LOG_INFO("node_forgotten", "node=%s disconnected_at=%" PRId64, log_q(oldest->pub.node_id),
             oldest->pub.disconnected_at);
    registry_remove(&cs->nodes, &oldest->reg, node_free);
    disconnected--;
    gone++;
  }
  return gone;
}

const struct config_sync_node *config_sync_node_at(const struct config_sync *cs, size_t i) {
  struct cs_node *n = node_at(cs, i);
  return n ? &n->pub : NULL;
}

size_t config_sync_connected(const struct config_sync *cs) {
  return registry_connected(&cs->nodes);
}

int config_sync_node_state(const struct config_sync *cs, const struct config_sync_node *n) {
  if (!n->connected) return EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED;
  if (n->nacked) return EDGE__V1__NODE_STATE__NODE_STATE_NACKED;
  if (n->acked_version == store_version(cs->store) && n->applied)
    return EDGE__V1__NODE_STATE__NODE_STATE_SYNCED;
  return EDGE__V1__NODE_STATE__NODE_STATE_STALE;
}

static struct cs_node *node_find_or_add(struct config_sync *cs, const char *id) {
  struct cs_node *n = (struct cs_node *)registry_add(&cs->nodes, id);
  if (!n || n->pub.node_id) return n;
  n->pub.node_id = n->reg.id; /* a new node: the registry owns the id */
  n->pub.address = xstrdup("");
  n->pub.admin_address = xstrdup("");
  n->pub.https_address = xstrdup("");
  n->pub.zone = xstrdup("");
  n->pub.build = xstrdup("");
  n->pub.last_error = xstrdup("");
  return n;
}

/* The stream no longer serves its node: mark the node disconnected. */
static void stream_detach(struct cs_stream *st) {
  struct cs_node *n = st->node;
  if (!n) return;
  st->node = NULL;
  if (!registry_detach(&n->reg, st)) return; /* a replaced stream speaks for nobody */
  n->pub.connected = 0;
  n->pub.disconnected_at = now_s();
  LOG_INFO("node_disconnected", "node=%s acked=%" PRIu64 " draining=%d", log_q(n->pub.node_id),
           n->pub.acked_version, n->pub.draining);
  node_event(st->cs, n, CONFIG_SYNC_DISCONNECTED);
}

/* Ends a call because of a bad message; the node's accepted state stays. */
static void stream_reject(struct cs_stream *st, const char *reason) {
  LOG_WARN("stream_rejected", "peer=%s node=%s reason=%s", log_q(rpc_call_peer(st->call)),
           log_q(st->node ? st->node->pub.node_id : ""), log_q(reason));
  st->finished = 1;
  rpc_call_finish(st->call, RPC_STATUS_INVALID_ARGUMENT, reason);
  stream_detach(st);
}

static void push_node(struct config_sync *cs, struct cs_node *n) {
  struct cs_stream *st = n->reg.session;
  uint64_t version = store_version(cs->store);
  if (!st || st->finished || version == 0) return;
  /* One push in flight: the next waits until the last is written and
   * answered, whatever the transport would buffer meanwhile. */
  if (n->awaiting) {
    const struct cs_sent *last = &n->sent[(n->sent_next + CS_NONCES - 1) % CS_NONCES];
    if (uv_hrtime() / 1000000 - last->sent_ms < CS_ANSWER_TIMEOUT_MS) return; /* answer re-calls */
    LOG_WARN("push_unanswered", "node=%s version=%" PRIu64, log_q(n->pub.node_id), last->version);
    n->awaiting = 0;
    n->need_full = 1;
  }
  /* Never queue, newest wins: on_drained or the answer comes back here. */
  if (!registry_send_due(&n->reg, n->pub.pushed_version, version, rpc_call_pending(st->call) > 0))
    return;
  struct store_delta d;
  if (store_delta(cs->store, n->pub.pushed_version, n->need_full, &d) != 0) return;
  struct cs_sent *s = &n->sent[n->sent_next % CS_NONCES];
  snprintf(s->nonce, sizeof(s->nonce), "%s-%" PRIu64, cs->boot_id, ++cs->push_seq);
  uint8_t *buf;
  size_t len;
  int rc = store_pack_push(&d, s->nonce, &buf, &len);
  int full = d.full;
  size_t nup = d.n_upserted, nrm = d.n_removed;
  /* the names a small delta carries, for the debug line (a weight change is one route) */
  char names[512] = "";
  size_t no = 0;
  for (size_t i = 0; !full && i < nup + nrm && i < 8 && no < sizeof(names) - 1; i++) {
    const struct store_entry *e = i < nup ? d.upserted[i] : d.removed[i - nup];
    int k = snprintf(names + no, sizeof(names) - no, "%s%s%s", no ? "," : "", i < nup ? "+" : "-",
                     e->name);
    if (k > 0) no += (size_t)k;
  }
  if (no >= sizeof(names)) no = sizeof(names) - 1;
  store_delta_clear(&d);
  if (rc != 0) return;
  rc = rpc_call_send(st->call, buf, len);
  free(buf);
  if (rc != 0) {
    LOG_WARN("push_failed", "node=%s version=%" PRIu64 " err=%s", log_q(n->pub.node_id), version,
             log_q(rpc_strerror(rc)));
    return;
  }
  s->version = version;
  s->sent_ms = uv_hrtime() / 1000000;
  n->sent_next++;
  /* A full push is an event (at scale it is megabytes): logged at info. */
  if (full || log_get_level() <= LOG_LEVEL_DEBUG)
    log_emit(full ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, full ? "push_full" : "push",
             "node=%s version=%" PRIu64 " base=%" PRIu64
             " full=%d upserted=%zu removed=%zu bytes=%zu nonce=%s names=%s",
             log_q(n->pub.node_id), version, full ? (uint64_t)0 : n->pub.pushed_version, full, nup,
             nrm, len, s->nonce, log_q(names));
  n->pub.pushed_version = version;
  n->need_full = 0;
  n->awaiting = 1;
  if (cs->pushes) metrics_counter_inc(cs->pushes);
  if (cs->bytes) metrics_counter_add(cs->bytes, len);
}

void config_sync_notify(struct config_sync *cs) {
  for (size_t i = 0; i < registry_count(&cs->nodes); i++) push_node(cs, node_at(cs, i));
}

static const struct cs_sent *find_nonce(const struct cs_node *n, const char *nonce) {
  for (unsigned i = 0; i < CS_NONCES; i++)
    if (n->sent[i].nonce[0] && strcmp(n->sent[i].nonce, nonce) == 0) return &n->sent[i];
  return NULL;
}

static void observe_latency(struct config_sync *cs, const struct cs_sent *s) {
  if (!cs->push_ack) return;
  uint64_t now = uv_hrtime() / 1000000;
  metrics_histogram_observe(cs->push_ack, (double)(now - s->sent_ms) / 1000.0);
}

/* The node answered push s: when it was the latest, a newer version (if
 * any) may go out now. */
static void answered(struct config_sync *cs, struct cs_node *n, const struct cs_sent *s) {
  const struct cs_sent *latest = &n->sent[(n->sent_next + CS_NONCES - 1) % CS_NONCES];
  if (s != latest) return;
  n->awaiting = 0;
  push_node(cs, n);
}

static void node_apply_hello(struct cs_node *n, const Edge__V1__Hello *h) {
  set_str(&n->pub.address, h->address);
  set_str(&n->pub.admin_address, h->admin_address);
  set_str(&n->pub.https_address, h->https_address);
  set_str(&n->pub.zone, h->zone);
  set_str(&n->pub.build, h->build);
  n->pub.weight = h->weight ? h->weight : 1;
  n->pub.draining = h->draining;
}

static void on_hello(struct cs_stream *st, const Edge__V1__Hello *h) {
  struct config_sync *cs = st->cs;
  if (!h->node_id || !h->node_id[0]) {
    stream_reject(st, "Hello without node_id");
    return;
  }
  char why[256];
  if (authz_check(cs->authz, st->call, "ConfigSync", AUTHZ_L7PROXY, h->node_id, why, sizeof(why)) !=
      0) {
    /* before the node is looked up: a refused Hello evicts nobody */
    st->finished = 1;
    rpc_call_finish(st->call, RPC_STATUS_PERMISSION_DENIED, why);
    return;
  }
  struct cs_node *n = node_find_or_add(cs, h->node_id);
  if (!n) {
    st->finished = 1;
    rpc_call_finish(st->call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  struct cs_stream *old = registry_attach(&n->reg, st);
  if (old) {
    LOG_INFO("node_replaced", "node=%s", log_q(n->pub.node_id));
    old->node = NULL;
    old->finished = 1;
    rpc_call_finish(old->call, RPC_STATUS_CANCELLED, "replaced by a newer stream of this node");
  }
  node_apply_hello(n, h);
  uint64_t version = store_version(cs->store);
  st->node = n;
  n->pub.connected = 1;
  n->pub.connected_since = now_s();
  n->pub.disconnected_at = 0;
  n->pub.nacked = 0;
  set_str(&n->pub.last_error, "");
  n->need_full = 0;
  n->awaiting = 0;
  memset(n->sent, 0, sizeof(n->sent));
  n->sent_next = 0;
  n->pub.acked_version = h->last_applied_version;
  /* Versions name content: a proxy already serving the current version
   * needs nothing, and one at a version the store still knows (before a
   * syncd restart, a network cut, another replica fed the same source)
   * needs only what changed since; anything else gets the full state. */
  n->pub.applied = version > 0 && h->last_applied_version == version;
  n->pub.pushed_version = n->pub.applied ? version
                          : store_knows(cs->store, h->last_applied_version)
                              ? h->last_applied_version
                              : 0;
  LOG_INFO("node_connected",
           "node=%s peer=%s address=%s zone=%s build=%s last_applied=%" PRIu64 " version=%" PRIu64
           " resync=%s",
           log_q(n->pub.node_id), log_q(rpc_call_peer(st->call)), log_q(n->pub.address),
           log_q(n->pub.zone), log_q(n->pub.build), h->last_applied_version, version,
           n->pub.applied          ? "none"
           : n->pub.pushed_version ? "delta"
                                   : "full");
  node_event(cs, n, CONFIG_SYNC_CONNECTED);
  if (n->pub.applied) node_event(cs, n, CONFIG_SYNC_APPLIED);
  push_node(cs, n);
}

static void on_update(struct cs_stream *st, const Edge__V1__Hello *h) {
  struct cs_node *n = st->node;
  int draining = n->pub.draining;
  node_apply_hello(n, h);
  if (draining != n->pub.draining)
    LOG_INFO("node_draining", "node=%s draining=%d", log_q(n->pub.node_id), n->pub.draining);
  node_event(st->cs, n, CONFIG_SYNC_UPDATED);
}

static void on_ack(struct cs_stream *st, const Edge__V1__Ack *a) {
  struct cs_node *n = st->node;
  const struct cs_sent *s = find_nonce(n, a->nonce ? a->nonce : "");
  if (!s) {
    char why[160];
    snprintf(why, sizeof(why), "Ack for unknown nonce %.64s", a->nonce ? a->nonce : "");
    stream_reject(st, why);
    return;
  }
  observe_latency(st->cs, s);
  if (st->cs->acks) metrics_counter_inc(st->cs->acks);
  int first = !n->pub.applied;
  n->pub.acked_version = s->version;
  n->pub.applied = 1;
  n->pub.nacked = 0;
  set_str(&n->pub.last_error, "");
  node_set_problems(n, a);
  LOG_DEBUG("ack", "node=%s version=%" PRIu64, log_q(n->pub.node_id), s->version);
  if (first) node_event(st->cs, n, CONFIG_SYNC_APPLIED);
  answered(st->cs, n, s);
}

static void on_nack(struct cs_stream *st, const Edge__V1__Nack *k) {
  struct cs_node *n = st->node;
  const struct cs_sent *s = find_nonce(n, k->nonce ? k->nonce : "");
  if (!s) {
    char why[160];
    snprintf(why, sizeof(why), "Nack for unknown nonce %.64s", k->nonce ? k->nonce : "");
    stream_reject(st, why);
    return;
  }
  observe_latency(st->cs, s);
  if (st->cs->nacks) metrics_counter_inc(st->cs->nacks);
  n->pub.nacked = 1;
  n->need_full = 1;
  set_str(&n->pub.last_error, k->error && k->error[0] ? k->error : "rejected without a reason");
  LOG_WARN("nack", "node=%s version=%" PRIu64 " acked=%" PRIu64 " error=%s", log_q(n->pub.node_id),
           s->version, n->pub.acked_version, log_q(n->pub.last_error));
  answered(st->cs, n, s);
}

/* ---- rpc callbacks ---------------------------------------------------- */

static void cs_on_call(void *ud, struct rpc_call *call) {
  struct cs_stream *st = calloc(1, sizeof(*st));
  if (!st) {
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  st->cs = ud;
  st->call = call;
  rpc_call_set_data(call, st);
}

static void cs_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct cs_stream *st = rpc_call_get_data(call);
  if (!st || st->finished) return;
  Edge__V1__ProxyMessage *m = edge__v1__proxy_message__unpack(NULL, len, data);
  if (!m) {
    stream_reject(st, "unparseable ProxyMessage");
    return;
  }
  if (!st->node && m->msg_case != EDGE__V1__PROXY_MESSAGE__MSG_HELLO) {
    stream_reject(st, "the first message must be Hello");
  } else {
    switch (m->msg_case) {
      case EDGE__V1__PROXY_MESSAGE__MSG_HELLO:
        if (st->node)
          on_update(st, m->hello);
        else
          on_hello(st, m->hello);
        break;
      case EDGE__V1__PROXY_MESSAGE__MSG_UPDATE:
        on_update(st, m->update);
        break;
      case EDGE__V1__PROXY_MESSAGE__MSG_ACK:
        on_ack(st, m->ack);
        break;
      case EDGE__V1__PROXY_MESSAGE__MSG_NACK:
        on_nack(st, m->nack);
        break;
      default:
        stream_reject(st, "empty ProxyMessage");
        break;
    }
  }
  edge__v1__proxy_message__free_unpacked(m, NULL);
}

static void cs_on_half_close(void *ud, struct rpc_call *call) {
  struct cs_stream *st = rpc_call_get_data(call);
  if (!st || st->finished) return;
  st->finished = 1;
  rpc_call_finish(call, RPC_STATUS_OK, NULL);
  stream_detach(st);
}

static void cs_on_drained(void *ud, struct rpc_call *call) {
  struct cs_stream *st = rpc_call_get_data(call);
  if (st && st->node && st->node->reg.session == st) push_node(st->cs, st->node);
}

static void cs_on_done(void *ud, struct rpc_call *call) {
  struct cs_stream *st = rpc_call_get_data(call);
  if (!st) return;
  stream_detach(st);
  rpc_call_set_data(call, NULL);
  free(st);
}

int config_sync_register(struct config_sync *cs, struct rpc_server *srv) {
  static const struct rpc_call_handler h = {
      .on_call = cs_on_call,
      .on_message = cs_on_message,
      .on_half_close = cs_on_half_close,
      .on_drained = cs_on_drained,
      .on_done = cs_on_done,
  };
  return rpc_server_add_method(srv, CONFIG_SYNC_METHOD, RPC_BIDI_STREAM, &h, cs);
}
