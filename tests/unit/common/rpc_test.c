/*
 * rpc: real gRPC over 127.0.0.1 between rpc_server and the reconnecting
 * rpc_stream client, carrying edge.v1 protobuf-c messages: bidi round trip
 * (plaintext and mutual TLS with certificates made here), survival of a
 * server restart, unary calls, server streaming with pending/drained, and
 * the client's backoff sequence. Every wait polls the loop with a deadline.
 */
#include "common/rpc.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/membership.pb-c.h"
#include "edge/v1/status.pb-c.h"

#define BIDI_METHOD "/edge.v1.ConfigSync/Stream"
#define WATCH_METHOD "/edge.v1.Membership/Watch"
#define STATUS_METHOD "/edge.v1.Status/Get"
#define WAIT_MS 8000

static uv_loop_t loop;
static struct rpc_runtime *rt;
static uv_timer_t tick; /* wakes the loop so waits can check their deadline */
static char tmpdir[200];

static void on_tick(uv_timer_t *t) {}

/* Runs the loop until *v >= want or ms pass; returns 1 when reached. */
static int wait_count(const int *v, int want, uint64_t ms) {
  uint64_t deadline = uv_now(&loop) + ms;
  while (*v < want && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
  return *v >= want;
}

static int wait_atomic(atomic_int *v, uint64_t ms) {
  uint64_t deadline = uv_now(&loop) + ms;
  while (!atomic_load(v) && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
  return atomic_load(v);
}

static void count_done(void *arg) {
  (*(int *)arg)++;
}

/* ---- server side: a miniature syncd ------------------------------------ */

struct srv_state {
  struct rpc_server *srv;
  int calls, done, hellos, acks, half_closes, drained, shut;
  char hello_node[64], ack_nonce[64], identity[64];
  uint64_t ack_version;
  size_t big_nonce;     /* > 0: Push nonces this long (beyond gRPC's 4 MiB default) */
  size_t ack_nonce_len; /* untruncated length of the last Ack nonce */
  int silent;           /* do not answer Hello */
  int stream_replies;   /* Watch: how many ReplicaSets to send */
  size_t pending_after_sends;
  int send_after_finish_rc;
};

static void srv_on_call(void *ud, struct rpc_call *call) {
  struct srv_state *st = ud;
  st->calls++;
  snprintf(st->identity, sizeof(st->identity), "%s", rpc_call_peer_identity(call));
}

static void send_push(struct rpc_call *call, int n, size_t big) {
  Edge__V1__Push push = EDGE__V1__PUSH__INIT;
  char *nonce = malloc(big > 32 ? big + 1 : 32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(nonce);
  snprintf(nonce, 32, "n-%d", n);
  if (big > 32) {
    memset(nonce + strlen(nonce), 'x', big - strlen(nonce));
    nonce[big] = '\0';
  }
  push.version = 7;
  push.nonce = nonce;
  push.full = 1;
  Edge__V1__SyncMessage msg = EDGE__V1__SYNC_MESSAGE__INIT;
  msg.msg_case = EDGE__V1__SYNC_MESSAGE__MSG_PUSH;
  msg.push = &push;
  uint8_t *buf = malloc(edge__v1__sync_message__get_packed_size(&msg));
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  size_t len = edge__v1__sync_message__pack(&msg, buf);
  CU_ASSERT_EQUAL(rpc_call_send(call, buf, len), 0);
  free(buf);
  free(nonce);
}

static void bidi_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct srv_state *st = ud;
  Edge__V1__ProxyMessage *m = edge__v1__proxy_message__unpack(NULL, len, data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  if (m->msg_case == EDGE__V1__PROXY_MESSAGE__MSG_HELLO) {
    st->hellos++;
    snprintf(st->hello_node, sizeof(st->hello_node), "%s", m->hello->node_id);
    if (!st->silent) send_push(call, st->hellos, st->big_nonce);
  } else if (m->msg_case == EDGE__V1__PROXY_MESSAGE__MSG_ACK) {
    st->acks++;
    snprintf(st->ack_nonce, sizeof(st->ack_nonce), "%s", m->ack->nonce);
    st->ack_nonce_len = strlen(m->ack->nonce);
    st->ack_version = m->ack->version;
  }
  edge__v1__proxy_message__free_unpacked(m, NULL);
}

static void srv_on_done(void *ud, struct rpc_call *call) {
  ((struct srv_state *)ud)->done++;
}

static const struct rpc_call_handler bidi_handler = {
    .on_call = srv_on_call, .on_message = bidi_on_message, .on_done = srv_on_done};

static void watch_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct srv_state *st = ud;
  Edge__V1__WatchRequest *req = edge__v1__watch_request__unpack(NULL, len, data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(req);
  snprintf(st->hello_node, sizeof(st->hello_node), "%s", req->node_id);
  edge__v1__watch_request__free_unpacked(req, NULL);
  for (int i = 1; i <= st->stream_replies; i++) {
    Edge__V1__ReplicaSet set = EDGE__V1__REPLICA_SET__INIT;
    set.version = (uint64_t)i;
    uint8_t buf[64];
    size_t n = edge__v1__replica_set__pack(&set, buf);
    CU_ASSERT_EQUAL(rpc_call_send(call, buf, n), 0);
  }
  st->pending_after_sends = rpc_call_pending(call);
}

/* Finishes once every reply is written and the client half-closed. */
static void watch_maybe_finish(struct srv_state *st, struct rpc_call *call) {
  if (!st->drained || !st->half_closes) return;
  CU_ASSERT_EQUAL(rpc_call_finish(call, RPC_STATUS_OK, NULL), 0);
  st->send_after_finish_rc = rpc_call_send(call, (const uint8_t *)"x", 1);
}

static void watch_on_half_close(void *ud, struct rpc_call *call) {
  struct srv_state *st = ud;
  st->half_closes++;
  watch_maybe_finish(st, call);
}

static void watch_on_drained(void *ud, struct rpc_call *call) {
  struct srv_state *st = ud;
  st->drained++;
  CU_ASSERT_EQUAL(rpc_call_pending(call), 0);
  watch_maybe_finish(st, call);
}

static const struct rpc_call_handler watch_handler = {.on_call = srv_on_call,
                                                      .on_message = watch_on_message,
                                                      .on_half_close = watch_on_half_close,
                                                      .on_drained = watch_on_drained,
                                                      .on_done = srv_on_done};

static void status_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  Edge__V1__StatusRequest *req = edge__v1__status_request__unpack(NULL, len, data);
  CU_ASSERT_PTR_NOT_NULL(req);
  if (req) edge__v1__status_request__free_unpacked(req, NULL);
  Edge__V1__NodeStatus node = EDGE__V1__NODE_STATUS__INIT;
  node.node_id = "l7-a";
  node.last_acked_version = 42;
  uint8_t buf[64];
  size_t n = edge__v1__node_status__pack(&node, buf);
  CU_ASSERT_EQUAL(rpc_call_send(call, buf, n), 0);
  CU_ASSERT_EQUAL(rpc_call_finish(call, RPC_STATUS_OK, NULL), 0);
}

static const struct rpc_call_handler status_handler = {
    .on_call = srv_on_call, .on_message = status_on_message, .on_done = srv_on_done};

static void srv_on_shut(void *arg) {
  ((struct srv_state *)arg)->shut++;
}

static int start_server(struct srv_state *st, const char *listen, const struct rpc_creds *creds) {
  struct rpc_server_opts o = {.listen = listen, .creds = *creds};
  char err[256];
  int rc = rpc_server_new(rt, &o, &st->srv, err, sizeof(err));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_EQUAL(rpc_server_add_method(st->srv, BIDI_METHOD, RPC_BIDI_STREAM, &bidi_handler, st),
                  0);
  CU_ASSERT_EQUAL(
      rpc_server_add_method(st->srv, WATCH_METHOD, RPC_SERVER_STREAM, &watch_handler, st), 0);
  CU_ASSERT_EQUAL(rpc_server_add_method(st->srv, STATUS_METHOD, RPC_UNARY, &status_handler, st), 0);
  rc = rpc_server_start(st->srv, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "server start: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_TRUE(rpc_server_port(st->srv) > 0);
  return rpc_server_port(st->srv);
}

static void stop_server(struct srv_state *st) {
  int before = st->shut;
  rpc_server_shutdown(st->srv, srv_on_shut, st);
  CU_ASSERT_TRUE(wait_count(&st->shut, before + 1, WAIT_MS));
  CU_ASSERT_EQUAL(st->done, st->calls); /* every announced call got on_done */
  st->srv = NULL;
}

/* ---- client side: a miniature l7proxy --------------------------------- */

#define MAX_CLOSES 16

struct cli_state {
  struct rpc_stream *s;
  int kind; /* 0: ConfigSync (Hello, Ack pushes), 1: Watch */
  int opens, msgs, closes, closed;
  int statuses[MAX_CLOSES];
  uint32_t backoffs[MAX_CLOSES];
  char nonce[64];
  uint64_t versions[8];
  char last_details[256];
};

static void cli_on_open(void *ud) {
  struct cli_state *c = ud;
  c->opens++;
  uint8_t buf[128];
  size_t n;
  if (c->kind == 0) {
    Edge__V1__Hello hello = EDGE__V1__HELLO__INIT;
    hello.node_id = "l7-a";
    hello.address = "127.0.0.1:8080";
    Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
    m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
    m.hello = &hello;
    n = edge__v1__proxy_message__pack(&m, buf);
  } else {
    Edge__V1__WatchRequest req = EDGE__V1__WATCH_REQUEST__INIT;
    req.node_id = "l4-a";
    n = edge__v1__watch_request__pack(&req, buf);
  }
  CU_ASSERT_EQUAL(rpc_stream_send(c->s, buf, n), 0);
  if (c->kind == 1) CU_ASSERT_EQUAL(rpc_stream_close_send(c->s), 0);
  CU_ASSERT_TRUE(rpc_stream_is_open(c->s));
}

static void cli_on_message(void *ud, const uint8_t *data, size_t len) {
  struct cli_state *c = ud;
  if (c->kind == 1) {
    Edge__V1__ReplicaSet *set = edge__v1__replica_set__unpack(NULL, len, data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    if (c->msgs < 8) c->versions[c->msgs] = set->version;
    c->msgs++;
    edge__v1__replica_set__free_unpacked(set, NULL);
    return;
  }
  Edge__V1__SyncMessage *m = edge__v1__sync_message__unpack(NULL, len, data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL_FATAL(m->msg_case, EDGE__V1__SYNC_MESSAGE__MSG_PUSH);
  c->msgs++;
  snprintf(c->nonce, sizeof(c->nonce), "%s", m->push->nonce);
  Edge__V1__Ack ack = EDGE__V1__ACK__INIT;
  ack.nonce = m->push->nonce;
  ack.version = m->push->version;
  Edge__V1__ProxyMessage out = EDGE__V1__PROXY_MESSAGE__INIT;
  out.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  out.ack = &ack;
  uint8_t *buf = malloc(edge__v1__proxy_message__get_packed_size(&out));
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  size_t n = edge__v1__proxy_message__pack(&out, buf);
  CU_ASSERT_EQUAL(rpc_stream_send(c->s, buf, n), 0);
  free(buf);
  edge__v1__sync_message__free_unpacked(m, NULL);
}

static void cli_on_close(void *ud, int status, const char *details, uint32_t backoff_ms) {
  struct cli_state *c = ud;
  if (c->closes < MAX_CLOSES) {
    c->statuses[c->closes] = status;
    c->backoffs[c->closes] = backoff_ms;
  }
  c->closes++;
  CU_ASSERT_PTR_NOT_NULL(details);
  snprintf(c->last_details, sizeof(c->last_details), "%s", details ? details : "");
  fprintf(stderr, "rpc_test: on_close status=%d details=\"%s\" backoff_ms=%u\n", status,
          details ? details : "", backoff_ms);
  CU_ASSERT_FALSE(rpc_stream_is_open(c->s));
}

static const struct rpc_stream_callbacks cli_callbacks = {cli_on_open, cli_on_message,
                                                          cli_on_close};

static void open_client_reset(struct cli_state *c, int port, const char *method,
                              const struct rpc_creds *creds, uint32_t initial, uint32_t max,
                              uint32_t reset) {
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  struct rpc_stream_opts o = {.target = target,
                              .method = method,
                              .creds = *creds,
                              .backoff_initial_ms = initial,
                              .backoff_max_ms = max,
                              .backoff_reset_ms = reset};
  CU_ASSERT_EQUAL_FATAL(rpc_stream_open(rt, &o, &cli_callbacks, c, &c->s), 0);
  CU_ASSERT_FALSE(rpc_stream_is_open(c->s)); /* on_open comes later, on the loop */
  CU_ASSERT_EQUAL(c->opens, 0);
}

static void open_client(struct cli_state *c, int port, const char *method,
                        const struct rpc_creds *creds, uint32_t initial, uint32_t max) {
  open_client_reset(c, port, method, creds, initial, max, 0);
}

static void close_client(struct cli_state *c) {
  rpc_stream_close(c->s, count_done, &c->closed);
  int closes = c->closes, msgs = c->msgs;
  CU_ASSERT_TRUE(wait_count(&c->closed, 1, WAIT_MS));
  CU_ASSERT_EQUAL(c->closes, closes); /* no callback after close */
  CU_ASSERT_EQUAL(c->msgs, msgs);
}

static const struct rpc_creds insecure = {.insecure = 1};

/* A port nothing listens on (bound then released). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof(a);
  CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- tests ------------------------------------------------------------- */

static void run_bidi_round_trip(const struct rpc_creds *srv_creds,
                                const struct rpc_creds *cli_creds, const char *identity) {
  struct srv_state st = {0};
  int port = start_server(&st, "127.0.0.1:0", srv_creds);
  struct cli_state c = {0};
  open_client(&c, port, BIDI_METHOD, cli_creds, 50, 500);
  CU_ASSERT_TRUE(wait_count(&st.acks, 1, WAIT_MS));
  CU_ASSERT_EQUAL(st.hellos, 1);
  CU_ASSERT_STRING_EQUAL(st.hello_node, "l7-a");
  CU_ASSERT_EQUAL(c.msgs, 1);
  CU_ASSERT_STRING_EQUAL(c.nonce, "n-1");
  CU_ASSERT_STRING_EQUAL(st.ack_nonce, "n-1");
  CU_ASSERT_EQUAL(st.ack_version, 7);
  CU_ASSERT_STRING_EQUAL(st.identity, identity);
  CU_ASSERT_EQUAL(c.opens, 1);
  CU_ASSERT_EQUAL(c.closes, 0);
  close_client(&c);
  stop_server(&st);
  CU_ASSERT_EQUAL(st.calls, 1);
}

static void bidi_round_trip_carries_hello_push_and_ack_insecure(void) {
  run_bidi_round_trip(&insecure, &insecure, "");
}

/* A full state with many certificates exceeds gRPC's 4 MiB default. */
static void messages_larger_than_grpc_default_limit_flow_both_ways(void) {
  struct srv_state st = {.big_nonce = 6 * 1024 * 1024};
  int port = start_server(&st, "127.0.0.1:0", &insecure);
  struct cli_state c = {0};
  open_client(&c, port, BIDI_METHOD, &insecure, 50, 500);
  CU_ASSERT_TRUE(wait_count(&st.acks, 1, WAIT_MS));
  CU_ASSERT_EQUAL(c.msgs, 1);
  CU_ASSERT_EQUAL(st.ack_nonce_len, st.big_nonce);
  CU_ASSERT_EQUAL(strncmp(st.ack_nonce, "n-1xxx", 6), 0);
  CU_ASSERT_EQUAL(c.closes, 0);
  close_client(&c);
  stop_server(&st);
}

/* -- certificates for mutual TLS, made with the OpenSSL 3 API -- */

static EVP_PKEY *ca_key, *ca2_key;
static X509 *ca_cert, *ca2_cert;
static long serial = 1;

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return -1;
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return 0;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key) {
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  int bad = 0;
  if (!issuer) {
    bad |= add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE");
    bad |= add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
    bad |= add_ext(x, NULL, NID_subject_key_identifier, "hash");
  } else {
    bad |= add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
    bad |= add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    bad |= add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    bad |= add_ext(x, issuer, NID_authority_key_identifier, "keyid");
  }
  if (bad || X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
    X509_free(x);
    return NULL;
  }
  return x;
}

static int write_pem(const char *file, X509 *cert, EVP_PKEY *key) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int ok = (!cert || PEM_write_X509(f, cert)) &&
           (!key || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL));
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* CA "edge-ca" issues server.pem and client.pem (CN l7-a); an unrelated CA
 * "other-ca" issues rogue.pem. */
static int make_pki(void) {
  ca_key = EVP_EC_gen("P-256");
  ca2_key = EVP_EC_gen("P-256");
  if (!ca_key || !ca2_key) return -1;
  ca_cert = make_cert(ca_key, "edge-ca", NULL, NULL);
  ca2_cert = make_cert(ca2_key, "other-ca", NULL, NULL);
  if (!ca_cert || !ca2_cert || write_pem("ca.pem", ca_cert, NULL) != 0) return -1;
  const struct {
    const char *cn, *cert, *key;
    X509 *issuer;
    EVP_PKEY *issuer_key;
  } leaves[] = {{"syncd", "server.pem", "server.key", ca_cert, ca_key},
                {"l7-a", "client.pem", "client.key", ca_cert, ca_key},
                {"l7-a", "rogue.pem", "rogue.key", ca2_cert, ca2_key}};
  for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? make_cert(k, leaves[i].cn, leaves[i].issuer, leaves[i].issuer_key) : NULL;
    int rc = x && write_pem(leaves[i].cert, x, NULL) == 0 && write_pem(leaves[i].key, NULL, k) == 0;
    X509_free(x);
    EVP_PKEY_free(k);
    if (!rc) return -1;
  }
  return 0;
}

static char server_cert[256], server_key[256], client_cert[256], client_key[256], ca_file[256],
    rogue_cert[256], rogue_key[256];

static void pki_paths(void) {
  snprintf(server_cert, sizeof(server_cert), "%s/server.pem", tmpdir);
  snprintf(server_key, sizeof(server_key), "%s/server.key", tmpdir);
  snprintf(client_cert, sizeof(client_cert), "%s/client.pem", tmpdir);
  snprintf(client_key, sizeof(client_key), "%s/client.key", tmpdir);
  snprintf(rogue_cert, sizeof(rogue_cert), "%s/rogue.pem", tmpdir);
  snprintf(rogue_key, sizeof(rogue_key), "%s/rogue.key", tmpdir);
  snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", tmpdir);
}

static void bidi_round_trip_works_with_mutual_tls_and_reports_client_cn(void) {
  struct rpc_creds srv = {.cert_file = server_cert, .key_file = server_key, .ca_file = ca_file};
  struct rpc_creds cli = {.cert_file = client_cert, .key_file = client_key, .ca_file = ca_file};
  run_bidi_round_trip(&srv, &cli, "l7-a");
}

/* A client that cannot prove itself gets nothing through. */
static void run_rejected_client(const struct rpc_creds *cli_creds) {
  struct rpc_creds srv = {.cert_file = server_cert, .key_file = server_key, .ca_file = ca_file};
  struct srv_state st = {0};
  int port = start_server(&st, "127.0.0.1:0", &srv);
  struct cli_state c = {0};
  open_client(&c, port, BIDI_METHOD, cli_creds, 20, 100);
  CU_ASSERT_TRUE(wait_count(&c.closes, 2, WAIT_MS));
  for (int i = 0; i < 2; i++) CU_ASSERT_NOT_EQUAL(c.statuses[i], RPC_STATUS_OK);
  close_client(&c);
  CU_ASSERT_EQUAL(c.msgs, 0);
  CU_ASSERT_EQUAL(st.hellos, 0);
  CU_ASSERT_EQUAL(st.calls, 0);
  stop_server(&st);
}

static void mutual_tls_rejects_client_without_certificate(void) {
  struct rpc_creds cli = {.ca_file = ca_file};
  run_rejected_client(&cli);
}

static void mutual_tls_rejects_client_certificate_from_another_ca(void) {
  struct rpc_creds cli = {.cert_file = rogue_cert, .key_file = rogue_key, .ca_file = ca_file};
  run_rejected_client(&cli);
}

static void creds_that_cannot_be_loaded_are_rejected(void) {
  struct rpc_creds bad = {.cert_file = "/nonexistent/c.pem", .key_file = "/nonexistent/k.pem"};
  struct rpc_server_opts o = {.listen = "127.0.0.1:0", .creds = bad};
  struct rpc_server *srv = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL(rpc_server_new(rt, &o, &srv, err, sizeof(err)), RPC_ERR_CREDS);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/c.pem"));
  struct rpc_stream_opts so = {.target = "127.0.0.1:1", .method = BIDI_METHOD, .creds = bad};
  struct rpc_stream *s = NULL;
  CU_ASSERT_EQUAL(rpc_stream_open(rt, &so, &cli_callbacks, NULL, &s), RPC_ERR_CREDS);
}

static void stream_reconnects_after_server_restart_on_same_port(void) {
  struct srv_state a = {0}, b = {0};
  int port = start_server(&a, "127.0.0.1:0", &insecure);
  struct cli_state c = {0};
  open_client(&c, port, BIDI_METHOD, &insecure, 50, 400);
  CU_ASSERT_TRUE_FATAL(wait_count(&a.acks, 1, WAIT_MS));
  stop_server(&a);
  CU_ASSERT_TRUE(wait_count(&c.closes, 1, WAIT_MS));
  CU_ASSERT_NOT_EQUAL(c.statuses[0], RPC_STATUS_OK);
  CU_ASSERT_TRUE(c.backoffs[0] >= 40 && c.backoffs[0] <= 60); /* reset by the message */
  /* While the port is closed the client keeps failing, backing off. */
  CU_ASSERT_TRUE(wait_count(&c.closes, 3, WAIT_MS));
  CU_ASSERT_TRUE(c.backoffs[2] > c.backoffs[0]);
  CU_ASSERT_EQUAL(c.msgs, 1);
  char listen[64];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  CU_ASSERT_EQUAL(start_server(&b, listen, &insecure), port);
  CU_ASSERT_TRUE(wait_count(&b.acks, 1, WAIT_MS));
  CU_ASSERT_TRUE(c.opens >= 2);
  CU_ASSERT_EQUAL(b.hellos, 1);
  CU_ASSERT_STRING_EQUAL(b.hello_node, "l7-a");
  CU_ASSERT_STRING_EQUAL(b.ack_nonce, "n-1");
  CU_ASSERT_EQUAL(c.msgs, 2);
  CU_ASSERT_TRUE(rpc_stream_is_open(c.s));
  close_client(&c);
  stop_server(&b);
}

/* rpc_unary_call blocks, so it runs on a thread while the loop serves. */
struct unary_job {
  char target[64];
  const char *method;
  int rc;
  uint8_t *resp;
  size_t resp_len;
  char err[256];
  atomic_int finished;
};

static void *unary_thread(void *arg) {
  struct unary_job *j = arg;
  Edge__V1__StatusRequest req = EDGE__V1__STATUS_REQUEST__INIT;
  uint8_t buf[16];
  size_t n = edge__v1__status_request__pack(&req, buf);
  j->rc = rpc_unary_call(j->target, j->method, &insecure, buf, n, 5000, &j->resp, &j->resp_len,
                         j->err, sizeof(j->err));
  atomic_store(&j->finished, 1);
  return NULL;
}

static void run_unary(struct unary_job *j, int port, const char *method) {
  snprintf(j->target, sizeof(j->target), "127.0.0.1:%d", port);
  j->method = method;
  pthread_t t;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, unary_thread, j), 0);
  CU_ASSERT_TRUE(wait_atomic(&j->finished, WAIT_MS));
  pthread_join(t, NULL);
}

