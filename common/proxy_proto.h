/*
 * proxy_proto — PROXY protocol v1 (text) and v2 (binary) codec.
 *
 * Pure functions over caller buffers: no I/O, no allocation, no global
 * state, safe from any thread. l4lb encodes a v2 header in front of every
 * forwarded connection; l7proxy decodes v1/v2 from trusted sources before
 * handing the rest of the bytes to TLS or HTTP.
 *
 * Decoding is strict and incremental: call proxy_proto_decode with all the
 * bytes received so far. It returns the header length (> 0) when a whole
 * valid header is present (application data starts at buf + ret), or
 * PROXY_PROTO_NEED_MORE while the bytes so far are a valid but incomplete
 * prefix (read more and call again with the longer buffer), or a specific
 * negative PROXY_PROTO_ERR_* that means "close the connection" (the reason
 * is proxy_proto_strerror(ret)). Every proper prefix of a valid header
 * yields NEED_MORE; a header never reads past its own length.
 *
 * Limits: v1 lines are at most 107 bytes including CRLF; v2 headers at
 * most 16 + 65535 by the spec, capped here at PROXY_PROTO_V2_DEFAULT_MAX
 * (16 + 4096) unless proxy_proto_decode_max is given another cap.
 *
 * TLV values and info->tlvs[i].value point INTO the caller's buffer: they
 * are valid as long as that buffer is. Nothing is allocated.
 */
#ifndef EDGE_COMMON_PROXY_PROTO_H
#define EDGE_COMMON_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_PROTO_V1_MAX_LEN 107 /* "PROXY ... \r\n", spec section 2.1 */
#define PROXY_PROTO_V2_HDR_LEN 16  /* signature + ver/cmd + fam + len */
#define PROXY_PROTO_V2_DEFAULT_MAX (PROXY_PROTO_V2_HDR_LEN + 4096)
#define PROXY_PROTO_V2_ABS_MAX (PROXY_PROTO_V2_HDR_LEN + 65535)
#define PROXY_PROTO_MAX_TLVS 32 /* more TLVs than this: PROXY_PROTO_ERR_TLV_COUNT */

/* Results. NEED_MORE is not an error: read more bytes and call again. */
enum {
  PROXY_PROTO_NEED_MORE = -1,
  PROXY_PROTO_ERR_SIGNATURE = -2,     /* neither "PROXY " nor the v2 signature */
  PROXY_PROTO_ERR_VERSION = -3,       /* v2 version nibble is not 2 */
  PROXY_PROTO_ERR_COMMAND = -4,       /* v2 command neither LOCAL nor PROXY */
  PROXY_PROTO_ERR_FAMILY = -5,        /* v2 family/transport byte invalid; v1 protocol word */
  PROXY_PROTO_ERR_ADDR_LEN = -6,      /* v2 length too short for the address family */
  PROXY_PROTO_ERR_TOO_LONG = -7,      /* header over the limit (v1 107 bytes, v2 cap) */
  PROXY_PROTO_ERR_V1_CRLF = -8,       /* v1: CR not followed by LF, or bare LF */
  PROXY_PROTO_ERR_V1_ADDRESS = -9,    /* v1: address not a valid IPv4/IPv6 of its family */
  PROXY_PROTO_ERR_V1_PORT = -10,      /* v1: port not a decimal 0..65535 */
  PROXY_PROTO_ERR_V1_SYNTAX = -11,    /* v1: wrong field count, extra spaces, garbage */
  PROXY_PROTO_ERR_TLV_OVERFLOW = -12, /* v2: a TLV (or SSL sub-TLV) runs past the header */
  PROXY_PROTO_ERR_CRC32C = -13,       /* v2: PP2_TYPE_CRC32C does not match the header */
  PROXY_PROTO_ERR_TLV_INVALID = -14,  /* v2: known TLV with an impossible length */
  PROXY_PROTO_ERR_TLV_COUNT = -15,    /* v2: more than PROXY_PROTO_MAX_TLVS TLVs */
  PROXY_PROTO_ERR_NOSPACE = -16,      /* encoder: output buffer too small */
  PROXY_PROTO_ERR_ARG = -17,          /* encoder: bad arguments (family mismatch, ...) */
};

/* v2 commands (low nibble of byte 13). v1 "PROXY UNKNOWN" decodes as LOCAL
 * semantics: use the real connection endpoints. */
enum proxy_proto_command {
  PROXY_PROTO_CMD_LOCAL = 0x0,
  PROXY_PROTO_CMD_PROXY = 0x1,
};

enum proxy_proto_transport {
  PROXY_PROTO_TRANSPORT_UNSPEC = 0x0,
  PROXY_PROTO_TRANSPORT_STREAM = 0x1,
  PROXY_PROTO_TRANSPORT_DGRAM = 0x2,
};

/* TLV types (spec section 2.2.7). */
enum {
  PP2_TYPE_ALPN = 0x01,
  PP2_TYPE_AUTHORITY = 0x02,
  PP2_TYPE_CRC32C = 0x03,
  PP2_TYPE_NOOP = 0x04,
  PP2_TYPE_UNIQUE_ID = 0x05, /* at most 128 bytes */
  PP2_TYPE_SSL = 0x20,
  PP2_SUBTYPE_SSL_VERSION = 0x21,
  PP2_SUBTYPE_SSL_CN = 0x22,
  PP2_SUBTYPE_SSL_CIPHER = 0x23,
  PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
  PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
  PP2_TYPE_NETNS = 0x30,
};

