/*
 * proxy_proto: round trips through the encoders and decoder, partial
 * input, and one test per malformed input checking its specific error.
 */
#include "common/proxy_proto.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct sockaddr_storage addr(const char *ip, uint16_t port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &s->sin6_addr);
  } else {
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s->sin_addr);
  }
  return ss;
}

/* Same family, address and port. */
static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static int decode_str(const char *s, struct proxy_proto_info *info) {
  return proxy_proto_decode((const uint8_t *)s, strlen(s), info);
}

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Writes a raw v2 header: signature, ver/cmd, fam, then body. */
static size_t raw_v2(uint8_t *out, uint8_t vercmd, uint8_t fam, const uint8_t *body,
                     size_t bodylen) {
  memcpy(out, sig, 12);
  out[12] = vercmd;
  out[13] = fam;
  out[14] = (uint8_t)(bodylen >> 8);
  out[15] = (uint8_t)bodylen;
  if (bodylen) memcpy(out + 16, body, bodylen);
  return 16 + bodylen;
}

/* A valid PROXY TCP4 v2 header with one AUTHORITY TLV and a CRC32C. */
static int valid_v2(uint8_t *out, size_t outlen) {
  struct sockaddr_storage s = addr("192.0.2.1", 40000), d = addr("198.51.100.7", 443);
  struct proxy_proto_tlv t = {PP2_TYPE_AUTHORITY, 11, (const uint8_t *)"example.com"};
  return proxy_proto_encode_v2(out, outlen, PROXY_PROTO_CMD_PROXY, &s, &d, &t, 1,
                               PROXY_PROTO_ENC_CRC32C);
}

/* ---- round trips ---- */

static void v1_tcp4_round_trip(void) {
  struct sockaddr_storage s = addr("192.0.2.1", 56324), d = addr("198.51.100.7", 443);
  char line[128];
  int n = proxy_proto_encode_v1(line, sizeof(line), &s, &d);
  CU_ASSERT_EQUAL_FATAL(n, (int)strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"));
  CU_ASSERT_EQUAL(memcmp(line, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n", (size_t)n), 0);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, (size_t)n, &info), n);
  CU_ASSERT_EQUAL(info.version, 1);
  CU_ASSERT_EQUAL(info.command, PROXY_PROTO_CMD_PROXY);
  CU_ASSERT_EQUAL(info.family, AF_INET);
  CU_ASSERT_EQUAL(info.transport, PROXY_PROTO_TRANSPORT_STREAM);
  CU_ASSERT_TRUE(same_addr(&info.src, &s));
  CU_ASSERT_TRUE(same_addr(&info.dst, &d));
  CU_ASSERT_EQUAL(info.ntlvs, 0);
}

static void v1_tcp6_round_trip(void) {
  struct sockaddr_storage s = addr("2001:db8::1", 1), d = addr("2001:db8::ffff:2", 65535);
  char line[128];
  int n = proxy_proto_encode_v1(line, sizeof(line), &s, &d);
  CU_ASSERT_TRUE_FATAL(n > 0);
  CU_ASSERT_EQUAL(memcmp(line, "PROXY TCP6 2001:db8::1 2001:db8::ffff:2 1 65535\r\n", (size_t)n),
                  0);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, (size_t)n, &info), n);
  CU_ASSERT_EQUAL(info.family, AF_INET6);
  CU_ASSERT_TRUE(same_addr(&info.src, &s));
  CU_ASSERT_TRUE(same_addr(&info.dst, &d));
}

static void v1_longest_tcp6_line_fits_in_107_bytes(void) {
  const char *ip = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  struct sockaddr_storage s = addr(ip, 65535), d = addr(ip, 65535);
  char line[128];
  int n = proxy_proto_encode_v1(line, sizeof(line), &s, &d);
  CU_ASSERT_EQUAL(n, PROXY_PROTO_V1_MAX_LEN - 3); /* the spec's 107 allows for "UNKNOWN" */
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, (size_t)n, &info), n);
}

