/*
 * config_client — ConfigSync client glue (contract in config_client.h).
 *
 * Lifecycle: start → rpc stream open → on_open sends Hello → each message
 * goes through l7_config_handle_message → Ack/Nack sent, snapshot
 * published. A malformed message closes the rpc stream and a timer opens a
 * new one later; close() waits for every stream it closed and for the
 * timer before calling done, so no callback can reach freed memory.
 */
#include "l7proxy/config_client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin.h"
#include "common/explain.h"
#include "common/log.h"
#include "edge/v1/config_sync.pb-c.h"

struct l7_config_client {
  uv_loop_t *loop;
  struct rpc_runtime *rt;
  struct l7_config_store *store;
  char *target, *cert_file, *key_file, *ca_file, *server_name;
  struct rpc_creds creds;
  uint32_t backoff_initial_ms, backoff_max_ms, reset_delay_ms;
  char *node_id, *address, *admin_address, *https_address, *zone, *build;
  uint32_t weight;
  int draining;
  struct rpc_stream *stream;
  int streams_closing; /* closed streams whose done has not run yet */
  uv_timer_t reset_timer;
  int timer_closed;
  struct l7_config_client_hooks hooks;
  void *ud;
  struct l7_config_client_stats stats;
  struct metrics_counter *m_ack, *m_nack, *m_malformed, *m_connects;
  struct metrics_gauge *m_connected, *m_version;
  int closing;
  void (*done)(void *arg);
  void *done_arg;
};

/* ---- the decision (pure) --------------------------------------------- */

static int cc_pack_reply(const Edge__V1__ProxyMessage *pm, uint8_t **reply, size_t *reply_len) {
  *reply_len = edge__v1__proxy_message__get_packed_size(pm);
  *reply = malloc(*reply_len ? *reply_len : 1);
  if (!*reply) return -ENOMEM;
  edge__v1__proxy_message__pack(pm, *reply);
  return 0;
}

int l7_config_handle_message(struct l7_config_store *st, const uint8_t *data, size_t len,
                             uint8_t **reply, size_t *reply_len, struct l7_snapshot **snap,
                             char *reason, size_t reasonlen, uint64_t *version) {
  *reply = NULL;
  *reply_len = 0;
  *snap = NULL;
  if (version) *version = 0;
  if (reason && reasonlen) reason[0] = '\0';
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, data);
  if (!m) {
    if (reason) snprintf(reason, reasonlen, "unparseable SyncMessage (%zu bytes)", len);
    return L7_CONFIG_MALFORMED;
  }
  if (m->msg_case != EDGE__V1__SYNC_MESSAGE__MSG_PUSH || !m->push) {
    if (reason) snprintf(reason, reasonlen, "SyncMessage without a push (case %d)", m->msg_case);
    edge__v1__sync_message__free_unpacked(m, NULL);
    return L7_CONFIG_MALFORMED;
  }
  Edge__V1__Push *push = m->push;
  if (version) *version = push->version;
  char why[512] = "";
  int rc = l7_config_store_apply_unpacked(st, push, snap, why, sizeof(why));
  Edge__V1__ProxyMessage pm = EDGE__V1__PROXY_MESSAGE__INIT;
  Edge__V1__Ack ack = EDGE__V1__ACK__INIT;
  Edge__V1__Nack nack = EDGE__V1__NACK__INIT;
  if (rc == 0) {
    ack.nonce = push->nonce;
    ack.version = push->version;
    pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
    pm.ack = &ack;
  } else {
    if (!why[0]) snprintf(why, sizeof(why), "apply failed: %s", strerror(-rc));
    nack.nonce = push->nonce;
    nack.version = push->version;
    nack.error = why;
    pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_NACK;
    pm.nack = &nack;
    if (reason) snprintf(reason, reasonlen, "%s", why);
  }
  int prc = cc_pack_reply(&pm, reply, reply_len);
  edge__v1__sync_message__free_unpacked(m, NULL);
  if (prc < 0) {
    /* Cannot answer: keep what was applied, syncd will see no Ack and the
     * next push brings it back in step. */
    LOG_ERROR("config_reply_failed", "reason=out_of_memory");
  }
  return rc == 0 ? L7_CONFIG_ACK : L7_CONFIG_NACK;
}

/* ---- glue ------------------------------------------------------------- */

