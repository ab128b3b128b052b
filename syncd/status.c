/*
 * status — Status.Get and the /config JSON dump (see status.h).
 *
 * The response is assembled from borrowed strings (node records, the
 * certificate facts, the store's typed report) and packed at once; only
 * the arrays built here are freed afterwards. Certificate facts come from
 * syncd/certfacts, which follows the store change by change (a changed
 * certificate is parsed once; a one-route change parses none).
 *
 * Expiry: every certificate's seconds to expiry is the gauge
 * edge_syncd_certificate_expiry_seconds{certificate="ns/name"}, its handle
 * kept with the fact: set for the certificates a new version changed, and
 * for all of them each minute by a uv timer; certificates
 * expiring within the warning window (--expiry-warning) are flagged in
 * Status and logged as one warn line each, once a day.
 *
 * Node and source health for dashboards and alerts, refreshed every second
 * by the same timer: edge_syncd_node_state{node,kind,state} is 1 for the
 * node's current state (SYNCED, STALE, NACKED, DISCONNECTED) and 0 for the
 * three others, so every label value exists before it is needed (the
 * kube-state-metrics convention); series of forgotten nodes are removed.
 * edge_syncd_source_healthy{source} is 1 while the source syncs, 0 not.
 */
#include "syncd/status.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "common/cert.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pb_json.h"
#include "common/rpc.h"
#include "edge/v1/resources.pb-c.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/authz.h"
#include "syncd/certfacts.h"
#include "syncd/config_sync.h"
#include "syncd/membership.h"
#include "syncd/replicas.h"
#include "syncd/store.h"

struct status {
  struct store *store;
  struct config_sync *cs;
  struct membership *mb;
  char *build;
  int64_t started_at;
  char *replica;
  status_leader_fn leader;
  void *leader_ud;
  status_source_fn source;
  void *source_ud;
  struct certfacts *facts;
  int64_t warn_seconds; /* expiry warning window */
  struct metrics_registry *metrics;
  int64_t last_warn_log; /* when expiring certificates were last logged */
  struct authz *authz;
  char **node_labels; /* label sets of edge_syncd_node_state series */
  size_t n_node_labels;
  char *source_labels; /* label set of edge_syncd_source_healthy */
  unsigned ticks;
  uv_timer_t timer;
  int timer_started;
  void (*stopped)(void *);
  void *stopped_arg;
};

int status_new(struct store *store, struct config_sync *cs, struct membership *mb,
               const char *build, int64_t started_at, status_source_fn source, void *source_ud,
               struct status **out) {
  struct status *st = calloc(1, sizeof(*st));
  if (!st) return -1;
  st->store = store;
  st->cs = cs;
  st->mb = mb;
  st->build = strdup(build ? build : "");
  st->started_at = started_at;
  st->source = source;
  st->source_ud = source_ud;
  st->warn_seconds = (int64_t)STATUS_EXPIRY_WARN_DAYS * 86400;
  if (!st->build || certfacts_new(&st->facts) != 0) {
    free(st->build);
    free(st);
    return -1;
  }
  *out = st;
  return 0;
}

static void strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int strv_push(char ***v, size_t *n, const char *s) {
  char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
  if (!nv) return -1;
  *v = nv;
  if (!(nv[*n] = strdup(s))) return -1;
  (*n)++;
  return 0;
}

void status_free(struct status *st) {
  if (!st) return;
  certfacts_free(st->facts);
  strv_free(st->node_labels, st->n_node_labels);
  free(st->source_labels);
  free(st->build);
  free(st->replica);
  free(st);
}

void status_set_replica(struct status *st, const char *replica, status_leader_fn leader, void *ud) {
  free(st->replica);
  st->replica = strdup(replica ? replica : "");
  st->leader = leader;
  st->leader_ud = ud;
}