static void v1_unknown_round_trip_ignores_the_rest_of_the_line(void) {
  char line[32];
  int n = proxy_proto_encode_v1(line, sizeof(line), NULL, NULL);
  CU_ASSERT_EQUAL_FATAL(n, 15);
  CU_ASSERT_EQUAL(memcmp(line, "PROXY UNKNOWN\r\n", 15), 0);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, 15, &info), 15);
  CU_ASSERT_EQUAL(info.command, PROXY_PROTO_CMD_LOCAL);
  CU_ASSERT_EQUAL(info.family, AF_UNSPEC);
  const char *more = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
  CU_ASSERT_EQUAL(decode_str(more, &info), (int)strlen(more));
  CU_ASSERT_EQUAL(info.family, AF_UNSPEC);
}

static void v2_tcp4_round_trip(void) {
  struct sockaddr_storage s = addr("10.1.2.3", 5555), d = addr("10.9.8.7", 80);
  uint8_t buf[256];
  int n = proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, NULL, 0, 0);
  CU_ASSERT_EQUAL_FATAL(n, 16 + 12);
  CU_ASSERT_EQUAL(buf[12], 0x21);
  CU_ASSERT_EQUAL(buf[13], 0x11);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), n);
  CU_ASSERT_EQUAL(info.version, 2);
  CU_ASSERT_EQUAL(info.command, PROXY_PROTO_CMD_PROXY);
  CU_ASSERT_EQUAL(info.family, AF_INET);
  CU_ASSERT_EQUAL(info.transport, PROXY_PROTO_TRANSPORT_STREAM);
  CU_ASSERT_TRUE(same_addr(&info.src, &s));
  CU_ASSERT_TRUE(same_addr(&info.dst, &d));
  CU_ASSERT_EQUAL(info.ntlvs, 0);
}

static void v2_tcp6_round_trip(void) {
  struct sockaddr_storage s = addr("2001:db8::10", 12345), d = addr("::1", 8443);
  uint8_t buf[256];
  int n = proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, NULL, 0, 0);
  CU_ASSERT_EQUAL_FATAL(n, 16 + 36);
  CU_ASSERT_EQUAL(buf[13], 0x21);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), n);
  CU_ASSERT_EQUAL(info.family, AF_INET6);
  CU_ASSERT_TRUE(same_addr(&info.src, &s));
  CU_ASSERT_TRUE(same_addr(&info.dst, &d));
}

static void v2_dgram_flag_sets_the_transport(void) {
  struct sockaddr_storage s = addr("10.1.2.3", 53), d = addr("10.9.8.7", 53);
  uint8_t buf[64];
  int n = proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, NULL, 0,
                                PROXY_PROTO_ENC_DGRAM);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), n);
  CU_ASSERT_EQUAL(info.transport, PROXY_PROTO_TRANSPORT_DGRAM);
}

static void v2_local_round_trip_has_no_addresses(void) {
  uint8_t buf[64];
  int n = proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_LOCAL, NULL, NULL, NULL, 0, 0);
  CU_ASSERT_EQUAL_FATAL(n, 16);
  CU_ASSERT_EQUAL(buf[12], 0x20);
  CU_ASSERT_EQUAL(buf[13], 0x00);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), 16);
  CU_ASSERT_EQUAL(info.command, PROXY_PROTO_CMD_LOCAL);
  CU_ASSERT_EQUAL(info.family, AF_UNSPEC);
  CU_ASSERT_EQUAL(info.src.ss_family, AF_UNSPEC);
}

static void v2_local_with_an_address_block_ignores_it(void) {
  uint8_t body[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 80, 0, 81}, buf[64];
  size_t n = raw_v2(buf, 0x20, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), (int)n);
  CU_ASSERT_EQUAL(info.command, PROXY_PROTO_CMD_LOCAL);
  CU_ASSERT_EQUAL(info.family, AF_UNSPEC);
}