static void unary_call_returns_response_or_unimplemented(void) {
  struct srv_state st = {0};
  int port = start_server(&st, "127.0.0.1:0", &insecure);
  struct unary_job ok = {0}, unknown = {0};
  run_unary(&ok, port, STATUS_METHOD);
  CU_ASSERT_EQUAL(ok.rc, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ok.resp);
  Edge__V1__NodeStatus *node = edge__v1__node_status__unpack(NULL, ok.resp_len, ok.resp);
  CU_ASSERT_PTR_NOT_NULL_FATAL(node);
  CU_ASSERT_STRING_EQUAL(node->node_id, "l7-a");
  CU_ASSERT_EQUAL(node->last_acked_version, 42);
  edge__v1__node_status__free_unpacked(node, NULL);
  free(ok.resp);
  run_unary(&unknown, port, "/edge.v1.Status/Nope");
  CU_ASSERT_EQUAL(unknown.rc, RPC_STATUS_UNIMPLEMENTED);
  CU_ASSERT_PTR_NULL(unknown.resp);
  stop_server(&st);
  CU_ASSERT_EQUAL(st.calls, 1); /* the unknown method never reached a handler */
}

static void unary_call_to_closed_port_fails_unavailable_within_deadline(void) {
  uint8_t *resp = NULL;
  size_t len = 0;
  char target[64], err[256] = "";
  snprintf(target, sizeof(target), "127.0.0.1:%d", closed_port());
  int rc = rpc_unary_call(target, STATUS_METHOD, &insecure, NULL, 0, 2000, &resp, &len, err,
                          sizeof(err));
  CU_ASSERT_TRUE(rc == RPC_STATUS_UNAVAILABLE || rc == RPC_STATUS_DEADLINE_EXCEEDED);
  CU_ASSERT_PTR_NULL(resp);
  CU_ASSERT_NOT_EQUAL(err[0], '\0');
}