int status_build(struct status *st, uint8_t **out, size_t *len) {
  Edge__V1__StatusResponse resp = EDGE__V1__STATUS_RESPONSE__INIT;
  resp.build = st->build;
  resp.replica = st->replica ? st->replica : "";
  Edge__V1__LeaderStatus ls = EDGE__V1__LEADER_STATUS__INIT;
  struct status_leader sl;
  memset(&sl, 0, sizeof(sl));
  if (st->leader) {
    st->leader(st->leader_ud, &sl);
    ls.enabled = sl.enabled;
    ls.leader = sl.leader;
    ls.identity = sl.identity;
    ls.holder = sl.holder;
    ls.lease = sl.lease;
    ls.transitions = sl.transitions;
    ls.renew_time = sl.renew_time;
    ls.error = sl.error;
  }
  resp.leader = &ls;
  resp.version = store_version(st->store);
  resp.version_time = store_version_time(st->store);
  resp.version_seq = store_seq(st->store);
  resp.source_generation = store_generation(st->store);
  resp.started_at = st->started_at;

  /* Source health. */
  Edge__V1__SourceStatus src = EDGE__V1__SOURCE_STATUS__INIT;
  Edge__V1__SourceStatus *srcp = &src;
  char sname[512] = "", smsg[512] = "";
  if (st->source) {
    int healthy = 0;
    int64_t last_sync = 0;
    st->source(st->source_ud, sname, sizeof(sname), &healthy, smsg, sizeof(smsg), &last_sync);
    src.name = sname;
    src.healthy = healthy;
    src.message = smsg;
    src.last_sync = last_sync;
    resp.n_sources = 1;
    resp.sources = &srcp;
  }

  /* Object counts and rejected objects, kept as the store's meta. */
  const Edge__V1__StatusResponse *m = store_report(st->store); /* typed, never unpacked here */
  if (m) {
    resp.n_objects = m->n_objects;
    resp.objects = m->objects;
    resp.n_rejected = m->n_rejected;
    resp.rejected = m->rejected;
    resp.n_ignored = m->n_ignored;
    resp.ignored = m->ignored;
    resp.n_gateway_objects = m->n_gateway_objects; /* syncd/gateway.h statuses */
    resp.gateway_objects = m->gateway_objects;
  }
  resp.expiry_warning_seconds = st->warn_seconds;

  /* Nodes: every l7proxy config_sync knows, then known replicas that have
   * not reconnected since syncd started, then the l4lbs. */
  const struct replicas *known = st->mb ? membership_replicas(st->mb) : NULL;
  size_t n7 = config_sync_node_count(st->cs);
  size_t nk = known ? replicas_count(known) : 0;
  size_t n4 = st->mb ? membership_watcher_count(st->mb) : 0;
  size_t total = n7 + nk + n4, k = 0;
  Edge__V1__NodeStatus *nodes = calloc(total + 1, sizeof(*nodes));
  Edge__V1__NodeStatus **np = calloc(total + 1, sizeof(*np));
  char(*reasons)[256] = calloc(n7 + nk + 1, sizeof(*reasons));
  /* Certificates. */
  status_refresh_expiry(st);
  struct cert_fact *const *facts;
  size_t n_certs = certfacts_sorted(st->facts, &facts);
  Edge__V1__CertificateStatus *certs = calloc(n_certs + 1, sizeof(*certs));
  Edge__V1__CertificateStatus **cp = calloc(n_certs + 1, sizeof(*cp));
  int rc = -1;
  Edge__V1__Refusal *refs = NULL, **rp = NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (!nodes || !np || !certs || !cp || !reasons) goto out;
  for (size_t i = 0; i < n7; i++) {
    const struct config_sync_node *n = config_sync_node_at(st->cs, i);
    Edge__V1__NodeStatus *s = &nodes[k];
    edge__v1__node_status__init(s);
    s->node_id = n->node_id;
    s->kind = EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY;
    s->address = n->address;
    s->zone = n->zone;
    s->build = n->build;
    s->connected_since = n->connected_since;
    s->last_pushed_version = n->pushed_version;
    s->last_acked_version = n->acked_version;
    s->state = config_sync_node_state(st->cs, n);
    s->last_error = n->last_error;
    s->draining = n->draining;
    s->disconnected_at = n->disconnected_at;
    s->n_problems = n->n_problems;
    s->problems = n->problems;
    s->last_seen = n->connected ? now_ms / 1000 : n->disconnected_at;
    const struct replica *p = known ? replicas_find(known, n->node_id) : NULL;
    s->in_replica_set = p && p->in_set;
    s->replica_reason =
        p ? (char *)replica_reason(p, replicas_removal_timeout(known), now_ms, reasons[k],
                                   sizeof(reasons[k]))
          : "out: not tracked (unusable node_id, or gone longer than the removal timeout)";
    np[k++] = s;
  }
  for (size_t i = 0; i < nk; i++) {
    const struct replica *p = replicas_at(known, i);
    int listed = 0;
    for (size_t j = 0; j < n7 && !listed; j++)
      listed = strcmp(config_sync_node_at(st->cs, j)->node_id, p->node_id) == 0;
    if (listed) continue;
    Edge__V1__NodeStatus *s = &nodes[k];
    edge__v1__node_status__init(s);
    s->node_id = p->node_id;
    s->kind = EDGE__V1__NODE_KIND__NODE_KIND_L7PROXY;
    s->address = p->address;
    s->zone = p->zone;
    s->build = "";
    s->state = EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED;
    s->last_error = "";
    s->draining = p->draining;
    s->last_seen = p->last_seen_ms / 1000;
    s->disconnected_at = p->last_seen_ms / 1000;
    s->in_replica_set = p->in_set;
    s->replica_reason = (char *)replica_reason(p, replicas_removal_timeout(known), now_ms,
                                               reasons[k], sizeof(reasons[k]));
    np[k++] = s;
  }
  for (size_t i = 0; i < n4; i++) {
    const struct membership_watcher *w = membership_watcher_at(st->mb, i);
    Edge__V1__NodeStatus *s = &nodes[k];
    edge__v1__node_status__init(s);
    s->node_id = w->node_id;
    s->kind = EDGE__V1__NODE_KIND__NODE_KIND_L4LB;
    s->address = w->address;
    s->build = w->build;
    s->connected_since = w->connected_since;
    /* Replica sets are not acked: what was sent is what the l4lb has. */
    s->last_pushed_version = w->sent_version;
    s->last_acked_version = w->sent_version;
    if (!w->connected)
      s->state = EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED;
    else if (w->sent_version == membership_version(st->mb))
      s->state = EDGE__V1__NODE_STATE__NODE_STATE_SYNCED;
    else
      s->state = EDGE__V1__NODE_STATE__NODE_STATE_STALE;
    s->last_error = "";
    s->disconnected_at = w->disconnected_at;
    s->last_seen = w->connected ? now_ms / 1000 : w->disconnected_at;
    s->replica_reason = "";
    np[k++] = s;
  }
  resp.n_nodes = k;
  resp.nodes = np;

  /* Refusals. */
  const struct authz_refusal *ar;
  size_t nr = authz_refusals(st->authz, &ar);
  refs = calloc(nr + 1, sizeof(*refs));
  rp = calloc(nr + 1, sizeof(*rp));
  if (!refs || !rp) goto out;
  for (size_t i = 0; i < nr; i++) {
    edge__v1__refusal__init(&refs[i]);
    refs[i].method = (char *)ar[i].method;
    refs[i].peer = (char *)ar[i].peer;
    refs[i].identity = (char *)ar[i].identity;
    refs[i].node_id = (char *)ar[i].node_id;
    refs[i].reason = (char *)ar[i].reason;
    refs[i].last_at = ar[i].last_at;
    refs[i].count = ar[i].count;
    rp[i] = &refs[i];
  }
  resp.n_refusals = nr;
  resp.refusals = rp;

  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < n_certs; i++) {
    const struct cert_fact *f = facts[i];
    Edge__V1__CertificateStatus *c = &certs[i];
    edge__v1__certificate_status__init(c);
    c->name = f->name;
    c->n_sni_names = f->n_sni;
    c->sni_names = f->sni;
    c->not_after = f->not_after;
    c->issuer = f->issuer ? f->issuer : "";
    c->n_hosts = f->n_hosts;
    c->hosts = f->hosts;
    c->expiring = f->not_after && f->not_after - now < st->warn_seconds;
    c->source = f->source ? f->source : "";
    c->is_default = f->is_default;
    cp[i] = c;
  }
  resp.n_certificates = n_certs;
  resp.certificates = cp;

  *len = edge__v1__status_response__get_packed_size(&resp);
  *out = malloc(*len ? *len : 1);
  if (!*out) goto out;
  edge__v1__status_response__pack(&resp, *out);
  rc = 0;
