/*
 * l7proxy config client against a scripted ConfigSync server on 127.0.0.1
 * (made with common/rpc's server API), over real gRPC:
 *   Hello → full state → Ack and the snapshot is published;
 *   a push naming an unknown cluster → Nack with the reason, and the
 *     previous snapshot is still the one served;
 *   a malformed message → the client resets the stream and says Hello
 *     again with last_applied_version = the version it serves;
 *   draining → an update Hello with draining = true;
 *   syncd goes away → the client notices and the snapshot stays.
 * Every wait runs the loop against a deadline; nothing sleeps.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/metrics.h"
#include "common/rpc.h"
#include "edge/v1/config_sync.pb-c.h"
#include "l7proxy/config_client.h"
#include "l7proxy/config_store.h"
#include "l7proxy/snapshot.h"

enum step { WAIT_HELLO1, WAIT_ACK1, WAIT_NACK2, WAIT_HELLO2, WAIT_UPDATE, FINISHED };

struct fake {
  struct rpc_server *srv;
  struct rpc_call *call;
  enum step step;
  int hellos, updates, calls_done;
  uint64_t hello_versions[4];
  char hello_node[64];
  int update_draining;
  uint64_t ack_version, nack_version;
  char nonce_acked[32], nack_error[512];
  uint64_t version_at_nack;
  int failed; /* an unexpected message */
};

static void send_push(struct rpc_call *call, Edge__V1__Push *p) {
  Edge__V1__SyncMessage m = EDGE__V1__SYNC_MESSAGE__INIT;
  m.msg_case = EDGE__V1__SYNC_MESSAGE__MSG_PUSH;
  m.push = p;
  size_t len = edge__v1__sync_message__get_packed_size(&m);
  uint8_t *buf = malloc(len);
  edge__v1__sync_message__pack(&m, buf);
  rpc_call_send(call, buf, len);
  free(buf);
}

static void send_full_state(struct rpc_call *call) {
  Edge__V1__Endpoint ep = EDGE__V1__ENDPOINT__INIT;
  ep.address = "127.0.0.1";
  ep.port = 9;
  ep.ready = 1;
  Edge__V1__Endpoint *eps[] = {&ep};
  Edge__V1__Cluster cl = EDGE__V1__CLUSTER__INIT;
  cl.name = "default/web:80";
  cl.endpoints = eps;
  cl.n_endpoints = 1;
  Edge__V1__Route rt = EDGE__V1__ROUTE__INIT;
  rt.path = "/";
  rt.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  rt.cluster = "default/web:80";
  Edge__V1__Route *rts[] = {&rt};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "vh:shop.example.com";
  vh.host = "shop.example.com";
  vh.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  vh.routes = rts;
  vh.n_routes = 1;
  Edge__V1__Resource r1 = EDGE__V1__RESOURCE__INIT, r2 = EDGE__V1__RESOURCE__INIT;
  r1.kind_case = EDGE__V1__RESOURCE__KIND_CLUSTER;
  r1.cluster = &cl;
  r2.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r2.virtual_host = &vh;
  Edge__V1__Resource *res[] = {&r1, &r2};
  Edge__V1__Push p = EDGE__V1__PUSH__INIT;
  p.version = 1;
  p.nonce = "n1";
  p.full = 1;
  p.upserted = res;
  p.n_upserted = 2;
  send_push(call, &p);
}

static void send_bad_delta(struct rpc_call *call) {
  Edge__V1__Route rt = EDGE__V1__ROUTE__INIT;
  rt.path = "/api";
  rt.path_type = EDGE__V1__PATH_TYPE__PATH_TYPE_PREFIX;
  rt.cluster = "default/missing:80";
  Edge__V1__Route *rts[] = {&rt};
  Edge__V1__VirtualHost vh = EDGE__V1__VIRTUAL_HOST__INIT;
  vh.name = "vh:shop.example.com";
  vh.host = "shop.example.com";
  vh.host_match = EDGE__V1__HOST_MATCH__HOST_MATCH_EXACT;
  vh.routes = rts;
  vh.n_routes = 1;
  Edge__V1__Resource r = EDGE__V1__RESOURCE__INIT;
  r.kind_case = EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST;
  r.virtual_host = &vh;
  Edge__V1__Resource *res[] = {&r};
  Edge__V1__Push p = EDGE__V1__PUSH__INIT;
  p.version = 2;
  p.nonce = "n2";
  p.base_version = 1;
  p.upserted = res;
  p.n_upserted = 1;
  send_push(call, &p);
}

static uint64_t current_version(void) {
  struct l7_snapshot *s = l7_snapshot_current();
  uint64_t v = l7_snapshot_version(s);
  l7_snapshot_unref(s);
  return v;
}

