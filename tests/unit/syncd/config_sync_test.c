/* config_sync: per-node push bookkeeping without sockets. The rpc_call
 * functions config_sync uses are replaced by a recording fake, so each test
 * plays a proxy message by message and inspects exactly what was sent. */
#include "syncd/config_sync.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rpc.h"
#include "edge/v1/config_sync.pb-c.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/authz.h"
#include "syncd/store.h"

/* ---- the fake rpc ------------------------------------------------------- */

#define MAX_SENT 16
struct rpc_call {
  void *data;
  Edge__V1__SyncMessage *sent[MAX_SENT];
  size_t sent_len[MAX_SENT];
  int nsent;
  size_t pending;
  int finished, status;
  char details[256];
  const char *uris[2]; /* the client certificate's URI SANs */
  size_t n_uris;
};

static const struct rpc_call_handler *g_handler;
static void *g_ud;

int rpc_server_add_method(struct rpc_server *srv, const char *method, enum rpc_method_kind kind,
                          const struct rpc_call_handler *h, void *ud) {
  g_handler = h;
  g_ud = ud;
  return 0;
}
int rpc_call_send(struct rpc_call *c, const uint8_t *data, size_t len) {
  if (c->finished || c->nsent == MAX_SENT) return RPC_ERR_CLOSED;
  c->sent_len[c->nsent] = len;
  c->sent[c->nsent++] = edge__v1__sync_message__unpack(NULL, len, data);
  c->pending++;
  return 0;
}
size_t rpc_call_pending(const struct rpc_call *c) {
  return c->pending;
}
int rpc_call_finish(struct rpc_call *c, int status, const char *details) {
  c->finished = 1;
  c->status = status;
  snprintf(c->details, sizeof(c->details), "%s", details ? details : "");
  return 0;
}
const char *rpc_call_peer(const struct rpc_call *c) {
  return "ipv4:127.0.0.1:1";
}
void rpc_call_set_data(struct rpc_call *c, void *d) {
  c->data = d;
}
void *rpc_call_get_data(const struct rpc_call *c) {
  return c->data;
}
size_t rpc_call_peer_uris(const struct rpc_call *c, const char *const **uris) {
  *uris = c->uris;
  return c->n_uris;
}
const char *rpc_strerror(int err) {
  return "fake";
}

/* ---- helpers ------------------------------------------------------------ */

struct world {
  struct store *store;
  struct config_sync *cs;
  char events[64]; /* node events in order: C(onnected) A(pplied) U(pdated) D(isconnected) */
  int gen;         /* distinguishes successive states */
};

static void on_event(void *ud, const struct config_sync_node *n, enum config_sync_event ev) {
  struct world *w = ud;
  size_t len = strlen(w->events);
  if (len + 1 < sizeof(w->events)) w->events[len] = "CAUD"[ev];
}

/* A new state: one VirtualHost whose host differs per generation, plus a
 * constant one. */
static void new_version(struct world *w) {
  char host[64];
  snprintf(host, sizeof(host), "gen%d.test", ++w->gen);
  struct syncd_resource r[2];
  const char *names[2] = {"vh:changing", "vh:constant"};
  const char *hosts[2] = {host, "constant.test"};
  for (int i = 0; i < 2; i++) {
    Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
    vh.name = (char *)names[i];
    vh.host = (char *)hosts[i];
    Edge__V1__Resource res = EDGE__V1__RESOURCE__INIT;
    res.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
    res.virtual_host = &vh;
    r[i].type = EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST;
    r[i].name = (char *)names[i];
    r[i].len = edge__v1__resource__get_packed_size(&res);
    r[i].bytes = malloc(r[i].len);
    edge__v1__resource__pack(&res, r[i].bytes);
  }
  CU_ASSERT_EQUAL(store_apply(w->store, r, 2, (uint64_t)w->gen), 1);
  free(r[0].bytes);
  free(r[1].bytes);
  config_sync_notify(w->cs);
}

static void world_init(struct world *w) {
  memset(w, 0, sizeof(*w));
  store_new(&w->store);
  config_sync_new(w->store, NULL, &w->cs);
  config_sync_register(w->cs, NULL);
  config_sync_on_node_event(w->cs, on_event, w);
  new_version(w);
}

