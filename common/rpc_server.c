/*
 * rpc_server — the gRPC server and its calls (rpc.h): one request for a new
 * call outstanding at a time, one SEND_MESSAGE in flight per call with the
 * rest queued, and on_done exactly once for every announced call. A call
 * is freed when its last batch completes; the server when its shutdown is
 * notified and no call or request is left.
 */
#include "common/rpc_internal.h"

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct rpc_method {
  struct rpc_method *next;
  char *name;
  enum rpc_method_kind kind;
  struct rpc_call_handler h;
  void *ud;
};

struct rpc_server {
  struct rpc_runtime *rt;
  grpc_server *server;
  grpc_server_credentials *creds;
  char *listen;
  struct rpc_method *methods;
  int port, started, shutting_down, shutdown_notified;
  struct rpc_tag t_request, t_shutdown;
  grpc_call *new_call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  int request_pending;
  int live_calls;
  void (*done)(void *arg);
  void *done_arg;
};

struct rpc_call {
  struct rpc_server *srv;
  const struct rpc_method *m; /* NULL: unimplemented, answered by us */
  grpc_call *call;
  int refs;
  struct rpc_tag t_meta, t_recv, t_send, t_close, t_finish;
  grpc_byte_buffer *recv_bb;
  int cancelled; /* written by RECV_CLOSE_ON_SERVER */
  struct rpc_sendq q;
  int sending, recv_active, closed, finish_wanted, finish_sent, half_closed;
  int announced; /* on_call ran, so on_done must run */
  grpc_status_code finish_status;
  grpc_slice finish_details;
  char *peer, *identity;
  char **uris; /* URI SANs of the verified client certificate */
  size_t n_uris;
  int secure; /* the call arrived over TLS */
  void *data;
};

static void rpc_server_request(struct rpc_server *srv);

static void rpc_server_maybe_free(struct rpc_server *srv) {
  if (!srv->shutdown_notified || srv->request_pending || srv->live_calls > 0) return;
  void (*done)(void *) = srv->done;
  void *arg = srv->done_arg;
  grpc_server_destroy(srv->server);
  if (srv->creds) grpc_server_credentials_release(srv->creds);
  grpc_call_details_destroy(&srv->details);
  grpc_metadata_array_destroy(&srv->request_md);
  while (srv->methods) {
    struct rpc_method *m = srv->methods;
    srv->methods = m->next;
    free(m->name);
    free(m);
  }
  free(srv->listen);
  rpc_live_dec(srv->rt);
  free(srv);
  if (done) done(arg);
}

static void rpc_call_release(struct rpc_call *c) {
  if (c->refs > 0) return;
  struct rpc_server *srv = c->srv;
  if (c->announced && c->m->h.on_done) c->m->h.on_done(c->m->ud, c);
  grpc_call_unref(c->call);
  rpc_sendq_clear(&c->q);
  rpc_sendq_done(&c->q);
  grpc_slice_unref(c->finish_details);
  free(c->peer);
  free(c->identity);
  for (size_t i = 0; i < c->n_uris; i++) free(c->uris[i]);
  free(c->uris);
  free(c);
  srv->live_calls--;
  rpc_server_maybe_free(srv);
}

static void rpc_call_pump(struct rpc_call *c) {
  if (c->sending || c->closed || c->finish_sent) return;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  struct rpc_tag *tag = &c->t_send;
  if (c->q.head) {
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = rpc_sendq_pop(&c->q);
  } else if (c->finish_wanted) {
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = c->finish_status;
    op.data.send_status_from_server.status_details = &c->finish_details;
    tag = &c->t_finish;
    c->finish_sent = 1;
  } else {
    return;
  }
  if (grpc_call_start_batch(c->call, &op, 1, tag, NULL) != GRPC_CALL_OK) {
    LOG_ERROR("rpc_start_batch_failed", "peer=%s op=%s", c->peer,
              tag == &c->t_send ? "send" : "finish");
    rpc_sendq_done(&c->q);
    grpc_call_cancel(c->call, NULL);
    return;
  }
  if (tag == &c->t_send) c->sending = 1;
  c->refs++;
}