static void fake_on_call(void *ud, struct rpc_call *call) {
  struct fake *f = ud;
  f->call = call;
}

static void fake_on_message(void *ud, struct rpc_call *call, const uint8_t *data, size_t len) {
  struct fake *f = ud;
  Edge__V1__ProxyMessage *m = edge__v1__proxy_message__unpack(NULL, len, data);
  if (!m) {
    f->failed = 1;
    return;
  }
  switch (m->msg_case) {
    case EDGE__V1__PROXY_MESSAGE__MSG_HELLO:
      if (f->hellos < 4) f->hello_versions[f->hellos] = m->hello->last_applied_version;
      f->hellos++;
      snprintf(f->hello_node, sizeof(f->hello_node), "%s", m->hello->node_id);
      if (f->step == WAIT_HELLO1) {
        f->step = WAIT_ACK1;
        send_full_state(call);
      } else if (f->step == WAIT_HELLO2) {
        f->step = WAIT_UPDATE;
      } else {
        f->failed = 1;
      }
      break;
    case EDGE__V1__PROXY_MESSAGE__MSG_ACK:
      f->ack_version = m->ack->version;
      snprintf(f->nonce_acked, sizeof(f->nonce_acked), "%s", m->ack->nonce);
      if (f->step != WAIT_ACK1) f->failed = 1;
      f->step = WAIT_NACK2;
      send_bad_delta(call);
      break;
    case EDGE__V1__PROXY_MESSAGE__MSG_NACK:
      f->nack_version = m->nack->version;
      snprintf(f->nack_error, sizeof(f->nack_error), "%s", m->nack->error);
      f->version_at_nack = current_version();
      if (f->step != WAIT_NACK2) f->failed = 1;
      f->step = WAIT_HELLO2;
      {
        static const uint8_t junk[] = {0x0a, 0x05, 0xff, 0xff};
        rpc_call_send(call, junk, sizeof(junk));
      }
      break;
    case EDGE__V1__PROXY_MESSAGE__MSG_UPDATE:
      f->updates++;
      f->update_draining = m->update->draining;
      if (f->step == WAIT_UPDATE) f->step = FINISHED;
      break;
    default:
      f->failed = 1;
  }
  edge__v1__proxy_message__free_unpacked(m, NULL);
}

static void fake_on_done(void *ud, struct rpc_call *call) {
  struct fake *f = ud;
  f->calls_done++;
  if (f->call == call) f->call = NULL;
}

static int flag_done(int *flag, uv_loop_t *loop, int64_t ms) {
  uint64_t deadline = uv_now(loop) + (uint64_t)ms;
  while (!*flag && uv_now(loop) < deadline) {
    uv_run(loop, UV_RUN_ONCE);
    uv_update_time(loop);
  }
  return *flag;
}

/* A timer that keeps uv_run(UV_RUN_ONCE) from blocking forever. */
static void tick(uv_timer_t *t) {
  (void)t;
}

static void set_flag(void *arg) {
  *(int *)arg = 1;
}