static void v2_tlvs_round_trip_in_order(void) {
  struct sockaddr_storage s = addr("10.0.0.1", 1000), d = addr("10.0.0.2", 443);
  /* SSL: client bits, verify, then VERSION and CN sub-TLVs. */
  uint8_t ssl[5 + 3 + 7 + 3 + 4] = {PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, 0, 0, 0};
  memcpy(ssl + 5, "\x21\x00\x07TLSv1.3", 10);
  memcpy(ssl + 15,
         "\x22\x00\x04"
         "alice",
         7);
  struct proxy_proto_tlv in[] = {
      {PP2_TYPE_ALPN, 2, (const uint8_t *)"h2"},
      {PP2_TYPE_AUTHORITY, 11, (const uint8_t *)"example.com"},
      {PP2_TYPE_UNIQUE_ID, 4, (const uint8_t *)"\x00\x01\x02\x03"},
      {PP2_TYPE_NOOP, 0, NULL},
      {PP2_TYPE_SSL, sizeof(ssl), ssl},
  };
  uint8_t buf[512];
  int n = proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, in, 5, 0);
  CU_ASSERT_TRUE_FATAL(n > 0);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL_FATAL(proxy_proto_decode(buf, (size_t)n, &info), n);
  CU_ASSERT_EQUAL_FATAL(info.ntlvs, 5);
  for (size_t i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(info.tlvs[i].type, in[i].type);
    CU_ASSERT_EQUAL(info.tlvs[i].len, in[i].len);
    if (in[i].len) CU_ASSERT_EQUAL(memcmp(info.tlvs[i].value, in[i].value, in[i].len), 0);
    /* values point into the decoded buffer */
    CU_ASSERT_TRUE(info.tlvs[i].value >= buf && info.tlvs[i].value <= buf + n);
  }
  const struct proxy_proto_tlv *auth = proxy_proto_find_tlv(&info, PP2_TYPE_AUTHORITY);
  CU_ASSERT_PTR_NOT_NULL_FATAL(auth);
  CU_ASSERT_EQUAL(memcmp(auth->value, "example.com", 11), 0);
  CU_ASSERT_PTR_NULL(proxy_proto_find_tlv(&info, PP2_TYPE_CRC32C));
  struct proxy_proto_ssl sslinfo;
  CU_ASSERT_EQUAL(proxy_proto_ssl_parse(proxy_proto_find_tlv(&info, PP2_TYPE_SSL), &sslinfo), 0);
  CU_ASSERT_EQUAL(sslinfo.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
  CU_ASSERT_EQUAL(sslinfo.verify, 0);
  CU_ASSERT_EQUAL(sslinfo.version.len, 7);
  CU_ASSERT_EQUAL(memcmp(sslinfo.version.value, "TLSv1.3", 7), 0);
  CU_ASSERT_EQUAL(sslinfo.cn.len, 4);
  CU_ASSERT_EQUAL(sslinfo.cipher.len, 0);
}

static void v2_crc32c_is_written_and_verified(void) {
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  CU_ASSERT_TRUE_FATAL(n > 0);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), n);
  const struct proxy_proto_tlv *crc = proxy_proto_find_tlv(&info, PP2_TYPE_CRC32C);
  CU_ASSERT_PTR_NOT_NULL_FATAL(crc);
  CU_ASSERT_EQUAL(crc->len, 4);
}

static void crc32c_matches_the_standard_check_value(void) {
  CU_ASSERT_EQUAL(proxy_proto_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
}

static void decode_returns_header_length_and_leaves_payload(void) {
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n + 16, &info), n);
  const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n";
  CU_ASSERT_EQUAL(decode_str(v1, &info), 32);
}

static void every_prefix_of_a_valid_v1_header_needs_more(void) {
  const char *line = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 80\r\n";
  struct proxy_proto_info info;
  for (size_t i = 0; i < strlen(line); i++)
    CU_ASSERT_EQUAL(proxy_proto_decode((const uint8_t *)line, i, &info), PROXY_PROTO_NEED_MORE);
  CU_ASSERT_EQUAL(decode_str(line, &info), (int)strlen(line));
}