static void cc_register_metrics(struct l7_config_client *c, struct metrics_registry *r) {
  if (!r) return;
  static const char pushes[] = "Pushes from syncd by outcome.";
  c->m_ack = metrics_counter(r, "edge_l7_config_pushes_total", pushes, "result=\"ack\"");
  c->m_nack = metrics_counter(r, "edge_l7_config_pushes_total", pushes, "result=\"nack\"");
  c->m_malformed =
      metrics_counter(r, "edge_l7_config_pushes_total", pushes, "result=\"malformed\"");
  c->m_connects = metrics_counter(r, "edge_l7_config_connects_total",
                                  "ConfigSync streams opened to syncd.", "");
  c->m_connected =
      metrics_gauge(r, "edge_l7_config_connected", "1 while the ConfigSync stream is open.", "");
  c->m_version = metrics_gauge(r, "edge_l7_config_applied_version",
                               "Version of the configuration being served.", "");
}

static void cc_set_connected(struct l7_config_client *c, int connected) {
  c->stats.connected = connected;
  if (c->m_connected) metrics_gauge_set(c->m_connected, connected);
}

static int cc_open_stream(struct l7_config_client *c);

static void cc_send_hello(struct l7_config_client *c, int update) {
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.node_id = c->node_id;
  h.address = c->address;
  h.admin_address = c->admin_address;
  h.https_address = c->https_address;
  h.zone = c->zone;
  h.build = c->build;
  h.weight = c->weight;
  h.draining = c->draining;
  h.last_applied_version = l7_config_store_version(c->store);
  Edge__V1__ProxyMessage pm = EDGE__V1__PROXY_MESSAGE__INIT;
  if (update) {
    pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_UPDATE;
    pm.update = &h;
  } else {
    pm.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
    pm.hello = &h;
  }
  uint8_t *buf;
  size_t len;
  if (cc_pack_reply(&pm, &buf, &len) < 0) return;
  int rc = rpc_stream_send(c->stream, buf, len);
  free(buf);
  if (rc < 0)
    LOG_WARN("config_hello_not_sent", "syncd=%s update=%d error=%s", log_q(c->target), update,
             log_q(rpc_strerror(rc)));
}

static void cc_on_open(void *ud) {
  struct l7_config_client *c = ud;
  c->stats.connects++;
  cc_set_connected(c, 1);
  if (c->m_connects) metrics_counter_inc(c->m_connects);
  LOG_INFO("config_stream_open", "syncd=%s replica=%s node=%s last_applied_version=%" PRIu64,
           log_q(c->target), log_q(rpc_stream_target(c->stream)), log_q(c->node_id),
           l7_config_store_version(c->store));
  cc_send_hello(c, 0);
  if (c->hooks.on_connection) c->hooks.on_connection(c->ud, 1);
}

/* Frees the client and every string it copied. */
static void cc_free(struct l7_config_client *c) {
  free(c->target);
  free(c->cert_file);
  free(c->key_file);
  free(c->ca_file);
  free(c->server_name);
  free(c->node_id);
  free(c->address);
  free(c->admin_address);
  free(c->https_address);
  free(c->zone);
  free(c->build);
  free(c);
}

static void cc_on_stream_done(void *arg) {
  struct l7_config_client *c = arg;
  c->streams_closing--;
  if (c->closing && c->streams_closing == 0 && c->timer_closed) {
    void (*done)(void *) = c->done;
    void *darg = c->done_arg;
    cc_free(c);
    if (done) done(darg);
  }
}

static void cc_on_timer_closed(uv_handle_t *h) {
  struct l7_config_client *c = h->data;
  c->timer_closed = 1;
  /* Reuse the stream-done path for the final free (counts balance). */
  c->streams_closing++;
  cc_on_stream_done(c);
}

static void cc_on_reset_timer(uv_timer_t *t) {
  struct l7_config_client *c = t->data;
  if (!c->closing && !c->stream) cc_open_stream(c);
}

static void cc_reset_stream(struct l7_config_client *c) {
  if (!c->stream) return;
  struct rpc_stream *s = c->stream;
  c->stream = NULL;
  c->streams_closing++;
  int was_connected = c->stats.connected;
  cc_set_connected(c, 0);
  rpc_stream_close(s, cc_on_stream_done, c);
  if (was_connected && c->hooks.on_connection) c->hooks.on_connection(c->ud, 0);
  uv_timer_start(&c->reset_timer, cc_on_reset_timer, c->reset_delay_ms, 0);
}