static void rpc_call_on_send(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_send);
  c->refs--;
  c->sending = 0;
  rpc_sendq_done(&c->q);
  if (!ok) rpc_sendq_clear(&c->q);
  rpc_call_pump(c);
  if (ok && c->q.len == 0 && !c->closed && !c->finish_wanted && c->m->h.on_drained &&
      !c->srv->shutting_down)
    c->m->h.on_drained(c->m->ud, c);
  rpc_call_release(c);
}

static void rpc_call_on_finish(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_finish);
  c->refs--;
  if (!c->m) c->closed = 1; /* the unimplemented batch carried RECV_CLOSE */
  rpc_call_release(c);
}

static void rpc_call_on_meta(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_meta);
  c->refs--;
  rpc_call_release(c);
}

static void rpc_call_on_close(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_close);
  c->refs--;
  c->closed = 1;
  rpc_sendq_clear(&c->q);
  rpc_call_release(c);
}

static void rpc_call_arm_recv(struct rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  if (grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) return;
  c->recv_active = 1;
  c->refs++;
}

static void rpc_call_on_recv(struct rpc_tag *tag, int ok) {
  struct rpc_call *c = container_of(tag, struct rpc_call, t_recv);
  c->refs--;
  c->recv_active = 0;
  grpc_byte_buffer *bb = c->recv_bb;
  c->recv_bb = NULL;
  /* After rpc_call_finish the handler has said its last word. */
  int live = !c->closed && !c->finish_wanted && !c->srv->shutting_down;
  if (ok && bb) {
    if (live && c->m->h.on_message) {
      grpc_slice msg = rpc_read_all(bb);
      c->m->h.on_message(c->m->ud, c, GRPC_SLICE_START_PTR(msg), GRPC_SLICE_LENGTH(msg));
      grpc_slice_unref(msg);
    }
    grpc_byte_buffer_destroy(bb);
    if (!c->closed) rpc_call_arm_recv(c);
  } else {
    if (bb) grpc_byte_buffer_destroy(bb);
    if (ok && live && !c->half_closed) {
      c->half_closed = 1;
      if (c->m->h.on_half_close) c->m->h.on_half_close(c->m->ud, c);
    }
  }
  rpc_call_release(c);
}

/* CN of the verified client certificate, or "". */
static char *rpc_call_identity_of(grpc_call *call) {
  grpc_auth_context *ctx = grpc_call_auth_context(call);
  char *out = NULL;
  if (ctx) {
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p && p->value) out = strndup(p->value, p->value_length);
    grpc_auth_context_release(ctx);
  }
  return out ? out : strdup("");
}

/* The URI SANs of the verified client certificate (gRPC's "peer_uri"
 * properties) and whether the transport is TLS at all. */
static void rpc_call_uris_of(struct rpc_call *c) {
  grpc_auth_context *ctx = grpc_call_auth_context(c->call);
  if (!ctx) return;
  grpc_auth_property_iterator it =
      grpc_auth_context_find_properties_by_name(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  c->secure = p && p->value && p->value_length == strlen(GRPC_SSL_TRANSPORT_SECURITY_TYPE) &&
              memcmp(p->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE, p->value_length) == 0;
  it = grpc_auth_context_find_properties_by_name(ctx, GRPC_PEER_URI_PROPERTY_NAME);
  while ((p = grpc_auth_property_iterator_next(&it)) != NULL && c->n_uris < 16) {
    char **grown = realloc(c->uris, (c->n_uris + 1) * sizeof(*grown));
    if (!grown) break;
    c->uris = grown;
    if (!(c->uris[c->n_uris] = strndup(p->value ? p->value : "", p->value_length))) break;
    c->n_uris++;
  }
  grpc_auth_context_release(ctx);
}

static void rpc_server_accept(struct rpc_server *srv, grpc_call *call) {
  struct rpc_call *c = calloc(1, sizeof(*c));
  if (!c) {
    grpc_call_cancel(call, NULL);
    grpc_call_unref(call);
    return;
  }
  c->srv = srv;
  c->call = call;
  c->finish_details = grpc_empty_slice();
  c->t_meta.fn = rpc_call_on_meta;
  c->t_recv.fn = rpc_call_on_recv;
  c->t_send.fn = rpc_call_on_send;
  c->t_close.fn = rpc_call_on_close;
  c->t_finish.fn = rpc_call_on_finish;
  char *peer = grpc_call_get_peer(call);
  c->peer = rpc_strdup(peer ? peer : "");
  gpr_free(peer);
  c->identity = rpc_call_identity_of(call);
  rpc_call_uris_of(c);
  srv->live_calls++;
  for (const struct rpc_method *m = srv->methods; m; m = m->next) {
    if (grpc_slice_str_cmp(srv->details.method, m->name) == 0) {
      c->m = m;
      break;
    }
  }
  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  if (!c->m) {
    char *name = grpc_slice_to_c_string(srv->details.method);
    LOG_INFO("rpc_unknown_method", "method=%s peer=%s", log_q(name), log_q(c->peer));
    gpr_free(name);
    c->finish_sent = c->finish_wanted = 1;
    c->finish_details = grpc_slice_from_static_string("unknown method");
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &c->finish_details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(call, ops, 3, &c->t_finish, NULL) == GRPC_CALL_OK) c->refs++;
    rpc_call_release(c);
    return;
  }
  /* Initial metadata goes out at once: it tells the client the server is
   * really there (the client's backoff resets only after that). */
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (grpc_call_start_batch(call, ops, 1, &c->t_meta, NULL) == GRPC_CALL_OK) c->refs++;
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
  if (grpc_call_start_batch(call, ops, 1, &c->t_close, NULL) == GRPC_CALL_OK)
    c->refs++;
  else
    c->closed = 1;
  if (!c->closed) rpc_call_arm_recv(c);
  if (!c->closed) {
    c->announced = 1;
    if (c->m->h.on_call) c->m->h.on_call(c->m->ud, c);
  }
  rpc_call_release(c);
}