static void every_prefix_of_a_valid_v2_header_needs_more(void) {
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  struct proxy_proto_info info;
  for (int i = 0; i < n; i++)
    CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)i, &info), PROXY_PROTO_NEED_MORE);
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), n);
}

static void detect_tells_v1_v2_and_other_traffic_apart(void) {
  CU_ASSERT_EQUAL(proxy_proto_detect((const uint8_t *)"PROXY TCP4", 10), 1);
  CU_ASSERT_EQUAL(proxy_proto_detect(sig, 12), 2);
  CU_ASSERT_EQUAL(proxy_proto_detect(sig, 5), PROXY_PROTO_NEED_MORE);
  CU_ASSERT_EQUAL(proxy_proto_detect((const uint8_t *)"PRO", 3), PROXY_PROTO_NEED_MORE);
  CU_ASSERT_EQUAL(proxy_proto_detect((const uint8_t *)"GET / HTTP/1.1", 14), 0);
  CU_ASSERT_EQUAL(proxy_proto_detect((const uint8_t *)"\x16\x03\x01", 3), 0);
}

/* ---- malformed input, one error each ---- */

static void truncated_v2_header_needs_more(void) {
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n - 1, &info), PROXY_PROTO_NEED_MORE);
}

static void v2_length_over_the_cap_is_too_long(void) {
  uint8_t buf[16];
  raw_v2(buf, 0x21, 0x11, NULL, 0);
  buf[14] = (4097 >> 8);
  buf[15] = (4097 & 0xff);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, 16, &info), PROXY_PROTO_ERR_TOO_LONG);
  /* A raised cap accepts the length (and then waits for the bytes). */
  CU_ASSERT_EQUAL(proxy_proto_decode_max(buf, 16, 16 + 8192, &info), PROXY_PROTO_NEED_MORE);
}

static void v1_line_without_crlf_in_107_bytes_is_too_long(void) {
  char line[120];
  memcpy(line, "PROXY TCP4 ", 11);
  memset(line + 11, '1', sizeof(line) - 11);
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, 106, &info), PROXY_PROTO_NEED_MORE);
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, 107, &info), PROXY_PROTO_ERR_TOO_LONG);
  CU_ASSERT_EQUAL(proxy_proto_decode((uint8_t *)line, sizeof(line), &info),
                  PROXY_PROTO_ERR_TOO_LONG);
}

static void wrong_signature_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("GET / HTTP/1.1\r\n", &info), PROXY_PROTO_ERR_SIGNATURE);
  CU_ASSERT_EQUAL(decode_str("PROXX TCP4", &info), PROXY_PROTO_ERR_SIGNATURE);
  CU_ASSERT_EQUAL(decode_str("PROXYTCP4", &info), PROXY_PROTO_ERR_SIGNATURE);
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  buf[7] ^= 0xff;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), PROXY_PROTO_ERR_SIGNATURE);
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, 8, &info), PROXY_PROTO_ERR_SIGNATURE);
}

static void v2_wrong_version_is_rejected(void) {
  uint8_t buf[64], body[12] = {0};
  size_t n = raw_v2(buf, 0x11, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_VERSION);
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, 13, &info), PROXY_PROTO_ERR_VERSION);
}

static void v2_unknown_command_is_rejected(void) {
  uint8_t buf[64], body[12] = {0};
  size_t n = raw_v2(buf, 0x22, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_COMMAND);
}

static void v2_unknown_family_or_transport_is_rejected(void) {
  uint8_t buf[64], body[12] = {0};
  struct proxy_proto_info info;
  size_t n = raw_v2(buf, 0x21, 0x41, body, sizeof(body));
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_FAMILY);
  n = raw_v2(buf, 0x21, 0x13, body, sizeof(body));
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_FAMILY);
}