/* PP2_TYPE_SSL client bits. */
enum {
  PP2_CLIENT_SSL = 0x01,
  PP2_CLIENT_CERT_CONN = 0x02,
  PP2_CLIENT_CERT_SESS = 0x04,
};

struct proxy_proto_tlv {
  uint8_t type;
  uint16_t len;
  const uint8_t *value; /* borrowed: into the decoded buffer / caller's data */
};

struct proxy_proto_info {
  int version;                          /* 1 or 2 */
  enum proxy_proto_command command;     /* v1 TCP4/TCP6: PROXY; v1 UNKNOWN: LOCAL */
  int family;                           /* AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
  enum proxy_proto_transport transport; /* v1: STREAM (UNSPEC for UNKNOWN) */
  /* Client (src) and the address it connected to (dst). Filled (with
   * ports) only when command is PROXY and family is not AF_UNSPEC;
   * otherwise zeroed with ss_family AF_UNSPEC. */
  struct sockaddr_storage src, dst;
  size_t ntlvs; /* v2 only; in header order, NOOP included */
  struct proxy_proto_tlv tlvs[PROXY_PROTO_MAX_TLVS];
};

/* Decoded PP2_TYPE_SSL value (see proxy_proto_ssl_parse). */
struct proxy_proto_ssl {
  uint8_t client;  /* PP2_CLIENT_* bits */
  uint32_t verify; /* 0 when the client certificate verified */
  struct proxy_proto_tlv version, cn, cipher, sig_alg, key_alg; /* len 0 if absent */
};

/*
 * Decodes a v1 or v2 header at the start of buf[0..len). Returns the
 * header length (> 0), PROXY_PROTO_NEED_MORE, or a PROXY_PROTO_ERR_*.
 * out is fully written only on success. Uses PROXY_PROTO_V2_DEFAULT_MAX.
 */
int proxy_proto_decode(const uint8_t *buf, size_t len, struct proxy_proto_info *out);

/* Same with a v2 length cap (clamped to [PROXY_PROTO_V2_HDR_LEN + 216,
 * PROXY_PROTO_V2_ABS_MAX]; 0 means the default). */
int proxy_proto_decode_max(const uint8_t *buf, size_t len, size_t v2_max,
                           struct proxy_proto_info *out);

/* Cheap look at the first bytes: 1 (v1), 2 (v2), 0 (not PROXY protocol),
 * or PROXY_PROTO_NEED_MORE (too few bytes to tell). For listeners where
 * the header is optional. */
int proxy_proto_detect(const uint8_t *buf, size_t len);

/* First TLV of type in info, or NULL. The pointer is into info. */
const struct proxy_proto_tlv *proxy_proto_find_tlv(const struct proxy_proto_info *info,
                                                   uint8_t type);

/* Splits a PP2_TYPE_SSL TLV into its fields; sub-TLV values point into
 * tlv->value. Returns 0 or PROXY_PROTO_ERR_TLV_INVALID/_TLV_OVERFLOW. */
int proxy_proto_ssl_parse(const struct proxy_proto_tlv *tlv, struct proxy_proto_ssl *out);

/* Flags for proxy_proto_encode_v2. */
enum {
  PROXY_PROTO_ENC_DGRAM = 0x1,  /* transport DGRAM instead of STREAM */
  PROXY_PROTO_ENC_CRC32C = 0x2, /* append a PP2_TYPE_CRC32C TLV over the header */
};

/*
 * Writes a v2 header into out[0..outlen). command PROXY needs src and dst
 * of the same family (AF_INET or AF_INET6, ports included); LOCAL ignores
 * them (may be NULL) and writes family UNSPEC. tlvs[0..ntlvs) are copied
 * in order (values borrowed from the caller; do not pass a CRC32C TLV,
 * use PROXY_PROTO_ENC_CRC32C). Returns the bytes written,
 * PROXY_PROTO_ERR_NOSPACE or PROXY_PROTO_ERR_ARG.
 */
int proxy_proto_encode_v2(uint8_t *out, size_t outlen, enum proxy_proto_command command,
                          const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                          const struct proxy_proto_tlv *tlvs, size_t ntlvs, unsigned flags);

/*
 * Writes a v1 line ("PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n"), not NUL
 * terminated. src/dst NULL or AF_UNSPEC writes "PROXY UNKNOWN\r\n".
 * Returns the bytes written (<= 107), PROXY_PROTO_ERR_NOSPACE or
 * PROXY_PROTO_ERR_ARG (families differ or are unsupported).
 */
int proxy_proto_encode_v1(char *out, size_t outlen, const struct sockaddr_storage *src,
                          const struct sockaddr_storage *dst);

/* Static description of a result code ("need more data", "bad signature"). */
const char *proxy_proto_strerror(int err);

/* CRC-32C (Castagnoli) of buf, as PP2_TYPE_CRC32C uses it. */
uint32_t proxy_proto_crc32c(const uint8_t *buf, size_t len);

#endif