static void server_stream_delivers_messages_in_order_then_ok(void) {
  struct srv_state st = {.stream_replies = 3};
  int port = start_server(&st, "127.0.0.1:0", &insecure);
  struct cli_state c = {.kind = 1};
  open_client(&c, port, WATCH_METHOD, &insecure, 5000, 5000);
  CU_ASSERT_TRUE(wait_count(&c.closes, 1, WAIT_MS));
  CU_ASSERT_EQUAL(c.statuses[0], RPC_STATUS_OK);
  CU_ASSERT_EQUAL(c.msgs, 3);
  for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(c.versions[i], (uint64_t)i + 1);
  CU_ASSERT_STRING_EQUAL(st.hello_node, "l4-a");
  CU_ASSERT_EQUAL(st.pending_after_sends, 3);
  CU_ASSERT_EQUAL(st.drained, 1);
  CU_ASSERT_EQUAL(st.send_after_finish_rc, RPC_ERR_CLOSED);
  CU_ASSERT_TRUE(wait_count(&st.done, 1, WAIT_MS));
  CU_ASSERT_EQUAL(st.half_closes, 1);
  close_client(&c);
  stop_server(&st);
}

static void stream_to_closed_port_backs_off_growing_and_bounded(void) {
  struct cli_state c = {0};
  open_client(&c, closed_port(), BIDI_METHOD, &insecure, 20, 100);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.closes, 6, WAIT_MS));
  for (int i = 0; i < 6; i++) {
    CU_ASSERT_EQUAL(c.statuses[i], RPC_STATUS_UNAVAILABLE);
    CU_ASSERT_TRUE(c.backoffs[i] <= 100);
  }
  /* 20 ±20 %, then doubling: each step grows until the cap is reached. */
  CU_ASSERT_TRUE(c.backoffs[0] >= 16 && c.backoffs[0] <= 24);
  CU_ASSERT_TRUE(c.backoffs[1] > c.backoffs[0]);
  CU_ASSERT_TRUE(c.backoffs[2] > c.backoffs[1]);
  for (int i = 3; i < 6; i++) CU_ASSERT_TRUE(c.backoffs[i] >= 80);
  CU_ASSERT_TRUE(c.opens == c.closes || c.opens == c.closes + 1);
  close_client(&c);
}