static void v2_length_too_short_for_inet_is_rejected(void) {
  uint8_t buf[64], body[8] = {0};
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_ADDR_LEN);
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, 16, &info), PROXY_PROTO_ERR_ADDR_LEN);
}

static void v2_length_too_short_for_inet6_is_rejected(void) {
  uint8_t buf[64], body[12] = {0};
  size_t n = raw_v2(buf, 0x21, 0x21, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_ADDR_LEN);
}

static void v2_tlv_running_past_the_header_is_overflow(void) {
  uint8_t body[12 + 3 + 2] = {0};
  body[12] = PP2_TYPE_AUTHORITY;
  body[13] = 0;
  body[14] = 5; /* claims 5 bytes, 2 present */
  uint8_t buf[64];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_OVERFLOW);
}

static void v2_tlv_header_cut_short_is_overflow(void) {
  uint8_t body[12 + 2] = {0};
  body[12] = PP2_TYPE_NOOP;
  uint8_t buf[64];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_OVERFLOW);
}

static void v2_ssl_sub_tlv_overflow_is_rejected(void) {
  uint8_t body[12 + 3 + 5 + 3] = {0};
  uint8_t *t = body + 12;
  t[0] = PP2_TYPE_SSL;
  t[2] = 8;                      /* SSL value: 5 fixed bytes + a 3-byte sub-TLV header */
  t[3 + 5] = PP2_SUBTYPE_SSL_CN; /* sub-TLV claims 9 bytes, none present */
  t[3 + 7] = 9;
  uint8_t buf[64];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_OVERFLOW);
}

static void v2_bad_crc32c_is_rejected(void) {
  uint8_t buf[256];
  int n = valid_v2(buf, sizeof(buf));
  buf[n - 1] ^= 0x01; /* the CRC TLV is last */
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), PROXY_PROTO_ERR_CRC32C);
  n = valid_v2(buf, sizeof(buf));
  buf[16] ^= 0x01; /* an address byte changed in transit */
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, (size_t)n, &info), PROXY_PROTO_ERR_CRC32C);
}

static void v2_crc32c_tlv_of_wrong_length_is_invalid(void) {
  uint8_t body[12 + 3 + 2] = {0};
  body[12] = PP2_TYPE_CRC32C;
  body[14] = 2;
  uint8_t buf[64];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_INVALID);
}

static void v2_unique_id_over_128_bytes_is_invalid(void) {
  uint8_t body[12 + 3 + 129] = {0};
  body[12] = PP2_TYPE_UNIQUE_ID;
  body[14] = 129;
  uint8_t buf[256];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_INVALID);
}

static void v2_more_tlvs_than_the_limit_is_rejected(void) {
  uint8_t body[12 + 3 * (PROXY_PROTO_MAX_TLVS + 1)] = {0};
  for (int i = 0; i <= PROXY_PROTO_MAX_TLVS; i++) body[12 + 3 * i] = PP2_TYPE_NOOP;
  uint8_t buf[256];
  size_t n = raw_v2(buf, 0x21, 0x11, body, sizeof(body));
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), PROXY_PROTO_ERR_TLV_COUNT);
  /* exactly the limit is fine */
  n = raw_v2(buf, 0x21, 0x11, body, sizeof(body) - 3);
  CU_ASSERT_EQUAL(proxy_proto_decode(buf, n, &info), (int)n);
  CU_ASSERT_EQUAL(info.ntlvs, PROXY_PROTO_MAX_TLVS);
}

static void v1_bare_lf_is_a_crlf_error(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &info), PROXY_PROTO_ERR_V1_CRLF);
}

static void v1_cr_not_followed_by_lf_is_a_crlf_error(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", &info), PROXY_PROTO_ERR_V1_CRLF);
}

static void v1_bad_ipv4_address_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_ADDRESS);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_ADDRESS);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", &info), PROXY_PROTO_ERR_V1_ADDRESS);
}

