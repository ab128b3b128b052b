/*
 * proxy_proto — PROXY protocol v1/v2 decoder and encoder over plain
 * buffers (spec: haproxy doc/proxy-protocol.txt).
 *
 * The decoder is written so that its answer depends only on the bytes it
 * has seen: errors are reported as soon as the prefix can no longer be
 * the start of a valid header (bad signature byte, version, command,
 * family, a v2 length over the cap or too short for the family, a
 * non-printable byte in a v1 line), and NEED_MORE otherwise. It never
 * reads beyond len nor beyond the header's own length, and it writes
 * *out only on success.
 *
 * Called by l7proxy (decode on accepted connections) and l4lb (encode v2
 * in front of forwarded connections); fuzzed by tests/fuzz.
 */
#include "common/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

#define V2_FAM_UNSPEC 0x0
#define V2_FAM_INET 0x1
#define V2_FAM_INET6 0x2
#define V2_FAM_UNIX 0x3
#define V2_ADDR_INET 12
#define V2_ADDR_INET6 36
#define V2_ADDR_UNIX 216
#define UNIQUE_ID_MAX 128

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

static uint32_t crc32c_table[256];
static int crc32c_ready;

static void crc32c_init(void) {
  /* Idempotent and deterministic: racing threads write the same values. */
  if (__atomic_load_n(&crc32c_ready, __ATOMIC_ACQUIRE)) return;
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc32c_table[i] = c;
  }
  __atomic_store_n(&crc32c_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

uint32_t proxy_proto_crc32c(const uint8_t *buf, size_t len) {
  crc32c_init();
  return ~crc32c_update(0xffffffffu, buf, len);
}

/* CRC of hdr[0..total) with the 4 value bytes at crc_off taken as zero. */
static uint32_t crc32c_with_hole(const uint8_t *hdr, size_t total, size_t crc_off) {
  static const uint8_t zero[4];
  crc32c_init();
  uint32_t crc = 0xffffffffu;
  crc = crc32c_update(crc, hdr, crc_off);
  crc = crc32c_update(crc, zero, 4);
  crc = crc32c_update(crc, hdr + crc_off + 4, total - crc_off - 4);
  return ~crc;
}

/* ---- helpers ---- */

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static size_t min_size(size_t a, size_t b) {
  return a < b ? a : b;
}

int proxy_proto_detect(const uint8_t *buf, size_t len) {
  if (len == 0) return PROXY_PROTO_NEED_MORE;
  if (memcmp(buf, v1_sig, min_size(len, sizeof(v1_sig))) == 0)
    return len >= sizeof(v1_sig) ? 1 : PROXY_PROTO_NEED_MORE;
  if (memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) == 0)
    return len >= sizeof(v2_sig) ? 2 : PROXY_PROTO_NEED_MORE;
  return 0;
}

/* ---- v1 ---- */

static int v1_port(const char *s, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return PROXY_PROTO_ERR_V1_PORT;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return PROXY_PROTO_ERR_V1_PORT;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v > 65535) return PROXY_PROTO_ERR_V1_PORT;
  *out = (uint16_t)v;
  return 0;
}

static int v1_addr(int family, const char *s, size_t n, struct sockaddr_storage *ss) {
  char tmp[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof(tmp)) return PROXY_PROTO_ERR_V1_ADDRESS;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1) return PROXY_PROTO_ERR_V1_ADDRESS;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1) return PROXY_PROTO_ERR_V1_ADDRESS;
  }
  return 0;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Parses the line without CRLF: "PROXY TCP4 src dst sport dport". */