static void config_client_acks_nacks_resets_and_drains(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_t ticker;
  uv_timer_init(&loop, &ticker);
  uv_timer_start(&ticker, tick, 20, 20);
  struct rpc_runtime *rt;
  CU_ASSERT_EQUAL_FATAL(rpc_runtime_new(&loop, &rt), 0);

  struct fake f = {0};
  struct rpc_server_opts so = {.listen = "127.0.0.1:0", .creds = {.insecure = 1}};
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(rpc_server_new(rt, &so, &f.srv, err, sizeof(err)), 0);
  struct rpc_call_handler h = {
      .on_call = fake_on_call, .on_message = fake_on_message, .on_done = fake_on_done};
  CU_ASSERT_EQUAL_FATAL(
      rpc_server_add_method(f.srv, L7_CONFIG_SYNC_METHOD, RPC_BIDI_STREAM, &h, &f), 0);
  CU_ASSERT_EQUAL_FATAL(rpc_server_start(f.srv, err, sizeof(err)), 0);
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", rpc_server_port(f.srv));

  l7_snapshot_publish(NULL);
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  struct l7_config_client_opts co = {.syncd = target,
                                     .creds = {.insecure = 1},
                                     .node_id = "l7-test",
                                     .address = "127.0.0.1:8080",
                                     .build = "edge/test",
                                     .backoff_initial_ms = 50,
                                     .backoff_max_ms = 200,
                                     .reset_delay_ms = 50};
  struct metrics_registry *reg = metrics_registry_new();
  co.metrics = reg;
  struct l7_config_client *c;
  CU_ASSERT_EQUAL_FATAL(l7_config_client_start(&loop, rt, st, &co, NULL, NULL, &c), 0);

  /* Run the script until the server saw the second Hello. */
  int reached = 0;
  uint64_t deadline = uv_now(&loop) + 20000;
  while (uv_now(&loop) < deadline && !f.failed) {
    uv_run(&loop, UV_RUN_ONCE);
    uv_update_time(&loop);
    if (f.step == WAIT_UPDATE) {
      reached = 1;
      break;
    }
  }
  CU_ASSERT_TRUE(reached);
  CU_ASSERT_FALSE(f.failed);
  CU_ASSERT_STRING_EQUAL(f.hello_node, "l7-test");
  CU_ASSERT_EQUAL(f.hello_versions[0], 0);
  CU_ASSERT_EQUAL(f.ack_version, 1);
  CU_ASSERT_STRING_EQUAL(f.nonce_acked, "n1");
  CU_ASSERT_EQUAL(f.nack_version, 2);
  CU_ASSERT_STRING_EQUAL(f.nack_error,
                         "virtual host vh:shop.example.com: route /api references unknown "
                         "cluster default/missing:80");
  CU_ASSERT_EQUAL(f.version_at_nack, 1);
  /* After the malformed message: a fresh stream, Hello with what it serves. */
  CU_ASSERT_EQUAL(f.hellos, 2);
  CU_ASSERT_EQUAL(f.hello_versions[1], 1);
  CU_ASSERT(f.calls_done >= 1);

  struct l7_snapshot *s = l7_snapshot_current();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  CU_ASSERT_EQUAL(l7_snapshot_version(s), 1);
  const struct l7_route *r = l7_snapshot_match(s, "shop.example.com", 16, "/api", 4);
  CU_ASSERT_PTR_NOT_NULL(r);
  if (r) CU_ASSERT_STRING_EQUAL(l7_snapshot_route_cluster(s, r)->name, "default/web:80");
  l7_snapshot_unref(s);

  /* Draining: an update Hello carries the flag. */
  CU_ASSERT_EQUAL(l7_config_client_set_draining(c, 1), 0);
  int finished = 0;
  deadline = uv_now(&loop) + 10000;
  while (uv_now(&loop) < deadline && !(finished = f.step == FINISHED)) {
    uv_run(&loop, UV_RUN_ONCE);
    uv_update_time(&loop);
  }
  CU_ASSERT_TRUE(finished);
  CU_ASSERT_EQUAL(f.updates, 1);
  CU_ASSERT_EQUAL(f.update_draining, 1);

  struct l7_config_client_stats stats;
  l7_config_client_stats(c, &stats);
  CU_ASSERT_EQUAL(stats.acks, 1);
  CU_ASSERT_EQUAL(stats.nacks, 1);
  CU_ASSERT_EQUAL(stats.malformed, 1);
  CU_ASSERT_EQUAL(stats.connects, 2);
  size_t mlen;
  char *text = metrics_render(reg, &mlen);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_l7_config_pushes_total{result=\"ack\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_l7_config_pushes_total{result=\"nack\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_l7_config_pushes_total{result=\"malformed\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_l7_config_applied_version 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "edge_l7_config_connected 1\n"));
  free(text);

  /* syncd goes away: the client sees the stream end, the state stays. */
  int srv_done = 0;
  rpc_server_shutdown(f.srv, set_flag, &srv_done);
  CU_ASSERT_TRUE(flag_done(&srv_done, &loop, 10000));
  int disconnected = 0;
  deadline = uv_now(&loop) + 10000;
  while (uv_now(&loop) < deadline) {
    l7_config_client_stats(c, &stats);
    if ((disconnected = !stats.connected)) break;
    uv_run(&loop, UV_RUN_ONCE);
    uv_update_time(&loop);
  }
  CU_ASSERT_TRUE(disconnected);
  CU_ASSERT_EQUAL(current_version(), 1);

  int client_done = 0;
  l7_config_client_close(c, set_flag, &client_done);
  CU_ASSERT_TRUE(flag_done(&client_done, &loop, 10000));
  uv_timer_stop(&ticker);
  uv_close((uv_handle_t *)&ticker, NULL);
  rpc_runtime_free(rt);
  uv_run(&loop, UV_RUN_DEFAULT);
  CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
  l7_config_store_free(st);
  l7_snapshot_publish(NULL);
  metrics_registry_free(reg);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("l7_config_sync", NULL, NULL);
  CU_add_test(s, "config_client_acks_nacks_resets_and_drains",
              config_client_acks_nacks_resets_and_drains);
}