/* Re-packs the Ack in *reply with problems[0..n) (the Ack is built by the
 * pure l7_config_handle_message, which knows nothing of the TLS store). On
 * failure the Ack goes out without them. */
static void cc_ack_add_problems(uint8_t **reply, size_t *reply_len, const char *const *problems,
                                size_t n) {
  Edge__V1__ProxyMessage *pm = edge__v1__proxy_message__unpack(NULL, *reply_len, *reply);
  if (!pm || pm->msg_case != EDGE__V1__PROXY_MESSAGE__MSG_ACK) {
    if (pm) edge__v1__proxy_message__free_unpacked(pm, NULL);
    return;
  }
  Edge__V1__Ack ack = *pm->ack;
  ack.n_problems = n;
  ack.problems = (char **)problems;
  Edge__V1__ProxyMessage out = EDGE__V1__PROXY_MESSAGE__INIT;
  out.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  out.ack = &ack;
  uint8_t *buf;
  size_t len;
  if (cc_pack_reply(&out, &buf, &len) == 0) {
    free(*reply);
    *reply = buf;
    *reply_len = len;
  }
  edge__v1__proxy_message__free_unpacked(pm, NULL);
}

static void cc_on_message(void *ud, const uint8_t *data, size_t len) {
  struct l7_config_client *c = ud;
  uint8_t *reply;
  size_t reply_len;
  struct l7_snapshot *snap;
  char reason[512];
  uint64_t version;
  int v = l7_config_handle_message(c->store, data, len, &reply, &reply_len, &snap, reason,
                                   sizeof(reason), &version);
  if (v == L7_CONFIG_MALFORMED) {
    c->stats.malformed++;
    if (c->m_malformed) metrics_counter_inc(c->m_malformed);
    LOG_WARN("config_message_malformed", "syncd=%s reason=%s action=reset_stream", log_q(c->target),
             log_q(reason));
    cc_reset_stream(c);
    return;
  }
  if (v == L7_CONFIG_ACK) {
    c->stats.acks++;
    c->stats.last_acked_version = version;
    if (c->m_ack) metrics_counter_inc(c->m_ack);
    if (c->m_version) metrics_gauge_set(c->m_version, (double)version);
    l7_snapshot_publish(snap);
    LOG_INFO("config_applied", "version=%" PRIu64 " resources=%zu replica=%s", version,
             l7_config_store_size(c->store), log_q(rpc_stream_target(c->stream)));
    if (c->hooks.on_applied) c->hooks.on_applied(c->ud, version);
    size_t np = 0;
    const char *const *problems = c->hooks.problems ? c->hooks.problems(c->ud, &np) : NULL;
    if (np && reply) cc_ack_add_problems(&reply, &reply_len, problems, np);
  } else {
    c->stats.nacks++;
    if (c->m_nack) metrics_counter_inc(c->m_nack);
    LOG_WARN("config_rejected", "version=%" PRIu64 " serving_version=%" PRIu64 " reason=%s",
             version, l7_config_store_version(c->store), log_q(reason));
  }
  if (reply) {
    int rc = rpc_stream_send(c->stream, reply, reply_len);
    if (rc < 0)
      LOG_WARN("config_reply_not_sent", "version=%" PRIu64 " error=%s", version,
               log_q(rpc_strerror(rc)));
    free(reply);
  }
  if (v == L7_CONFIG_NACK && c->hooks.on_rejected) c->hooks.on_rejected(c->ud, version, reason);
}

static void cc_on_close(void *ud, int status, const char *details, uint32_t backoff_ms) {
  struct l7_config_client *c = ud;
  int was_connected = c->stats.connected;
  cc_set_connected(c, 0);
  LOG_WARN("config_stream_closed",
           "syncd=%s replica=%s status=%d details=%s retry_ms=%u serving_version=%" PRIu64,
           log_q(c->target), log_q(rpc_stream_target(c->stream)), status,
           log_q(details ? details : ""), backoff_ms, l7_config_store_version(c->store));
  if (was_connected && c->hooks.on_connection) c->hooks.on_connection(c->ud, 0);
}

