/* config_client: the decision taken for each SyncMessage (Ack, Nack with
 * reason, or malformed → reset), without sockets. */
#include "l7proxy/config_client.h"

#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin.h"
#include "config_fixture.h"
#include "edge/v1/config_sync.pb-c.h"

static uint8_t *pack_push(Edge__V1__Push *p, size_t *len) {
  Edge__V1__SyncMessage m = EDGE__V1__SYNC_MESSAGE__INIT;
  m.msg_case = EDGE__V1__SYNC_MESSAGE__MSG_PUSH;
  m.push = p;
  *len = edge__v1__sync_message__get_packed_size(&m);
  uint8_t *buf = malloc(*len);
  edge__v1__sync_message__pack(&m, buf);
  return buf;
}

static Edge__V1__ProxyMessage *decide(struct l7_config_store *st, const uint8_t *buf, size_t len,
                                      int want, struct l7_snapshot **snap, char *reason) {
  uint8_t *reply;
  size_t rlen;
  uint64_t version;
  int v = l7_config_handle_message(st, buf, len, &reply, &rlen, snap, reason, 256, &version);
  CU_ASSERT_EQUAL(v, want);
  if (!reply) return NULL;
  Edge__V1__ProxyMessage *pm = edge__v1__proxy_message__unpack(NULL, rlen, reply);
  free(reply);
  return pm;
}

static void applied_push_is_acked_with_nonce_and_version(void) {
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  Edge__V1__Resource *res[] = {fx_cluster("c", 1, "127.0.0.1", 80u),
                               fx_vhost("vh", "a.com", FX_HOST, 1, fx_route("/", FX_PF, "c"))};
  Edge__V1__Push p = EDGE__V1__PUSH__INIT;
  p.version = 3;
  p.nonce = "nonce-3";
  p.full = 1;
  p.upserted = res;
  p.n_upserted = 2;
  size_t len;
  uint8_t *buf = pack_push(&p, &len);
  struct l7_snapshot *snap;
  char reason[256];
  Edge__V1__ProxyMessage *pm = decide(st, buf, len, L7_CONFIG_ACK, &snap, reason);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pm);
  CU_ASSERT_EQUAL_FATAL(pm->msg_case, EDGE__V1__PROXY_MESSAGE__MSG_ACK);
  CU_ASSERT_STRING_EQUAL(pm->ack->nonce, "nonce-3");
  CU_ASSERT_EQUAL(pm->ack->version, 3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
  CU_ASSERT_EQUAL(l7_snapshot_version(snap), 3);
  l7_snapshot_unref(snap);
  edge__v1__proxy_message__free_unpacked(pm, NULL);
  free(buf);
  fx_reset();
  l7_config_store_free(st);
}

static void rejected_push_is_nacked_with_reason_and_state_kept(void) {
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  Edge__V1__Resource *good[] = {fx_cluster("c", 0)};
  Edge__V1__Push p = EDGE__V1__PUSH__INIT;
  p.version = 1;
  p.nonce = "a";
  p.full = 1;
  p.upserted = good;
  p.n_upserted = 1;
  size_t len;
  uint8_t *buf = pack_push(&p, &len);
  struct l7_snapshot *snap;
  char reason[256];
  Edge__V1__ProxyMessage *pm = decide(st, buf, len, L7_CONFIG_ACK, &snap, reason);
  l7_snapshot_unref(snap);
  edge__v1__proxy_message__free_unpacked(pm, NULL);
  free(buf);

  Edge__V1__Resource *bad[] = {fx_vhost("vh", "a.com", FX_HOST, 1, fx_route("/", FX_PF, "nope"))};
  p.version = 2;
  p.nonce = "b";
  p.full = 0;
  p.base_version = 1;
  p.upserted = bad;
  buf = pack_push(&p, &len);
  pm = decide(st, buf, len, L7_CONFIG_NACK, &snap, reason);
  CU_ASSERT_PTR_NULL(snap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pm);
  CU_ASSERT_EQUAL_FATAL(pm->msg_case, EDGE__V1__PROXY_MESSAGE__MSG_NACK);
  CU_ASSERT_STRING_EQUAL(pm->nack->nonce, "b");
  CU_ASSERT_EQUAL(pm->nack->version, 2);
  CU_ASSERT_STRING_EQUAL(pm->nack->error,
                         "virtual host vh: route / references unknown cluster nope");
  CU_ASSERT_STRING_EQUAL(reason, pm->nack->error);
  CU_ASSERT_EQUAL(l7_config_store_version(st), 1);
  edge__v1__proxy_message__free_unpacked(pm, NULL);
  free(buf);
  fx_reset();
  l7_config_store_free(st);
}