static void rpc_server_on_request(struct rpc_tag *tag, int ok) {
  struct rpc_server *srv = container_of(tag, struct rpc_server, t_request);
  srv->request_pending = 0;
  grpc_call *call = srv->new_call;
  srv->new_call = NULL;
  if (ok && call) {
    if (srv->shutting_down) {
      grpc_call_cancel(call, NULL);
      grpc_call_unref(call);
    } else {
      rpc_server_accept(srv, call);
    }
  }
  grpc_call_details_destroy(&srv->details);
  grpc_metadata_array_destroy(&srv->request_md);
  grpc_call_details_init(&srv->details);
  grpc_metadata_array_init(&srv->request_md);
  if (!srv->shutting_down && ok) rpc_server_request(srv);
  rpc_server_maybe_free(srv);
}

static void rpc_server_request(struct rpc_server *srv) {
  grpc_call_error e =
      grpc_server_request_call(srv->server, &srv->new_call, &srv->details, &srv->request_md,
                               srv->rt->cq, srv->rt->cq, &srv->t_request);
  if (e == GRPC_CALL_OK)
    srv->request_pending = 1;
  else
    LOG_ERROR("rpc_request_call_failed", "listen=%s error=%d", srv->listen, (int)e);
}

static void rpc_server_on_shutdown(struct rpc_tag *tag, int ok) {
  struct rpc_server *srv = container_of(tag, struct rpc_server, t_shutdown);
  srv->shutdown_notified = 1;
  rpc_server_maybe_free(srv);
}

int rpc_server_new(struct rpc_runtime *rt, const struct rpc_server_opts *opts,
                   struct rpc_server **out, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (!rt || !opts || !opts->listen || !out) {
    snprintf(err, errlen, "missing runtime, options or listen address");
    return RPC_ERR_INVALID;
  }
  grpc_server_credentials *creds = NULL;
  if (opts->creds.insecure) {
    creds = grpc_insecure_server_credentials_create();
  } else {
    if (!opts->creds.cert_file || !opts->creds.key_file) {
      snprintf(err, errlen, "a TLS server needs cert and key (or insecure)");
      return RPC_ERR_CREDS;
    }
    struct rpc_pems p;
    int rc = rpc_pems_load(&opts->creds, &p, err, errlen);
    if (rc < 0) return rc;
    grpc_ssl_pem_key_cert_pair pair = {p.key, p.cert};
    creds = grpc_ssl_server_credentials_create_ex(
        p.ca, &pair, 1,
        p.ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    rpc_pems_free(&p);
    if (!creds) {
      snprintf(err, errlen, "invalid TLS server credentials");
      return RPC_ERR_CREDS;
    }
  }
  struct rpc_server *srv = calloc(1, sizeof(*srv));
  if (!srv) {
    grpc_server_credentials_release(creds);
    return RPC_ERR_NOMEM;
  }
  grpc_arg args[3] = {
      rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0), /* a second server must fail to bind */
      rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, RPC_MAX_MESSAGE),
      rpc_int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000),
  };
  grpc_channel_args ca = {3, args};
  srv->rt = rt;
  rpc_live_inc(rt);
  srv->creds = creds;
  srv->listen = rpc_strdup(opts->listen);
  srv->server = grpc_server_create(&ca, NULL);
  grpc_server_register_completion_queue(srv->server, rt->cq, NULL);
  srv->t_request.fn = rpc_server_on_request;
  srv->t_shutdown.fn = rpc_server_on_shutdown;
  grpc_call_details_init(&srv->details);
  grpc_metadata_array_init(&srv->request_md);
  *out = srv;
  return 0;
}