static void world_free(struct world *w) {
  config_sync_free(w->cs);
  store_free(w->store);
}

static struct rpc_call *call_open(void) {
  struct rpc_call *c = calloc(1, sizeof(*c));
  g_handler->on_call(g_ud, c);
  return c;
}

static void call_close(struct rpc_call *c) {
  g_handler->on_done(g_ud, c);
  for (int i = 0; i < c->nsent; i++)
    if (c->sent[i]) edge__v1__sync_message__free_unpacked(c->sent[i], NULL);
  free(c);
}

static void deliver(struct rpc_call *c, Edge__V1__ProxyMessage *m) {
  size_t len = edge__v1__proxy_message__get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  edge__v1__proxy_message__pack(m, buf);
  g_handler->on_message(g_ud, c, buf, len);
  free(buf);
}

static void hello(struct rpc_call *c, const char *id, uint64_t last_applied) {
  Edge__V1__Hello h = EDGE__V1__HELLO__INIT;
  h.node_id = (char *)id;
  h.address = "127.0.0.1:8080";
  h.last_applied_version = last_applied;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_HELLO;
  m.hello = &h;
  deliver(c, &m);
}

/* Answers push i of the call: Ack when error is NULL, else Nack. */
static void answer(struct rpc_call *c, int i, const char *error) {
  const Edge__V1__Push *p = c->sent[i]->push;
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  Edge__V1__Nack k = EDGE__V1__NACK__INIT;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  if (!error) {
    a.nonce = p->nonce;
    a.version = p->version;
    m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
    m.ack = &a;
  } else {
    k.nonce = p->nonce;
    k.version = p->version;
    k.error = (char *)error;
    m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_NACK;
    m.nack = &k;
  }
  deliver(c, &m);
}

/* The transport wrote everything queued. */
static void drain(struct rpc_call *c) {
  c->pending = 0;
  g_handler->on_drained(g_ud, c);
}

static const struct config_sync_node *node(struct world *w, const char *id) {
  for (size_t i = 0; i < config_sync_node_count(w->cs); i++)
    if (strcmp(config_sync_node_at(w->cs, i)->node_id, id) == 0)
      return config_sync_node_at(w->cs, i);
  return NULL;
}

/* ---- tests --------------------------------------------------------------- */

static void hello_gets_the_full_state_and_ack_makes_the_node_synced(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 1);
  CU_ASSERT_TRUE(c->sent[0]->push->full);
  CU_ASSERT_EQUAL(c->sent[0]->push->n_upserted, 2);
  CU_ASSERT_EQUAL(c->sent[0]->push->version, store_version(w.store));
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, node(&w, "p1")),
                  EDGE__V1__NODE_STATE__NODE_STATE_STALE);
  CU_ASSERT_STRING_EQUAL(w.events, "C"); /* connected, not applied yet */
  drain(c);
  answer(c, 0, NULL);
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, node(&w, "p1")),
                  EDGE__V1__NODE_STATE__NODE_STATE_SYNCED);
  CU_ASSERT_STRING_EQUAL(w.events, "CA"); /* applied: now a replica */
  call_close(c);
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, node(&w, "p1")),
                  EDGE__V1__NODE_STATE__NODE_STATE_DISCONNECTED);
  CU_ASSERT_STRING_EQUAL(w.events, "CAD");
  world_free(&w);
}

static void hello_at_the_current_version_gets_nothing(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", store_version(w.store));
  CU_ASSERT_EQUAL(c->nsent, 0);
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, node(&w, "p1")),
                  EDGE__V1__NODE_STATE__NODE_STATE_SYNCED);
  CU_ASSERT_STRING_EQUAL(w.events, "CA"); /* serves the current state at once */
  new_version(&w);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 1);
  CU_ASSERT_FALSE(c->sent[0]->push->full);
  CU_ASSERT_EQUAL(c->sent[0]->push->n_upserted, 1);
  call_close(c);
  world_free(&w);
}