out:
  free(nodes);
  free(np);
  free(reasons);
  free(certs);
  free(cp);
  free(refs);
  free(rp);
  return rc;
}

/* ---- certificate expiry --------------------------------------------------- */

#define STATUS_EXPIRY_GAUGE "edge_syncd_certificate_expiry_seconds"
#define STATUS_TICK_MS 1000    /* node and source gauges */
#define STATUS_EXPIRY_TICKS 60 /* certificate expiry: every minute */
#define STATUS_NODE_GAUGE "edge_syncd_node_state"
#define STATUS_SOURCE_GAUGE "edge_syncd_source_healthy"

void status_set_expiry_warning(struct status *st, int64_t seconds) {
  st->warn_seconds = seconds;
}

static void expiry_labels(const char *name, char *out, size_t len) {
  char esc[400];
  metrics_escape_label(name, esc, sizeof(esc));
  snprintf(out, len, "certificate=\"%s\"", esc);
}

/* The expiry gauge of a fact: looked up once, kept in f->user. */
static void expiry_gauge_set(void *ud, struct cert_fact *f) {
  struct status *st = ud;
  if (!st->metrics) return;
  if (!f->user && f->not_after) {
    char labels[512];
    expiry_labels(f->name, labels, sizeof(labels));
    f->user =
        metrics_gauge(st->metrics, STATUS_EXPIRY_GAUGE,
                      "Seconds until the certificate's notAfter (negative: expired).", labels);
  }
  if (f->user) metrics_gauge_set(f->user, (double)(f->not_after - (int64_t)time(NULL)));
}