/* The default backoff (what l7proxy and l4lb use unless --reconnect-max is
 * given) is capped at 1 s, so both resync within about a second of syncd
 * coming back; at the cap the delays spread over [0.8, 1] s instead of all
 * landing on the cap. These are the delays the stream reports, not
 * measured times. */
static void default_backoff_is_capped_at_one_second_and_stays_jittered(void) {
  struct cli_state c = {0};
  open_client(&c, closed_port(), BIDI_METHOD, &insecure, 0, 0);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.closes, 8, 3 * WAIT_MS));
  CU_ASSERT_TRUE(c.backoffs[0] >= 160 && c.backoffs[0] <= 240); /* 200 ±20 % */
  int distinct = 0;
  for (int i = 0; i < 8; i++) {
    CU_ASSERT_TRUE(c.backoffs[i] <= 1000);
    if (i >= 4) {
      CU_ASSERT_TRUE(c.backoffs[i] >= 800);
      distinct += c.backoffs[i] != c.backoffs[i - 1];
    }
  }
  CU_ASSERT_TRUE(distinct >= 2);
  close_client(&c);
}

static void on_elapsed(uv_timer_t *t) {
  (*(int *)t->data)++;
}

static void backoff_resets_after_stream_stays_up_without_messages(void) {
  int port = closed_port();
  struct cli_state c = {0};
  open_client_reset(&c, port, BIDI_METHOD, &insecure, 20, 1000, 150);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.closes, 4, WAIT_MS));
  CU_ASSERT_TRUE(c.backoffs[3] >= 128); /* grown: 160 ±20 % */
  struct srv_state st = {.silent = 1};
  char listen[64];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  CU_ASSERT_EQUAL_FATAL(start_server(&st, listen, &insecure), port);
  CU_ASSERT_TRUE_FATAL(wait_count(&st.hellos, 1, WAIT_MS));
  int closes = c.closes;
  /* The rule under test is a duration: let the stream stay up past it. */
  int elapsed = 0;
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &elapsed;
  uv_timer_start(&t, on_elapsed, 300, 0);
  CU_ASSERT_TRUE(wait_count(&elapsed, 1, WAIT_MS));
  uv_close((uv_handle_t *)&t, NULL);
  CU_ASSERT_EQUAL(c.closes, closes);
  CU_ASSERT_EQUAL(c.msgs, 0);
  stop_server(&st);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.closes, closes + 1, WAIT_MS));
  CU_ASSERT_TRUE(c.backoffs[closes] >= 16 && c.backoffs[closes] <= 24);
  close_client(&c);
}