static void v1_ipv4_address_in_tcp6_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", &info), PROXY_PROTO_ERR_V1_ADDRESS);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP6 ::1 ::g 1 2\r\n", &info), PROXY_PROTO_ERR_V1_ADDRESS);
}

static void v1_port_out_of_range_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
}

static void v1_port_not_plain_decimal_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
}

static void v1_extra_spaces_are_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_SYNTAX);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", &info),
                  PROXY_PROTO_ERR_V1_SYNTAX);
  CU_ASSERT_EQUAL(decode_str("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &info),
                  PROXY_PROTO_ERR_V1_SYNTAX);
}

static void v1_wrong_field_count_is_rejected(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", &info), PROXY_PROTO_ERR_V1_SYNTAX);
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &info),
                  PROXY_PROTO_ERR_V1_SYNTAX);
  CU_ASSERT_EQUAL(decode_str("PROXY \r\n", &info), PROXY_PROTO_ERR_V1_SYNTAX);
}

static void v1_unknown_protocol_word_is_a_family_error(void) {
  struct proxy_proto_info info;
  CU_ASSERT_EQUAL(decode_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", &info), PROXY_PROTO_ERR_FAMILY);
  CU_ASSERT_EQUAL(decode_str("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", &info), PROXY_PROTO_ERR_FAMILY);
}

static void v1_binary_garbage_is_rejected_without_waiting_for_crlf(void) {
  struct proxy_proto_info info;
  const uint8_t junk[] = {'P', 'R', 'O', 'X', 'Y', ' ', 'T', 0x00, 0xff};
  CU_ASSERT_EQUAL(proxy_proto_decode(junk, sizeof(junk), &info), PROXY_PROTO_ERR_V1_SYNTAX);
}

static void decode_leaves_out_untouched_on_error(void) {
  struct proxy_proto_info info;
  memset(&info, 0xab, sizeof(info));
  CU_ASSERT_EQUAL(decode_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", &info),
                  PROXY_PROTO_ERR_V1_PORT);
  CU_ASSERT_EQUAL(info.version, (int)0xabababab);
}

/* ---- encoder errors ---- */

static void encoders_report_a_too_small_buffer(void) {
  struct sockaddr_storage s = addr("10.0.0.1", 1), d = addr("10.0.0.2", 2);
  uint8_t buf[27];
  CU_ASSERT_EQUAL(
      proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, NULL, 0, 0),
      PROXY_PROTO_ERR_NOSPACE);
  char line[20];
  CU_ASSERT_EQUAL(proxy_proto_encode_v1(line, sizeof(line), &s, &d), PROXY_PROTO_ERR_NOSPACE);
}

static void encoders_reject_mismatched_families(void) {
  struct sockaddr_storage s = addr("10.0.0.1", 1), d = addr("::1", 2);
  uint8_t buf[128];
  CU_ASSERT_EQUAL(
      proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, &s, &d, NULL, 0, 0),
      PROXY_PROTO_ERR_ARG);
  CU_ASSERT_EQUAL(
      proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_PROXY, NULL, &d, NULL, 0, 0),
      PROXY_PROTO_ERR_ARG);
  char line[128];
  CU_ASSERT_EQUAL(proxy_proto_encode_v1(line, sizeof(line), &s, &d), PROXY_PROTO_ERR_ARG);
  struct proxy_proto_tlv crc = {PP2_TYPE_CRC32C, 4, (const uint8_t *)"abcd"};
  CU_ASSERT_EQUAL(
      proxy_proto_encode_v2(buf, sizeof(buf), PROXY_PROTO_CMD_LOCAL, NULL, NULL, &crc, 1, 0),
      PROXY_PROTO_ERR_ARG);
}