static void expiry_gauge_drop(void *ud, struct cert_fact *f) {
  struct status *st = ud;
  if (!st->metrics || !f->user) return;
  char labels[512];
  expiry_labels(f->name, labels, sizeof(labels));
  metrics_remove(st->metrics, STATUS_EXPIRY_GAUGE, labels);
  f->user = NULL;
}

/* One warn line per expiring certificate, once a day (the first as soon
 * as a state is there). */
static void warn_expiring(struct status *st, struct cert_fact *const *facts, size_t n) {
  int64_t now = (int64_t)time(NULL);
  if (store_version(st->store) == 0) return;
  if (st->last_warn_log && now - st->last_warn_log < 86400) return;
  st->last_warn_log = now;
  for (size_t i = 0; i < n; i++) {
    const struct cert_fact *f = facts[i];
    if (!f->not_after || f->not_after - now >= st->warn_seconds) continue;
    char hosts[1024] = "";
    size_t hl = 0;
    for (size_t k = 0; k < f->n_hosts && hl < sizeof(hosts) - 1; k++)
      hl += (size_t)snprintf(hosts + hl, sizeof(hosts) - hl, "%s%s", k ? "," : "", f->hosts[k]);
    LOG_WARN("certificate_expiring",
             "certificate=%s expires_in_seconds=%lld not_after=%lld hosts=%s source=%s",
             log_q(f->name), (long long)(f->not_after - now), (long long)f->not_after, log_q(hosts),
             log_q(f->source ? f->source : ""));
  }
}