static void versions_made_while_a_push_is_unanswered_coalesce_into_one_delta(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  drain(c);
  answer(c, 0, NULL);
  new_version(&w); /* pushed at once */
  uint64_t v2 = store_version(w.store);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 2);
  drain(c); /* written, not answered: the proxy is slow */
  for (int i = 0; i < 5; i++) new_version(&w);
  CU_ASSERT_EQUAL(c->nsent, 2);
  answer(c, 1, NULL);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 3);
  const Edge__V1__Push *p = c->sent[2]->push;
  CU_ASSERT_FALSE(p->full);
  CU_ASSERT_EQUAL(p->base_version, v2);
  CU_ASSERT_EQUAL(p->version, store_version(w.store));
  CU_ASSERT_EQUAL(p->n_upserted, 1); /* only the changing host */
  CU_ASSERT_STRING_NOT_EQUAL(p->nonce, c->sent[1]->push->nonce);
  call_close(c);
  world_free(&w);
}

/* A proxy that reconnects (syncd restarted from its journal, a network
 * cut) at a version the store still knows gets only what changed since:
 * one VirtualHost, far fewer bytes than the full state. */
static void hello_at_a_known_older_version_gets_only_the_delta(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  drain(c);
  answer(c, 0, NULL);
  uint64_t v1 = store_version(w.store);
  size_t full_bytes = c->sent_len[0];
  call_close(c); /* cut */
  new_version(&w);
  new_version(&w);
  c = call_open();
  hello(c, "p1", v1);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 1);
  const Edge__V1__Push *p = c->sent[0]->push;
  CU_ASSERT_FALSE(p->full);
  CU_ASSERT_EQUAL(p->base_version, v1);
  CU_ASSERT_EQUAL(p->version, store_version(w.store));
  CU_ASSERT_EQUAL(p->n_upserted, 1); /* the constant host is not resent */
  CU_ASSERT_EQUAL(p->n_removed, 0);
  CU_ASSERT(c->sent_len[0] < full_bytes);
  call_close(c);
  world_free(&w);
}

/* A version from another history (or one forgotten) gets the full state. */
static void hello_at_an_unknown_version_gets_the_full_state(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0x1234567890abcdefULL);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 1);
  CU_ASSERT_TRUE(c->sent[0]->push->full);
  CU_ASSERT_EQUAL(c->sent[0]->push->base_version, 0);
  CU_ASSERT_EQUAL(c->sent[0]->push->n_upserted, 2);
  call_close(c);
  world_free(&w);
}

static void unwritten_push_holds_the_next_until_drained(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  answer(c, 0, NULL); /* answered, but the transport still reports it queued */
  new_version(&w);
  CU_ASSERT_EQUAL(c->nsent, 1);
  drain(c);
  CU_ASSERT_EQUAL(c->nsent, 2);
  call_close(c);
  world_free(&w);
}

static void nack_keeps_the_acked_version_and_the_next_push_is_full(void) {
  struct world w;
  world_init(&w);
  uint64_t v1 = store_version(w.store);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  drain(c);
  answer(c, 0, NULL);
  new_version(&w);
  drain(c);
  answer(c, 1, "certificate default/shop: key does not match");
  const struct config_sync_node *n = node(&w, "p1");
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, n), EDGE__V1__NODE_STATE__NODE_STATE_NACKED);
  CU_ASSERT_EQUAL(n->acked_version, v1);
  CU_ASSERT_STRING_EQUAL(n->last_error, "certificate default/shop: key does not match");
  CU_ASSERT_EQUAL(c->nsent, 2); /* the rejected version is not pushed again */
  new_version(&w);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 3);
  CU_ASSERT_TRUE(c->sent[2]->push->full);
  drain(c);
  answer(c, 2, NULL);
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, n), EDGE__V1__NODE_STATE__NODE_STATE_SYNCED);
  CU_ASSERT_STRING_EQUAL(n->last_error, "");
  call_close(c);
  world_free(&w);
}

static void ack_with_an_unknown_nonce_ends_the_call_with_invalid_argument(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  a.nonce = "forged";
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  m.ack = &a;
  deliver(c, &m);
  CU_ASSERT_TRUE(c->finished);
  CU_ASSERT_EQUAL(c->status, RPC_STATUS_INVALID_ARGUMENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(c->details, "unknown nonce"));
  CU_ASSERT_EQUAL(node(&w, "p1")->acked_version, 0);
  call_close(c);
  world_free(&w);
}