int rpc_server_add_method(struct rpc_server *srv, const char *method, enum rpc_method_kind kind,
                          const struct rpc_call_handler *h, void *ud) {
  if (!srv || !method || !h || srv->started) return RPC_ERR_INVALID;
  struct rpc_method *m = calloc(1, sizeof(*m));
  if (!m) return RPC_ERR_NOMEM;
  m->name = rpc_strdup(method);
  m->kind = kind;
  m->h = *h;
  m->ud = ud;
  m->next = srv->methods;
  srv->methods = m;
  return 0;
}

int rpc_server_start(struct rpc_server *srv, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  if (!srv || srv->started) {
    snprintf(err, errlen, "server missing or already started");
    return RPC_ERR_INVALID;
  }
  int port = grpc_server_add_http2_port(srv->server, srv->listen, srv->creds);
  if (port <= 0) {
    snprintf(err, errlen, "cannot listen on %s", srv->listen);
    return RPC_ERR_BIND;
  }
  srv->port = port;
  grpc_server_start(srv->server);
  srv->started = 1;
  rpc_server_request(srv);
  LOG_INFO("rpc_server_listening", "listen=%s port=%d", srv->listen, port);
  return 0;
}

int rpc_server_port(const struct rpc_server *srv) {
  return srv ? srv->port : 0;
}

void rpc_server_shutdown(struct rpc_server *srv, void (*done)(void *arg), void *arg) {
  if (!srv || srv->shutting_down) return;
  srv->shutting_down = 1;
  srv->done = done;
  srv->done_arg = arg;
  grpc_server_shutdown_and_notify(srv->server, srv->rt->cq, &srv->t_shutdown);
  grpc_server_cancel_all_calls(srv->server);
}

int rpc_call_send(struct rpc_call *c, const uint8_t *data, size_t len) {
  if (!c || !c->m || (!data && len)) return RPC_ERR_INVALID;
  if (c->closed || c->finish_wanted || c->srv->shutting_down) return RPC_ERR_CLOSED;
  int rc = rpc_sendq_push(&c->q, data, len);
  if (rc == 0) rpc_call_pump(c);
  return rc;
}

size_t rpc_call_pending(const struct rpc_call *c) {
  return c ? c->q.len : 0;
}

int rpc_call_finish(struct rpc_call *c, int status, const char *details) {
  if (!c || !c->m || status < 0 || status > 16) return RPC_ERR_INVALID;
  if (c->closed || c->finish_wanted) return RPC_ERR_CLOSED;
  c->finish_wanted = 1;
  c->finish_status = (grpc_status_code)status;
  grpc_slice_unref(c->finish_details);
  c->finish_details = grpc_slice_from_copied_string(details ? details : "");
  rpc_call_pump(c);
  return 0;
}

const char *rpc_call_peer(const struct rpc_call *c) {
  return c && c->peer ? c->peer : "";
}

const char *rpc_call_peer_identity(const struct rpc_call *c) {
  return c && c->identity ? c->identity : "";
}

int rpc_call_peer_is_tls(const struct rpc_call *c) {
  return c && c->secure;
}

size_t rpc_call_peer_uris(const struct rpc_call *c, const char *const **uris) {
  *uris = c ? (const char *const *)c->uris : NULL;
  return c ? c->n_uris : 0;
}

void rpc_call_set_data(struct rpc_call *c, void *data) {
  if (c) c->data = data;
}

void *rpc_call_get_data(const struct rpc_call *c) {
  return c ? c->data : NULL;
}