void status_refresh_expiry(struct status *st) {
  static const struct certfacts_hooks hooks = {expiry_gauge_set, expiry_gauge_drop};
  certfacts_refresh(st->facts, st->store, &hooks, st);
  int64_t now = (int64_t)time(NULL);
  if (store_version(st->store) && (!st->last_warn_log || now - st->last_warn_log >= 86400)) {
    struct cert_fact *const *facts;
    size_t n = certfacts_sorted(st->facts, &facts);
    warn_expiring(st, facts, n);
  }
}

/* Every gauge anew (seconds to expiry change with time). */
static void expiry_tick_all(struct status *st) {
  status_refresh_expiry(st);
  struct cert_fact *const *facts;
  size_t n = certfacts_sorted(st->facts, &facts);
  for (size_t i = 0; i < n; i++) expiry_gauge_set(st, facts[i]);
}

static const char *const STATE_NAMES[] = {"SYNCED", "STALE", "NACKED", "DISCONNECTED"};

/* Sets the four state series of one node and remembers their labels. */
static void node_gauges(struct status *st, char ***seen, size_t *n_seen, const char *node,
                        const char *kind, int state) {
  char esc[400], labels[600];
  metrics_escape_label(node, esc, sizeof(esc));
  for (int k = 0; k < 4; k++) {
    snprintf(labels, sizeof(labels), "node=\"%s\",kind=\"%s\",state=\"%s\"", esc, kind,
             STATE_NAMES[k]);
    struct metrics_gauge *g = metrics_gauge(
        st->metrics, STATUS_NODE_GAUGE, "1 for the node's current state (syncd's view).", labels);
    if (g) metrics_gauge_set(g, state == k + 1 ? 1 : 0);
    strv_push(seen, n_seen, labels);
  }
}

static int strv_has(char **v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0) return 1;
  return 0;
}

void status_refresh_health(struct status *st) {
  if (!st->metrics) return;
  char **seen = NULL;
  size_t n_seen = 0;
  size_t n7 = config_sync_node_count(st->cs);
  for (size_t i = 0; i < n7; i++) {
    const struct config_sync_node *n = config_sync_node_at(st->cs, i);
    node_gauges(st, &seen, &n_seen, n->node_id, "l7proxy", config_sync_node_state(st->cs, n));
  }
  size_t n4 = st->mb ? membership_watcher_count(st->mb) : 0;
  for (size_t i = 0; i < n4; i++) {
    const struct membership_watcher *w = membership_watcher_at(st->mb, i);
    int state = !w->connected ? 4 : w->sent_version == membership_version(st->mb) ? 1 : 2;
    node_gauges(st, &seen, &n_seen, w->node_id, "l4lb", state);
  }
  for (size_t i = 0; i < st->n_node_labels; i++)
    if (!strv_has(seen, n_seen, st->node_labels[i]))
      metrics_remove(st->metrics, STATUS_NODE_GAUGE, st->node_labels[i]);
  strv_free(st->node_labels, st->n_node_labels);
  st->node_labels = seen;
  st->n_node_labels = n_seen;

  if (st->source) {
    char name[512] = "", msg[512] = "", esc[600], labels[700];
    int healthy = 0;
    int64_t last_sync = 0;
    st->source(st->source_ud, name, sizeof(name), &healthy, msg, sizeof(msg), &last_sync);
    metrics_escape_label(name, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "source=\"%s\"", esc);
    if (st->source_labels && strcmp(st->source_labels, labels) != 0) {
      metrics_remove(st->metrics, STATUS_SOURCE_GAUGE, st->source_labels);
      free(st->source_labels);
      st->source_labels = NULL;
    }
    if (!st->source_labels) st->source_labels = strdup(labels);
    struct metrics_gauge *g = metrics_gauge(st->metrics, STATUS_SOURCE_GAUGE,
                                            "1 while the configuration source syncs.", labels);
    if (g) metrics_gauge_set(g, healthy ? 1 : 0);
  }
}