static void messages_before_hello_or_unparseable_end_the_call(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  m.ack = &a;
  deliver(c, &m);
  CU_ASSERT_EQUAL(c->status, RPC_STATUS_INVALID_ARGUMENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(c->details, "Hello"));
  call_close(c);
  c = call_open();
  g_handler->on_message(g_ud, c, (const uint8_t *)"\xff\xff\xff", 3);
  CU_ASSERT_EQUAL(c->status, RPC_STATUS_INVALID_ARGUMENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(c->details, "unparseable"));
  call_close(c);
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 0);
  world_free(&w);
}

static void second_stream_of_a_node_replaces_the_first(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *a = call_open(), *b = call_open();
  hello(a, "p1", 0);
  hello(b, "p1", 0);
  CU_ASSERT_TRUE(a->finished);
  CU_ASSERT_EQUAL(a->status, RPC_STATUS_CANCELLED);
  CU_ASSERT_FALSE(b->finished);
  CU_ASSERT_EQUAL(b->nsent, 1);
  call_close(a); /* the old call's end does not disconnect the node */
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 1);
  CU_ASSERT_TRUE(node(&w, "p1")->connected);
  call_close(b);
  CU_ASSERT_FALSE(node(&w, "p1")->connected);
  CU_ASSERT(node(&w, "p1")->disconnected_at > 0);
  world_free(&w);
}

/* Issue 15: the proxy reports what it applied but cannot serve in the
 * Ack; the node shows it until an Ack without problems. */
static void ack_problems_are_kept_on_the_node_until_cleared(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c = call_open();
  hello(c, "p1", 0);
  const Edge__V1__Push *p = c->sent[0]->push;
  char *problems[] = {"certificate default/weak: tls.crt: the certificate is refused"};
  Edge__V1__Ack a = EDGE__V1__ACK__INIT;
  a.nonce = p->nonce;
  a.version = p->version;
  a.n_problems = 1;
  a.problems = problems;
  Edge__V1__ProxyMessage m = EDGE__V1__PROXY_MESSAGE__INIT;
  m.msg_case = EDGE__V1__PROXY_MESSAGE__MSG_ACK;
  m.ack = &a;
  deliver(c, &m);
  const struct config_sync_node *n = node(&w, "p1");
  CU_ASSERT_EQUAL_FATAL(n->n_problems, 1);
  CU_ASSERT_STRING_EQUAL(n->problems[0], problems[0]);
  CU_ASSERT_EQUAL(config_sync_node_state(w.cs, n), EDGE__V1__NODE_STATE__NODE_STATE_SYNCED);
  drain(c);
  new_version(&w);
  CU_ASSERT_EQUAL_FATAL(c->nsent, 2);
  answer(c, 1, NULL);
  CU_ASSERT_EQUAL(node(&w, "p1")->n_problems, 0);
  call_close(c);
  world_free(&w);
}

/* Issue 15: a Hello naming another node, or from a certificate of another
 * role, is refused before anything happens to the node it names. */
static void hello_not_matching_the_certificate_is_refused_and_evicts_nobody(void) {
  struct world w;
  world_init(&w);
  struct authz *az;
  CU_ASSERT_EQUAL_FATAL(authz_new(1, NULL, &az), 0);
  config_sync_set_authz(w.cs, az);
  struct rpc_call *good = call_open();
  good->uris[0] = "spiffe://edge/l7proxy/p1";
  good->n_uris = 1;
  hello(good, "p1", 0);
  CU_ASSERT_FALSE(good->finished);
  struct rpc_call *thief = call_open(), *l4 = call_open(), *anon = call_open();
  thief->uris[0] = "spiffe://edge/l7proxy/p2";
  thief->n_uris = 1;
  l4->uris[0] = "spiffe://edge/l4lb/p1";
  l4->n_uris = 1;
  hello(thief, "p1", 0);
  hello(l4, "p1", 0);
  hello(anon, "p1", 0);
  struct rpc_call *bad[] = {thief, l4, anon};
  for (int i = 0; i < 3; i++) {
    CU_ASSERT_TRUE(bad[i]->finished);
    CU_ASSERT_EQUAL(bad[i]->status, RPC_STATUS_PERMISSION_DENIED);
    CU_ASSERT_EQUAL(bad[i]->nsent, 0); /* no state, no keys */
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(thief->details, "not p1"));
  CU_ASSERT_PTR_NOT_NULL(strstr(l4->details, "role l4lb"));
  CU_ASSERT_FALSE(good->finished); /* not evicted */
  CU_ASSERT_TRUE(node(&w, "p1")->connected);
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 1);
  const struct authz_refusal *r;
  CU_ASSERT_EQUAL(authz_refusals(az, &r), 3);
  CU_ASSERT_STRING_EQUAL(r[0].method, "ConfigSync");
  for (int i = 0; i < 3; i++) call_close(bad[i]);
  call_close(good);
  world_free(&w);
  authz_free(az);
}