static int v1_parse_line(const char *line, size_t n, struct proxy_proto_info *info) {
  const char *p = line + sizeof(v1_sig);
  const char *end = line + n;
  if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
    /* The spec says to ignore whatever follows UNKNOWN. */
    info->command = PROXY_PROTO_CMD_LOCAL;
    info->family = AF_UNSPEC;
    info->transport = PROXY_PROTO_TRANSPORT_UNSPEC;
    return 0;
  }
  const char *tok[5];
  size_t toklen[5];
  int ntok = 0;
  while (p <= end) {
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *tend = sp ? sp : end;
    if (tend == p) return PROXY_PROTO_ERR_V1_SYNTAX; /* empty field: doubled/trailing space */
    if (ntok == 5) return PROXY_PROTO_ERR_V1_SYNTAX;
    tok[ntok] = p;
    toklen[ntok++] = (size_t)(tend - p);
    if (sp == NULL) break;
    p = sp + 1;
  }
  int family;
  if (toklen[0] == 4 && memcmp(tok[0], "TCP4", 4) == 0)
    family = AF_INET;
  else if (toklen[0] == 4 && memcmp(tok[0], "TCP6", 4) == 0)
    family = AF_INET6;
  else
    return PROXY_PROTO_ERR_FAMILY;
  if (ntok != 5) return PROXY_PROTO_ERR_V1_SYNTAX;
  uint16_t sport, dport;
  int rc;
  if ((rc = v1_addr(family, tok[1], toklen[1], &info->src)) != 0) return rc;
  if ((rc = v1_addr(family, tok[2], toklen[2], &info->dst)) != 0) return rc;
  if ((rc = v1_port(tok[3], toklen[3], &sport)) != 0) return rc;
  if ((rc = v1_port(tok[4], toklen[4], &dport)) != 0) return rc;
  set_port(&info->src, sport);
  set_port(&info->dst, dport);
  info->command = PROXY_PROTO_CMD_PROXY;
  info->family = family;
  info->transport = PROXY_PROTO_TRANSPORT_STREAM;
  return 0;
}

static int decode_v1(const uint8_t *buf, size_t len, struct proxy_proto_info *out) {
  size_t scan = min_size(len, PROXY_PROTO_V1_MAX_LEN);
  for (size_t i = sizeof(v1_sig); i < scan; i++) {
    uint8_t ch = buf[i];
    if (ch == '\r') {
      if (i + 1 < len && buf[i + 1] != '\n') return PROXY_PROTO_ERR_V1_CRLF;
      continue;
    }
    if (ch == '\n') {
      if (buf[i - 1] != '\r') return PROXY_PROTO_ERR_V1_CRLF;
      struct proxy_proto_info info;
      memset(&info, 0, sizeof(info));
      info.version = 1;
      int rc = v1_parse_line((const char *)buf, i - 1, &info);
      if (rc != 0) return rc;
      *out = info;
      return (int)(i + 1);
    }
    if (ch < 0x20 || ch > 0x7e) return PROXY_PROTO_ERR_V1_SYNTAX;
  }
  return len >= PROXY_PROTO_V1_MAX_LEN ? PROXY_PROTO_ERR_TOO_LONG : PROXY_PROTO_NEED_MORE;
}

/* ---- v2 ---- */

static int v2_family_addrlen(uint8_t fam) {
  switch (fam) {
    case V2_FAM_UNSPEC:
      return 0;
    case V2_FAM_INET:
      return V2_ADDR_INET;
    case V2_FAM_INET6:
      return V2_ADDR_INET6;
    case V2_FAM_UNIX:
      return V2_ADDR_UNIX;
    default:
      return -1;
  }
}

static void v2_addresses(uint8_t fam, const uint8_t *a, struct proxy_proto_info *info) {
  if (fam == V2_FAM_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&info->src, *d = (struct sockaddr_in *)&info->dst;
    s->sin_family = d->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&d->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2);
    memcpy(&d->sin_port, a + 10, 2);
    info->family = AF_INET;
  } else if (fam == V2_FAM_INET6) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src;
    struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info->dst;
    s->sin6_family = d->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&d->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&d->sin6_port, a + 34, 2);
    info->family = AF_INET6;
  } else if (fam == V2_FAM_UNIX) {
    struct sockaddr_un *s = (struct sockaddr_un *)&info->src, *d = (struct sockaddr_un *)&info->dst;
    s->sun_family = d->sun_family = AF_UNIX;
    /* 108 bytes each on the wire and in sun_path; keep a terminating NUL. */
    memcpy(s->sun_path, a, sizeof(s->sun_path) - 1);
    memcpy(d->sun_path, a + 108, sizeof(d->sun_path) - 1);
    info->family = AF_UNIX;
  } else {
    info->family = AF_UNSPEC;
  }
}