static void every_error_code_has_its_own_message(void) {
  for (int a = PROXY_PROTO_ERR_ARG; a <= PROXY_PROTO_NEED_MORE; a++) {
    CU_ASSERT_STRING_NOT_EQUAL(proxy_proto_strerror(a), "unknown PROXY protocol error");
    for (int b = a + 1; b <= PROXY_PROTO_NEED_MORE; b++)
      CU_ASSERT_STRING_NOT_EQUAL(proxy_proto_strerror(a), proxy_proto_strerror(b));
  }
}

#define ADD(s, fn) CU_add_test(s, #fn, fn)

void test_register(void) {
  CU_pSuite rt = CU_add_suite("proxy_proto_round_trip", NULL, NULL);
  ADD(rt, v1_tcp4_round_trip);
  ADD(rt, v1_tcp6_round_trip);
  ADD(rt, v1_longest_tcp6_line_fits_in_107_bytes);
  ADD(rt, v1_unknown_round_trip_ignores_the_rest_of_the_line);
  ADD(rt, v2_tcp4_round_trip);
  ADD(rt, v2_tcp6_round_trip);
  ADD(rt, v2_dgram_flag_sets_the_transport);
  ADD(rt, v2_local_round_trip_has_no_addresses);
  ADD(rt, v2_local_with_an_address_block_ignores_it);
  ADD(rt, v2_tlvs_round_trip_in_order);
  ADD(rt, v2_crc32c_is_written_and_verified);
  ADD(rt, crc32c_matches_the_standard_check_value);
  ADD(rt, decode_returns_header_length_and_leaves_payload);
  ADD(rt, every_prefix_of_a_valid_v1_header_needs_more);
  ADD(rt, every_prefix_of_a_valid_v2_header_needs_more);
  ADD(rt, detect_tells_v1_v2_and_other_traffic_apart);

  CU_pSuite bad = CU_add_suite("proxy_proto_malformed", NULL, NULL);
  ADD(bad, truncated_v2_header_needs_more);
  ADD(bad, v2_length_over_the_cap_is_too_long);
  ADD(bad, v1_line_without_crlf_in_107_bytes_is_too_long);
  ADD(bad, wrong_signature_is_rejected);
  ADD(bad, v2_wrong_version_is_rejected);
  ADD(bad, v2_unknown_command_is_rejected);
  ADD(bad, v2_unknown_family_or_transport_is_rejected);
  ADD(bad, v2_length_too_short_for_inet_is_rejected);
  ADD(bad, v2_length_too_short_for_inet6_is_rejected);
  ADD(bad, v2_tlv_running_past_the_header_is_overflow);
  ADD(bad, v2_tlv_header_cut_short_is_overflow);
  ADD(bad, v2_ssl_sub_tlv_overflow_is_rejected);
  ADD(bad, v2_bad_crc32c_is_rejected);
  ADD(bad, v2_crc32c_tlv_of_wrong_length_is_invalid);
  ADD(bad, v2_unique_id_over_128_bytes_is_invalid);
  ADD(bad, v2_more_tlvs_than_the_limit_is_rejected);
  ADD(bad, v1_bare_lf_is_a_crlf_error);
  ADD(bad, v1_cr_not_followed_by_lf_is_a_crlf_error);
  ADD(bad, v1_bad_ipv4_address_is_rejected);
  ADD(bad, v1_ipv4_address_in_tcp6_is_rejected);
  ADD(bad, v1_port_out_of_range_is_rejected);
  ADD(bad, v1_port_not_plain_decimal_is_rejected);
  ADD(bad, v1_extra_spaces_are_rejected);
  ADD(bad, v1_wrong_field_count_is_rejected);
  ADD(bad, v1_unknown_protocol_word_is_a_family_error);
  ADD(bad, v1_binary_garbage_is_rejected_without_waiting_for_crlf);
  ADD(bad, decode_leaves_out_untouched_on_error);

  CU_pSuite enc = CU_add_suite("proxy_proto_encoder", NULL, NULL);
  ADD(enc, encoders_report_a_too_small_buffer);
  ADD(enc, encoders_reject_mismatched_families);
  ADD(enc, every_error_code_has_its_own_message);
}