/* Issue 15: node churn never grows the table forever. */
static void disconnected_nodes_are_forgotten_after_retention_or_beyond_the_cap(void) {
  struct world w;
  world_init(&w);
  struct rpc_call *c[5];
  char id[8];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof(id), "p%d", i);
    c[i] = call_open();
    hello(c[i], id, 0);
  }
  for (int i = 0; i < 4; i++) call_close(c[i]); /* p4 stays connected */
  int64_t now = (int64_t)time(NULL);
  CU_ASSERT_EQUAL(config_sync_prune(w.cs, now, 3600, 1000), 0);
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 5);
  CU_ASSERT_EQUAL(config_sync_prune(w.cs, now, 3600, 2), 2); /* cap: 2 disconnected */
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 3);
  CU_ASSERT_EQUAL(config_sync_prune(w.cs, now + 3601, 3600, 1000), 2); /* retention */
  CU_ASSERT_EQUAL(config_sync_node_count(w.cs), 1);
  CU_ASSERT_PTR_NOT_NULL(node(&w, "p4"));
  CU_ASSERT_TRUE(node(&w, "p4")->connected);
  /* the connected node keeps working after the table shrank */
  answer(c[4], 0, NULL);
  drain(c[4]);
  new_version(&w);
  CU_ASSERT_EQUAL(c[4]->nsent, 2);
  call_close(c[4]);
  world_free(&w);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("config_sync", NULL, NULL);
  CU_add_test(s, "disconnected_nodes_are_forgotten_after_retention_or_beyond_the_cap",
              disconnected_nodes_are_forgotten_after_retention_or_beyond_the_cap);
  CU_add_test(s, "ack_problems_are_kept_on_the_node_until_cleared",
              ack_problems_are_kept_on_the_node_until_cleared);
  CU_add_test(s, "hello_not_matching_the_certificate_is_refused_and_evicts_nobody",
              hello_not_matching_the_certificate_is_refused_and_evicts_nobody);
  CU_add_test(s, "hello_gets_the_full_state_and_ack_makes_the_node_synced",
              hello_gets_the_full_state_and_ack_makes_the_node_synced);
  CU_add_test(s, "hello_at_the_current_version_gets_nothing",
              hello_at_the_current_version_gets_nothing);
  CU_add_test(s, "hello_at_a_known_older_version_gets_only_the_delta",
              hello_at_a_known_older_version_gets_only_the_delta);
  CU_add_test(s, "hello_at_an_unknown_version_gets_the_full_state",
              hello_at_an_unknown_version_gets_the_full_state);
  CU_add_test(s, "versions_made_while_a_push_is_unanswered_coalesce_into_one_delta",
              versions_made_while_a_push_is_unanswered_coalesce_into_one_delta);
  CU_add_test(s, "unwritten_push_holds_the_next_until_drained",
              unwritten_push_holds_the_next_until_drained);
  CU_add_test(s, "nack_keeps_the_acked_version_and_the_next_push_is_full",
              nack_keeps_the_acked_version_and_the_next_push_is_full);
  CU_add_test(s, "ack_with_an_unknown_nonce_ends_the_call_with_invalid_argument",
              ack_with_an_unknown_nonce_ends_the_call_with_invalid_argument);
  CU_add_test(s, "messages_before_hello_or_unparseable_end_the_call",
              messages_before_hello_or_unparseable_end_the_call);
  CU_add_test(s, "second_stream_of_a_node_replaces_the_first",
              second_stream_of_a_node_replaces_the_first);
}