static void invalid_arguments_are_rejected(void) {
  struct rpc_stream *s = NULL;
  struct rpc_stream_opts o = {.method = BIDI_METHOD, .creds = insecure};
  CU_ASSERT_EQUAL(rpc_stream_open(rt, &o, &cli_callbacks, NULL, &s), RPC_ERR_INVALID);
  struct srv_state st = {0};
  struct rpc_server_opts so = {.listen = "256.0.0.1:99999", .creds = insecure};
  char err[256];
  CU_ASSERT_EQUAL_FATAL(rpc_server_new(rt, &so, &st.srv, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(rpc_server_start(st.srv, err, sizeof(err)), RPC_ERR_BIND);
  rpc_server_shutdown(st.srv, srv_on_shut, &st);
  CU_ASSERT_TRUE(wait_count(&st.shut, 1, WAIT_MS));
  CU_ASSERT_STRING_EQUAL(rpc_strerror(RPC_ERR_CLOSED), "call closed");
}

/* ---- several servers (replicas) behind one target ----------------------- */

static void open_client_to(struct cli_state *c, const char *target, uint32_t connect_timeout) {
  struct rpc_stream_opts o = {.target = target,
                              .method = BIDI_METHOD,
                              .creds = insecure,
                              .backoff_initial_ms = 20,
                              .backoff_max_ms = 400,
                              .connect_timeout_ms = connect_timeout};
  CU_ASSERT_EQUAL_FATAL(rpc_stream_open(rt, &o, &cli_callbacks, c, &c->s), 0);
}

/* The replica a client uses dies: its very next attempt goes to the other
 * one, after the initial backoff (the stream had received a push). */
static void stream_fails_over_to_the_other_server_when_its_server_stops(void) {
  struct srv_state a = {0}, b = {0};
  int pa = start_server(&a, "127.0.0.1:0", &insecure);
  int pb = start_server(&b, "127.0.0.1:0", &insecure);
  char target[64], addr_a[32], addr_b[32];
  snprintf(addr_a, sizeof(addr_a), "127.0.0.1:%d", pa);
  snprintf(addr_b, sizeof(addr_b), "127.0.0.1:%d", pb);
  snprintf(target, sizeof(target), "%s,%s", addr_a, addr_b);
  struct cli_state c = {0};
  open_client_to(&c, target, 0);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.msgs, 1, WAIT_MS));
  struct srv_state *first = a.hellos ? &a : &b, *other = a.hellos ? &b : &a;
  CU_ASSERT_EQUAL(first->hellos + other->hellos, 1);
  CU_ASSERT_STRING_EQUAL(rpc_stream_target(c.s), first == &a ? addr_a : addr_b);
  CU_ASSERT_TRUE_FATAL(wait_count(&first->acks, 1, WAIT_MS));
  stop_server(first);
  CU_ASSERT_TRUE_FATAL(wait_count(&other->acks, 1, WAIT_MS));
  CU_ASSERT_EQUAL(c.closes, 1); /* the first retry reached the other server */
  CU_ASSERT_TRUE(c.backoffs[0] >= 16 && c.backoffs[0] <= 24);
  CU_ASSERT_STRING_EQUAL(rpc_stream_target(c.s), other == &a ? addr_a : addr_b);
  CU_ASSERT_EQUAL(c.msgs, 2);
  close_client(&c);
  stop_server(other);
}