static void expiry_tick(uv_timer_t *t) {
  struct status *st = t->data;
  status_refresh_health(st);
  if (st->ticks++ % STATUS_EXPIRY_TICKS == 0) expiry_tick_all(st);
}

int status_start_expiry(struct status *st, uv_loop_t *loop, struct metrics_registry *metrics) {
  st->metrics = metrics;
  if (uv_timer_init(loop, &st->timer) != 0) return -1;
  st->timer.data = st;
  st->timer_started = 1;
  return uv_timer_start(&st->timer, expiry_tick, 0, STATUS_TICK_MS) == 0 ? 0 : -1;
}

static void expiry_closed(uv_handle_t *h) {
  struct status *st = h->data;
  if (st->stopped) st->stopped(st->stopped_arg);
}

void status_stop(struct status *st, void (*done)(void *arg), void *arg) {
  st->stopped = done;
  st->stopped_arg = arg;
  if (!st->timer_started) {
    if (done) done(arg);
    return;
  }
  st->timer_started = 0;
  uv_close((uv_handle_t *)&st->timer, expiry_closed);
}

/* ---- Status.Get ------------------------------------------------------- */

void status_set_authz(struct status *st, struct authz *a) {
  st->authz = a;
}

static void st_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct status *st = ud;
  char why[256];
  if (authz_check(st->authz, call, "Status", AUTHZ_SYNCCTL, NULL, why, sizeof(why)) != 0) {
    rpc_call_finish(call, RPC_STATUS_PERMISSION_DENIED, why);
    return;
  }
  Edge__V1__StatusRequest *req = edge__v1__status_request__unpack(NULL, len, data);
  if (!req) {
    rpc_call_finish(call, RPC_STATUS_INVALID_ARGUMENT, "unparseable StatusRequest");
    return;
  }
  edge__v1__status_request__free_unpacked(req, NULL);
  uint8_t *out;
  size_t out_len;
  if (status_build(st, &out, &out_len) != 0) {
    rpc_call_finish(call, RPC_STATUS_INTERNAL, "out of memory");
    return;
  }
  rpc_call_send(call, out, out_len);
  free(out);
  rpc_call_finish(call, RPC_STATUS_OK, NULL);
}

int status_register(struct status *st, struct rpc_server *srv) {
  static const struct rpc_call_handler h = {.on_message = st_on_message};
  return rpc_server_add_method(srv, STATUS_METHOD, RPC_UNARY, &h, st);
}

/* ---- /config ---------------------------------------------------------- */

int status_config_json(const struct store *store, char **out, size_t *len) {
  json_t *root = json_object();
  json_t *arr = json_array();
  json_object_set_new(root, "version", json_integer((json_int_t)store_version(store)));
  json_object_set_new(root, "seq", json_integer((json_int_t)store_seq(store)));
  json_object_set_new(root, "generation", json_integer((json_int_t)store_generation(store)));
  size_t n;
  struct store_entry *const *e = store_entries(store, &n);
  for (size_t i = 0; i < n; i++) {
    if (e[i]->removed) continue;
    Edge__V1__Resource *r = edge__v1__resource__unpack(NULL, e[i]->len, e[i]->bytes);
    if (!r) continue;
    /* key material never leaves: TLS keys, htpasswd hashes, affinity keys */
    json_t *j = pb_json_to_json(&r->base, "key_pem,htpasswd,hmac_key");
    if (j) json_array_append_new(arr, j);
    edge__v1__resource__free_unpacked(r, NULL);
  }
  json_object_set_new(root, "resources", arr);
  *out = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(root);
  if (!*out) return -1;
  *len = strlen(*out);
  return 0;
}