static int cc_open_stream(struct l7_config_client *c) {
  struct rpc_stream_opts o = {
      .target = c->target,
      .method = L7_CONFIG_SYNC_METHOD,
      .creds = c->creds,
      .backoff_initial_ms = c->backoff_initial_ms,
      .backoff_max_ms = c->backoff_max_ms,
  };
  struct rpc_stream_callbacks cb = {
      .on_open = cc_on_open, .on_message = cc_on_message, .on_close = cc_on_close};
  int rc = rpc_stream_open(c->rt, &o, &cb, c, &c->stream);
  if (rc < 0) {
    c->stream = NULL;
    LOG_ERROR("config_stream_open_failed", "syncd=%s error=%s", log_q(c->target),
              log_q(rpc_strerror(rc)));
    uv_timer_start(&c->reset_timer, cc_on_reset_timer,
                   c->backoff_max_ms ? c->backoff_max_ms : RPC_RECONNECT_MAX_DEFAULT_MS, 0);
  }
  return rc;
}

static char *cc_dup(const char *s) {
  return s ? strdup(s) : NULL;
}
static char *cc_dup_empty(const char *s) {
  return strdup(s ? s : "");
}

int l7_config_client_start(uv_loop_t *loop, struct rpc_runtime *rt, struct l7_config_store *store,
                           const struct l7_config_client_opts *opts,
                           const struct l7_config_client_hooks *hooks, void *ud,
                           struct l7_config_client **out) {
  if (!loop || !rt || !store || !opts || !opts->syncd || !out) return RPC_ERR_INVALID;
  struct l7_config_client *c = calloc(1, sizeof(*c));
  if (!c) return RPC_ERR_NOMEM;
  c->loop = loop;
  c->rt = rt;
  c->store = store;
  c->target = cc_dup(opts->syncd);
  c->cert_file = cc_dup(opts->creds.cert_file);
  c->key_file = cc_dup(opts->creds.key_file);
  c->ca_file = cc_dup(opts->creds.ca_file);
  c->server_name = cc_dup(opts->creds.server_name_override);
  c->creds = (struct rpc_creds){.cert_file = c->cert_file,
                                .key_file = c->key_file,
                                .ca_file = c->ca_file,
                                .insecure = opts->creds.insecure,
                                .server_name_override = c->server_name};
  c->node_id = cc_dup_empty(opts->node_id);
  c->address = cc_dup_empty(opts->address);
  c->admin_address = cc_dup_empty(opts->admin_address);
  c->https_address = cc_dup_empty(opts->https_address);
  c->zone = cc_dup_empty(opts->zone);
  c->build = cc_dup_empty(opts->build);
  c->weight = opts->weight;
  c->backoff_initial_ms = opts->backoff_initial_ms;
  c->backoff_max_ms = opts->backoff_max_ms;
  c->reset_delay_ms = opts->reset_delay_ms ? opts->reset_delay_ms : 1000;
  if (hooks) c->hooks = *hooks;
  c->ud = ud;
  c->stats.last_acked_version = l7_config_store_version(store);
  cc_register_metrics(c, opts->metrics);
  if (c->m_version) metrics_gauge_set(c->m_version, (double)c->stats.last_acked_version);
  if (!c->target || !c->node_id || !c->address || !c->admin_address || !c->https_address ||
      !c->zone || !c->build || (opts->creds.cert_file && !c->cert_file) ||
      (opts->creds.key_file && !c->key_file) || (opts->creds.ca_file && !c->ca_file)) {
    cc_free(c);
    return RPC_ERR_NOMEM;
  }
  uv_timer_init(loop, &c->reset_timer);
  c->reset_timer.data = c;
  int rc = cc_open_stream(c);
  if (rc < 0) {
    /* Bad credentials are a configuration error the caller reports. */
    uv_timer_stop(&c->reset_timer);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->reset_timer, cc_on_timer_closed);
    return rc;
  }
  *out = c;
  return 0;
}

int l7_config_client_set_draining(struct l7_config_client *c, int draining) {
  if (!c || c->closing) return RPC_ERR_INVALID;
  c->draining = draining ? 1 : 0;
  LOG_INFO("config_draining", "draining=%d connected=%d", c->draining, c->stats.connected);
  if (c->stream && rpc_stream_is_open(c->stream)) cc_send_hello(c, 1);
  return 0;
}