/* Walks sub-TLVs of an SSL TLV value (after its 5-byte fixed part). */
int proxy_proto_ssl_parse(const struct proxy_proto_tlv *tlv, struct proxy_proto_ssl *out) {
  if (tlv == NULL || tlv->type != PP2_TYPE_SSL || tlv->len < 5) return PROXY_PROTO_ERR_TLV_INVALID;
  struct proxy_proto_ssl ssl;
  memset(&ssl, 0, sizeof(ssl));
  ssl.client = tlv->value[0];
  ssl.verify = get32(tlv->value + 1);
  size_t off = 5;
  while (off < tlv->len) {
    if (tlv->len - off < 3) return PROXY_PROTO_ERR_TLV_OVERFLOW;
    uint8_t type = tlv->value[off];
    uint16_t n = get16(tlv->value + off + 1);
    if (tlv->len - off - 3 < n) return PROXY_PROTO_ERR_TLV_OVERFLOW;
    struct proxy_proto_tlv sub = {.type = type, .len = n, .value = tlv->value + off + 3};
    switch (type) {
      case PP2_SUBTYPE_SSL_VERSION:
        ssl.version = sub;
        break;
      case PP2_SUBTYPE_SSL_CN:
        ssl.cn = sub;
        break;
      case PP2_SUBTYPE_SSL_CIPHER:
        ssl.cipher = sub;
        break;
      case PP2_SUBTYPE_SSL_SIG_ALG:
        ssl.sig_alg = sub;
        break;
      case PP2_SUBTYPE_SSL_KEY_ALG:
        ssl.key_alg = sub;
        break;
      default:
        break; /* unknown sub-TLVs are skipped, as the spec asks */
    }
    off += 3 + (size_t)n;
  }
  if (out) *out = ssl;
  return 0;
}

static int v2_tlvs(const uint8_t *hdr, size_t off, size_t total, struct proxy_proto_info *info) {
  while (off < total) {
    if (total - off < 3) return PROXY_PROTO_ERR_TLV_OVERFLOW;
    uint8_t type = hdr[off];
    uint16_t n = get16(hdr + off + 1);
    if (total - off - 3 < n) return PROXY_PROTO_ERR_TLV_OVERFLOW;
    if (info->ntlvs == PROXY_PROTO_MAX_TLVS) return PROXY_PROTO_ERR_TLV_COUNT;
    struct proxy_proto_tlv *t = &info->tlvs[info->ntlvs++];
    t->type = type;
    t->len = n;
    t->value = hdr + off + 3;
    if (type == PP2_TYPE_CRC32C) {
      if (n != 4) return PROXY_PROTO_ERR_TLV_INVALID;
      if (crc32c_with_hole(hdr, total, off + 3) != get32(t->value)) return PROXY_PROTO_ERR_CRC32C;
    } else if (type == PP2_TYPE_UNIQUE_ID) {
      if (n > UNIQUE_ID_MAX) return PROXY_PROTO_ERR_TLV_INVALID;
    } else if (type == PP2_TYPE_SSL) {
      int rc = proxy_proto_ssl_parse(t, NULL);
      if (rc != 0) return rc;
    }
    off += 3 + (size_t)n;
  }
  return 0;
}

static int decode_v2(const uint8_t *buf, size_t len, size_t cap, struct proxy_proto_info *out) {
  if (len > 12) {
    if ((buf[12] >> 4) != 2) return PROXY_PROTO_ERR_VERSION;
    uint8_t cmd = buf[12] & 0x0f;
    if (cmd != PROXY_PROTO_CMD_LOCAL && cmd != PROXY_PROTO_CMD_PROXY)
      return PROXY_PROTO_ERR_COMMAND;
  }
  if (len > 13) {
    if (v2_family_addrlen(buf[13] >> 4) < 0 || (buf[13] & 0x0f) > PROXY_PROTO_TRANSPORT_DGRAM)
      return PROXY_PROTO_ERR_FAMILY;
  }
  if (len < PROXY_PROTO_V2_HDR_LEN) return PROXY_PROTO_NEED_MORE;
  uint8_t cmd = buf[12] & 0x0f;
  uint8_t fam = buf[13] >> 4;
  size_t total = PROXY_PROTO_V2_HDR_LEN + get16(buf + 14);
  if (total > cap) return PROXY_PROTO_ERR_TOO_LONG;
  size_t addrlen = (size_t)v2_family_addrlen(fam);
  size_t body = total - PROXY_PROTO_V2_HDR_LEN;
  if (cmd == PROXY_PROTO_CMD_PROXY && body < addrlen) return PROXY_PROTO_ERR_ADDR_LEN;
  if (len < total) return PROXY_PROTO_NEED_MORE;

  struct proxy_proto_info info;
  memset(&info, 0, sizeof(info));
  info.version = 2;
  info.command = (enum proxy_proto_command)cmd;
  info.transport = (enum proxy_proto_transport)(buf[13] & 0x0f);
  info.family = AF_UNSPEC;
  if (cmd == PROXY_PROTO_CMD_PROXY) v2_addresses(fam, buf + PROXY_PROTO_V2_HDR_LEN, &info);
  /* LOCAL: the address block is to be ignored, but TLVs may still follow
   * it when it is complete. */
  if (body >= addrlen) {
    int rc = v2_tlvs(buf, PROXY_PROTO_V2_HDR_LEN + addrlen, total, &info);
    if (rc != 0) return rc;
  }
  *out = info;
  return (int)total;
}