/* Clients given the same list start at random addresses, so the replicas
 * share the proxies (12 clients all on one of two: 1 chance in 2048). */
static void clients_given_the_same_list_spread_over_the_servers(void) {
  struct srv_state a = {0}, b = {0};
  char target[64];
  int pa = start_server(&a, "127.0.0.1:0", &insecure);
  int pb = start_server(&b, "127.0.0.1:0", &insecure);
  snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", pa, pb);
  struct cli_state c[12];
  memset(c, 0, sizeof(c));
  for (int i = 0; i < 12; i++) open_client_to(&c[i], target, 0);
  int total = 0;
  uint64_t deadline = uv_now(&loop) + WAIT_MS;
  while ((total = a.acks + b.acks) < 12 && uv_now(&loop) < deadline) uv_run(&loop, UV_RUN_ONCE);
  CU_ASSERT_EQUAL(total, 12);
  CU_ASSERT_TRUE(a.hellos > 0);
  CU_ASSERT_TRUE(b.hellos > 0);
  for (int i = 0; i < 12; i++) close_client(&c[i]);
  stop_server(&a);
  stop_server(&b);
}

/* A listening socket that never answers (the kernel completes the TCP
 * handshake, nobody speaks HTTP/2): the attempt is given up after the
 * connect timeout, not after gRPC's own 10 s. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof(a);
  CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  CU_ASSERT_EQUAL(listen(fd, 16), 0);
  CU_ASSERT_EQUAL(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static void a_server_that_never_answers_costs_one_connect_timeout(void) {
  int silent_port;
  int fd = silent_listener(&silent_port);
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", silent_port);
  struct cli_state c = {0};
  open_client_to(&c, target, 300);
  CU_ASSERT_TRUE_FATAL(wait_count(&c.closes, 1, WAIT_MS));
  CU_ASSERT_EQUAL(c.statuses[0], RPC_STATUS_UNAVAILABLE);
  CU_ASSERT_PTR_NOT_NULL(strstr(c.last_details, "no answer from"));
  close_client(&c);

  /* Listed with a live server, the silent one only delays it. */
  struct srv_state b = {0};
  int pb = start_server(&b, "127.0.0.1:0", &insecure);
  snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", silent_port, pb);
  struct cli_state c2 = {0};
  open_client_to(&c2, target, 300);
  CU_ASSERT_TRUE(wait_count(&b.acks, 1, WAIT_MS));
  close_client(&c2);
  stop_server(&b);
  close(fd);
}