static void unparseable_message_is_malformed_without_reply(void) {
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  struct l7_snapshot *snap;
  char reason[256];
  CU_ASSERT_PTR_NULL(decide(st, junk, sizeof(junk), L7_CONFIG_MALFORMED, &snap, reason));
  CU_ASSERT_PTR_NOT_NULL(strstr(reason, "unparseable"));
  /* An empty message parses but carries no push. */
  CU_ASSERT_PTR_NULL(decide(st, junk, 0, L7_CONFIG_MALFORMED, &snap, reason));
  CU_ASSERT_PTR_NOT_NULL(strstr(reason, "without a push"));
  CU_ASSERT_EQUAL(l7_config_store_version(st), 0);
  l7_config_store_free(st);
}

static void random_bytes_never_crash(void) {
  struct l7_config_store *st;
  CU_ASSERT_EQUAL_FATAL(l7_config_store_new(NULL, &st), 0);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  uint8_t buf[64];
  for (int i = 0; i < 2000; i++) {
    size_t n = (size_t)(x % sizeof(buf));
    for (size_t j = 0; j < n; j++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[j] = (uint8_t)x;
    }
    if (n > 0) buf[0] = 0x0a; /* often start with the push field tag */
    uint8_t *reply;
    size_t rlen;
    struct l7_snapshot *snap;
    int v = l7_config_handle_message(st, buf, n, &reply, &rlen, &snap, NULL, 0, NULL);
    CU_ASSERT(v == L7_CONFIG_ACK || v == L7_CONFIG_NACK || v == L7_CONFIG_MALFORMED);
    free(reply);
    l7_snapshot_unref(snap);
    x += 0x9e3779b97f4a7c15ull;
  }
  l7_config_store_free(st);
}

static void admin_handlers_dump_config_and_explain_routes(void) {
  struct admin_response resp = {0};
  l7_snapshot_publish(NULL);
  l7_config_admin_config(NULL, "/config", "", &resp);
  CU_ASSERT_EQUAL(resp.status, 503);
  free(resp.body);

  Edge__V1__Resource *res[] = {fx_cluster("c", 1, "127.0.0.1", 80u),
                               fx_vhost("vh", "a.com", FX_HOST, 2, fx_route("/api", FX_PF, "c"),
                                        fx_route("/x", FX_EX, "c"))};
  struct l7_snapshot *s;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(l7_snapshot_build(9, res, 2, &s, err, sizeof(err)), 0);
  fx_reset();
  l7_snapshot_publish(s);

  memset(&resp, 0, sizeof(resp));
  l7_config_admin_config(NULL, "/config", "", &resp);
  CU_ASSERT_EQUAL(resp.status, 200);
  CU_ASSERT_PTR_NOT_NULL_FATAL(resp.body);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "\"version\": 9"));
  free(resp.body);

  memset(&resp, 0, sizeof(resp));
  l7_config_admin_explain(NULL, "/explain", "host=A.com%3A80&path=/x/", &resp);
  CU_ASSERT_EQUAL(resp.status, 200);
  CU_ASSERT_PTR_NOT_NULL_FATAL(resp.body);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "\"matched\": false"));
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "exact path differs by a trailing slash"));
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "path differs"));
  free(resp.body);

  memset(&resp, 0, sizeof(resp));
  l7_config_admin_explain(NULL, "/explain", "host=a.com&path=/api/v1", &resp);
  CU_ASSERT_EQUAL(resp.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "\"matched\": true"));
  free(resp.body);

  /* url= and sni= (common/explain, the same answer syncd gives). */
  memset(&resp, 0, sizeof(resp));
  l7_config_admin_explain(NULL, "/explain", "url=http%3A%2F%2Fa.com%2Fapi&sni=a.com&header=X-A%3A1",
                          &resp);
  CU_ASSERT_EQUAL(resp.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "\"cluster\": \"c\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "\"sni\": \"a.com\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(resp.body, "X-A:1"));
  free(resp.body);

  memset(&resp, 0, sizeof(resp));
  l7_config_admin_explain(NULL, "/explain", "url=ftp%3A%2F%2Fa.com%2F", &resp);
  CU_ASSERT_EQUAL(resp.status, 400);
  free(resp.body);

  memset(&resp, 0, sizeof(resp));
  l7_config_admin_explain(NULL, "/explain", "path=/", &resp);
  CU_ASSERT_EQUAL(resp.status, 400);
  free(resp.body);
  l7_snapshot_publish(NULL);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("config_client", NULL, NULL);
#define T(f) CU_add_test(s, #f, f)
  T(applied_push_is_acked_with_nonce_and_version);
  T(rejected_push_is_nacked_with_reason_and_state_kept);
  T(unparseable_message_is_malformed_without_reply);
  T(random_bytes_never_crash);
  T(admin_handlers_dump_config_and_explain_routes);
#undef T
}