int proxy_proto_decode_max(const uint8_t *buf, size_t len, size_t v2_max,
                           struct proxy_proto_info *out) {
  if (buf == NULL || out == NULL) return len == 0 ? PROXY_PROTO_NEED_MORE : PROXY_PROTO_ERR_ARG;
  if (len == 0) return PROXY_PROTO_NEED_MORE;
  if (v2_max == 0) v2_max = PROXY_PROTO_V2_DEFAULT_MAX;
  if (v2_max < PROXY_PROTO_V2_HDR_LEN + V2_ADDR_UNIX)
    v2_max = PROXY_PROTO_V2_HDR_LEN + V2_ADDR_UNIX;
  if (v2_max > PROXY_PROTO_V2_ABS_MAX) v2_max = PROXY_PROTO_V2_ABS_MAX;
  if (buf[0] == v1_sig[0]) {
    if (memcmp(buf, v1_sig, min_size(len, sizeof(v1_sig))) != 0) return PROXY_PROTO_ERR_SIGNATURE;
    if (len < sizeof(v1_sig)) return PROXY_PROTO_NEED_MORE;
    return decode_v1(buf, len, out);
  }
  if (memcmp(buf, v2_sig, min_size(len, sizeof(v2_sig))) != 0) return PROXY_PROTO_ERR_SIGNATURE;
  return decode_v2(buf, len, v2_max, out);
}

int proxy_proto_decode(const uint8_t *buf, size_t len, struct proxy_proto_info *out) {
  return proxy_proto_decode_max(buf, len, 0, out);
}

const struct proxy_proto_tlv *proxy_proto_find_tlv(const struct proxy_proto_info *info,
                                                   uint8_t type) {
  for (size_t i = 0; i < info->ntlvs; i++) {
    if (info->tlvs[i].type == type) return &info->tlvs[i];
  }
  return NULL;
}

/* ---- encoders ---- */

int proxy_proto_encode_v2(uint8_t *out, size_t outlen, enum proxy_proto_command command,
                          const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                          const struct proxy_proto_tlv *tlvs, size_t ntlvs, unsigned flags) {
  uint8_t fam = V2_FAM_UNSPEC;
  size_t addrlen = 0;
  if (command == PROXY_PROTO_CMD_PROXY) {
    if (src == NULL || dst == NULL || src->ss_family != dst->ss_family) return PROXY_PROTO_ERR_ARG;
    if (src->ss_family == AF_INET) {
      fam = V2_FAM_INET;
      addrlen = V2_ADDR_INET;
    } else if (src->ss_family == AF_INET6) {
      fam = V2_FAM_INET6;
      addrlen = V2_ADDR_INET6;
    } else {
      return PROXY_PROTO_ERR_ARG;
    }
  } else if (command != PROXY_PROTO_CMD_LOCAL) {
    return PROXY_PROTO_ERR_ARG;
  }
  size_t total = PROXY_PROTO_V2_HDR_LEN + addrlen;
  for (size_t i = 0; i < ntlvs; i++) {
    if (tlvs[i].type == PP2_TYPE_CRC32C || (tlvs[i].len && tlvs[i].value == NULL))
      return PROXY_PROTO_ERR_ARG;
    total += 3 + (size_t)tlvs[i].len;
  }
  if (flags & PROXY_PROTO_ENC_CRC32C) total += 7;
  if (total > PROXY_PROTO_V2_ABS_MAX) return PROXY_PROTO_ERR_ARG;
  if (out == NULL || total > outlen) return PROXY_PROTO_ERR_NOSPACE;

  uint8_t transport = command == PROXY_PROTO_CMD_LOCAL  ? PROXY_PROTO_TRANSPORT_UNSPEC
                      : (flags & PROXY_PROTO_ENC_DGRAM) ? PROXY_PROTO_TRANSPORT_DGRAM
                                                        : PROXY_PROTO_TRANSPORT_STREAM;
  memcpy(out, v2_sig, sizeof(v2_sig));
  out[12] = (uint8_t)(0x20 | command);
  out[13] = (uint8_t)((fam << 4) | transport);
  put16(out + 14, (uint16_t)(total - PROXY_PROTO_V2_HDR_LEN));
  uint8_t *p = out + PROXY_PROTO_V2_HDR_LEN;
  if (fam == V2_FAM_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)src;
    const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
    memcpy(p, &s->sin_addr, 4);
    memcpy(p + 4, &d->sin_addr, 4);
    memcpy(p + 8, &s->sin_port, 2);
    memcpy(p + 10, &d->sin_port, 2);
  } else if (fam == V2_FAM_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
    const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
    memcpy(p, &s->sin6_addr, 16);
    memcpy(p + 16, &d->sin6_addr, 16);
    memcpy(p + 32, &s->sin6_port, 2);
    memcpy(p + 34, &d->sin6_port, 2);
  }
  p += addrlen;
  for (size_t i = 0; i < ntlvs; i++) {
    p[0] = tlvs[i].type;
    put16(p + 1, tlvs[i].len);
    if (tlvs[i].len) memcpy(p + 3, tlvs[i].value, tlvs[i].len);
    p += 3 + (size_t)tlvs[i].len;
  }
  if (flags & PROXY_PROTO_ENC_CRC32C) {
    p[0] = PP2_TYPE_CRC32C;
    put16(p + 1, 4);
    put32(p + 3, 0);
    put32(p + 3, proxy_proto_crc32c(out, total));
  }
  return (int)total;
}

