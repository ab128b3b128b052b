/*
 * Fuzz target for the l7proxy's handling of SyncMessages from syncd
 * (l7proxy/config_client.c → config_store → snapshot).
 *
 * Each input is one SyncMessage applied to a store that already holds a
 * small valid state. Besides "never crash", it checks the contract: an Ack
 * means the store now holds the push's version and the snapshot works
 * (lookups, JSON dump); a Nack or a malformed message leaves the store's
 * version and contents exactly as they were.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/config_sync.pb-c.h"
#include "l7proxy/config_client.h"
#include "l7proxy/config_store.h"
#include "common/pb_json.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static const char BASE[] =
    "{\"version\": 1, \"resources\": ["
    "{\"cluster\": {\"name\": \"default/web:80\", \"endpoints\": "
    "[{\"address\": \"127.0.0.1\", \"port\": 8080, \"ready\": true}]}},"
    "{\"virtual_host\": {\"name\": \"vh:shop\", \"host\": \"shop.example.com\", "
    "\"routes\": [{\"path\": \"/\", \"cluster\": \"default/web:80\"}]}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct l7_config_store *st;
  CHECK(l7_config_store_new(NULL, &st) == 0);
  ProtobufCMessage *m;
  CHECK(pb_json_decode(&edge__v1__snapshot__descriptor, BASE, strlen(BASE), &m, NULL, 0) == 0);
  struct l7_snapshot *snap;
  CHECK(l7_config_store_apply_snapshot(st, (Edge__V1__Snapshot *)m, 0, &snap, NULL, 0) == 0);
  protobuf_c_message_free_unpacked(m, NULL);
  l7_snapshot_unref(snap);
  uint8_t *before, *after;
  size_t blen, alen;
  CHECK(l7_config_store_serialize(st, &before, &blen) == 0);

  uint8_t *reply;
  size_t rlen;
  char reason[512];
  uint64_t version;
  int v = l7_config_handle_message(st, data, size, &reply, &rlen, &snap, reason, sizeof(reason),
                                   &version);
  if (v == L7_CONFIG_ACK) {
    CHECK(snap && l7_snapshot_version(snap) == version);
    CHECK(l7_config_store_version(st) == version);
    l7_snapshot_match(snap, "shop.example.com:80", 19, "/x?y", 4);
    l7_snapshot_match(snap, "a.b.c", 5, "/", 1);
    free(l7_snapshot_to_json(snap));
    l7_snapshot_unref(snap);
  } else {
    CHECK(snap == NULL);
    CHECK(l7_config_store_version(st) == 1);
    CHECK(l7_config_store_serialize(st, &after, &alen) == 0);
    CHECK(alen == blen && memcmp(before, after, blen) == 0);
    free(after);
  }
  if (v == L7_CONFIG_MALFORMED) CHECK(reply == NULL);
  if (reply) {
    Edge__V1__ProxyMessage *pm = edge__v1__proxy_message__unpack(NULL, rlen, reply);
    CHECK(pm);
    CHECK(pm->msg_case == (v == L7_CONFIG_ACK ? EDGE__V1__PROXY_MESSAGE__MSG_ACK
                                              : EDGE__V1__PROXY_MESSAGE__MSG_NACK));
    edge__v1__proxy_message__free_unpacked(pm, NULL);
    free(reply);
  }
  free(before);
  l7_config_store_free(st);
  return 0;
}
