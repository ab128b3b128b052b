/*
 * Fuzz target for the --config=FILE JSON form (l7proxy/pb_json.c) and the
 * snapshot built from it.
 *
 * Besides "never crash, never leak", it checks that an accepted document
 * survives encode → decode unchanged (same wire bytes), and that building
 * a snapshot from it either succeeds or fails with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/v1/resources.pb-c.h"
#include "l7proxy/config_store.h"
#include "common/pb_json.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len ? *len : 1);
  CHECK(buf);
  protobuf_c_message_pack(m, buf);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ProtobufCMessage *m;
  char err[512] = "";
  if (pb_json_decode(&edge__v1__snapshot__descriptor, (const char *)data, size, &m, err,
                     sizeof(err)) < 0) {
    CHECK(m == NULL && err[0]);
    return 0;
  }
  char *text = pb_json_encode(m);
  if (text) {
    ProtobufCMessage *again;
    CHECK(pb_json_decode(&edge__v1__snapshot__descriptor, text, strlen(text), &again, err,
                         sizeof(err)) == 0);
    size_t a, b;
    uint8_t *pa = pack(m, &a), *pb = pack(again, &b);
    CHECK(a == b && memcmp(pa, pb, a) == 0);
    free(pa);
    free(pb);
    protobuf_c_message_free_unpacked(again, NULL);
    free(text);
  }
  struct l7_config_store *st;
  CHECK(l7_config_store_new(NULL, &st) == 0);
  struct l7_snapshot *snap;
  err[0] = '\0';
  if (l7_config_store_apply_snapshot(st, (Edge__V1__Snapshot *)m, 0, &snap, err, sizeof(err)) == 0)
    l7_snapshot_unref(snap);
  else
    CHECK(err[0]);
  l7_config_store_free(st);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