int proxy_proto_encode_v1(char *out, size_t outlen, const struct sockaddr_storage *src,
                          const struct sockaddr_storage *dst) {
  char line[PROXY_PROTO_V1_MAX_LEN + 1];
  int n;
  int unknown = src == NULL || dst == NULL || src->ss_family == AF_UNSPEC;
  if (unknown) {
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
  } else {
    if (src->ss_family != dst->ss_family) return PROXY_PROTO_ERR_ARG;
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    unsigned sport, dport;
    const char *proto;
    if (src->ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)src;
      const struct sockaddr_in *b = (const struct sockaddr_in *)dst;
      inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
      inet_ntop(AF_INET, &b->sin_addr, d, sizeof(d));
      sport = ntohs(a->sin_port);
      dport = ntohs(b->sin_port);
      proto = "TCP4";
    } else if (src->ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
      const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)dst;
      inet_ntop(AF_INET6, &a->sin6_addr, s, sizeof(s));
      inet_ntop(AF_INET6, &b->sin6_addr, d, sizeof(d));
      sport = ntohs(a->sin6_port);
      dport = ntohs(b->sin6_port);
      proto = "TCP6";
    } else {
      return PROXY_PROTO_ERR_ARG;
    }
    n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", proto, s, d, sport, dport);
  }
  if (n < 0 || (size_t)n > PROXY_PROTO_V1_MAX_LEN) return PROXY_PROTO_ERR_ARG;
  if (out == NULL || (size_t)n > outlen) return PROXY_PROTO_ERR_NOSPACE;
  memcpy(out, line, (size_t)n);
  return n;
}

const char *proxy_proto_strerror(int err) {
  if (err >= 0) return "ok";
  switch (err) {
    case PROXY_PROTO_NEED_MORE:
      return "incomplete PROXY header, need more data";
    case PROXY_PROTO_ERR_SIGNATURE:
      return "bad PROXY protocol signature";
    case PROXY_PROTO_ERR_VERSION:
      return "unsupported PROXY protocol version";
    case PROXY_PROTO_ERR_COMMAND:
      return "bad PROXY v2 command";
    case PROXY_PROTO_ERR_FAMILY:
      return "bad PROXY address family or protocol";
    case PROXY_PROTO_ERR_ADDR_LEN:
      return "PROXY v2 length too short for the address family";
    case PROXY_PROTO_ERR_TOO_LONG:
      return "PROXY header over the length limit";
    case PROXY_PROTO_ERR_V1_CRLF:
      return "PROXY v1 line not terminated by CRLF";
    case PROXY_PROTO_ERR_V1_ADDRESS:
      return "bad PROXY v1 address";
    case PROXY_PROTO_ERR_V1_PORT:
      return "bad PROXY v1 port";
    case PROXY_PROTO_ERR_V1_SYNTAX:
      return "malformed PROXY v1 line";
    case PROXY_PROTO_ERR_TLV_OVERFLOW:
      return "PROXY v2 TLV runs past the header";
    case PROXY_PROTO_ERR_CRC32C:
      return "PROXY v2 CRC32C mismatch";
    case PROXY_PROTO_ERR_TLV_INVALID:
      return "PROXY v2 TLV with an invalid length";
    case PROXY_PROTO_ERR_TLV_COUNT:
      return "too many PROXY v2 TLVs";
    case PROXY_PROTO_ERR_NOSPACE:
      return "output buffer too small for the PROXY header";
    case PROXY_PROTO_ERR_ARG:
      return "bad arguments for the PROXY header";
    default:
      return "unknown PROXY protocol error";
  }
}