/* A DNS name is resolved by the client itself (here from /etc/hosts), and
 * the attempt goes to the address. */
static void a_name_is_resolved_and_the_stream_goes_to_its_address(void) {
  struct srv_state a = {0};
  int pa = start_server(&a, "127.0.0.1:0", &insecure);
  char target[64], want[64];
  snprintf(target, sizeof(target), "localhost:%d", pa);
  snprintf(want, sizeof(want), "127.0.0.1:%d", pa);
  struct cli_state c = {0};
  open_client_to(&c, target, 0);
  CU_ASSERT_TRUE(wait_count(&a.acks, 1, WAIT_MS));
  CU_ASSERT_STRING_EQUAL(rpc_stream_target(c.s), want);
  close_client(&c);
  stop_server(&a);
  struct rpc_stream *s = NULL;
  struct rpc_stream_opts o = {.target = "127.0.0.1:1,", .method = BIDI_METHOD, .creds = insecure};
  CU_ASSERT_EQUAL(rpc_stream_open(rt, &o, &cli_callbacks, NULL, &s), RPC_ERR_INVALID);
}

static void runtime_keeps_loop_alive_only_while_objects_exist(void) {
  uv_timer_stop(&tick);
  CU_ASSERT_FALSE(uv_loop_alive(&loop));
  struct cli_state c = {0};
  open_client(&c, closed_port(), BIDI_METHOD, &insecure, 20, 100);
  CU_ASSERT_TRUE(uv_loop_alive(&loop));
  rpc_stream_close(c.s, count_done, &c.closed);
  CU_ASSERT_EQUAL(c.closed, 0);  /* done runs later, from the loop */
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once the stream is released */
  CU_ASSERT_EQUAL(c.closed, 1);
  CU_ASSERT_EQUAL(c.opens, 0);
  CU_ASSERT_FALSE(uv_loop_alive(&loop));
  uv_timer_start(&tick, on_tick, 20, 20);
}

