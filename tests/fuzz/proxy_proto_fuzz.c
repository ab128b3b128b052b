/*
 * Fuzz target for the PROXY protocol decoder (common/proxy_proto.c).
 *
 * Besides "never crash, never read out of bounds" it checks the decoder's
 * contract on every input: a success consumes at most the input, a
 * shorter prefix of an accepted header is NEED_MORE, the answer does not
 * depend on bytes after the header, and an accepted PROXY header survives
 * a re-encode/decode round trip with the same addresses and TLVs.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proxy_proto.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

static void check_round_trip(const struct proxy_proto_info *info) {
  if (info->command != PROXY_PROTO_CMD_PROXY ||
      (info->family != AF_INET && info->family != AF_INET6))
    return;
  struct proxy_proto_info again;
  if (info->version == 1) {
    char line[PROXY_PROTO_V1_MAX_LEN];
    int n = proxy_proto_encode_v1(line, sizeof(line), &info->src, &info->dst);
    CHECK(n > 0);
    CHECK(proxy_proto_decode((const uint8_t *)line, (size_t)n, &again) == n);
  } else {
    /* Re-encode without the CRC TLV (the encoder adds its own). */
    struct proxy_proto_tlv tlvs[PROXY_PROTO_MAX_TLVS];
    size_t ntlvs = 0;
    for (size_t i = 0; i < info->ntlvs; i++)
      if (info->tlvs[i].type != PP2_TYPE_CRC32C) tlvs[ntlvs++] = info->tlvs[i];
    static uint8_t out[PROXY_PROTO_V2_ABS_MAX];
    int n = proxy_proto_encode_v2(out, sizeof(out), PROXY_PROTO_CMD_PROXY, &info->src, &info->dst,
                                  tlvs, ntlvs, 0);
    CHECK(n > 0);
    CHECK(proxy_proto_decode_max(out, (size_t)n, PROXY_PROTO_V2_ABS_MAX, &again) == n);
    CHECK(again.ntlvs == ntlvs);
    for (size_t i = 0; i < ntlvs; i++) {
      CHECK(again.tlvs[i].type == tlvs[i].type && again.tlvs[i].len == tlvs[i].len);
      CHECK(memcmp(again.tlvs[i].value, tlvs[i].value, tlvs[i].len) == 0);
    }
  }
  CHECK(again.family == info->family);
  size_t alen = info->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  CHECK(memcmp(&again.src, &info->src, alen) == 0);
  CHECK(memcmp(&again.dst, &info->dst, alen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy so ASan sees any read past the end. */
  uint8_t *buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  if (size) memcpy(buf, data, size);

  struct proxy_proto_info info;
  int rc = proxy_proto_decode(buf, size, &info);
  CHECK(rc != 0);
  CHECK(proxy_proto_strerror(rc) != NULL);
  if (rc > 0) {
    CHECK((size_t)rc <= size);
    struct proxy_proto_info tmp;
    CHECK(proxy_proto_decode(buf, (size_t)rc - 1, &tmp) == PROXY_PROTO_NEED_MORE);
    CHECK(proxy_proto_decode(buf, (size_t)rc, &tmp) == rc);
    CHECK(info.ntlvs <= PROXY_PROTO_MAX_TLVS);
    const struct proxy_proto_tlv *ssl = proxy_proto_find_tlv(&info, PP2_TYPE_SSL);
    if (ssl) {
      struct proxy_proto_ssl s;
      CHECK(proxy_proto_ssl_parse(ssl, &s) == 0);
    }
    check_round_trip(&info);
  }
  /* A small cap may only turn answers into TOO_LONG, never into success
   * of something the default rejects. */
  int capped = proxy_proto_decode_max(buf, size, 1, &info);
  CHECK(capped == rc || capped == PROXY_PROTO_ERR_TOO_LONG);
  free(buf);
  return 0;
}