void l7_config_client_stats(const struct l7_config_client *c, struct l7_config_client_stats *out) {
  *out = c->stats;
}

void l7_config_client_close(struct l7_config_client *c, void (*done)(void *arg), void *arg) {
  if (!c || c->closing) return;
  c->closing = 1;
  c->done = done;
  c->done_arg = arg;
  if (c->stream) {
    struct rpc_stream *s = c->stream;
    c->stream = NULL;
    c->streams_closing++;
    rpc_stream_close(s, cc_on_stream_done, c);
  }
  uv_timer_stop(&c->reset_timer);
  uv_close((uv_handle_t *)&c->reset_timer, cc_on_timer_closed);
}

/* ---- admin ------------------------------------------------------------ */

static void cc_reply_json(struct admin_response *resp, int status, char *body) {
  resp->status = status;
  resp->content_type = "application/json";
  resp->body = body;
  resp->body_len = body ? strlen(body) : 0;
}

void l7_config_admin_config(void *ud, const char *path, const char *query,
                            struct admin_response *resp) {
  (void)ud, (void)path, (void)query;
  struct l7_snapshot *s = l7_snapshot_current();
  if (!s) {
    admin_reply(resp, 503, "application/json", "{\"error\": \"no configuration applied\"}\n");
    return;
  }
  char *json = l7_snapshot_to_json(s);
  l7_snapshot_unref(s);
  if (!json) {
    admin_reply(resp, 500, NULL, "out of memory\n");
    return;
  }
  cc_reply_json(resp, 200, json);
}

void l7_config_admin_explain(void *ud, const char *path, const char *query,
                             struct admin_response *resp) {
  (void)ud, (void)path;
  char url[2048] = "", host[512] = "", rpath[2048] = "", sni[512] = "", method[32] = "";
  int have_url = admin_query_get(query, "url", url, sizeof(url)) == 0 && url[0];
  int have_host = admin_query_get(query, "host", host, sizeof(host)) == 0 && host[0];
  if (!have_url && !have_host) {
    admin_reply(resp, 400, NULL,
                "usage: /explain?url=URL[&sni=NAME][&header=NAME:VALUE]...[&method=M] or "
                "/explain?host=HOST&path=/PATH\n");
    return;
  }
  if (admin_query_get(query, "path", rpath, sizeof(rpath)) < 0) snprintf(rpath, sizeof(rpath), "/");
  if (admin_query_get(query, "sni", sni, sizeof(sni)) < 0) sni[0] = '\0';
  if (admin_query_get(query, "method", method, sizeof(method)) < 0) method[0] = '\0';
  /* Repeated header= parameters: walk the query one pair at a time. */
  enum { CC_MAX_HEADERS = 16 };
  char hbuf[CC_MAX_HEADERS][512];
  const char *hdrs[CC_MAX_HEADERS];
  size_t nh = 0;
  for (const char *q = query; q && *q && nh < CC_MAX_HEADERS;) {
    size_t l = strcspn(q, "&");
    if (l > 7 && strncmp(q, "header=", 7) == 0) {
      char one[600];
      snprintf(one, sizeof(one), "%.*s", (int)(l < 590 ? l : 590), q);
      if (admin_query_get(one, "header", hbuf[nh], sizeof(hbuf[nh])) == 0) {
        hdrs[nh] = hbuf[nh];
        nh++;
      }
    }
    q += l + (q[l] == '&');
  }
  struct l7_snapshot *s = l7_snapshot_current();
  if (!s) {
    admin_reply(resp, 503, "application/json", "{\"error\": \"no configuration applied\"}\n");
    return;
  }
  struct explain_request req = {.https_port = ud ? *(const uint16_t *)ud : 0,
                                .url = have_url ? url : NULL,
                                .host = host,
                                .path = rpath,
                                .sni = sni,
                                .headers = hdrs,
                                .n_headers = nh,
                                .method = method};
  char *json = NULL, err[512] = "";
  int rc = l7_snapshot_explain(s, &req, &json, err, sizeof(err));
  l7_snapshot_unref(s);
  if (rc != 0) {
    char msg[600];
    snprintf(msg, sizeof(msg), "%s\n", err[0] ? err : "cannot explain this request");
    admin_reply(resp, rc == EXPLAIN_ERR_INVALID ? 400 : 500, NULL, msg);
    return;
  }
  cc_reply_json(resp, 200, json);
}