/* ---- suite ------------------------------------------------------------- */

static int suite_init(void) {
  snprintf(tmpdir, sizeof(tmpdir), "%s/rpc_test.XXXXXX",
           getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("rpc_test: mkdtemp");
    return 1;
  }
  if (make_pki() != 0) {
    fprintf(stderr, "rpc_test: cannot make test certificates in %s\n", tmpdir);
    return 1;
  }
  pki_paths();
  if (uv_loop_init(&loop) != 0) return 1;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 20, 20);
  return rpc_runtime_new(&loop, &rt) == 0 ? 0 : 1;
}

static int suite_cleanup(void) {
  rpc_runtime_free(rt);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  X509_free(ca_cert);
  X509_free(ca2_cert);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(ca2_key);
  const char *files[] = {"ca.pem",     "server.pem", "server.key", "client.pem",
                         "client.key", "rogue.pem",  "rogue.key"};
  char path[256];
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
    unlink(path);
  }
  rmdir(tmpdir);
  return rc == 0 ? 0 : 1;
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("rpc", suite_init, suite_cleanup);
  CU_add_test(s, "bidi_round_trip_carries_hello_push_and_ack_insecure",
              bidi_round_trip_carries_hello_push_and_ack_insecure);
  CU_add_test(s, "messages_larger_than_grpc_default_limit_flow_both_ways",
              messages_larger_than_grpc_default_limit_flow_both_ways);
  CU_add_test(s, "bidi_round_trip_works_with_mutual_tls_and_reports_client_cn",
              bidi_round_trip_works_with_mutual_tls_and_reports_client_cn);
  CU_add_test(s, "mutual_tls_rejects_client_without_certificate",
              mutual_tls_rejects_client_without_certificate);
  CU_add_test(s, "mutual_tls_rejects_client_certificate_from_another_ca",
              mutual_tls_rejects_client_certificate_from_another_ca);
  CU_add_test(s, "creds_that_cannot_be_loaded_are_rejected",
              creds_that_cannot_be_loaded_are_rejected);
  CU_add_test(s, "stream_reconnects_after_server_restart_on_same_port",
              stream_reconnects_after_server_restart_on_same_port);
  CU_add_test(s, "unary_call_returns_response_or_unimplemented",
              unary_call_returns_response_or_unimplemented);
  CU_add_test(s, "unary_call_to_closed_port_fails_unavailable_within_deadline",
              unary_call_to_closed_port_fails_unavailable_within_deadline);
  CU_add_test(s, "server_stream_delivers_messages_in_order_then_ok",
              server_stream_delivers_messages_in_order_then_ok);
  CU_add_test(s, "stream_to_closed_port_backs_off_growing_and_bounded",
              stream_to_closed_port_backs_off_growing_and_bounded);
  CU_add_test(s, "default_backoff_is_capped_at_one_second_and_stays_jittered",
              default_backoff_is_capped_at_one_second_and_stays_jittered);
  CU_add_test(s, "backoff_resets_after_stream_stays_up_without_messages",
              backoff_resets_after_stream_stays_up_without_messages);
  CU_add_test(s, "invalid_arguments_are_rejected", invalid_arguments_are_rejected);
  CU_add_test(s, "stream_fails_over_to_the_other_server_when_its_server_stops",
              stream_fails_over_to_the_other_server_when_its_server_stops);
  CU_add_test(s, "clients_given_the_same_list_spread_over_the_servers",
              clients_given_the_same_list_spread_over_the_servers);
  CU_add_test(s, "a_server_that_never_answers_costs_one_connect_timeout",
              a_server_that_never_answers_costs_one_connect_timeout);
  CU_add_test(s, "a_name_is_resolved_and_the_stream_goes_to_its_address",
              a_name_is_resolved_and_the_stream_goes_to_its_address);
  CU_add_test(s, "runtime_keeps_loop_alive_only_while_objects_exist",
              runtime_keeps_loop_alive_only_while_objects_exist);
}
